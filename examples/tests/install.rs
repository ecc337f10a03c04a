//! Cluster tests of InstallSnapshot (§7 of the Raft paper): real nodes over the
//! in-memory transport, on in-memory storage and (with the `rocks` feature) on RocksDB
//! with file snapshots. A follower that is down while the others commit and compact
//! catches up by snapshot, then by log; a whole cluster restarts after compaction; the
//! snapshot spans many chunks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actraft::core::{Config, NodeId};
use actraft::snapshot::VecChunks;
#[cfg(feature = "rocks")]
use actraft::SnapshotStore;
use actraft::{
    LogIndex, LogStorage, NodeBuilder, RaftHandle, SnapshotChunks, SnapshotError, SnapshotMeta,
    StateMachine,
};
use actraft_storage_mem::{MemSnapshotStore, MemStorage};
use actraft_transport_mem::MemRouter;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};

const WAIT: Duration = Duration::from_secs(30);
/// Keys of the test machine: its snapshot holds up to this many 16-byte records.
const KEYS: u64 = 4096;

/// What a [`FoldMachine`] holds: a map, and a fold (hash chain) of every command
/// applied. A snapshot carries both, so a restored machine equals one that applied the
/// whole committed prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FoldState {
    fold: u64,
    map: BTreeMap<u64, u64>,
}

impl FoldState {
    fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(16 + self.map.len() * 16);
        b.put_u64(self.fold);
        b.put_u64(self.map.len() as u64);
        for (k, v) in &self.map {
            b.put_u64(*k);
            b.put_u64(*v);
        }
        b.freeze()
    }

    fn decode(mut bytes: &[u8]) -> Result<Self, SnapshotError> {
        let bad = || SnapshotError::Malformed("truncated fold snapshot".into());
        if bytes.len() < 16 {
            return Err(bad());
        }
        let fold = bytes.get_u64();
        let n = bytes.get_u64();
        if bytes.len() as u64 != n * 16 {
            return Err(bad());
        }
        let mut map = BTreeMap::new();
        for _ in 0..n {
            map.insert(bytes.get_u64(), bytes.get_u64());
        }
        Ok(Self { fold, map })
    }
}

/// A state machine whose state a test can read from outside.
#[derive(Debug, Clone, Default)]
struct FoldMachine(Arc<Mutex<FoldState>>);

impl FoldMachine {
    fn state(&self) -> FoldState {
        self.0.lock().unwrap().clone()
    }
}

fn command(i: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(16);
    b.put_u64(i % KEYS);
    b.put_u64(i);
    b.freeze()
}

impl StateMachine for FoldMachine {
    fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
        let mut s = self.0.lock().unwrap();
        let mut c = &command[..];
        if c.len() == 16 {
            let (k, v) = (c.get_u64(), c.get_u64());
            s.map.insert(k, v);
        }
        for &byte in command.iter() {
            s.fold = (s.fold ^ byte as u64).wrapping_mul(0x0100_0000_01B3);
        }
        Bytes::new()
    }

    fn snapshot(&mut self) -> Option<Box<dyn SnapshotChunks>> {
        let bytes = self.state().encode();
        // Small source chunks, re-cut by the transfer into its own chunk size.
        let pieces: Vec<Bytes> = bytes.chunks(1000).map(Bytes::copy_from_slice).collect();
        Some(Box::new(VecChunks::new(pieces)))
    }

    fn restore(
        &mut self,
        _meta: &SnapshotMeta,
        chunks: &mut dyn SnapshotChunks,
    ) -> Result<(), SnapshotError> {
        let bytes = actraft::snapshot::read_all(chunks)?;
        let state = FoldState::decode(&bytes)?;
        *self.0.lock().unwrap() = state;
        Ok(())
    }

    // Received snapshots decode on the blocking pool; the node thread only swaps.
    fn snapshot_decoder(&self) -> Option<actraft::SnapshotDecoder> {
        Some(Box::new(|_meta, chunks| {
            let bytes = actraft::snapshot::read_all(chunks)?;
            let decoded: actraft::DecodedSnapshot = Box::new(FoldState::decode(&bytes)?);
            Ok(decoded)
        }))
    }

    fn install_decoded(
        &mut self,
        _meta: &SnapshotMeta,
        decoded: actraft::DecodedSnapshot,
    ) -> Result<(), SnapshotError> {
        let state = decoded
            .downcast::<FoldState>()
            .map_err(|_| SnapshotError::Malformed("not a fold state".into()))?;
        *self.0.lock().unwrap() = *state;
        Ok(())
    }
}

/// Where one node keeps its log and snapshots, across restarts.
#[derive(Clone)]
enum Disk {
    Mem(MemStorage, MemSnapshotStore),
    #[cfg(feature = "rocks")]
    Rocks(std::path::PathBuf),
}

