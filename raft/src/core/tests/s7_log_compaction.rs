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

/// Small chunks, so that a snapshot takes several InstallSnapshot messages.
fn config_chunks(keep: u64) -> Config {
    Config {
        max_snapshot_chunk_bytes: 100,
        max_inflight_snapshot_chunks: 2,
        ..config_keep(keep)
    }
}

fn install_chunks_to(c: &Cluster, to: NodeId) -> Vec<(u64, usize, bool)> {
    c.delivered
        .iter()
        .filter(|e| e.to == to)
        .filter_map(|e| match &e.message {
            Message::InstallSnapshot(m) => Some((m.offset, m.data.len(), m.done)),
            _ => None,
        })
        .collect()
}

/// §7: "the leader must occasionally send snapshots to followers that lag behind": the
/// leader compacts by its own policy even past a follower that is cut off, and when
/// the follower comes back it gets the snapshot, in chunks, then the log after it.
#[test]
fn s7_leader_compacts_past_a_lagging_follower_and_installs_its_snapshot() {
    let cfg = config_chunks(0);
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
    assert_eq!(
        leader.snapshot_taken(point),
        Some(point.index),
        "the leader compacts regardless of the lagging follower"
    );
    c.heal();
    for i in 0..3 {
        c.node_mut(1).propose(format!("more{i}").into()).unwrap();
    }
    c.run_for(cfg.election_timeout_max * 4);
    assert_eq!(c.status(3).last_log, c.status(1).last_log, "caught up");
    assert_eq!(
        c.node(3).snapshot_point(),
        point,
        "by the leader's snapshot"
    );
    assert_eq!(c.node(3).log_prefix(), point);
    let chunks = install_chunks_to(&c, 3);
    let len = snapshot_bytes(&cfg).len();
    assert_eq!(
        chunks
            .iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(_, n, _)| n)
            .sum::<usize>(),
        len,
        "every byte sent once: {chunks:?}"
    );
    assert_eq!(chunks.iter().filter(|(_, _, done)| *done).count(), 1);
    assert!(chunks.iter().all(|(_, n, _)| *n <= 100), "chunk size bound");
    assert!(c
        .events_of(3, Duration::ZERO)
        .contains(&Event::SnapshotInstalled {
            last_included: point
        }));
    assert_eq!(c.status(3).applied_index, c.status(1).applied_index);
    // The follower applied the entries after the snapshot, not before it.
    let applied = &c.applied[&3];
    assert!(applied.iter().any(|e| e.index > point.index));
}

/// §7 with a lossy network: a lost chunk is sent again from the follower's
/// acknowledged offset, and the transfer completes.
#[test]
fn s7_a_lost_snapshot_chunk_is_resent() {
    let cfg = config_chunks(0);
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.isolate(3);
    for i in 0..10 {
        c.node_mut(1).propose(format!("cmd{i}").into()).unwrap();
    }
    c.run_for(cfg.heartbeat_interval * 3);
    let point = applied_id(c.node(1));
    c.node_mut(1).snapshot_taken(point).unwrap();
    // Lose the chunk at offset 100, once.
    let lost = std::rc::Rc::new(std::cell::Cell::new(false));
    let seen = std::rc::Rc::clone(&lost);
    c.set_filter(move |e| match &e.message {
        Message::InstallSnapshot(m) if m.offset == 100 && !seen.get() => {
            seen.set(true);
            false
        }
        _ => true,
    });
    c.run_for(cfg.election_timeout_max * 4);
    assert!(lost.get(), "the chunk was dropped");
    assert_eq!(c.node(3).snapshot_point(), point);
    assert_eq!(c.status(3).last_log, c.status(1).last_log);
    let resends = c
        .delivered
        .iter()
        .filter(|e| {
            matches!(&e.message, Message::InstallSnapshotReply(r)
                if matches!(r.result, SnapshotResult::Resend { offset: 100 }))
        })
        .count();
    assert!(resends >= 1, "the follower asked for the missing chunk");
}

