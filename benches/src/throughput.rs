//! Append throughput: K clients, each proposing back to back through the leader; the
//! rate at which entries are committed and applied on the leader, and each commit's
//! latency as a client sees it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actraft_examples::backend::start_cluster;
use actraft_examples::cluster::{ClusterOptions, Placement};
use bytes::Bytes;
use futures_util::future::join_all;
use serde::Serialize;

use crate::stats::SharedHistogram;
use crate::{BenchError, StorageKind, TransportKind};

/// One throughput configuration.
#[derive(Debug, Clone)]
pub struct ThroughputConfig {
    /// Cluster size.
    pub members: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Total proposals.
    pub ops: u64,
    /// Bytes per command (0: empty commands).
    pub payload: usize,
    /// Transport.
    pub transport: TransportKind,
    /// Storage.
    pub storage: StorageKind,
    /// Arbiters (threads) for the nodes: `None` is one per node. Clients run on a thread
    /// of their own either way.
    pub threads: Option<usize>,
    /// Where disk storages keep their files (a temporary directory when `None`).
    pub data_dir: Option<PathBuf>,
    /// Where the clients run: on a thread of their own, or on the leader's arbiter.
    pub placement: ClientPlacement,
    /// Measure the raw ceilings after the run (RocksDB's on RocksDB, QUIC's on QUIC), as
    /// the result line reports them. Default `true`; a caller that reads only the run's
    /// time (the criterion bench) turns it off and saves their seconds.
    pub ceilings: bool,
}

/// Where a throughput run's clients run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientPlacement {
    /// On the leader's arbiter ([`actraft::RaftHandle::arbiter`]): a proposal and its
    /// answer take no thread hop between client and node.
    Same,
    /// On a thread of their own: every proposal wakes the node's thread and every
    /// answer the clients'.
    #[default]
    Other,
}

impl std::fmt::Display for ClientPlacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientPlacement::Same => "same",
            ClientPlacement::Other => "other",
        })
    }
}

impl ThroughputConfig {
    /// `members` nodes, `clients` clients, `ops` proposals of `payload` bytes, in memory.
    pub fn new(members: usize, clients: usize, ops: u64, payload: usize) -> Self {
        Self {
            members,
            clients,
            ops,
            payload,
            transport: TransportKind::Mem,
            storage: StorageKind::Mem,
            threads: None,
            data_dir: None,
            placement: ClientPlacement::Other,
            ceilings: true,
        }
    }

    /// The number of node threads this configuration uses.
    pub fn node_threads(&self) -> usize {
        self.threads.unwrap_or(self.members)
    }
}

/// What a throughput run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputResult {
    /// Cluster size.
    pub members: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Bytes per command.
    pub payload: usize,
    /// Transport name.
    pub transport: String,
    /// Storage name.
    pub storage: String,
    /// Node threads.
    pub threads: usize,
    /// Where the clients ran.
    pub placement: ClientPlacement,
    /// Proposals committed.
    pub ops: u64,
    /// Wall time, seconds.
    pub secs: f64,
    /// Committed and applied entries per second.
    pub ops_per_sec: f64,
    /// Median commit latency, µs.
    pub p50_us: f64,
    /// 99th percentile commit latency, µs.
    pub p99_us: f64,
    /// On RocksDB: entries per synced batch on the leader during the run (the batch size
    /// the raw RocksDB ceiling is measured at).
    pub leader_entries_per_sync: Option<f64>,
    /// The raw RocksDB ceiling at that batch size, entries/s, measured after the run
    /// (`ceiling_ops_per_sec` on the line).
    pub raw_rocksdb_entries_per_sec: Option<f64>,
    /// The same raw writes by as many writers as there are members, all at once, on
    /// the same disk: one writer's entries/s (`shared_disk_ceiling_ops_per_sec` on the
    /// line). Every node syncs every batch, so on a machine whose nodes share one disk
    /// this, not the one-writer ceiling, is what a commit can reach.
    pub shared_disk_entries_per_sec: Option<f64>,
    /// On RocksDB: the mean time of one synced write on the leader, µs.
    pub leader_sync_us: Option<f64>,
    /// On RocksDB: the mean time of one synced write on a follower, µs.
    pub follower_sync_us: Option<f64>,
    /// Mean commit latency, µs (with the syncs above, where one durable commit's time
    /// goes).
    pub mean_us: f64,
    /// On QUIC: replication payload bytes per second, to all followers, in MB/s.
    pub mb_per_sec: Option<f64>,
    /// On QUIC: the same payload bytes pushed through one raw QUIC stream on loopback,
    /// measured after the run, in MB/s (see [`crate::ceiling`]).
    pub ceiling_mb_per_sec: Option<f64>,
    /// On QUIC: the same bytes from one sender to as many raw QUIC receivers as there
    /// are followers, one connection each, in MB/s: the leader's shape without Raft
    /// (`fan_out_ceiling_mb_per_sec` on the line).
    pub fan_out_ceiling_mb_per_sec: Option<f64>,
    /// On QUIC: the median round trip of a small message over raw QUIC on loopback, µs,
    /// measured after the run (`ceiling_rtt_us` on the line): what one round of
    /// replication waits at least (see [`crate::ceiling::quic_round_trip_us`]).
    pub ceiling_rtt_us: Option<f64>,
}