fn config() -> Config {
    Config {
        snapshot_after_entries: 10_000,
        snapshot_keep_entries: 1_000,
        max_snapshot_chunk_bytes: 4096,
        max_inflight_snapshot_chunks: 4,
        ..Config::with_election_range(Duration::from_millis(150), Duration::from_millis(300))
    }
}

async fn start(
    router: &MemRouter,
    id: NodeId,
    members: &[NodeId],
    disk: &Disk,
    machine: FoldMachine,
) -> RaftHandle {
    start_with(router, id, members, disk, machine, config()).await
}

async fn start_with(
    router: &MemRouter,
    id: NodeId,
    members: &[NodeId],
    disk: &Disk,
    machine: FoldMachine,
    config: Config,
) -> RaftHandle {
    let builder = NodeBuilder::new(id, members.to_vec())
        .config(config)
        .seed(id * 7919);
    match disk {
        Disk::Mem(log, store) => builder
            .snapshot_store(store.clone())
            .start(log.clone(), router.transport(id), machine)
            .await
            .unwrap(),
        #[cfg(feature = "rocks")]
        Disk::Rocks(dir) => {
            use actraft_storage_rocks::{FileSnapshotStore, RocksOptions, RocksStorage};
            let db = dir.join(format!("node-{id}"));
            let log = RocksStorage::open(&db, RocksOptions::default())
                .await
                .unwrap();
            let store = FileSnapshotStore::open(FileSnapshotStore::beside(&db)).unwrap();
            builder
                .snapshot_store(store)
                .start(log, router.transport(id), machine)
                .await
                .unwrap()
        }
    }
}

async fn leader_of(handles: &[RaftHandle]) -> RaftHandle {
    let id = handles[0].wait_for_leader(WAIT).await.unwrap();
    handles.iter().find(|h| h.id() == id).unwrap().clone()
}

