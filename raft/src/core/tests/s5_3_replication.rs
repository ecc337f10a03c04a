//! Core unit tests: §5.3: log replication.

use super::*;

// ===== §5.3: log replication ==========================================================

/// §5.3: the leader appends a command to its log and issues AppendEntries to each
/// follower, carrying the new entry and the id of the one before it; a follower refuses
/// proposals and names the leader.
#[test]
fn s5_3_leader_replicates_a_proposal() {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval);
    let before = c.status(1);
    assert_eq!(
        c.node_mut(2).propose("no".into()),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );

    let id = c.node_mut(1).propose("x".into()).expect("leader");
    assert_eq!(id, LogId::new(before.term, before.last_log.index + 1));
    let sent = c.sent.len();
    c.drain(1);
    let mut to = Vec::new();
    for e in &c.sent[sent..] {
        let Message::AppendEntries(req) = &e.message else {
            continue;
        };
        to.push(e.to);
        assert_eq!(req.term, before.term);
        assert_eq!(req.prev_log, before.last_log);
        assert_eq!(
            req.entries,
            vec![Entry {
                term: id.term,
                index: id.index,
                payload: Payload::Command("x".into())
            }]
        );
        assert_eq!(req.leader_commit, before.commit_index);
    }
    to.sort_unstable();
    assert_eq!(to, vec![2, 3]);

    c.run();
    for node in [2, 3] {
        assert_eq!(c.node(node).log_term(id.index), Some(id.term));
    }
    assert_eq!(c.status(1).commit_index, id.index);
}

/// §5.3: "A log entry is committed once the leader that created the entry has replicated
/// it on a majority of the servers" — and not before: in a 5-node cluster, the leader and
/// one follower are a minority. Followers learn the commit index from later
/// AppendEntries and apply too.
#[test]
fn s5_3_commit_needs_a_majority() {
    let cfg = config();
    let mut c = Cluster::new(5, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval);
    let commit = c.status(1).commit_index;

    let id = c.node_mut(1).propose("x".into()).expect("leader");
    let with = |n: NodeId| move |e: &Envelope| e.from == n || e.to == n;
    c.run_only(with(2));
    assert_eq!(c.node(2).log_term(id.index), Some(id.term));
    assert_eq!(
        c.status(1).commit_index,
        commit,
        "two of five is a minority"
    );
    assert!(!c.applied_indexes(1).contains(&id.index));

    c.run_only(with(3));
    assert_eq!(c.status(1).commit_index, id.index, "three of five commit");
    assert_eq!(c.applied_indexes(1).last(), Some(&id.index));
    assert!(c
        .events_of(1, Duration::ZERO)
        .contains(&Event::Committed { index: id.index }));

    c.run();
    c.run_for(cfg.heartbeat_interval);
    for node in 1..=5 {
        assert_eq!(c.status(node).commit_index, id.index, "node {node}");
        assert_eq!(c.applied[&node].last().map(Entry::log_id), Some(id));
    }
}

/// §5.3: committing an entry "also commits all preceding entries in the leader's log,
/// including entries created by previous leaders" (etcd's
/// TestLeaderCommitPrecedingEntries), and they are applied in log order.
#[test]
fn s5_3_committing_an_entry_commits_the_preceding_ones() {
    let cfg = config();
    let mut c = Cluster::with_states(
        cfg.clone(),
        vec![
            (1, initial(2, None, &[1, 2])),
            (2, initial(2, None, &[])),
            (3, initial(2, None, &[])),
        ],
    );
    c.elect(1);
    let term = c.status(1).term;
    c.node_mut(1).propose("a".into()).expect("leader");
    c.node_mut(1).propose("b".into()).expect("leader");
    c.run();
    c.run_for(cfg.heartbeat_interval);

    let mut want = log_of(&[1, 2]);
    want.push(noop(term, 3));
    want.push(Entry {
        term,
        index: 4,
        payload: Payload::Command("a".into()),
    });
    want.push(Entry {
        term,
        index: 5,
        payload: Payload::Command("b".into()),
    });
    for node in 1..=3 {
        assert_eq!(c.status(node).commit_index, 5, "node {node}");
        assert_eq!(c.applied[&node], want, "node {node}");
    }
}

