//! A node stopped with `kill().await` or `shutdown().await` has released its RocksDB
//! store by the time the future resolves: the same directory opens again at once, with
//! everything the node made durable.

use std::time::Duration;

use actraft::core::Envelope;
use actraft::{Inbox, LogIndex, NodeBuilder, StateMachine, Transport, TransportError};
use actraft_storage_rocks::{RocksOptions, RocksStorage};
use bytes::Bytes;

/// A single-node cluster needs no peers.
struct Alone;

impl Transport for Alone {
    fn start(&self, _inbox: Inbox) -> Result<(), TransportError> {
        Ok(())
    }

    fn send(&self, _envelope: Envelope) -> Result<(), TransportError> {
        Ok(())
    }
}

struct Echo;

impl StateMachine for Echo {
    fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
        command.clone()
    }
}

const WAIT: Duration = Duration::from_secs(10);

async fn start(dir: &std::path::Path) -> actraft::RaftHandle {
    let storage = RocksStorage::open(dir, RocksOptions::default())
        .await
        .expect("the store opens: the previous node released it");
    let node = NodeBuilder::new(1, vec![1])
        .start(storage, Alone, Echo)
        .await
        .unwrap();
    node.wait_for_leader(WAIT).await.unwrap();
    node
}

#[actix_rt::test]
async fn kill_and_shutdown_resolve_once_the_store_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    assert_eq!(node.propose("a").await.unwrap(), "a");
    node.kill().await;
    let node = start(dir.path()).await;
    node.wait_for_applied(2, WAIT).await.unwrap();
    assert_eq!(node.propose("b").await.unwrap(), "b");
    node.shutdown().await;
    let node = start(dir.path()).await;
    let status = node.wait_for_applied(3, WAIT).await.unwrap();
    assert!(
        status.last_log.index >= 4,
        "every entry survived: {status:?}"
    );
    node.shutdown().await;
}
