//! Crash and restart scenarios shared by the cluster tests, so the same scenario runs on
//! every storage (`tests/faults.rs` on memory, `tests/rocks_cluster.rs` on RocksDB).
//! Each drives a started [`Cluster`] and panics, with a message, on the first broken
//! promise: these are test bodies, kept in the library so they are written once.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::load::Load;

/// How long any single wait of a scenario may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// Checks that every acknowledged command is in the log the nodes agree on.
///
/// # Panics
///
/// When the nodes disagree or an acknowledged command is missing.
pub fn assert_all_acked_present(cluster: &Cluster, acked: &[Bytes]) {
    let agreed = cluster.check_agreement().unwrap();
    let present: BTreeSet<&Bytes> = agreed.values().collect();
    let missing: Vec<_> = acked.iter().filter(|c| !present.contains(c)).collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
}

/// Waits for a leader, commits a write of its term (which commits everything before
/// it) and waits until every running node applied it.
///
/// # Panics
///
/// When that does not happen within [`WAIT`] per step.
pub async fn settle(cluster: &Cluster) {
    let (leader, _) = cluster.wait_for_leader(WAIT).await.unwrap();
    cluster
        .propose(Bytes::from_static(b"settle"), WAIT)
        .await
        .unwrap();
    let commit = cluster.handle(leader).unwrap().status().commit_index;
    cluster.wait_for_applied(commit, WAIT).await.unwrap();
}

/// Commits `writes` commands, kills every node, restarts them all from their storage,
/// and checks that each came back with its term, that a majority came back with the
/// whole log, and that every node then applies every acknowledged command.
///
/// # Panics
///
/// When any of that fails.
pub async fn full_cluster_restart(cluster: &mut Cluster, writes: usize) {
    let mut acked = Vec::new();
    for i in 0..writes {
        let cmd = Bytes::from(format!("cmd-{i}"));
        cluster.propose(cmd.clone(), WAIT).await.unwrap();
        acked.push(cmd);
    }
    // A term raised in memory becomes durable with the write that follows it, so the
    // terms are compared once every node holds the same log durably and knows it
    // committed: then nothing is in flight that a crash could take.
    let quiet = cluster
        .wait_for(WAIT, "every node's log durable and committed", |s| {
            s.iter().all(|n| {
                n.term == s[0].term
                    && n.last_log == s[0].last_log
                    && n.persisted_index == n.last_log.index
                    && n.commit_index == n.last_log.index
            })
        })
        .await
        .unwrap();
    let terms_before: Vec<_> = quiet.iter().map(|s| s.term).collect();
    for id in cluster.members().to_vec() {
        cluster.kill(id).await;
    }
    let mut complete = 0;
    for (k, id) in cluster.members().to_vec().into_iter().enumerate() {
        let handle = cluster.restart(id).await.unwrap();
        let s = handle.status();
        assert_eq!(s.term, terms_before[k], "node {id} came back with its term");
        if s.last_log.index > writes as u64 {
            complete += 1;
        }
    }
    // Every acknowledged entry was durable on a majority before the crash.
    assert!(
        complete > cluster.members().len() / 2,
        "a majority came back with the whole log"
    );
    settle(cluster).await;
    for id in cluster.members() {
        let applied = cluster.applied(*id).unwrap().commands();
        for cmd in &acked {
            assert!(
                applied.contains(cmd),
                "node {id} lost {cmd:?} across the restart"
            );
        }
    }
    assert_all_acked_present(cluster, &acked);
}

/// Under a load of `clients` clients, `rounds` times: waits for progress, kills the
/// leader, waits for a new one, restarts the old one. Then checks that the load made
/// progress, that every acknowledged command is in the agreed log, and that no term had
/// two leaders.
///
/// # Panics
///
/// When any of that fails.
pub async fn repeated_leader_crash_under_load(
    cluster: &mut Cluster,
    clients: usize,
    rounds: usize,
) {
    cluster.wait_for_leader(WAIT).await.unwrap();
    let (tx, rx) = watch::channel(cluster.live());
    let load = Load::start(clients, rx);
    for _round in 0..rounds {
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
    settle(cluster).await;
    assert_all_acked_present(cluster, &acked);
    for (term, leaders) in cluster.leaders_by_term() {
        assert_eq!(leaders.len(), 1, "term {term}: {leaders:?}");
    }
}
