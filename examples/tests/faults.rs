//! Cluster tests under crashes, restarts, an unreliable network and a slow disk. Each
//! checks that every acknowledged write is in the final logs and that no two nodes
//! applied different entries at one index.

use std::collections::BTreeSet;
use std::time::Duration;

use actraft::core::{Config, Entry, LogIndex};
use actraft::{LogState, LogStorage, LogWrite, StorageError};
use actraft_examples::cluster::{
    fast_config, Cluster, ClusterOptions, MemStorages, StorageProvider,
};
use actraft_examples::load::Load;
use actraft_storage_mem::MemStorage;
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(15);

fn assert_all_acked_present(cluster: &Cluster, acked: &[Bytes]) {
    let agreed = cluster.check_agreement().unwrap();
    let present: BTreeSet<&Bytes> = agreed.values().collect();
    let missing: Vec<_> = acked.iter().filter(|c| !present.contains(c)).collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
}

async fn settle(cluster: &Cluster) {
    let (leader, _) = cluster.wait_for_leader(WAIT).await.unwrap();
    // A write of the current term commits everything before it.
    cluster
        .propose(Bytes::from_static(b"settle"), WAIT)
        .await
        .unwrap();
    let commit = cluster.handle(leader).unwrap().status().commit_index;
    cluster.wait_for_applied(commit, WAIT).await.unwrap();
}

#[actix_rt::test]
async fn full_cluster_restart_keeps_every_committed_entry() {
    let mut cluster = Cluster::start(ClusterOptions::new(3).config(fast_config()))
        .await
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        let cmd = Bytes::from(format!("cmd-{i}"));
        cluster.propose(cmd.clone(), WAIT).await.unwrap();
        acked.push(cmd);
    }
    let terms_before: Vec<_> = cluster.statuses().iter().map(|s| s.term).collect();
    for id in cluster.members().to_vec() {
        cluster.kill(id).await;
    }
    let mut complete = 0;
    for (k, id) in cluster.members().to_vec().into_iter().enumerate() {
        let handle = cluster.restart(id).await.unwrap();
        let s = handle.status();
        assert_eq!(s.term, terms_before[k], "node {id} came back with its term");
        if s.last_log.index > 20 {
            complete += 1;
        }
    }
    // Every acknowledged entry was durable on a majority before the crash.
    assert!(complete >= 2, "a majority came back with the whole log");
    settle(&cluster).await;
    for id in cluster.members() {
        let applied = cluster.applied(*id).unwrap().commands();
        for cmd in &acked {
            assert!(
                applied.contains(cmd),
                "node {id} lost {cmd:?} across the restart"
            );
        }
    }
    assert_all_acked_present(&cluster, &acked);
}

#[actix_rt::test]
async fn repeated_leader_crash_under_load() {
    let mut cluster = Cluster::start(ClusterOptions::new(5).config(fast_config()))
        .await
        .unwrap();
    cluster.wait_for_leader(WAIT).await.unwrap();
    let (tx, rx) = watch::channel(cluster.live());
    let load = Load::start(8, rx);
    for _round in 0..5 {
        let (leader, _) = cluster.wait_for_leader(WAIT).await.unwrap();
        let applied = cluster.handle(leader).unwrap().status().applied_index;
        cluster
            .wait_for(WAIT, "progress under load", |s| {
                s.iter().any(|s| s.applied_index > applied + 20)
            })
            .await
            .unwrap();
        cluster.kill(leader).await;
        tx.send_replace(cluster.live());
        cluster.wait_for_leader(WAIT).await.unwrap();
        cluster.restart(leader).await.unwrap();
        tx.send_replace(cluster.live());
    }
    let acked = load.finish().await;
    assert!(acked.len() > 100, "the load made progress: {}", acked.len());
    settle(&cluster).await;
    assert_all_acked_present(&cluster, &acked);
    for (term, leaders) in cluster.leaders_by_term() {
        assert_eq!(leaders.len(), 1, "term {term}: {leaders:?}");
    }
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
