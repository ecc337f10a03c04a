//! Cluster tests under crashes, restarts, an unreliable network and a slow disk. Each
//! checks that every acknowledged write is in the final logs and that no two nodes
//! applied different entries at one index.

use std::time::Duration;

use actraft::core::{Config, Entry, LogIndex};
use actraft::{LogState, LogStorage, LogWrite, StorageError};
use actraft_examples::cluster::{
    fast_config, Cluster, ClusterOptions, MemStorages, SnapshotStores, StorageProvider,
};
use actraft_examples::load::Load;
use actraft_examples::scenarios::{self, assert_all_acked_present, settle, WAIT};
use actraft_storage_mem::MemStorage;
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

#[actix_rt::test]
async fn full_cluster_restart_keeps_every_committed_entry() {
    let mut cluster = Cluster::start(ClusterOptions::new(3).config(fast_config()))
        .await
        .unwrap();
    scenarios::full_cluster_restart(&mut cluster, 20).await;
}

#[actix_rt::test]
async fn repeated_leader_crash_under_load() {
    let mut cluster = Cluster::start(ClusterOptions::new(5).config(fast_config()))
        .await
        .unwrap();
    scenarios::repeated_leader_crash_under_load(&mut cluster, 8, 5).await;
}

#[actix_rt::test]
async fn unreliable_network_loses_no_acknowledged_write() {
    let cluster = Cluster::start(ClusterOptions::new(5).config(Config::default()))
        .await
        .unwrap();
    cluster.wait_for_leader(WAIT).await.unwrap();
    cluster.router().set_drop_rate(0.10);
    cluster
        .router()
        .set_delay(Duration::ZERO, Duration::from_millis(25));
    let (_tx, rx) = watch::channel(cluster.live());
    let load = Load::start(8, rx);
    cluster
        .wait_for(Duration::from_secs(30), "200 writes", |s| {
            s.iter().any(|s| s.applied_index > 200)
        })
        .await
        .unwrap();
    let acked = load.finish().await;
    cluster.router().clear_faults();
    settle(&cluster).await;
    assert!(!acked.is_empty());
    assert_all_acked_present(&cluster, &acked);
}

/// A storage whose appends take 200 ms, completed off the node's thread (a slow fsync).
#[derive(Clone)]
struct SlowStorage(MemStorage);

#[async_trait]
impl LogStorage for SlowStorage {
    async fn state(&self) -> Result<LogState, StorageError> {
        self.0.state().await
    }
    async fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError> {
        self.0.entries(from, to).await
    }
    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        if !write.entries.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.0.write(write).await
    }
    async fn compact(&self, upto: LogIndex) -> Result<(), StorageError> {
        self.0.compact(upto).await
    }
}

#[derive(Default)]
struct SlowStorages(MemStorages);

#[async_trait(?Send)]
impl StorageProvider for SlowStorages {
    async fn open(&mut self, id: u64) -> Result<Box<dyn LogStorage>, String> {
        Ok(Box::new(SlowStorage(self.0.get(id))))
    }

    fn snapshots(&mut self, id: u64) -> Result<SnapshotStores, String> {
        self.0.snapshots(id)
    }
}

#[actix_rt::test]
async fn slow_storage_causes_no_spurious_election() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let cluster = Cluster::start_with(
        ClusterOptions::new(3).config(Config::default()),
        SlowStorages::default(),
    )
    .await
    .unwrap();
    let (leader, term) = cluster.wait_for_leader(WAIT).await.unwrap();
    for i in 0..8 {
        cluster
            .propose(Bytes::from(format!("slow-{i}")), WAIT)
            .await
            .unwrap();
    }
    for s in cluster.statuses() {
        assert_eq!(
            (s.term, s.leader),
            (term, Some(leader)),
            "no spurious election: {s:?}"
        );
    }
    assert_eq!(cluster.leaders_by_term().len(), 1);
    cluster.check_agreement().unwrap();
}
