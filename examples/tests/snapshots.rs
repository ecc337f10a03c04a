//! Cluster tests of snapshots and log compaction (§7 of the Raft paper) with the KV
//! state machine over the in-memory transport and storage.

use std::time::Duration;

use actraft::core::{Config, NodeId};
use actraft::{LogStorage, NodeBuilder, RaftHandle};
use actraft_examples::cluster::fast_config;
use actraft_examples::kv::{KvCommand, KvMachine};
use actraft_storage_mem::{MemSnapshotStore, MemStorage};
use actraft_transport_mem::MemRouter;

const WAIT: Duration = Duration::from_secs(10);

struct Node {
    storage: MemStorage,
    store: MemSnapshotStore,
}

async fn start_all(router: &MemRouter, nodes: &[Node], config: &Config) -> Vec<RaftHandle> {
    let members: Vec<NodeId> = (1..=nodes.len() as u64).collect();
    let mut handles = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let id = i as u64 + 1;
        let handle = NodeBuilder::new(id, members.clone())
            .config(config.clone())
            .seed(id * 7919)
            .snapshot_store(node.store.clone())
            .start(node.storage.clone(), router.transport(id), KvMachine::new())
            .await
            .unwrap();
        handles.push(handle);
    }
    handles
}

async fn leader(handles: &[RaftHandle]) -> RaftHandle {
    let id = handles[0].wait_for_leader(WAIT).await.unwrap();
    handles.iter().find(|h| h.id() == id).unwrap().clone()
}

fn put(key: &str, value: &str) -> bytes::Bytes {
    KvCommand::Put {
        key: key.into(),
        value: value.into(),
    }
    .encode()
}

fn get(key: &str) -> bytes::Bytes {
    KvCommand::Get { key: key.into() }.encode()
}

#[actix_rt::test]
async fn policy_snapshots_compact_the_log_and_a_full_restart_recovers_from_them() {
    let config = Config {
        snapshot_after_entries: 50,
        snapshot_keep_entries: 10,
        ..fast_config()
    };
    let nodes: Vec<Node> = (0..3)
        .map(|_| Node {
            storage: MemStorage::new(),
            store: MemSnapshotStore::new(),
        })
        .collect();
    let router = MemRouter::new();
    let handles = start_all(&router, &nodes, &config).await;
    let leader_handle = leader(&handles).await;
    for i in 0..200 {
        let reply = leader_handle
            .propose(put(&format!("k{i}"), &format!("v{i}")))
            .await
            .unwrap();
        assert_eq!(reply, "ok");
    }
    for h in &handles {
        let meta = h.wait_for_snapshot(100, WAIT).await.unwrap();
        assert_eq!(
            meta.membership,
            actraft::ClusterConfig::bootstrap([1, 2, 3])
        );
    }
    // The stored logs were compacted behind the snapshots.
    for node in &nodes {
        let state = node.storage.state().await.unwrap();
        assert!(state.prefix.index > 0, "log compacted: {state:?}");
        let snap = node.store.latest_meta().unwrap();
        assert!(state.prefix.index <= snap.last_included.index);
        assert!(snap.last_included.index <= state.last.index);
    }
    for h in &handles {
        h.shutdown().await;
    }

    // Every node restarts from its snapshot and the log after it; the early keys,
    // whose entries are gone from every log, are still there.
    let router = MemRouter::new();
    let handles = start_all(&router, &nodes, &config).await;
    for h in &handles {
        let snap = h.latest_snapshot().expect("recovered the snapshot");
        assert!(h.status().applied_index >= snap.last_included.index);
    }
    let leader_handle = leader(&handles).await;
    assert_eq!(leader_handle.propose(get("k0")).await.unwrap(), "value v0");
    assert_eq!(
        leader_handle.propose(get("k199")).await.unwrap(),
        "value v199"
    );
    leader_handle
        .propose(put("after", "restart"))
        .await
        .unwrap();
    assert_eq!(
        leader_handle.propose(get("after")).await.unwrap(),
        "value restart"
    );
    for h in &handles {
        h.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_triggered_snapshot_is_reported() {
    let nodes = [Node {
        storage: MemStorage::new(),
        store: MemSnapshotStore::new(),
    }];
    let router = MemRouter::new();
    let handles = start_all(&router, &nodes, &fast_config()).await;
    let h = leader(&handles).await;
    for i in 0..20 {
        h.propose(put(&format!("k{i}"), "x")).await.unwrap();
    }
    assert_eq!(
        h.latest_snapshot(),
        None,
        "20 entries are far below the default policy"
    );
    let applied = h.status().applied_index;
    h.trigger_snapshot();
    let meta = h.wait_for_snapshot(applied, WAIT).await.unwrap();
    assert!(meta.last_included.index >= applied);
    assert_eq!(nodes[0].store.latest_meta(), Some(meta));
    h.shutdown().await;
}
