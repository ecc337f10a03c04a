//! Catching up and restarting on a long history, with the KV example's state machine
//! (its snapshot hooks are the model the README gives service authors).
//!
//! - **catchup**: a 3-node cluster; one follower is killed, `entries` puts of distinct
//!   keys are committed without it, the leader snapshots, and the follower restarts on
//!   its (empty) storage. It is far behind the leader's compacted prefix, so it catches
//!   up by InstallSnapshot. Measured: from its restart until it has applied everything
//!   the leader had committed; then its map is checked against the writes.
//! - **restart**: `entries` puts over a bounded key space (a service's state does not
//!   grow with its history) go through a 3-node cluster snapshotting by the default
//!   policy; then a follower is killed and restarted on its storage. Measured: from its
//!   restart until it serves as a follower again (it has applied what the leader had
//!   committed): it reads its snapshot and the log after it, not the whole history.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Arbiter;
use actraft::core::{Config, LogIndex, NodeId};
use actraft::{ClientError, NodeBuilder, RaftHandle, SnapshotStore};
use actraft_examples::cluster::{SnapshotStores, StorageProvider, TransportProvider};
use actraft_examples::kv::{KvCommand, KvMachine, KvReader};
use actraft_transport_mem::MemRouter;
use serde::Serialize;

use crate::{BenchError, StorageKind, TransportKind};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A follower far behind catches up by snapshot.
    Catchup,
    /// A follower restarts on its own long history.
    Restart,
}

/// One run.
#[derive(Debug, Clone)]
pub struct CatchupConfig {
    /// What to measure.
    pub mode: Mode,
    /// Entries written while the follower is down (catchup) or before it restarts
    /// (restart).
    pub entries: u64,
    /// Distinct keys the puts cycle over (`None`: every put has its own key).
    pub keys: Option<u64>,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Closed-loop writers of the load phase.
    pub clients: usize,
    /// Transport between the nodes.
    pub transport: TransportKind,
    /// Log storage.
    pub storage: StorageKind,
    /// Where RocksDB keeps its files (a temporary directory when `None`).
    pub data_dir: Option<PathBuf>,
}

impl CatchupConfig {
    /// A catch-up of `entries` on this backend: one key per put.
    pub fn catchup(entries: u64, transport: TransportKind, storage: StorageKind) -> Self {
        Self {
            mode: Mode::Catchup,
            entries,
            keys: None,
            value_bytes: 48,
            clients: 256,
            transport,
            storage,
            data_dir: None,
        }
    }

    /// A restart after `entries` of history over 100 000 keys, on this storage.
    pub fn restart(entries: u64, storage: StorageKind) -> Self {
        Self {
            mode: Mode::Restart,
            keys: Some(100_000),
            ..Self::catchup(entries, TransportKind::Mem, storage)
        }
    }

