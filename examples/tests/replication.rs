//! Cluster tests of log replication over the in-memory transport (§5.3, §5.4). Each
//! also checks that no two nodes applied different entries at one index.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actraft::core::{AppendResult, Message, Role};
use actraft::ClientError;
use actraft_examples::cluster::{fast_config, Cluster, ClusterOptions, Placement};
use bytes::Bytes;
use futures_util::future::join_all;

const WAIT: Duration = Duration::from_secs(10);

#[actix_rt::test]
async fn basic_agreement() {
    let (cluster, leader, _) =
        Cluster::start_with_leader(ClusterOptions::new(3).config(fast_config()), WAIT)
            .await
            .unwrap();
    let handle = cluster.handle(leader).unwrap();
    let mut want = Vec::new();
    for i in 0..10 {
        let cmd = Bytes::from(format!("cmd-{i}"));
        assert_eq!(
            handle.propose(cmd.clone()).await.unwrap(),
            cmd,
            "the response"
        );
        want.push(cmd);
    }
    let commit = handle.status().commit_index;
    cluster.wait_for_applied(commit, WAIT).await.unwrap();
    for id in cluster.members() {
        assert_eq!(cluster.applied(*id).unwrap().commands(), want, "node {id}");
    }
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn followers_refuse_proposals_with_a_redirect() {
    let (cluster, leader, _) =
        Cluster::start_with_leader(ClusterOptions::new(3).config(fast_config()), WAIT)
            .await
            .unwrap();
    let follower = cluster
        .members()
        .iter()
        .copied()
        .find(|&id| id != leader)
        .unwrap();
    let handle = cluster.handle(follower).unwrap();
    handle.wait_for_leader(WAIT).await.unwrap();
    let err = handle.propose("x").await.unwrap_err();
    assert_eq!(
        err,
        ClientError::NotLeader {
            leader: Some(leader)
        }
    );
}

#[actix_rt::test]
async fn agreement_with_one_follower_down() {
    let (mut cluster, leader, _) =
        Cluster::start_with_leader(ClusterOptions::new(3).config(fast_config()), WAIT)
            .await
            .unwrap();
    let down = cluster
        .members()
        .iter()
        .copied()
        .find(|&id| id != leader)
        .unwrap();
    cluster.kill(down).await;
    for i in 0..10 {
        cluster
            .propose(Bytes::from(format!("cmd-{i}")), WAIT)
            .await
            .unwrap();
    }
    cluster.restart(down).await.unwrap();
    let commit = cluster.handle(leader).unwrap().status().commit_index;
    cluster.wait_for_applied(commit, WAIT).await.unwrap();
    assert_eq!(
        cluster.applied(down).unwrap().len(),
        10,
        "the follower caught up"
    );
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn nothing_commits_with_a_majority_down() {
    let (mut cluster, leader, _) =
        Cluster::start_with_leader(ClusterOptions::new(5).config(fast_config()), WAIT)
            .await
            .unwrap();
    cluster
        .propose(Bytes::from_static(b"before"), WAIT)
        .await
        .unwrap();
    let handle = cluster.handle(leader).unwrap();
    // The reply to a proposal can overtake the leader's status update (the test runs on
    // another thread than the leader): wait for the status to show the commit.
    let commit_before = handle
        .wait_until(WAIT, |s| s.commit_index >= s.last_log.index)
        .await
        .unwrap()
        .commit_index;
    let down: Vec<u64> = cluster
        .members()
        .iter()
        .copied()
        .filter(|&id| id != leader)
        .take(3)
        .collect();
    for &id in &down {
        cluster.kill(id).await;
    }
    let result = handle
        .propose_timeout("during", Duration::from_millis(600))
        .await;
    assert!(
        result.is_err(),
        "a write committed without a majority: {result:?}"
    );
    for s in cluster.statuses() {
        assert!(s.commit_index <= commit_before, "commit advanced: {s:?}");
    }
    for &id in &down {
        cluster.restart(id).await.unwrap();
    }
    cluster
        .propose(Bytes::from_static(b"after"), WAIT)
        .await
        .unwrap();
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn many_concurrent_proposals_apply_once_in_one_order() {
    let cluster = Cluster::start(
        ClusterOptions::new(3)
            .config(fast_config())
            .placement(Placement::Threads(2)),
    )
    .await
    .unwrap();
    let (leader, _) = cluster.wait_for_leader(WAIT).await.unwrap();
    let handle = cluster.handle(leader).unwrap();
    let tasks = 50;
    let each = 40;
    let results = join_all((0..tasks).map(|t| {
        let handle = handle.clone();
        async move {
            for i in 0..each {
                let cmd = Bytes::from(format!("t{t}-{i}"));
                assert_eq!(handle.propose(cmd.clone()).await.unwrap(), cmd);
            }
        }
    }))
    .await;
    assert_eq!(results.len(), tasks);
    let commit = handle.status().commit_index;
    cluster.wait_for_applied(commit, WAIT).await.unwrap();
    let reference = cluster.applied(leader).unwrap().commands();
    assert_eq!(reference.len(), tasks * each);
    let distinct: BTreeSet<_> = reference.iter().collect();
    assert_eq!(
        distinct.len(),
        tasks * each,
        "each command applied exactly once"
    );
    for id in cluster.members() {
        assert_eq!(
            cluster.applied(*id).unwrap().commands(),
            reference,
            "node {id}"
        );
    }
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn partitioned_leader_loses_its_uncommitted_entries() {
    let (cluster, old, _) =
        Cluster::start_with_leader(ClusterOptions::new(5).config(fast_config()), WAIT)
            .await
            .unwrap();
    let old_handle = cluster.handle(old).unwrap();
    cluster.router().isolate(old);
    // Proposals the isolated leader accepts but can never commit.
    let stranded: Vec<_> = (0..5)
        .map(|i| {
            let h = old_handle.clone();
            actix_rt::spawn(async move { h.propose(format!("stranded-{i}")).await })
        })
        .collect();
    old_handle
        .wait_until(WAIT, |s| s.last_log.index > s.commit_index)
        .await
        .unwrap();
    let others: Vec<u64> = cluster
        .members()
        .iter()
        .copied()
        .filter(|&id| id != old)
        .collect();
    let (new, _) = cluster.wait_for_leader_among(&others, WAIT).await.unwrap();
    for i in 0..5 {
        cluster
            .propose(Bytes::from(format!("fresh-{i}")), WAIT)
            .await
            .unwrap();
    }
    cluster.router().heal();
    let commit = cluster.handle(new).unwrap().status().commit_index;
    cluster.wait_for_applied(commit, WAIT).await.unwrap();
    for task in stranded {
        let result = task.await.unwrap();
        assert!(
            matches!(
                result,
                Err(ClientError::LeadershipLost { .. } | ClientError::OutcomeUnknown { .. })
            ),
            "a stranded proposal must fail clearly, got {result:?}"
        );
    }
    let agreed = cluster.check_agreement().unwrap();
    assert!(agreed.values().all(|c| !c.starts_with(b"stranded")));
    assert_eq!(
        agreed.values().filter(|c| c.starts_with(b"fresh")).count(),
        5
    );
}

#[actix_rt::test]
async fn fast_backup_over_a_long_conflict() {
    let (cluster, old, _) =
        Cluster::start_with_leader(ClusterOptions::new(3).config(fast_config()), WAIT)
            .await
            .unwrap();
    let old_handle = cluster.handle(old).unwrap();
    cluster.router().isolate(old);
    let conflicting = 60;
    for i in 0..conflicting {
        let h = old_handle.clone();
        actix_rt::spawn(async move {
            let _ = h.propose(format!("conflict-{i}")).await;
        });
    }
    old_handle
        .wait_until(WAIT, |s| s.last_log.index >= s.commit_index + conflicting)
        .await
        .unwrap();
    let others: Vec<u64> = cluster
        .members()
        .iter()
        .copied()
        .filter(|&id| id != old)
        .collect();
    let (new, _) = cluster.wait_for_leader_among(&others, WAIT).await.unwrap();
    for i in 0..conflicting {
        cluster
            .propose(Bytes::from(format!("winner-{i}")), WAIT)
            .await
            .unwrap();
    }
    // Count the rejected AppendEntries the old leader sends back while it is repaired.
    let rejections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&rejections);
    cluster.router().set_observer(move |env| {
        if env.from == old {
            if let Message::AppendEntriesReply(r) = &env.message {
                if matches!(r.result, AppendResult::Conflict { .. }) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    cluster.router().heal();
    let commit = cluster.handle(new).unwrap().status().commit_index;
    cluster.wait_for_applied(commit, WAIT).await.unwrap();
    let rounds = rejections.load(Ordering::Relaxed);
    assert!(
        rounds < conflicting as usize / 4,
        "{rounds} rejected rounds to repair {conflicting} conflicting entries"
    );
    let agreed = cluster.check_agreement().unwrap();
    assert!(agreed.values().all(|c| !c.starts_with(b"conflict")));
    assert_eq!(cluster.handle(old).unwrap().status().role, Role::Follower);
}
