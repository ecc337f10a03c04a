//! The write path: requests take effect in the order they were made, each write is made
//! durable on its own (the node, not the storage, groups writes: one batching layer),
//! and a refused write leaves its neighbours alone.

use actraft::testkit::storage::entries;
use actraft::{LogId, LogStorage, StorageError};
use actraft_storage_rocks::{RocksOptions, RocksStorage};
use futures_util::future::join_all;

async fn fresh() -> (tempfile::TempDir, RocksStorage) {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStorage::open(dir.path(), RocksOptions::default())
        .await
        .unwrap();
    (dir, s)
}

#[tokio::test]
async fn overlapping_writes_complete_in_order_one_sync_each() {
    let (_dir, s) = fresh().await;
    // Made in index order, first polled in reverse: the call order is what counts.
    let writes: Vec<_> = (1..=200u64)
        .map(|i| s.append(entries(i, i, 1, 64)))
        .collect();
    let results = join_all(writes.into_iter().rev()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(s.state().await.unwrap().last, LogId::new(1, 200));
    assert_eq!(s.entries(1, 200).await.unwrap(), entries(1, 200, 1, 64));
    let stats = s.stats();
    assert_eq!(stats.writes, 200);
    assert_eq!(stats.entries, 200);
    assert_eq!(
        stats.syncs, stats.writes,
        "each write is synced on its own, however many overlap: {stats:?}"
    );
}

#[tokio::test]
async fn a_refused_write_in_a_group_changes_nothing_else() {
    let (_dir, s) = fresh().await;
    let a = s.append(entries(1, 3, 1, 8));
    let hole = s.append(entries(5, 6, 1, 8));
    let b = s.append(entries(4, 4, 1, 8));
    let into_prefix = s.truncate(0);
    let (a, hole, b, into_prefix) = tokio::join!(a, hole, b, into_prefix);
    a.unwrap();
    b.unwrap();
    assert!(
        matches!(hole, Err(StorageError::InvalidWrite(_))),
        "{hole:?}"
    );
    assert!(
        matches!(into_prefix, Err(StorageError::InvalidWrite(_))),
        "{into_prefix:?}"
    );
    assert_eq!(s.entries(1, 4).await.unwrap(), entries(1, 4, 1, 8));
}

#[tokio::test]
async fn truncations_inside_one_group_resolve_like_sequential_writes() {
    let (_dir, s) = fresh().await;
    s.append(entries(1, 10, 1, 8)).await.unwrap();
    let w1 = s.append(entries(11, 20, 1, 8));
    let w2 = s.truncate(15);
    let w3 = s.append(entries(8, 12, 2, 8)); // replaces 8.. (stored and queued)
    let w4 = s.truncate(12);
    let w5 = s.append(entries(12, 13, 3, 8));
    let c = s.compact(5);
    let results = join_all([w1, w2, w3, w4, w5, c]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut want = entries(6, 7, 1, 8);
    want.extend(entries(8, 11, 2, 8));
    want.extend(entries(12, 13, 3, 8));
    let state = s.state().await.unwrap();
    assert_eq!(state.prefix, LogId::new(1, 5));
    assert_eq!(state.last, LogId::new(3, 13));
    assert_eq!(s.entries(6, 13).await.unwrap(), want);
    // And the same after a reopen.
    let path = s.path().to_owned();
    drop(s);
    let s = RocksStorage::open(&path, RocksOptions::default())
        .await
        .unwrap();
    assert_eq!(s.state().await.unwrap(), state);
    assert_eq!(s.entries(6, 13).await.unwrap(), want);
}

#[tokio::test]
async fn truncating_to_the_prefix_leaves_the_prefix_as_last() {
    let (_dir, s) = fresh().await;
    s.append(entries(1, 10, 4, 8)).await.unwrap();
    s.compact(6).await.unwrap();
    s.truncate(7).await.unwrap();
    let state = s.state().await.unwrap();
    assert_eq!(state.last, LogId::new(4, 6));
    assert_eq!(state.prefix, LogId::new(4, 6));
    s.append(entries(7, 7, 5, 8)).await.unwrap();
    assert_eq!(s.state().await.unwrap().last, LogId::new(5, 7));
}

#[tokio::test]
async fn the_generic_benches_run_with_concurrent_writers() {
    use actraft::testkit::storage_bench::{self, AppendSpec};
    let (_dir, s) = fresh().await;
    let spec = AppendSpec::new(1, 64).writers(16).writes_per_writer(20);
    let m = storage_bench::append_throughput(&s, &spec).await.unwrap();
    assert_eq!((m.ops, m.entries, m.bytes), (320, 320, 320 * 64));
    let stats = s.stats();
    assert_eq!(stats.syncs, stats.writes, "one sync per write: {stats:?}");
    assert_eq!(s.entries(1, 320).await.unwrap().len(), 320);
    let reads = storage_bench::read_range(&s, 100, 10).await.unwrap();
    assert_eq!(reads.entries, 1000);
    let cut = storage_bench::truncate_suffix(&s, 8, 64, 5).await.unwrap();
    assert_eq!(cut.ops, 5);
    assert_eq!(s.state().await.unwrap().last.index, 320, "suffixes removed");
    storage_bench::save_hard_state(&s, 5).await.unwrap();
    assert_eq!(s.state().await.unwrap().hard_state.current_term, 5);
}