    /// A name for the report's list of skipped runs.
    pub fn describe(&self) -> String {
        format!(
            "{:?} entries={} transport={} storage={}",
            self.mode, self.entries, self.transport, self.storage
        )
        .to_lowercase()
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct CatchupResult {
    /// What was measured.
    pub mode: Mode,
    /// Entries written.
    pub entries: u64,
    /// Transport.
    pub transport: String,
    /// Storage.
    pub storage: String,
    /// Size of the leader's latest snapshot, MiB.
    pub snapshot_mb: f64,
    /// From the follower's restart until it applied what the leader had committed, s.
    pub secs: f64,
    /// From the restart until the node was running (recovered from its storage), s.
    pub start_secs: f64,
    /// How long writing the entries took, s.
    pub load_secs: f64,
    /// Index the restarted follower had to apply.
    pub target_index: LogIndex,
}

impl CatchupResult {
    /// The run's one-line summary.
    pub fn line(&self) -> String {
        match self.mode {
            Mode::Catchup => format!(
                "catchup: entries={} transport={} storage={} snapshot_mb={:.1} secs={:.3}",
                self.entries, self.transport, self.storage, self.snapshot_mb, self.secs
            ),
            Mode::Restart => format!(
                "restart: entries={} storage={} secs={:.3}",
                self.entries, self.storage, self.secs
            ),
        }
    }
}

/// The report's runs: a short catch-up in the quick report; in the full one, a million
/// entries on every backend and a restart after a million on RocksDB.
pub fn plan(quick: bool) -> Vec<CatchupConfig> {
    if quick {
        return vec![CatchupConfig::catchup(
            20_000,
            TransportKind::Mem,
            StorageKind::Mem,
        )];
    }
    let mut plan = vec![
        CatchupConfig::catchup(1_000_000, TransportKind::Mem, StorageKind::Mem),
        CatchupConfig::catchup(1_000_000, TransportKind::Quic, StorageKind::Mem),
    ];
    if StorageKind::Rocks.is_built() {
        plan.push(CatchupConfig::catchup(
            1_000_000,
            TransportKind::Mem,
            StorageKind::Rocks,
        ));
        plan.push(CatchupConfig::restart(1_000_000, StorageKind::Rocks));
    }
    plan
}

/// Three KV nodes on their own threads, started and restarted on their storages.
struct Nodes {
    members: Vec<NodeId>,
    config: Config,
    storages: Box<dyn StorageProvider>,
    transports: Box<dyn TransportProvider>,
    handles: Vec<Option<RaftHandle>>,
    readers: Vec<Option<KvReader>>,
    arbiters: Vec<Arbiter>,
}

fn backend(id: NodeId, message: impl std::fmt::Display) -> BenchError {
    BenchError::Usage(format!("node {id}: {message}"))
}

impl Nodes {
    fn new(cfg: &CatchupConfig) -> Result<Self, BenchError> {
        let storages: Box<dyn StorageProvider> =
            match cfg.storage.check_built().map_err(|e| {
                BenchError::Cluster(actraft_examples::cluster::ClusterError::from(e))
            })? {
                StorageKind::Mem => Box::<actraft_examples::cluster::MemStorages>::default(),
                #[cfg(feature = "rocks")]
                StorageKind::Rocks => {
                    Box::new(actraft_examples::rocks::provider(cfg.data_dir.clone())?)
                }
                #[cfg(not(feature = "rocks"))]
                StorageKind::Rocks => unreachable!("check_built refused it"),
            };
        let transports: Box<dyn TransportProvider> = match cfg.transport {
            TransportKind::Mem => Box::new(MemRouter::with_seed(7)),
            TransportKind::Quic => Box::new(actraft_examples::quic::provider(3)?),
        };
        Ok(Self {
            members: vec![1, 2, 3],
            config: Config::default(),
            storages,
            transports,
            handles: vec![None, None, None],
            readers: vec![None, None, None],
            arbiters: (0..3).map(|_| Arbiter::new()).collect(),
        })
    }

    async fn start(&mut self, id: NodeId) -> Result<RaftHandle, BenchError> {
        let slot = (id - 1) as usize;
        let storage = self.storages.open(id).await.map_err(|e| backend(id, e))?;
        let transport = self.transports.transport(id).map_err(|e| backend(id, e))?;
        let snapshots = self.storages.snapshots(id).map_err(|e| backend(id, e))?;
        let machine = KvMachine::new();
        let reader = machine.reader();
        let builder = NodeBuilder::new(id, self.members.clone())
            .config(self.config.clone())
            .seed(id * 7919)
            .arbiter(self.arbiters[slot].handle());
        let handle = snapshots
            .install(builder)
            .start(storage, transport, machine)
            .await
            .map_err(|e| backend(id, e))?;
        self.handles[slot] = Some(handle.clone());
        self.readers[slot] = Some(reader);
        Ok(handle)
    }

    async fn kill(&mut self, id: NodeId) {
        if let Some(handle) = self.handles[(id - 1) as usize].take() {
            handle.kill().await;
        }
    }

    async fn stop_all(&mut self) {
        for handle in self.handles.iter_mut().filter_map(Option::take) {
            handle.shutdown().await;
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }

    /// Bytes of node `id`'s latest stored snapshot.
    fn snapshot_bytes(&mut self, id: NodeId) -> Result<u64, BenchError> {
        let opened = match self.storages.snapshots(id).map_err(|e| backend(id, e))? {
            SnapshotStores::Mem(store) => store.open_latest(),
            #[cfg(feature = "rocks")]
            SnapshotStores::File(store) => store.open_latest(),
        }
        .map_err(|e| backend(id, e))?;
        let Some((_, mut chunks)) = opened else {
            return Ok(0);
        };
        let mut bytes = 0u64;
        while let Some(chunk) = chunks.next_chunk(1 << 20).map_err(|e| backend(id, e))? {
            bytes += chunk.len() as u64;
        }
        Ok(bytes)
    }
}

fn key(i: u64, keys: Option<u64>) -> String {
    format!("k{:08}", keys.map_or(i, |k| i % k.max(1)))
}

/// The node of `live` that leads now, waiting up to `timeout` for one.
async fn leader_of(live: &[RaftHandle], timeout: Duration) -> Result<RaftHandle, BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(h) = live
            .iter()
            .find(|h| h.status().role == actraft::core::Role::Leader)
        {
            return Ok(h.clone());
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout(timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writes puts `0..entries` with `clients` closed-loop writers through whichever of
/// `live` leads. A put whose outcome is unknown (its leader stepped down) is sent
/// again to the next leader: a put is idempotent, so applying it twice changes nothing.
async fn load(cfg: &CatchupConfig, live: &[RaftHandle]) -> Result<(), BenchError> {
    let next = Arc::new(AtomicU64::new(0));
    let value = "v".repeat(cfg.value_bytes);
    let live = Arc::new(live.to_vec());
    let tasks: Vec<_> = (0..cfg.clients.max(1))
        .map(|_| {
            let (live, next, value) = (live.clone(), next.clone(), value.clone());
            let (entries, keys) = (cfg.entries, cfg.keys);
            actix_rt::spawn(async move {
                let mut leader = leader_of(&live, Duration::from_secs(20)).await?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= entries {
                        return Ok::<(), BenchError>(());
                    }
                    let command = KvCommand::Put {
                        key: key(i, keys),
                        value: value.clone(),
                    }
                    .encode();
                    loop {
                        match leader.propose(command.clone()).await {
                            Ok(_) => break,
                            Err(ClientError::Busy) => {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            Err(e) => {
                                tracing::info!(%e, "a put failed; sending it to the next leader");
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                leader = leader_of(&live, Duration::from_secs(20)).await?;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| BenchError::Usage(format!("a writer failed: {e}")))??;
    }
    Ok(())
}

/// Runs one catch-up or restart.
pub async fn run(cfg: &CatchupConfig) -> Result<CatchupResult, BenchError> {
    let mut nodes = Nodes::new(cfg)?;
    let result = measure(cfg, &mut nodes).await;
    nodes.stop_all().await;
    result
}

async fn measure(cfg: &CatchupConfig, nodes: &mut Nodes) -> Result<CatchupResult, BenchError> {
    let wait = Duration::from_secs(60);
    let mut handles = Vec::new();
    for id in nodes.members.clone() {
        handles.push(nodes.start(id).await?);
    }
    let leader_id = leader_of(&handles, Duration::from_secs(20)).await?.id();
    let follower = nodes
        .members
        .iter()
        .copied()
        .find(|&id| id != leader_id)
        .expect("three members");
    if cfg.mode == Mode::Catchup {
        nodes.kill(follower).await;
        handles.retain(|h| h.id() != follower);
    }
    let loaded = Instant::now();
    load(cfg, &handles).await?;
    let load_secs = loaded.elapsed().as_secs_f64();
    let leader = leader_of(&handles, wait).await?;
    let leader_id = leader.id();
    let target = leader.status().commit_index;
    if cfg.mode == Mode::Catchup {
        // Snapshot everything, so the follower catches up from one snapshot of the
        // whole state rather than from one taken up to 64 Ki entries earlier.
        leader.trigger_snapshot();
        leader.wait_for_snapshot(target, wait).await?;
    } else {
        let running = handles.iter().find(|h| h.id() == follower);
        running
            .expect("the follower runs")
            .wait_for_applied(target, wait)
            .await?;
        nodes.kill(follower).await;
    }
    let snapshot_mb = nodes.snapshot_bytes(leader_id)? as f64 / (1024.0 * 1024.0);
    let target = leader.status().commit_index;
    let restarted = Instant::now();
    let handle = nodes.start(follower).await?;
    let start_secs = restarted.elapsed().as_secs_f64();
    handle.wait_for_applied(target, wait).await?;
    let secs = restarted.elapsed().as_secs_f64();
    verify(cfg, nodes, follower, &handle)?;
    Ok(CatchupResult {
        mode: cfg.mode,
        entries: cfg.entries,
        transport: cfg.transport.to_string(),
        storage: cfg.storage.to_string(),
        snapshot_mb,
        secs,
        start_secs,
        load_secs,
        target_index: target,
    })
}

/// Checks the restarted follower's state: every key written holds the value written.
fn verify(
    cfg: &CatchupConfig,
    nodes: &Nodes,
    follower: NodeId,
    handle: &RaftHandle,
) -> Result<(), BenchError> {
    let reader = nodes.readers[(follower - 1) as usize]
        .as_ref()
        .expect("the follower runs");
    let value = "v".repeat(cfg.value_bytes);
    let distinct = cfg.keys.map_or(cfg.entries, |k| k.min(cfg.entries));
    for i in 0..distinct {
        if reader.value(&key(i, cfg.keys)).as_deref() != Some(value.as_str()) {
            return Err(BenchError::Usage(format!(
                "node {follower} lacks key {} after catching up",
                key(i, cfg.keys)
            )));
        }
    }
    if cfg.mode == Mode::Catchup && handle.latest_snapshot().is_none() {
        return Err(BenchError::Usage(format!(
            "node {follower} caught up without a snapshot"
        )));
    }
    Ok(())
}

/// The report's catch-up and restart section.
pub fn markdown(results: &[CatchupResult]) -> String {
    let mut md = String::new();
    if results.is_empty() {
        return md;
    }
    md.push_str("\n## Catch-up by snapshot and restart (3 nodes, KV puts of 48 B values)\n\n");
    md.push_str("`catchup`: a follower killed before the writes restarts empty, behind the leader's compacted log, and receives the leader's snapshot (one put per key: the state grows with the entries); time from its restart until it has applied everything the leader had committed. `restart`: after the writes (over 100 000 keys, default snapshot policy), a follower is killed and restarted on its own storage; time until it has applied what the leader had committed (it reads its snapshot and the log after it). Targets: catch-up of 1 000 000 entries on mem/mem ≤ 2 s; restart after 10 000 000 entries on RocksDB ≤ 1 s.\n\n");
    md.push_str(
        "| run | entries | transport | storage | snapshot (MB) | secs | node started (s) | load (s) |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in results {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {:.3} | {:.3} | {:.1} |",
            match r.mode {
                Mode::Catchup => "catchup",
                Mode::Restart => "restart",
            },
            r.entries,
            r.transport,
            r.storage,
            r.snapshot_mb,
            r.secs,
            r.start_secs,
            r.load_secs
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_run() {
        let mut r = CatchupResult {
            mode: Mode::Catchup,
            entries: 1_000_000,
            transport: "mem".into(),
            storage: "mem".into(),
            snapshot_mb: 62.04,
            secs: 0.8571,
            start_secs: 0.004,
            load_secs: 18.0,
            target_index: 1_000_515,
        };
        assert_eq!(
            r.line(),
            "catchup: entries=1000000 transport=mem storage=mem snapshot_mb=62.0 secs=0.857"
        );
        r.mode = Mode::Restart;
        r.storage = "rocks".into();
        assert_eq!(
            r.line(),
            "restart: entries=1000000 storage=rocks secs=0.857"
        );
        assert!(markdown(&[r]).contains("| restart | 1000000 | mem | rocks |"));
    }

    #[test]
    fn puts_cycle_over_the_key_space() {
        assert_eq!(key(5, None), "k00000005");
        assert_eq!(key(100_005, Some(100_000)), "k00000005");
        assert_eq!(plan(true).len(), 1);
    }
}
