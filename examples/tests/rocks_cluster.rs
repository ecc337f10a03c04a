//! The restart and crash cluster scenarios on RocksDB: every node keeps its log in its
//! own store in a temporary directory (removed with the cluster), and a killed node is
//! restarted by reopening that store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actraft_examples::cluster::{fast_config, Cluster, ClusterOptions};
use actraft_examples::rocks::RocksStorages;
use actraft_examples::scenarios;

async fn start(nodes: usize) -> (Cluster, PathBuf) {
    let storages = RocksStorages::temporary().unwrap();
    let dir = storages.dir().to_owned();
    let options = ClusterOptions::new(nodes).config(fast_config());
    (Cluster::start_with(options, storages).await.unwrap(), dir)
}

/// The provider removes its temporary directory once the nodes' stores are closed.
async fn assert_removed(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while dir.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!dir.exists(), "the temporary directory is removed");
}

#[actix_rt::test]
async fn full_cluster_restart_keeps_every_committed_entry_on_rocksdb() {
    let (mut cluster, dir) = start(3).await;
    scenarios::full_cluster_restart(&mut cluster, 20).await;
    assert!(dir.join("node-1").join("CURRENT").exists(), "a real store");
    drop(cluster);
    assert_removed(&dir).await;
}

#[actix_rt::test]
async fn repeated_leader_crash_under_load_on_rocksdb() {
    let (mut cluster, dir) = start(5).await;
    scenarios::repeated_leader_crash_under_load(&mut cluster, 8, 5).await;
    drop(cluster);
    assert_removed(&dir).await;
}

#[actix_rt::test]
async fn nodes_sharing_the_test_thread_restart_on_rocksdb() {
    use actraft_examples::cluster::Placement;
    let storages = RocksStorages::temporary().unwrap();
    let dir = storages.dir().to_owned();
    let options = ClusterOptions::new(3)
        .config(fast_config())
        .placement(Placement::Shared);
    let mut cluster = Cluster::start_with(options, storages).await.unwrap();
    let (leader, _) = cluster.wait_for_leader(scenarios::WAIT).await.unwrap();
    let cmd = bytes::Bytes::from_static(b"before");
    cluster.propose(cmd.clone(), scenarios::WAIT).await.unwrap();
    cluster.kill(leader).await;
    cluster.restart(leader).await.unwrap();
    scenarios::settle(&cluster).await;
    scenarios::assert_all_acked_present(&cluster, &[cmd]);
    drop(cluster);
    assert_removed(&dir).await;
}
