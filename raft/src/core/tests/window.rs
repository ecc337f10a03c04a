//! Core unit tests: the log window. The core keeps only the tail of the log in memory;
//! a leader catches a lagging follower up from entries read back from storage, and
//! falls back to the snapshot when storage no longer has them.

use super::*;

fn config_window(entries: usize) -> Config {
    Config {
        log_window_entries: entries,
        ..config()
    }
}

/// Applied, durable entries beyond the window leave memory; the ones a node still works
/// on (unapplied) never do.
#[test]
fn window_holds_at_most_its_bound_of_applied_entries() {
    let cfg = config_window(4);
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    for i in 0..40 {
        c.node_mut(1).propose(format!("cmd{i}").into()).unwrap();
    }
    c.run_for(cfg.heartbeat_interval * 3);
    for id in 1..=3 {
        let node = c.node(id);
        let status = node.status();
        assert_eq!(
            status.applied_index, status.last_log.index,
            "node {id} applied all"
        );
        let in_memory = status.last_log.index - node.log_prefix().index;
        assert!(
            in_memory <= 4,
            "node {id} holds {in_memory} entries, window 4"
        );
        assert_eq!(node.stored_prefix(), 0, "nothing compacted in storage");
        assert_eq!(c.applied_indexes(id), (1..=41).collect::<Vec<_>>());
    }
}

/// A follower cut off while the leader moved on past its window is caught up from
/// entries the leader reads back from storage: no snapshot, and the same log.
#[test]
fn a_follower_behind_the_window_is_caught_up_from_storage() {
    let cfg = config_window(3);
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.isolate(3);
    for i in 0..25 {
        c.node_mut(1).propose(format!("cmd{i}").into()).unwrap();
    }
    c.run_for(cfg.heartbeat_interval * 2);
    let leader_last = c.status(1).last_log;
    assert!(
        c.node(1).log_prefix().index > c.status(3).last_log.index + 1,
        "the follower is behind the window"
    );
    c.heal();
    c.run_for(cfg.heartbeat_interval * 4);
    assert!(
        c.log_reads.get(&1).copied().unwrap_or(0) > 0,
        "the leader read stored entries"
    );
    assert!(!c.installed.contains_key(&3), "no snapshot was needed");
    assert_eq!(c.status(3).last_log, leader_last);
    let on_leader: Vec<_> = c.applied[&1].iter().map(Entry::log_id).collect();
    let on_follower: Vec<_> = c.applied[&3].iter().map(Entry::log_id).collect();
    assert_eq!(
        on_follower, on_leader,
        "the follower applied the leader's log"
    );
}

/// A read that storage cannot answer (compacted meanwhile) sends the snapshot instead;
/// a read answered for another term is ignored.
#[test]
fn an_unanswerable_read_falls_back_to_the_snapshot_and_stale_reads_are_ignored() {
    let cfg = config_window(2);
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.isolate(3);
    for i in 0..12 {
        c.node_mut(1).propose(format!("cmd{i}").into()).unwrap();
    }
    c.run_for(cfg.heartbeat_interval * 2);
    let leader = c.node_mut(1);
    let point = LogId::new(leader.status().term, leader.status().applied_index);
    assert!(
        leader.snapshot_taken(point).is_none(),
        "storage keeps 1024 behind the snapshot"
    );
    assert_eq!(leader.snapshot_point(), point);
    // Reads for node 3 wait in the harness from now on.
    c.held_reads = Some(Vec::new());
    c.heal();
    c.run_for(cfg.heartbeat_interval * 2);
    let reads = c.held_reads.take().unwrap();
    let &(node, read) = reads
        .iter()
        .find(|(_, r)| r.peer == 3)
        .expect("a read for node 3");
    assert_eq!(node, 1);
    assert!(read.from < c.node(1).log_prefix().index);
    let sent_before = c.sent.len();
    // Another term's answer changes nothing; this term's "unavailable" sends the snapshot.
    c.node_mut(1).log_read_done(
        LogRead {
            term: read.term + 1,
            ..read
        },
        None,
    );
    c.drain(1);
    assert_eq!(
        c.sent.len(),
        sent_before,
        "a read of another term is ignored"
    );
    c.node_mut(1).log_read_done(read, None);
    c.drain(1);
    assert!(
        c.sent[sent_before..]
            .iter()
            .any(|e| e.to == 3 && matches!(e.message, Message::InstallSnapshot(_))),
        "stored entries unavailable: the snapshot goes out instead"
    );
    // The transfer completes and node 3 ends with the leader's state.
    c.run_for(cfg.heartbeat_interval * 4);
    assert_eq!(c.installed.get(&3), Some(&point.index));
    assert_eq!(c.status(3).last_log, c.status(1).last_log);
}