impl ThroughputResult {
    /// The benchmark's one-line summary.
    pub fn line(&self) -> String {
        format!(
            "throughput: members={} clients={} payload={} transport={} storage={} ops={} secs={:.3} ops_per_sec={:.0} p50_us={:.0} p99_us={:.0} threads={} placement={}",
            self.members,
            self.clients,
            self.payload,
            self.transport,
            self.storage,
            self.ops,
            self.secs,
            self.ops_per_sec,
            self.p50_us,
            self.p99_us,
            self.threads,
            self.placement
        ) + &self.ceiling_fields()
    }

    /// The ceiling fields the line ends with: `ceiling_ops_per_sec` and
    /// `shared_disk_ceiling_ops_per_sec` on RocksDB,
    /// `mb_per_sec`, `ceiling_mb_per_sec`, `fan_out_ceiling_mb_per_sec` and
    /// `ceiling_rtt_us` on QUIC.
    fn ceiling_fields(&self) -> String {
        let mut out = String::new();
        if let Some(c) = self.raw_rocksdb_entries_per_sec {
            out += &format!(" ceiling_ops_per_sec={c:.0}");
        }
        if let Some(c) = self.shared_disk_entries_per_sec {
            out += &format!(" shared_disk_ceiling_ops_per_sec={c:.0}");
        }
        if let (Some(l), Some(f)) = (self.leader_sync_us, self.follower_sync_us) {
            out += &format!(
                " mean_us={:.0} leader_sync_us={l:.0} follower_sync_us={f:.0}",
                self.mean_us
            );
        }
        if let (Some(mb), Some(c)) = (self.mb_per_sec, self.ceiling_mb_per_sec) {
            out += &format!(" mb_per_sec={mb:.1} ceiling_mb_per_sec={c:.1}");
        }
        if let Some(c) = self.fan_out_ceiling_mb_per_sec {
            out += &format!(" fan_out_ceiling_mb_per_sec={c:.1}");
        }
        if let Some(c) = self.ceiling_rtt_us {
            out += &format!(" ceiling_rtt_us={c:.0}");
        }
        out
    }
}

/// How long a client waits for a new leader after its own lost leadership.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Bytes a raw QUIC ceiling pushes at least (less is mostly the handshake) and at most
/// (about a second on loopback).
const QUIC_CEILING_BYTES: (u64, u64) = (64 << 20, 1 << 30);

/// Round trips the raw QUIC round-trip ceiling times (well under a second on loopback).
const QUIC_CEILING_ROUND_TRIPS: usize = 5_000;

