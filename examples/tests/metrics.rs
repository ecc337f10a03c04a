//! Metrics in process: [`RaftHandle::metrics`] and its watch on a three-node cluster
//! (in-memory transport and storage), and what the same nodes record through the
//! `metrics` facade, read back from a Prometheus recorder (one per process, shared by
//! the tests, whose nodes have distinct ids).

use std::sync::OnceLock;
use std::time::Duration;

use actraft::{NodeBuilder, RaftHandle, RaftMetrics, Role};
use actraft_examples::cluster::{fast_config, Cluster, ClusterOptions};
use actraft_examples::kv::{KvCommand, KvMachine};
use actraft_examples::metrics_http::{install_prometheus, parse_text, Sample};
use actraft_storage_mem::{MemSnapshotStore, MemStorage};
use actraft_transport_mem::MemRouter;
use metrics_exporter_prometheus::PrometheusHandle;

const WAIT: Duration = Duration::from_secs(10);
const WRITES: u64 = 20;

/// Waits until node `handle`'s metrics satisfy `pred`.
async fn wait_metrics(handle: &RaftHandle, pred: impl Fn(&RaftMetrics) -> bool) -> RaftMetrics {
    let mut watch = handle.watch_metrics();
    let wait = async {
        watch
            .wait_for(|m| pred(m))
            .await
            .expect("node running")
            .clone()
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("metrics to reach the expected state")
}

/// The process's recorder, installed by the first test that asks.
fn recorder() -> &'static PrometheusHandle {
    static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();
    RECORDER.get_or_init(|| install_prometheus().unwrap())
}

fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && s.has(with))
        .collect();
    assert_eq!(found.len(), 1, "{name} {with:?}: {found:?}");
    found[0].value
}

#[actix_rt::test]
async fn raft_metrics_and_the_facade_report_roles_progress_and_traffic() {
    // Before the cluster: components look up their metric handles when they are made.
    let recorder = recorder();
    let options = ClusterOptions::new(3).config(fast_config());
    let (cluster, leader, term) = Cluster::start_with_leader(options, WAIT).await.unwrap();
    let payload: u64 = (0..WRITES).map(|i| format!("write {i}").len() as u64).sum();
    for i in 0..WRITES {
        cluster
            .propose(format!("write {i}").into(), WAIT)
            .await
            .unwrap();
    }
    let handle = cluster.handle(leader).unwrap();

    // The snapshot: the leader, its log, and each follower's progress.
    let m = handle.metrics();
    assert_eq!(
        (m.id, m.role, m.current_leader),
        (leader, Role::Leader, Some(leader))
    );
    assert!(m.current_term >= term);
    assert!(m.commit_index > WRITES, "the writes and the leader's no-op");
    assert!(m.applied_index > WRITES);
    assert!(m.last_log_index >= m.commit_index);
    assert!(m.counters.proposals_accepted >= WRITES);
    let followers: Vec<u64> = m.replication.keys().copied().collect();
    let expected: Vec<u64> = cluster
        .members()
        .iter()
        .copied()
        .filter(|&id| id != leader)
        .collect();
    assert_eq!(followers, expected);
    for p in m.replication.values() {
        assert_eq!(p.lag, m.last_log_index - p.matched);
        assert!(p.next > p.matched);
    }
    // The watch wakes as the followers catch up: both end with no lag.
    let caught_up = wait_metrics(&handle, |m| {
        m.replication.len() == 2 && m.replication.values().all(|p| p.lag == 0)
    })
    .await;
    assert!(caught_up.max_lag() == 0);
    for &id in &followers {
        let f = cluster.handle(id).unwrap().metrics();
        assert_eq!(f.role, Role::Follower);
        assert_eq!(f.current_leader, Some(leader));
        assert!(f.replication.is_empty(), "only a leader tracks followers");
    }

    // The facade: the same numbers, labelled by node.
    let samples = parse_text(&recorder.render()).unwrap();
    let node = leader.to_string();
    let me = [("node", node.as_str())];
    let members: Vec<String> = cluster.members().iter().map(u64::to_string).collect();
    let leaders: f64 = samples
        .iter()
        .filter(|s| s.name == "actraft_is_leader")
        .filter(|s| members.contains(&s.labels["node"]))
        .map(|s| s.value)
        .sum();
    assert_eq!(leaders, 1.0, "one leader");
    assert_eq!(value(&samples, "actraft_is_leader", &me), 1.0);
    assert_eq!(value(&samples, "actraft_role", &me), 3.0);
    let now = handle.metrics();
    assert_eq!(
        value(&samples, "actraft_commit_index", &me),
        now.commit_index as f64
    );
    assert_eq!(
        value(&samples, "actraft_last_log_index", &me),
        now.last_log_index as f64
    );
    assert!(value(&samples, "actraft_proposals_accepted_total", &me) >= WRITES as f64);
    assert!(value(&samples, "actraft_elections_won_total", &me) >= 1.0);
    assert!(value(&samples, "actraft_pre_votes_started_total", &me) >= 1.0);
    assert!(value(&samples, "actraft_write_seconds_count", &me) >= 1.0);
    let storage = [("node", node.as_str()), ("storage", "mem")];
    assert!(value(&samples, "actraft_storage_writes_total", &storage) >= 1.0);
    assert!(
        value(&samples, "actraft_storage_entries_appended_total", &storage) >= (WRITES + 1) as f64
    );
    for id in &followers {
        let peer = id.to_string();
        let link = [
            ("node", node.as_str()),
            ("peer", peer.as_str()),
            ("transport", "mem"),
        ];
        assert_eq!(
            value(&samples, "actraft_follower_lag", &link[..2]),
            0.0,
            "caught up"
        );
        assert_eq!(
            value(&samples, "actraft_follower_match_index", &link[..2]),
            now.replication[id].matched as f64
        );
        assert!(value(&samples, "actraft_transport_messages_sent_total", &link) >= 1.0);
        // Every entry went to every follower at least once.
        assert!(value(&samples, "actraft_transport_bytes_sent_total", &link) >= payload as f64);
        // And the follower received it, from the leader.
        let back = [
            ("node", peer.as_str()),
            ("peer", node.as_str()),
            ("transport", "mem"),
        ];
        assert!(value(&samples, "actraft_transport_bytes_received_total", &back) >= payload as f64);
    }

    // A leader cut off from its followers steps down (CheckQuorum): its snapshot then
    // tracks no follower, and its follower gauges read 0.
    cluster.router().isolate(leader);
    let stepped_down = wait_metrics(&handle, |m| m.role != Role::Leader).await;
    assert!(stepped_down.replication.is_empty());
    let samples = parse_text(&recorder.render()).unwrap();
    assert_eq!(value(&samples, "actraft_is_leader", &me), 0.0);
    for id in &followers {
        let peer = id.to_string();
        let with = [("node", node.as_str()), ("peer", peer.as_str())];
        assert_eq!(value(&samples, "actraft_follower_lag", &with), 0.0);
    }
}

