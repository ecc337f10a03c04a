//! Core unit tests: §7: log compaction.

use super::*;

fn config_keep(keep: u64) -> Config {
    Config {
        snapshot_keep_entries: keep,
        ..config()
    }
}

/// A 3-node cluster led by 1 with `n` commands committed and applied everywhere.
fn cluster_with_commands(keep: u64, n: usize) -> Cluster {
    let cfg = config_keep(keep);
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    for i in 0..n {
        c.node_mut(1).propose(format!("cmd{i}").into()).unwrap();
    }
    c.run_for(cfg.heartbeat_interval * 3);
    c
}

fn applied_id(core: &RaftCore) -> LogId {
    let applied = core.status().applied_index;
    LogId::new(core.log_term(applied).unwrap(), applied)
}

/// §7: "a server can discard all log entries up through the last included index" once
/// its snapshot is durable; the core keeps a window of `snapshot_keep_entries` behind
/// it for followers that lag a little.
#[test]
fn s7_snapshot_discards_entries_behind_the_keep_window() {
    let mut c = cluster_with_commands(5, 20);
    let follower = c.node_mut(2);
    let point = applied_id(follower);
    assert!(point.index >= 20, "all applied: {point:?}");
    let last = follower.status().last_log;
    assert_eq!(follower.snapshot_taken(point), Some(point.index - 5));
    assert_eq!(follower.snapshot_point(), point);
    let prefix = follower.log_prefix();
    assert_eq!(prefix.index, point.index - 5);
    assert!(follower.log_entries(1, prefix.index).is_empty());
    assert_eq!(follower.log_term(prefix.index), Some(prefix.term));
    assert_eq!(
        follower.log_entries(prefix.index + 1, last.index).len() as u64,
        last.index - prefix.index
    );
    assert_eq!(follower.status().last_log, last, "the tail is untouched");
}

/// §7: snapshots only cover committed, applied state: a report beyond what is applied,
/// for an entry this log does not hold, or older than the current snapshot changes
/// nothing.
#[test]
fn s7_snapshot_reports_outside_the_applied_log_are_ignored() {
    let mut c = cluster_with_commands(0, 10);
    let node = c.node_mut(3);
    let point = applied_id(node);
    let beyond = LogId::new(point.term, point.index + 1);
    assert_eq!(node.snapshot_taken(beyond), None);
    let wrong_term = LogId::new(point.term + 7, point.index);
    assert_eq!(node.snapshot_taken(wrong_term), None);
    assert_eq!(node.snapshot_point(), LogId::default());
    assert_eq!(node.snapshot_taken(point), Some(point.index));
    let older = LogId::new(node.log_term(point.index - 1).unwrap_or(0), point.index - 1);
    assert_eq!(node.snapshot_taken(older), None);
    assert_eq!(node.snapshot_point(), point);
}

/// §7: the leader must still be able to send a follower the entries it lacks (this
/// version has no InstallSnapshot), so it never compacts past the slowest follower's
/// match; once the follower catches up, the next snapshot compacts further.
#[test]
fn s7_leader_keeps_what_a_lagging_follower_needs() {
    let cfg = config_keep(0);
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval);
    let lagging_match = c.status(3).last_log.index;
    c.isolate(3);
    for i in 0..10 {
        c.node_mut(1).propose(format!("cmd{i}").into()).unwrap();
    }
    c.run_for(cfg.heartbeat_interval * 3);
    let leader = c.node_mut(1);
    let point = applied_id(leader);
    assert!(point.index > lagging_match + 5);
    let upto = leader.snapshot_taken(point);
    assert!(
        upto.is_none_or(|u| u <= lagging_match),
        "compacted to {upto:?} past the lagging follower's match {lagging_match}"
    );
    c.heal();
    for i in 0..3 {
        c.node_mut(1).propose(format!("more{i}").into()).unwrap();
    }
    c.run_for(cfg.election_timeout_max * 4);
    assert_eq!(
        c.status(3).last_log,
        c.status(1).last_log,
        "caught up from the log"
    );
    let leader = c.node_mut(1);
    let point = applied_id(leader);
    assert_eq!(leader.snapshot_taken(point), Some(point.index));
}

/// §7: a restarted server starts from its snapshot: the log before the snapshot point
/// is gone, everything up to it counts as committed and applied.
#[test]
fn s7_restart_from_a_snapshot_point() {
    let prefix = LogId::new(2, 40);
    let state = InitialState {
        hard_state: HardState {
            current_term: 3,
            voted_for: None,
        },
        log_prefix: prefix,
        entries: vec![entry(3, 41), entry(3, 42)],
        applied_index: 40,
        snapshot: prefix,
    };
    let core = new_core(1, &[1, 2, 3], config(), state);
    let status = core.status();
    assert_eq!(status.applied_index, 40);
    assert_eq!(status.commit_index, 40);
    assert_eq!(status.last_log, LogId::new(3, 42));
    assert_eq!(core.snapshot_point(), prefix);
    assert_eq!(core.log_term(40), Some(2));
    assert_eq!(core.log_term(39), None);
}
