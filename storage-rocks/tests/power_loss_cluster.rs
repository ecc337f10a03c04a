//! A three-node cluster on RocksDB, each node's store on its own forgetting file system
//! ([`actraft_testfs`]), loses power on a majority or on every node at once while
//! clients write; the nodes come back on what their disks kept, and every write a
//! client saw acknowledged must still be there, on every node, in the same place.
//!
//! Each round: clients propose through the leader for a random while; then the power is
//! cut on two nodes (the leader among them, or not) or on all three, at once. Their
//! disks fail from that instant, so the nodes stop on a storage error or are killed;
//! their file systems come back with only what was synced (sometimes with torn unsynced
//! writes), and the nodes restart on the reopened stores with fresh state machines. A
//! barrier write through the new leader, applied everywhere, then shows each node's
//! applied log: it must hold every acknowledged command, and no two nodes may have
//! applied different commands at one index.
//!
//! ```sh
//! cargo test --release -p actraft-storage-rocks --test power_loss_cluster -- --nocapture
//! ACTRAFT_POWERLOSS_ROUNDS=20 cargo test --release -p actraft-storage-rocks --test power_loss_cluster
//! ```
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actraft::core::{Config, LogIndex, NodeId, Role};
use actraft::{NodeBuilder, RaftHandle, StateMachine};
use actraft_storage_rocks::{RocksOptions, RocksStorage};
use actraft_testfs::{Mount, Tear};
use actraft_transport_mem::MemRouter;
use bytes::Bytes;

const ROUNDS_ENV: &str = "ACTRAFT_POWERLOSS_ROUNDS";
const DEFAULT_ROUNDS: usize = 3;
const CLIENTS: usize = 8;
const WAIT: Duration = Duration::from_secs(20);
const MEMBERS: [NodeId; 3] = [1, 2, 3];

/// Every command a state machine applied, with its index.
#[derive(Debug, Clone, Default)]
struct Applied(Arc<Mutex<Vec<(LogIndex, Bytes)>>>);

impl Applied {
    fn entries(&self) -> Vec<(LogIndex, Bytes)> {
        self.0.lock().unwrap().clone()
    }
}

impl StateMachine for Applied {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        self.0.lock().unwrap().push((index, command.clone()));
        command.clone()
    }
}

/// One node: its file system, and while it runs its handle, applied log and store's
/// close waiter.
struct Node {
    id: NodeId,
    mount: Option<Mount>,
    handle: Option<RaftHandle>,
    applied: Applied,
    closed: Option<actraft_storage_rocks::CloseWaiter>,
    arbiter: Option<actix::Arbiter>,
}

fn options() -> RocksOptions {
    // Small memtables: RocksDB flushes and compacts during the run too.
    RocksOptions {
        write_buffer_size: 64 << 10,
        max_total_wal_size: 256 << 10,
        ..RocksOptions::default()
    }
}

fn store_dir(mount: &Mount) -> PathBuf {
    mount.path().join("raft")
}

async fn start(node: &mut Node, router: &MemRouter) {
    let dir = store_dir(node.mount.as_ref().expect("mounted"));
    let storage = RocksStorage::open(&dir, options())
        .await
        .unwrap_or_else(|e| panic!("node {}: the store refused to open: {e}", node.id));
    node.closed = Some(storage.close_waiter());
    node.applied = Applied::default();
    let config = Config::with_election_range(Duration::from_millis(50), Duration::from_millis(100));
    let arbiter = actix::Arbiter::new();
    let handle = NodeBuilder::new(node.id, MEMBERS.to_vec())
        .config(config)
        .arbiter(arbiter.handle())
        .start(storage, router.transport(node.id), node.applied.clone())
        .await
        .unwrap_or_else(|e| panic!("node {} failed to start: {e}", node.id));
    node.handle = Some(handle);
    node.arbiter = Some(arbiter);
}

/// Stops node `node` at once and waits until its store is closed.
async fn kill(node: &mut Node) {
    if let Some(handle) = node.handle.take() {
        handle.kill();
        let mut status = handle.watch_status();
        while status.changed().await.is_ok() {}
    }
    if let Some(closed) = node.closed.take() {
        let closed = tokio::task::spawn_blocking(move || closed.wait_timeout(WAIT))
            .await
            .unwrap();
        assert!(closed, "node {}: the store did not close", node.id);
    }
    if let Some(arbiter) = node.arbiter.take() {
        arbiter.stop();
    }
}

fn leader(nodes: &[Node]) -> Option<RaftHandle> {
    nodes
        .iter()
        .filter_map(|n| n.handle.as_ref())
        .filter(|h| h.status().role == Role::Leader)
        .max_by_key(|h| h.status().term)
        .cloned()
}

