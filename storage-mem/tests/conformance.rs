//! `MemStorage` against the `LogStorage` conformance suite.

use actraft::testkit::storage::{run_suite, StorageHarness};
use actraft_storage_mem::MemStorage;
use async_trait::async_trait;

struct Harness;

#[async_trait]
impl StorageHarness for Harness {
    type Storage = MemStorage;

    async fn fresh(&mut self) -> MemStorage {
        MemStorage::new()
    }

    async fn reopen(&mut self, storage: MemStorage) -> Option<MemStorage> {
        // A clone outlives the node that used it: that is this storage's "reopen".
        Some(storage.clone())
    }
}

#[tokio::test]
async fn conformance() {
    run_suite(Harness).await;
}