#[actix_rt::test]
async fn a_snapshot_shows_in_the_metrics() {
    let recorder = recorder();
    // Node 9: apart from the cluster test's nodes 1 to 3.
    let id = 9;
    let router = MemRouter::new();
    let handle = NodeBuilder::new(id, vec![id])
        .config(fast_config())
        .snapshot_store(MemSnapshotStore::new())
        .start(
            MemStorage::for_node(id),
            router.transport(id),
            KvMachine::new(),
        )
        .await
        .unwrap();
    handle.wait_for_leader(WAIT).await.unwrap();
    for i in 0..10 {
        let put = KvCommand::Put {
            key: format!("k{i}"),
            value: "v".into(),
        };
        handle.propose(put.encode()).await.unwrap();
    }
    assert_eq!(handle.metrics().snapshot, None, "no snapshot yet");
    let applied = handle.status().applied_index;
    handle.trigger_snapshot();
    let meta = handle.wait_for_snapshot(applied, WAIT).await.unwrap();
    let m = wait_metrics(&handle, |m| m.snapshot.is_some()).await;
    assert_eq!(m.snapshot, Some(meta.last_included));
    let samples = parse_text(&recorder.render()).unwrap();
    let me = [("node", "9")];
    assert_eq!(
        value(&samples, "actraft_snapshot_index", &me),
        meta.last_included.index as f64
    );
    assert_eq!(value(&samples, "actraft_snapshots_taken_total", &me), 1.0);
    assert_eq!(value(&samples, "actraft_snapshots_failed_total", &me), 0.0);
    handle.shutdown().await;
}