/// Runs one throughput measurement.
pub async fn run(cfg: &ThroughputConfig) -> Result<ThroughputResult, BenchError> {
    let placement = match cfg.threads {
        None => Placement::PerNode,
        Some(n) => Placement::Threads(n.max(1)),
    };
    let options = ClusterOptions::new(cfg.members)
        .placement(placement)
        .record(false);
    // On RocksDB, the stores are opened here, so that their write counters can be read.
    #[cfg(feature = "rocks")]
    let rocks = match cfg.storage {
        StorageKind::Rocks => Some(rocks_stats::RocksWithStats::new(
            actraft_examples::rocks::provider(cfg.data_dir.clone())?,
        )),
        _ => None,
    };
    #[cfg(feature = "rocks")]
    let cluster = match &rocks {
        Some(rocks) => {
            actraft_examples::backend::on_transport(options, rocks.clone(), cfg.transport).await?
        }
        None => start_cluster(options, cfg.storage, cfg.transport, cfg.data_dir.clone()).await?,
    };
    #[cfg(not(feature = "rocks"))]
    let cluster = start_cluster(options, cfg.storage, cfg.transport, cfg.data_dir.clone()).await?;
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let handle = cluster.handle(leader).expect("leader runs");
    // Warm up: the first proposals pay for allocations and connection set-up.
    for _ in 0..100 {
        handle.propose(Bytes::from(vec![0u8; cfg.payload])).await?;
    }
    #[cfg(feature = "rocks")]
    let stats_before = rocks.as_ref().map(|r| r.all_stats()).unwrap_or_default();
    let nodes = cluster.live();
    let issued = Arc::new(AtomicU64::new(0));
    let payload = Bytes::from(vec![7u8; cfg.payload]);
    let latencies = Arc::new(SharedHistogram::default());
    let start = Instant::now();
    // One task per client, on this (the clients') thread or on the leader's arbiter.
    let tasks: Vec<_> = (0..cfg.clients)
        .map(|_| {
            let (mut proposer, issued, payload) = (handle.clone(), issued.clone(), payload.clone());
            let (nodes, latencies) = (nodes.clone(), latencies.clone());
            let ops = cfg.ops;
            let client = async move {
                while issued.fetch_add(1, Ordering::Relaxed) < ops {
                    let t = Instant::now();
                    match proposer.propose(payload.clone()).await {
                        Ok(_) => latencies.record(t.elapsed()),
                        // Leadership moved (a loaded machine can cost the leader its
                        // lease): go on with the new leader; the failed proposal is not
                        // counted.
                        Err(e) if crate::follow::leadership_moved(&e) => {
                            let until = Instant::now() + LEADER_WAIT;
                            proposer = crate::follow::leader_now(&nodes, &proposer, until).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok::<_, BenchError>(())
            };
            let (done, result) = tokio::sync::oneshot::channel();
            let task = async move {
                let _ = done.send(client.await);
            };
            match cfg.placement {
                ClientPlacement::Other => drop(actix_rt::spawn(task)),
                ClientPlacement::Same => {
                    handle.arbiter().spawn(task);
                }
            }
            result
        })
        .collect();
    let per_client = join_all(tasks).await;
    let secs = start.elapsed().as_secs_f64();
    #[cfg(feature = "rocks")]
    let (leader_entries_per_sync, leader_sync_us, follower_sync_us) = {
        let after = rocks.as_ref().map(|r| r.all_stats()).unwrap_or_default();
        let during = |id: actraft::NodeId| match (stats_before.get(&id), after.get(&id)) {
            (Some(a), Some(b)) if b.syncs > a.syncs => Some((
                b.syncs - a.syncs,
                b.entries - a.entries,
                b.sync_nanos - a.sync_nanos,
            )),
            _ => None,
        };
        let leader_during = during(leader);
        let (mut syncs, mut nanos) = (0, 0);
        for (s, _, n) in after
            .keys()
            .filter(|&&id| id != leader)
            .filter_map(|&id| during(id))
        {
            syncs += s;
            nanos += n;
        }
        (
            leader_during.map(|(s, e, _)| e as f64 / s as f64),
            leader_during.map(|(s, _, n)| n as f64 / s as f64 / 1e3),
            (syncs > 0).then(|| nanos as f64 / syncs as f64 / 1e3),
        )
    };
    #[cfg(not(feature = "rocks"))]
    let (leader_entries_per_sync, leader_sync_us, follower_sync_us) = (None, None, None);
    for l in per_client {
        l.map_err(|e| BenchError::Usage(format!("a client task failed: {e}")))??;
    }
    let latencies = latencies.take();
    let mut cluster = cluster;
    cluster.shutdown_all().await;
    let ops = latencies.len();
    // The ceilings, measured once the cluster is down, in the same run.
    #[cfg(feature = "rocks")]
    let (raw_rocksdb_entries_per_sec, shared_disk_entries_per_sec) = match leader_entries_per_sync
        .filter(|_| cfg.ceilings)
    {
        Some(batch) => {
            let batch = batch.round().max(1.0) as usize;
            let writes = (ops as usize / batch).clamp(20, 2_000);
            let alone = crate::storage::raw_rocksdb(batch, cfg.payload, writes)?.entries_per_sec;
            let shared =
                crate::storage::raw_rocksdb_shared(cfg.members, batch, cfg.payload, writes)?;
            (Some(alone), Some(shared))
        }
        None => (None, None),
    };
    #[cfg(not(feature = "rocks"))]
    let (raw_rocksdb_entries_per_sec, shared_disk_entries_per_sec) = (None, None);
    let (mb_per_sec, ceiling_mb_per_sec, fan_out_ceiling_mb_per_sec, ceiling_rtt_us) =
        if cfg.transport == TransportKind::Quic {
            let followers = cfg.members.saturating_sub(1);
            let replicated = ops * cfg.payload as u64 * followers as u64;
            let (ceiling, fan_out, rtt) = if cfg.ceilings {
                let (least, most) = QUIC_CEILING_BYTES;
                let bytes = replicated.clamp(least, most);
                let ceiling = crate::ceiling::quic_loopback_mb_per_sec(bytes)?;
                let fan_out = match followers {
                    0 | 1 => None,
                    n => Some(crate::ceiling::quic_fan_out_mb_per_sec(bytes, n)?),
                };
                let rtt = crate::ceiling::quic_round_trip_us(QUIC_CEILING_ROUND_TRIPS)?;
                (Some(ceiling), fan_out, Some(rtt))
            } else {
                (None, None, None)
            };
            (Some(replicated as f64 / secs / 1e6), ceiling, fan_out, rtt)
        } else {
            (None, None, None, None)
        };
    Ok(ThroughputResult {
        members: cfg.members,
        clients: cfg.clients,
        payload: cfg.payload,
        transport: cfg.transport.to_string(),
        storage: cfg.storage.to_string(),
        threads: cfg.node_threads(),
        placement: cfg.placement,
        ops,
        secs,
        ops_per_sec: latencies.len() as f64 / secs,
        p50_us: latencies.quantile_us(0.5),
        p99_us: latencies.quantile_us(0.99),
        leader_entries_per_sync,
        raw_rocksdb_entries_per_sec,
        shared_disk_entries_per_sec,
        leader_sync_us,
        follower_sync_us,
        mean_us: latencies.mean_us(),
        mb_per_sec,
        ceiling_mb_per_sec,
        fan_out_ceiling_mb_per_sec,
        ceiling_rtt_us,
    })
}

/// RocksDB storages whose write counters the benchmark reads.
#[cfg(feature = "rocks")]
mod rocks_stats {
    use std::sync::Arc;

    use actraft::{LogStorage, NodeId};
    use actraft_examples::cluster::{SnapshotStores, StorageProvider};
    use actraft_examples::rocks::RocksStorages;
    use actraft_storage_rocks::{RocksOptions, RocksStorage, StorageStats};
    use async_trait::async_trait;

    /// RocksDB storages whose write counters the benchmark reads: each node's store and
    /// snapshots where [`RocksStorages`] keeps them, the stores opened here so that the
    /// benchmark holds them.
    #[derive(Clone)]
    pub(super) struct RocksWithStats {
        inner: Arc<std::sync::Mutex<RocksInner>>,
    }

    struct RocksInner {
        // Fields drop in order: the stores close before a temporary directory is removed.
        stores: std::collections::BTreeMap<NodeId, RocksStorage>,
        dirs: RocksStorages,
    }

    impl RocksWithStats {
        /// Stores where `dirs` puts them.
        pub(super) fn new(dirs: RocksStorages) -> Self {
            Self {
                inner: Arc::new(std::sync::Mutex::new(RocksInner {
                    stores: Default::default(),
                    dirs,
                })),
            }
        }

        /// The counters of every store opened so far.
        pub(super) fn all_stats(&self) -> std::collections::BTreeMap<NodeId, StorageStats> {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner
                .stores
                .iter()
                .map(|(&id, store)| (id, store.stats()))
                .collect()
        }
    }

    #[async_trait(?Send)]
    impl StorageProvider for RocksWithStats {
        async fn open(&mut self, id: NodeId) -> Result<Box<dyn LogStorage>, String> {
            let path = self
                .inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .dirs
                .node_dir(id);
            let store = RocksStorage::open(path, RocksOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.stores.insert(id, store.clone());
            Ok(Box::new(store))
        }

        fn snapshots(&mut self, id: NodeId) -> Result<SnapshotStores, String> {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.dirs.snapshots(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RocksDB line carries the raw RocksDB ceilings and the durable breakdown on
    /// either transport, and the stores go where `--data-dir` says.
    #[cfg(feature = "rocks")]
    #[actix_rt::test]
    async fn rocks_lines_carry_their_ceilings_on_either_transport() {
        for transport in [TransportKind::Mem, TransportKind::Quic] {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = ThroughputConfig::new(3, 4, 200, 64);
            cfg.storage = StorageKind::Rocks;
            cfg.transport = transport;
            cfg.data_dir = Some(dir.path().join("logs"));
            let r = run(&cfg).await.unwrap();
            let line = r.line();
            assert_eq!(r.ops, 200, "{line}");
            for field in [
                " ceiling_ops_per_sec=",
                " shared_disk_ceiling_ops_per_sec=",
                " leader_sync_us=",
                " follower_sync_us=",
            ] {
                assert!(line.contains(field), "{transport}: no{field} in {line}");
            }
            assert_eq!(
                line.contains(" ceiling_rtt_us="),
                transport == TransportKind::Quic,
                "{line}"
            );
            for id in 1..=3 {
                let node = dir.path().join("logs").join(format!("node-{id}"));
                assert!(node.is_dir(), "{transport}: no {}", node.display());
            }
        }
    }

    #[actix_rt::test]
    async fn a_run_without_ceilings_measures_none() {
        let mut cfg = ThroughputConfig::new(3, 4, 200, 64);
        cfg.transport = TransportKind::Quic;
        cfg.ceilings = false;
        let r = run(&cfg).await.unwrap();
        assert_eq!(r.ops, 200);
        assert!(r.mb_per_sec.is_some());
        assert_eq!(
            (
                r.ceiling_mb_per_sec,
                r.fan_out_ceiling_mb_per_sec,
                r.ceiling_rtt_us
            ),
            (None, None, None)
        );
        assert!(!r.line().contains("ceiling"), "{}", r.line());
    }

    #[test]
    fn ceilings_end_the_line_where_they_were_measured() {
        let mut r = ThroughputResult {
            members: 3,
            clients: 256,
            payload: 4096,
            transport: "quic".into(),
            storage: "mem".into(),
            threads: 3,
            placement: ClientPlacement::Other,
            ops: 1000,
            secs: 1.0,
            ops_per_sec: 1000.0,
            p50_us: 10.0,
            p99_us: 20.0,
            leader_entries_per_sync: None,
            raw_rocksdb_entries_per_sec: None,
            shared_disk_entries_per_sec: None,
            leader_sync_us: None,
            follower_sync_us: None,
            mean_us: 12.0,
            mb_per_sec: Some(8.192),
            ceiling_mb_per_sec: Some(1400.04),
            fan_out_ceiling_mb_per_sec: None,
            ceiling_rtt_us: None,
        };
        assert!(
            r.line()
                .ends_with("placement=other mb_per_sec=8.2 ceiling_mb_per_sec=1400.0"),
            "{}",
            r.line()
        );
        r.fan_out_ceiling_mb_per_sec = Some(1100.06);
        assert!(
            r.line().ends_with(
                "mb_per_sec=8.2 ceiling_mb_per_sec=1400.0 fan_out_ceiling_mb_per_sec=1100.1"
            ),
            "{}",
            r.line()
        );
        r.ceiling_rtt_us = Some(80.4);
        assert!(
            r.line()
                .ends_with("fan_out_ceiling_mb_per_sec=1100.1 ceiling_rtt_us=80"),
            "{}",
            r.line()
        );
        r.transport = "mem".into();
        r.storage = "rocks".into();
        r.mb_per_sec = None;
        r.ceiling_mb_per_sec = None;
        r.fan_out_ceiling_mb_per_sec = None;
        r.ceiling_rtt_us = None;
        r.raw_rocksdb_entries_per_sec = Some(7000.4);
        r.shared_disk_entries_per_sec = Some(2500.6);
        r.leader_sync_us = Some(180.2);
        r.follower_sync_us = Some(175.6);
        assert!(
            r.line().ends_with(
                "placement=other ceiling_ops_per_sec=7000 shared_disk_ceiling_ops_per_sec=2501 mean_us=12 leader_sync_us=180 follower_sync_us=176"
            ),
            "{}",
            r.line()
        );
    }
}