/// §5.3: a follower sets its commit index to min(leaderCommit, index of the last new
/// entry), and applies committed entries once they are durable.
#[test]
fn s5_3_follower_commits_up_to_the_leader_commit() {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(1, None, &[]));
    step(
        &mut core,
        2,
        append(1, LogId::default(), log_of(&[1, 1, 1]), 2),
    );
    assert_eq!(core.status().commit_index, 2);
    let first = core.ready();
    assert!(
        first.committed.is_empty(),
        "not applied before it is durable"
    );
    assert_eq!(first.entries, log_of(&[1, 1, 1]));
    core.persisted(first.persist_ack().expect("write"));
    assert_eq!(core.ready().committed, log_of(&[1, 1]));

    // A leader vouches for its commit index only as far as the request proves the logs
    // match (it never sends more), and a follower commits that far.
    step(
        &mut core,
        2,
        append(1, LogId::new(1, 3), vec![entry(1, 4)], 4),
    );
    assert_eq!(core.status().commit_index, 4);
    // A heartbeat only vouches for the log up to its prev_log.
    step(&mut core, 2, append(1, LogId::new(1, 1), vec![], 1));
    assert_eq!(
        core.status().commit_index,
        4,
        "the commit index never goes back"
    );
}

/// §5.3: the AppendEntries consistency check: "If the follower does not find an entry in
/// its log with the same index and term, then it refuses the new entries." The refusal
/// carries the fast back-up hint: the conflicting term and its first index, or the log's
/// end when it is too short.
#[test]
fn s5_3_follower_rejects_a_mismatched_prev_log() {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(2, None, &[1, 1, 2]));
    let conflict = |rejected, term, index| {
        vec![env(
            1,
            2,
            Message::AppendEntriesReply(AppendReply {
                term: 3,
                result: AppendResult::Conflict {
                    rejected,
                    hint: ConflictHint { term, index },
                },
                read_round: 0,
            }),
        )]
    };
    let cases = [
        (LogId::new(3, 5), conflict(5, None, 4)),
        (LogId::new(3, 4), conflict(4, None, 4)),
        (LogId::new(3, 3), conflict(3, Some(2), 3)),
        (LogId::new(2, 2), conflict(2, Some(1), 1)),
    ];
    for (prev, want) in cases {
        step(
            &mut core,
            2,
            append(3, prev, vec![entry(3, prev.index + 1)], 0),
        );
        let ready = core.ready();
        assert_eq!(ready.messages, want, "prev {prev}");
        assert!(ready.entries.is_empty() && ready.truncate_from.is_none());
        assert_eq!(core.log_entries(1, 9), log_of(&[1, 1, 2]).as_slice());
    }
    // A matching prev_log passes.
    step(&mut core, 2, append(3, LogId::new(1, 2), vec![], 0));
    assert_eq!(
        core.ready().messages,
        vec![env(
            1,
            2,
            Message::AppendEntriesReply(AppendReply {
                term: 3,
                result: AppendResult::Success { match_index: 2 },
                read_round: 0
            })
        )]
    );
}

/// §5.3: "If an existing entry conflicts with a new one (same index but different
/// terms), delete the existing entry and all that follow it", then append the new ones;
/// entries that already match are kept (a stale or duplicate request truncates nothing).
/// The success reply waits for any new entries to be durable.
#[test]
fn s5_3_follower_replaces_a_conflicting_suffix() {
    // (prev_log, entries sent, resulting log, truncate_from)
    type Case = (LogId, Vec<Entry>, Vec<Term>, Option<LogIndex>);
    let cases: Vec<Case> = vec![
        (LogId::new(2, 3), vec![entry(3, 4)], vec![1, 2, 2, 3], None),
        (LogId::new(1, 1), vec![entry(3, 2)], vec![1, 3], Some(2)),
        (LogId::new(0, 0), vec![entry(1, 1)], vec![1, 2, 2], None),
        (
            LogId::new(1, 1),
            vec![entry(2, 2), entry(2, 3), entry(3, 4)],
            vec![1, 2, 2, 3],
            None,
        ),
        (
            LogId::new(0, 0),
            vec![entry(1, 1), entry(3, 2), entry(3, 3), entry(3, 4)],
            vec![1, 3, 3, 3],
            Some(2),
        ),
    ];
    for (prev, entries, want, truncate) in cases {
        let mut core = new_core(1, &[1, 2, 3], config(), initial(2, None, &[1, 2, 2]));
        let last_new = prev.index + entries.len() as u64;
        step(&mut core, 2, append(3, prev, entries, 0));
        assert_eq!(
            core.log_entries(1, 9),
            log_of(&want).as_slice(),
            "prev {prev}"
        );
        let ready = ready_persisted(&mut core);
        assert_eq!(ready.truncate_from, truncate, "prev {prev}");
        let first_written = truncate.unwrap_or(4);
        assert_eq!(
            ready.entries,
            log_of(&want)[first_written as usize - 1..].to_vec(),
            "prev {prev}"
        );
        let reply = env(
            1,
            2,
            Message::AppendEntriesReply(AppendReply {
                term: 3,
                result: AppendResult::Success {
                    match_index: last_new,
                },
                read_round: 0,
            }),
        );
        // Entries durable already are acknowledged at once; new ones once written.
        if !ready.entries.is_empty() {
            assert_eq!(ready.persisted_messages, vec![reply], "prev {prev}");
        } else {
            assert_eq!(ready.messages, vec![reply], "prev {prev}");
        }
        assert_eq!(core.status().persisted_index, want.len() as u64);
    }
}

