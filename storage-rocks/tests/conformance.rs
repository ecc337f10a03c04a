//! `RocksStorage` against the `LogStorage` conformance suite, each storage in its own
//! temporary directory.

use actraft::testkit::storage::{run_suite, StorageHarness};
use actraft_storage_rocks::{RocksOptions, RocksStorage};
use async_trait::async_trait;
use tempfile::TempDir;

#[derive(Default)]
struct Harness {
    dirs: Vec<TempDir>,
}

#[async_trait]
impl StorageHarness for Harness {
    type Storage = RocksStorage;

    async fn fresh(&mut self) -> RocksStorage {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage = RocksStorage::open(dir.path(), RocksOptions::default())
            .await
            .expect("open a new store");
        self.dirs.push(dir);
        storage
    }

    async fn reopen(&mut self, storage: RocksStorage) -> Option<RocksStorage> {
        let path = storage.path().to_owned();
        // Dropping the last handle closes the database and releases its lock.
        drop(storage);
        Some(
            RocksStorage::open(&path, RocksOptions::default())
                .await
                .expect("reopen"),
        )
    }
}

#[tokio::test]
async fn conformance() {
    run_suite(Harness::default()).await;
}