fn chunk(term: Term, last: LogId, offset: u64, data: &'static [u8], done: bool) -> Message {
    Message::InstallSnapshot(Box::new(InstallSnapshotRequest {
        term,
        meta: crate::snapshot::SnapshotMeta {
            last_included: last,
            membership: crate::core::ClusterConfig::bootstrap([1, 2, 3]),
        },
        offset,
        data: Bytes::from_static(data),
        done,
    }))
}

fn replies_of(ready: &Ready) -> Vec<(Term, SnapshotResult)> {
    ready
        .messages
        .iter()
        .chain(&ready.persisted_messages)
        .filter_map(|e| match &e.message {
            Message::InstallSnapshotReply(r) => Some((r.term, r.result)),
            _ => None,
        })
        .collect()
}

/// §7: "If existing log entry has same index and term as snapshot's last included
/// entry, retain log entries following it": the log after the snapshot point stays,
/// and is written again after the stored log's reset.
#[test]
fn s7_install_keeps_the_matching_suffix() {
    let mut f = new_core(2, &[1, 2, 3], config(), initial(1, None, &[1, 1, 1, 1]));
    let last = LogId::new(1, 2);
    step(&mut f, 1, chunk(1, last, 0, b"ab", false));
    let r = ready_persisted(&mut f);
    assert_eq!(r.install_chunks.len(), 1, "the chunk goes to the driver");
    assert!(replies_of(&r).is_empty(), "acknowledged once stored");
    f.snapshot_chunk_stored(last, 2);
    assert_eq!(
        replies_of(&ready_persisted(&mut f)),
        vec![(1, SnapshotResult::Stored { offset: 2 })]
    );
    step(&mut f, 1, chunk(1, last, 2, b"cd", true));
    let r = ready_persisted(&mut f);
    assert_eq!(r.install_chunks.len(), 1);
    assert!(f.snapshot_is_news(last));
    f.snapshot_installed(last);
    let r = f.ready();
    assert_eq!(r.reset_log, Some(last));
    assert_eq!(
        r.entries.iter().map(Entry::log_id).collect::<Vec<_>>(),
        vec![LogId::new(1, 3), LogId::new(1, 4)],
        "the suffix is kept and written again"
    );
    assert!(replies_of(&r).contains(&(1, SnapshotResult::Installed)));
    assert!(
        r.messages
            .iter()
            .all(|e| !matches!(e.message, Message::InstallSnapshotReply(_))),
        "the answer waits for the reset to be durable"
    );
    assert_eq!(f.log_prefix(), last);
    assert_eq!(f.status().last_log, LogId::new(1, 4));
    assert_eq!(f.status().applied_index, 2);
    assert_eq!(f.status().commit_index, 2);
}

/// §7: "Discard the entire log" when it does not hold the snapshot's last entry.
#[test]
fn s7_install_discards_a_conflicting_log() {
    let mut f = new_core(2, &[1, 2, 3], config(), initial(2, None, &[1, 1, 2, 2]));
    let last = LogId::new(3, 3);
    step(&mut f, 1, chunk(3, last, 0, b"xyz", true));
    let _ = ready_persisted(&mut f);
    f.snapshot_installed(last);
    let r = f.ready();
    assert_eq!(r.reset_log, Some(last));
    assert!(r.entries.is_empty());
    assert_eq!(f.status().last_log, last);
    assert_eq!(f.log_term(4), None, "the conflicting suffix is gone");
    assert_eq!(f.snapshot_point(), last);
}