/// §5.3, Figure 7: whatever the follower's log — missing entries (a, b), extra
/// uncommitted entries (c, d), or both (e, f) — the leader of term 8 brings it in line
/// with its own log, its term-8 no-op included. The leader is elected with the vote of a
/// third node whose log is empty, which ends up with the same log.
#[test]
fn s5_3_figure_7_followers_converge_to_the_leader_log() {
    const LEADER: [Term; 10] = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [(&str, &[Term]); 6] = [
        ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6]),
        ("b", &[1, 1, 1, 4]),
        ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
        ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
        ("e", &[1, 1, 1, 4, 4, 4, 4]),
        ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
    ];
    let cfg = config();
    let mut want = log_of(&LEADER);
    want.push(noop(8, 11));
    for (name, log) in followers {
        let last_term = *log.last().expect("non-empty");
        let mut c = Cluster::with_states(
            cfg.clone(),
            vec![
                (1, initial(7, None, &LEADER)),
                (2, initial(last_term, None, log)),
                (3, initial(7, None, &[])),
            ],
        );
        c.elect(1);
        assert_eq!(c.status(1).term, 8, "({name})");
        c.run_for(cfg.heartbeat_interval * 2);
        assert_eq!(c.leaders(), vec![1], "({name})");
        assert_eq!(c.log(1), want, "({name}) leader");
        for node in [2, 3] {
            assert_eq!(c.log(node), want, "({name}) node {node}");
            assert_eq!(c.status(node).commit_index, 11, "({name}) node {node}");
            assert_eq!(c.applied[&node], want, "({name}) node {node}");
        }
    }
}

/// §5.3 (the optimization at the end of the section): with the conflicting term and its
/// first index in each rejection, the leader skips a whole term per round trip. A
/// follower with 60 conflicting entries in 3 terms is repaired after a handful of
/// rejections, not 60.
#[test]
fn s5_3_fast_back_up_skips_whole_terms() {
    let cfg = config();
    let mut leader_log = vec![1; 5];
    leader_log.extend([5; 30]);
    let mut follower_log = vec![1; 5];
    follower_log.extend([2; 20]);
    follower_log.extend([3; 20]);
    follower_log.extend([4; 20]);
    let mut c = Cluster::with_states(
        cfg.clone(),
        vec![
            (1, initial(5, None, &leader_log)),
            (2, initial(4, None, &follower_log)),
            (3, initial(5, None, &[])),
        ],
    );
    c.elect(1);
    c.run_for(cfg.heartbeat_interval * 2);
    let log = c.log(1);
    assert_eq!(log.len(), 36);
    assert_eq!(c.log(2), log, "the follower converged");
    let rejections = c
        .delivered
        .iter()
        .filter(|e| e.from == 2 && e.to == 1 && is_conflict(&e.message))
        .count();
    assert!(rejections >= 1, "the follower's log did conflict");
    assert!(
        rejections <= 4,
        "{rejections} rejected AppendEntries for 3 conflicting terms"
    );
    let appends_to_2 = c
        .delivered
        .iter()
        .filter(|e| e.to == 2 && matches!(e.message, Message::AppendEntries(_)))
        .count();
    assert!(
        appends_to_2 < 15,
        "{appends_to_2} AppendEntries to repair 60 entries"
    );
}

/// §5.3: "If followers crash or run slowly, or if network packets are lost, the leader
/// retries AppendEntries RPCs indefinitely ... until all followers eventually store all
/// log entries." Here every AppendEntries carrying the new entry is lost while
/// heartbeats (and their replies) still go through.
#[test]
fn s5_3_leader_retries_lost_append_entries() {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval * 2);
    c.set_filter(|e| !matches!(&e.message, Message::AppendEntries(r) if !r.entries.is_empty()));
    let id = c.node_mut(1).propose("lost".into()).expect("leader");
    c.run();
    assert_eq!(c.node(2).log_term(id.index), None);
    assert!(c.status(1).commit_index < id.index);

    c.heal();
    c.run_for(cfg.election_timeout_min);
    assert_eq!(c.leaders(), vec![1]);
    for node in 1..=3 {
        assert_eq!(
            c.node(node).log_term(id.index),
            Some(id.term),
            "node {node}"
        );
        assert_eq!(c.status(node).commit_index, id.index, "node {node}");
    }
}