/// Proposes until one attempt is acknowledged; returns the command's index on the
/// leader that acknowledged it.
async fn propose_until_ok(handles: &[RaftHandle], command: Bytes) -> LogIndex {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for h in handles {
            if h.status().role != Role::Leader {
                continue;
            }
            if h.propose_timeout(command.clone(), Duration::from_secs(2))
                .await
                .is_ok()
            {
                return h.status().commit_index;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no write was acknowledged in {WAIT:?}");
}

/// A client: proposes distinct commands through whoever leads until told to stop, and
/// records the ones acknowledged.
async fn client(
    id: usize,
    round: usize,
    handles: Vec<RaftHandle>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Bytes>>>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(h) = handles
            .iter()
            .filter(|h| h.status().role == Role::Leader)
            .max_by_key(|h| h.status().term)
        else {
            // No leader yet (an election is running): back off a little.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let command = Bytes::from(format!("r{round}-c{id}-{n}"));
        n += 1;
        // Any error leaves the outcome unknown: only acknowledged commands count.
        if h.propose_timeout(command.clone(), Duration::from_secs(1))
            .await
            .is_ok()
        {
            acked.lock().unwrap().push(command);
        }
    }
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn mount_all(dir: &Path) -> Result<Vec<Node>, actraft_testfs::TestfsError> {
    MEMBERS
        .iter()
        .map(|&id| {
            let (backing, mnt) = (
                dir.join(format!("backing-{id}")),
                dir.join(format!("mnt-{id}")),
            );
            std::fs::create_dir(&backing).unwrap();
            std::fs::create_dir(&mnt).unwrap();
            Ok(Node {
                id,
                mount: Some(Mount::new(&backing, &mnt)?),
                handle: None,
                applied: Applied::default(),
                closed: None,
                arbiter: None,
            })
        })
        .collect()
}

#[actix_rt::test]
async fn acknowledged_writes_survive_power_cuts_of_a_majority_or_all() {
    if let Err(e) = actraft_testfs::available() {
        println!("power-loss cluster: skipped: {e}");
        return;
    }
    let rounds = env_usize(ROUNDS_ENV).unwrap_or(DEFAULT_ROUNDS);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = seed;
    let mut random = move |n: u64| {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % n
    };
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = mount_all(dir.path()).expect("mount the three file systems");
    let router = MemRouter::new();
    for node in &mut nodes {
        start(node, &router).await;
    }
    let acked = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    for round in 0..rounds {
        let handles: Vec<RaftHandle> = nodes.iter().filter_map(|n| n.handle.clone()).collect();
        handles[0].wait_for_leader(WAIT).await.expect("a leader");
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                actix_rt::spawn(client(
                    c,
                    round,
                    handles.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&acked),
                ))
            })
            .collect();
        // Load for a while: some writes acknowledged, more in flight at the cut.
        let before = acked.lock().unwrap().len();
        while acked.lock().unwrap().len() < before + 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(random(300))).await;

        // The cut: on every node, or on two (the leader among them or not).
        let lead = leader(&nodes).map(|h| h.id());
        let victims: Vec<NodeId> = match round % 3 {
            0 => MEMBERS.to_vec(),
            1 => {
                let l = lead.unwrap_or(1);
                let other = MEMBERS[(random(2) as usize + l as usize) % 3];
                vec![l, other]
            }
            _ => MEMBERS
                .iter()
                .copied()
                .filter(|&id| Some(id) != lead)
                .collect(),
        };
        for node in nodes.iter().filter(|n| victims.contains(&n.id)) {
            node.mount.as_ref().expect("mounted").cut_power();
        }
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
        let mut dropped = 0;
        for node in nodes.iter_mut().filter(|n| victims.contains(&n.id)) {
            kill(node).await;
            let tear = if random(2) == 0 {
                Tear::Never
            } else {
                Tear::Random(random(u64::MAX))
            };
            let mount = node.mount.take().expect("mounted");
            let (mount, report) = mount.power_cycle(tear).expect("power cycle");
            dropped += report.bytes_dropped;
            node.mount = Some(mount);
            start(node, &router).await;
        }
        println!(
            "round {round}: cut nodes {victims:?} (leader {lead:?}); {dropped} unsynced bytes \
             dropped; {} writes acknowledged so far",
            acked.lock().unwrap().len()
        );

        // A barrier write applied everywhere, then every acknowledged write must be in
        // every node's applied log.
        let handles: Vec<RaftHandle> = nodes.iter().filter_map(|n| n.handle.clone()).collect();
        let index = propose_until_ok(&handles, Bytes::from(format!("barrier-{round}"))).await;
        for h in &handles {
            h.wait_for_applied(index, WAIT)
                .await
                .unwrap_or_else(|e| panic!("node {} did not apply up to {index}: {e}", h.id()));
        }
        let acked = acked.lock().unwrap().clone();
        let mut at: BTreeMap<LogIndex, (NodeId, Bytes)> = BTreeMap::new();
        for node in &nodes {
            let applied = node.applied.entries();
            let mut seen: std::collections::HashSet<&Bytes> = std::collections::HashSet::new();
            for (index, command) in &applied {
                seen.insert(command);
                if let Some((other, theirs)) = at.get(index) {
                    assert_eq!(
                        theirs, command,
                        "nodes {other} and {} applied different commands at {index}",
                        node.id
                    );
                } else {
                    at.insert(*index, (node.id, command.clone()));
                }
            }
            let lost: Vec<&Bytes> = acked.iter().filter(|c| !seen.contains(c)).collect();
            println!(
                "power-loss cluster: round {round} node {}: acknowledged={} lost={}",
                node.id,
                acked.len(),
                lost.len()
            );
            assert!(
                lost.is_empty(),
                "node {} lost acknowledged writes: {lost:?}",
                node.id
            );
        }
    }
    let total = acked.lock().unwrap().len();
    for node in &mut nodes {
        kill(node).await;
    }
    drop(nodes);
    println!(
        "power-loss cluster: rounds={rounds} acknowledged={total} lost=0 in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