/// The membership gauges: voters and learners of the configuration in force (a joint
/// one counts each node once), whether it is joint, and whether the node was removed.
#[actix_rt::test]
async fn membership_gauges_follow_the_configuration() {
    let recorder = recorder();
    // Nodes 11 to 13: apart from the other tests' nodes.
    let ids = [11, 12, 13];
    let router = MemRouter::new();
    // Without CheckQuorum the leader keeps leading while its change is held up.
    let mut config = fast_config();
    config.check_quorum = false;
    let mut handles = Vec::new();
    for id in ids {
        let handle = NodeBuilder::new(id, ids.to_vec())
            .config(config.clone())
            .start(
                MemStorage::for_node(id),
                router.transport(id),
                KvMachine::new(),
            )
            .await
            .unwrap();
        handles.push(handle);
    }
    let leader_id = handles[0].wait_for_leader(WAIT).await.unwrap();
    let node = |id: u64| handles.iter().find(|h| h.id() == id).unwrap().clone();
    let leader = node(leader_id);
    wait_metrics(&leader, |m| m.role == Role::Leader).await;
    let gauges = |id: u64| {
        let samples = parse_text(&recorder.render()).unwrap();
        let me = [("node", id.to_string())];
        let me: Vec<(&str, &str)> = me.iter().map(|(k, v)| (*k, v.as_str())).collect();
        [
            "actraft_voters",
            "actraft_learners",
            "actraft_config_joint",
            "actraft_removed",
        ]
        .map(|name| value(&samples, name, &me))
    };
    assert_eq!(gauges(leader_id), [3.0, 0.0, 0.0, 0.0]);

    // Remove `out`, with `other` cut off: the joint configuration needs both voters of
    // the new half, so it stays in force until `other` is back.
    let mut rest = ids.iter().copied().filter(|&id| id != leader_id);
    let (out, other) = (rest.next().unwrap(), rest.next().unwrap());
    router.isolate(other);
    let change = leader.change_membership([leader_id, other], []);
    let observe = async {
        wait_metrics(&leader, |m| m.membership.is_joint()).await;
        assert_eq!(gauges(leader_id), [3.0, 0.0, 1.0, 0.0], "joint");
        router.reconnect(other);
    };
    let (done, ()) = tokio::join!(change, observe);
    done.unwrap();
    let removed = node(out);
    wait_metrics(&removed, |m| {
        !m.membership.is_joint() && !m.membership.contains(out)
    })
    .await;
    assert_eq!(gauges(out), [2.0, 0.0, 0.0, 1.0], "removed");
    wait_metrics(&leader, |m| !m.membership.is_joint()).await;
    assert_eq!(gauges(leader_id), [2.0, 0.0, 0.0, 0.0], "after the change");

    // Back as a learner.
    leader.add_learner(out, "").await.unwrap();
    wait_metrics(&removed, |m| m.membership.contains(out)).await;
    assert_eq!(gauges(out), [2.0, 1.0, 0.0, 0.0], "a learner again");
    assert_eq!(gauges(leader_id), [2.0, 1.0, 0.0, 0.0]);
    for handle in handles {
        handle.shutdown().await;
    }
}

/// A handle reads the node's current status and metrics whether or not anyone watches,
/// and a watch taken at any time is woken by every later change: the node stores each
/// change for its handles and wakes receivers only while someone subscribed.
#[actix_rt::test]
async fn handles_read_current_values_and_every_watch_is_woken() {
    let options = ClusterOptions::new(3).config(fast_config());
    let (mut cluster, leader, _) = Cluster::start_with_leader(options, WAIT).await.unwrap();
    let handle = cluster.handle(leader).unwrap();
    let command = |i: u64| -> bytes::Bytes { format!("write {i}").into() };

    // Nobody subscribed: the answer comes after the node stored its new status.
    for i in 0..5 {
        let (status, metrics) = (handle.status(), handle.metrics());
        handle.propose(command(i)).await.unwrap();
        assert!(handle.status().applied_index > status.applied_index);
        assert!(handle.metrics().applied_index > metrics.applied_index);
    }

    // Subscribed after those changes, each watch is woken by the next commit: `changed`
    // resolves only when the node announced a change, not when it merely stored one.
    let mut status = handle.watch_status();
    let mut metrics = handle.watch_metrics();
    for i in 5..10 {
        let applied = status.borrow_and_update().applied_index;
        let applied_m = metrics.borrow_and_update().applied_index;
        handle.propose(command(i)).await.unwrap();
        tokio::time::timeout(WAIT, status.changed())
            .await
            .expect("the status watch to be woken")
            .expect("node running");
        tokio::time::timeout(WAIT, metrics.changed())
            .await
            .expect("the metrics watch to be woken")
            .expect("node running");
        assert!(status.borrow().applied_index > applied);
        assert!(metrics.borrow().applied_index > applied_m);
    }

    // A follower's watch is woken as the leader's writes arrive.
    let follower = cluster
        .live()
        .into_iter()
        .find(|h| h.id() != leader)
        .unwrap();
    let mut watch = follower.watch_status();
    let target = handle.status().commit_index + 1;
    handle.propose(command(10)).await.unwrap();
    let woken = async {
        loop {
            watch.changed().await.expect("node running");
            if watch.borrow_and_update().applied_index >= target {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, woken)
        .await
        .expect("the follower's watch to be woken");
    cluster.shutdown_all().await;
}