/// Commits commands `from..to` through whichever of `live` leads, many in flight at
/// once. A proposal refused or cut off by a change of leader is proposed again (the
/// checks compare replicas with each other, so a command applied twice is harmless).
async fn commit_range(live: &[RaftHandle], from: u64, to: u64) {
    stream::iter(from..to)
        .for_each_concurrent(512, |i| async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let leader = leader_of(live).await;
                if leader.propose(command(i)).await.is_ok() {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "command {i} never committed"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
}

async fn stored_bounds(disk: &Disk, id: NodeId) -> (LogIndex, Option<SnapshotMeta>) {
    #[cfg(not(feature = "rocks"))]
    let _ = id; // only the RocksDB layout names files by node
    match disk {
        Disk::Mem(log, store) => (log.state().await.unwrap().prefix.index, store.latest_meta()),
        #[cfg(feature = "rocks")]
        Disk::Rocks(dir) => {
            use actraft_storage_rocks::FileSnapshotStore;
            let db = dir.join(format!("node-{id}"));
            let store = FileSnapshotStore::open(FileSnapshotStore::beside(&db)).unwrap();
            (0, store.latest().unwrap())
        }
    }
}

/// The scenario: a follower is down while `entries` commands commit and the others
/// compact; it comes back, catches up by snapshot (in many chunks) and then by log;
/// every state machine ends equal. Then the whole cluster restarts from its compacted
/// logs and snapshots and still agrees.
async fn follower_catches_up_by_snapshot(disks: Vec<Disk>, entries: u64) {
    let members: Vec<NodeId> = vec![1, 2, 3];
    let router = MemRouter::new();
    let mut machines: Vec<FoldMachine> = (0..3).map(|_| FoldMachine::default()).collect();
    let mut handles = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let id = i as u64 + 1;
        handles.push(start(&router, id, &members, disk, machines[i].clone()).await);
    }
    commit_range(&handles, 0, 100).await;
    let leader = leader_of(&handles).await;
    let down = members.iter().copied().find(|&m| m != leader.id()).unwrap();
    let d = (down - 1) as usize;
    handles[d].shutdown().await;
    let old_last = handles[d].status().last_log.index;
    let live: Vec<RaftHandle> = handles.iter().filter(|h| h.id() != down).cloned().collect();

    commit_range(&live, 100, 100 + entries).await;
    let leader = leader_of(&live).await;
    let snap = leader
        .wait_for_snapshot(old_last + config().snapshot_keep_entries + 1, WAIT)
        .await
        .unwrap();
    assert!(snap.last_included.index > old_last + config().snapshot_keep_entries);
    let before = router.stats();

    // The follower comes back with a fresh (in-memory) state machine.
    machines[d] = FoldMachine::default();
    handles[d] = start(&router, down, &members, &disks[d], machines[d].clone()).await;
    let target = leader.status().commit_index;
    handles[d].wait_for_applied(target, WAIT).await.unwrap();
    let installed = handles[d].latest_snapshot().expect("installed a snapshot");
    assert!(
        installed.last_included.index > old_last,
        "caught up by the leader's snapshot: {installed:?}"
    );
    let chunks = router
        .stats()
        .since(&before)
        .delivered_of("InstallSnapshot");
    let size = machines[(leader.id() - 1) as usize].state().encode().len() as u64;
    assert!(size > 8 * 4096, "a snapshot of many chunks: {size} bytes");
    assert!(
        chunks >= size / 4096,
        "the snapshot went in chunks of at most 4 KiB: {chunks} chunks for {size} bytes"
    );
    let (prefix, stored) = stored_bounds(&disks[d], down).await;
    assert_eq!(
        stored.map(|m| m.last_included),
        Some(installed.last_included)
    );
    if matches!(disks[d], Disk::Mem(..)) {
        assert!(prefix > old_last, "the old log is gone: prefix {prefix}");
    }

    // Then by log: more entries reach it through AppendEntries.
    commit_range(&handles, 100 + entries, 200 + entries).await;
    let target = leader_of(&handles).await.status().commit_index;
    for h in &handles {
        h.wait_for_applied(target, WAIT).await.unwrap();
    }
    let expected = machines[0].state();
    assert_eq!(expected.map.len() as u64, KEYS.min(200 + entries));
    for m in &machines {
        assert_eq!(m.state(), expected, "every state machine ends equal");
    }

    // A full-cluster restart after compaction: each node restores its snapshot and
    // replays only the log after it.
    for h in &handles {
        h.shutdown().await;
    }
    let router = MemRouter::new();
    let machines: Vec<FoldMachine> = (0..3).map(|_| FoldMachine::default()).collect();
    let mut handles = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let id = i as u64 + 1;
        handles.push(start(&router, id, &members, disk, machines[i].clone()).await);
        assert!(
            handles[i].latest_snapshot().is_some(),
            "node {id} restarts from a snapshot"
        );
    }
    commit_range(&handles, 200 + entries, 210 + entries).await;
    let target = leader_of(&handles).await.status().commit_index;
    for h in &handles {
        h.wait_for_applied(target, WAIT).await.unwrap();
    }
    let after = machines[0].state();
    assert_ne!(after.fold, expected.fold, "the new commands applied");
    for m in &machines {
        assert_eq!(m.state(), after, "equal after the restart");
    }
    for h in &handles {
        h.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_follower_down_for_100k_entries_catches_up_by_snapshot_then_log() {
    let disks = (0..3)
        .map(|_| Disk::Mem(MemStorage::new(), MemSnapshotStore::new()))
        .collect();
    follower_catches_up_by_snapshot(disks, 100_000).await;
}

#[cfg(feature = "rocks")]
#[actix_rt::test]
async fn a_follower_down_catches_up_by_snapshot_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let disks = (0..3).map(|_| Disk::Rocks(dir.path().to_owned())).collect();
    follower_catches_up_by_snapshot(disks, 20_000).await;
}

/// Without snapshots, a follower that was down while the leader's in-memory log window
/// moved on is caught up from entries the leader reads back from its stored log.
#[actix_rt::test]
async fn a_follower_behind_the_leaders_window_catches_up_from_the_stored_log() {
    let config = Config {
        snapshot_after_entries: 0,
        snapshot_after_bytes: 0,
        log_window_entries: 256,
        ..config()
    };
    let members: Vec<NodeId> = vec![1, 2, 3];
    let router = MemRouter::new();
    let disks: Vec<Disk> = (0..3)
        .map(|_| Disk::Mem(MemStorage::new(), MemSnapshotStore::new()))
        .collect();
    let mut machines: Vec<FoldMachine> = (0..3).map(|_| FoldMachine::default()).collect();
    let mut handles = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let id = i as u64 + 1;
        let machine = machines[i].clone();
        handles.push(start_with(&router, id, &members, disk, machine, config.clone()).await);
    }
    commit_range(&handles, 0, 100).await;
    let leader = leader_of(&handles).await;
    let down = members.iter().copied().find(|&m| m != leader.id()).unwrap();
    let d = (down - 1) as usize;
    handles[d].shutdown().await;
    let live: Vec<RaftHandle> = handles.iter().filter(|h| h.id() != down).cloned().collect();
    commit_range(&live, 100, 10_100).await;
    let leader = leader_of(&live).await;
    let reads_before = leader.counters().log_reads;

    machines[d] = FoldMachine::default();
    let machine = machines[d].clone();
    handles[d] = start_with(&router, down, &members, &disks[d], machine, config.clone()).await;
    let target = leader.status().commit_index;
    handles[d].wait_for_applied(target, WAIT).await.unwrap();
    let reads = leader.counters().log_reads - reads_before;
    assert!(reads > 0, "the leader read stored entries for the follower");
    assert!(
        handles[d].latest_snapshot().is_none(),
        "no snapshot was involved"
    );
    let expected = machines[(leader.id() - 1) as usize].state();
    assert_eq!(
        machines[d].state(),
        expected,
        "the follower applied the same log"
    );
    for h in &handles {
        h.shutdown().await;
    }
}