/// Out-of-order and foreign chunks: a gap asks for the missing offset, a chunk of no
/// known transfer asks for offset 0, a duplicate is acknowledged again.
#[test]
fn s7_install_asks_for_what_it_misses() {
    let mut f = new_core(2, &[1, 2, 3], config(), initial(1, None, &[1]));
    let last = LogId::new(1, 5);
    step(&mut f, 1, chunk(1, last, 4, b"zz", false));
    assert_eq!(
        replies_of(&ready_persisted(&mut f)),
        vec![(1, SnapshotResult::Resend { offset: 0 })]
    );
    step(&mut f, 1, chunk(1, last, 0, b"ab", false));
    f.snapshot_chunk_stored(last, 2);
    let _ = ready_persisted(&mut f);
    step(&mut f, 1, chunk(1, last, 4, b"ef", false));
    assert_eq!(
        replies_of(&ready_persisted(&mut f)),
        vec![(1, SnapshotResult::Resend { offset: 2 })]
    );
    step(&mut f, 1, chunk(1, last, 0, b"ab", false));
    let r = ready_persisted(&mut f);
    assert!(
        r.install_chunks.is_empty(),
        "a duplicate is not written twice"
    );
    assert_eq!(
        replies_of(&r),
        vec![(1, SnapshotResult::Stored { offset: 2 })]
    );
}

/// §5.1 for InstallSnapshot: a chunk from a stale term is refused (its sender gets the
/// current term and steps down), and changes nothing.
#[test]
fn s7_stale_install_is_refused() {
    let mut f = new_core(2, &[1, 2, 3], config(), initial(5, None, &[1, 5]));
    step(&mut f, 1, chunk(3, LogId::new(3, 9), 0, b"ab", true));
    let r = ready_persisted(&mut f);
    assert!(r.install_chunks.is_empty());
    assert!(matches!(
        replies_of(&r).as_slice(),
        [(5, SnapshotResult::Resend { .. })]
    ));
    assert_eq!(f.status().last_log, LogId::new(5, 2));
    assert_eq!(f.status().term, 5);
}

/// A follower that already holds everything a snapshot covers answers Installed at
/// once, without storing anything.
#[test]
fn s7_install_of_what_is_already_committed_is_acknowledged() {
    let mut c = cluster_with_commands(0, 5);
    let point = applied_id(c.node(2));
    let term = c.status(1).term;
    let f = c.node_mut(2);
    step(f, 1, chunk(term, point, 0, b"ab", true));
    let r = ready_persisted(f);
    assert!(r.install_chunks.is_empty());
    assert_eq!(replies_of(&r), vec![(term, SnapshotResult::Installed)]);
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
        membership: None,
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

/// A follower whose store refused a snapshot in transfer (a store never goes back to an
/// older snapshot than its own) and that holds everything the snapshot covers by then
/// (entries its leader had in flight before the transfer began arrived and committed)
/// tells the leader so at once, rather than leaving the transfer to stall; one that
/// does not hold it yet says nothing, and the leader sends the snapshot again.
#[test]
fn s7_a_refused_snapshot_the_follower_is_past_is_acknowledged() {
    let mut f = new_core(2, &[1, 2, 3], config(), initial(1, None, &[1]));
    let last = LogId::new(1, 5);
    step(&mut f, 1, chunk(1, last, 0, b"ab", false));
    assert_eq!(ready_persisted(&mut f).install_chunks.len(), 1);
    f.snapshot_install_failed(last);
    assert!(replies_of(&ready_persisted(&mut f)).is_empty());
    assert_eq!(f.incoming_snapshot(), None);

    step(&mut f, 1, chunk(1, last, 0, b"ab", false));
    assert_eq!(ready_persisted(&mut f).install_chunks.len(), 1);
    let entries = (2..=7).map(|i| entry(1, i)).collect();
    step(&mut f, 1, append(1, LogId::new(1, 1), entries, 7));
    let _ = ready_persisted(&mut f);
    assert_eq!(f.status().commit_index, 7);
    f.snapshot_install_failed(last);
    assert_eq!(
        replies_of(&ready_persisted(&mut f)),
        vec![(1, SnapshotResult::Installed)]
    );
    assert_eq!(f.incoming_snapshot(), None);
}
