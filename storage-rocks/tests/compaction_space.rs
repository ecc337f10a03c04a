//! Compacting the log gives the disk space back: after `compact`, the entries behind
//! the compacted point no longer take room in the RocksDB directory.
#![allow(clippy::print_stdout)]

use actraft::core::{Entry, Payload};
use actraft::LogStorage;
use actraft_storage_rocks::{RocksOptions, RocksStorage};
use bytes::Bytes;

/// Bytes of every file under `dir`.
fn disk_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            disk_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[tokio::test]
async fn compacting_the_log_gives_the_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let storage = RocksStorage::open(&path, RocksOptions::default())
        .await
        .unwrap();
    // 16 000 entries of 4 KiB (64 MiB), in batches, as a node writes them.
    let payload = Bytes::from(vec![0x5Au8; 4096]);
    let mut index = 0;
    for _ in 0..160 {
        let batch: Vec<Entry> = (0..100)
            .map(|_| {
                index += 1;
                Entry {
                    term: 1,
                    index,
                    payload: Payload::Command(payload.clone()),
                }
            })
            .collect();
        storage.append(batch).await.unwrap();
    }
    let full = disk_bytes(&path);
    assert!(full > 48 << 20, "the log takes its room: {full} bytes");
    storage.compact(index - 1000).await.unwrap();
    let after = disk_bytes(&path);
    println!(
        "compaction: {} MiB before, {} MiB after compacting {} of {index} entries",
        full >> 20,
        after >> 20,
        index - 1000
    );
    assert!(
        after < full / 4,
        "the space of the compacted entries came back: {full} -> {after} bytes"
    );
    // What remains reads back.
    let tail = storage.entries(index - 999, index).await.unwrap();
    assert_eq!(tail.len(), 1000);
    assert_eq!(storage.state().await.unwrap().prefix.index, index - 1000);
}
