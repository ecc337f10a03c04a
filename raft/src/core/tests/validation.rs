//! Hostile and malformed input (beyond the paper, which assumes honest peers): every
//! message no honest peer could send is refused with a typed reason and changes nothing,
//! not even the term. Plus the leader's backpressure and the bounded apply window.

use super::*;

/// Feeds `message` and expects it refused for `reason`, with no change of state.
fn refused(core: &mut RaftCore, from: NodeId, message: Message, reason: Malformed) {
    let before = (
        core.status(),
        core.log_entries(1, core.status().last_log.index).to_vec(),
    );
    let now = core.now;
    let kind = message.kind();
    let got = core.step(now, env(from, core.id(), message));
    assert_eq!(got, Err(StepError::Malformed { from, kind, reason }));
    let after = (
        core.status(),
        core.log_entries(1, core.status().last_log.index).to_vec(),
    );
    assert_eq!(before, after, "a refused message changed state");
    assert!(!core.has_ready(), "a refused message produced work");
}

/// A follower at term 2 whose first two entries are committed.
fn follower() -> RaftCore {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(2, None, &[1, 2, 2]));
    step(&mut core, 2, append(2, LogId::new(2, 3), vec![], 2));
    let _ = ready_persisted(&mut core);
    while core.has_ready() {
        let r = ready_persisted(&mut core);
        if let Some(e) = r.committed.last() {
            core.applied(e.index);
        }
    }
    assert_eq!(core.status().commit_index, 2);
    core
}

#[test]
fn malformed_append_entries_are_refused_without_a_trace() {
    let mut core = follower();
    refused(
        &mut core,
        2,
        append(3, LogId::new(2, 3), vec![entry(3, 5)], 3),
        Malformed::NotContiguous {
            expected: 4,
            found: 5,
        },
    );
    refused(
        &mut core,
        2,
        append(3, LogId::new(2, 3), vec![entry(3, 4), entry(2, 5)], 3),
        Malformed::TermDecreases {
            index: 5,
            term: 2,
            before: 3,
        },
    );
    refused(
        &mut core,
        2,
        append(3, LogId::new(2, 3), vec![entry(4, 4)], 3),
        Malformed::EntryTermAboveMessage {
            index: 4,
            entry_term: 4,
            term: 3,
        },
    );
    refused(
        &mut core,
        2,
        append(3, LogId::new(4, 3), vec![], 3),
        Malformed::PrevTermAboveMessage {
            prev_term: 4,
            term: 3,
        },
    );
    refused(
        &mut core,
        2,
        append(3, LogId::new(2, 3), vec![entry(3, 4)], 9),
        Malformed::CommitBeyondMessage {
            leader_commit: 9,
            last: 4,
        },
    );
    // Entry 2 (term 2) is committed here: a "leader" that says otherwise is lying.
    refused(
        &mut core,
        3,
        append(5, LogId::new(1, 1), vec![entry(5, 2)], 1),
        Malformed::ContradictsCommitted { index: 2 },
    );
    refused(
        &mut core,
        3,
        append(5, LogId::new(1, 2), vec![], 0),
        Malformed::ContradictsCommitted { index: 2 },
    );
    // The same messages from a stale term cannot change anything, but are still checked.
    refused(
        &mut core,
        2,
        append(1, LogId::new(1, 1), vec![entry(1, 3)], 9),
        Malformed::NotContiguous {
            expected: 2,
            found: 3,
        },
    );
}

#[test]
fn malformed_votes_and_replies_are_refused() {
    let mut core = follower();
    refused(
        &mut core,
        3,
        request_vote(3, LogId::new(7, 9)),
        Malformed::CandidateLogAboveTerm {
            last_term: 7,
            term: 3,
        },
    );
    let mut leader = core_in_role(Role::Leader, &config_no_pre_vote());
    let term = leader.status().term;
    let last = leader.status().last_log.index;
    refused(
        &mut leader,
        2,
        Message::AppendEntriesReply(AppendReply {
            term,
            result: AppendResult::Success {
                match_index: last + 5,
            },
            read_round: 0,
        }),
        Malformed::NeverSent {
            index: last + 5,
            last,
        },
    );
    refused(
        &mut leader,
        3,
        append(term, LogId::new(1, 1), vec![], 1),
        Malformed::SecondLeader { term },
    );
    // A non-member is refused too.
    let now = leader.now;
    assert_eq!(
        leader.step(now, env(9, 1, vote_reply(term, true))),
        Err(StepError::UnknownPeer { from: 9 })
    );
}

#[test]
fn leader_refuses_proposals_beyond_its_uncommitted_bounds() {
    let base = Config {
        max_uncommitted_entries: 5,
        max_uncommitted_bytes: 14,
        ..config_no_pre_vote()
    };
    let mut leader = core_in_role(Role::Leader, &base);
    // Its old entry (4 bytes) and its no-op wait for a follower's acknowledgement.
    assert_eq!(leader.uncommitted(), (2, 4));
    leader.propose(Bytes::from_static(b"12345")).unwrap();
    leader.propose(Bytes::from_static(b"12345")).unwrap();
    assert_eq!(
        leader.propose(Bytes::from_static(b"1")),
        Err(ProposeError::Busy {
            entries: 4,
            bytes: 14
        }),
        "the byte bound"
    );
    leader.propose(Bytes::new()).unwrap();
    assert_eq!(
        leader.propose(Bytes::new()),
        Err(ProposeError::Busy {
            entries: 5,
            bytes: 14
        }),
        "the entry bound"
    );
    // Commits make room again.
    let ready = ready_persisted(&mut leader);
    let term = leader.status().term;
    let last = leader.status().last_log.index;
    drop(ready);
    step(
        &mut leader,
        2,
        Message::AppendEntriesReply(AppendReply {
            term,
            result: AppendResult::Success { match_index: last },
            read_round: 0,
        }),
    );
    assert_eq!(leader.uncommitted(), (0, 0));
    leader
        .propose(Bytes::from_static(b"0123456789abc"))
        .unwrap();
    assert_eq!(
        leader.uncommitted(),
        (1, 13),
        "one command larger than the byte bound is taken when nothing else waits"
    );
}

#[test]
fn committed_entries_are_handed_out_in_bounded_batches() {
    let base = Config {
        max_apply_batch: 2,
        ..config()
    };
    let mut core = new_core(1, &[1, 2, 3], base, initial(1, None, &[]));
    step(
        &mut core,
        2,
        append(1, LogId::default(), log_of(&[1; 5]), 5),
    );
    let first = ready_persisted(&mut core);
    assert!(first.committed.is_empty());
    let mut batches = Vec::new();
    while core.has_ready() {
        let ready = core.ready();
        if let Some(last) = ready.committed.last() {
            batches.push(ready.committed.len());
            core.applied(last.index);
        }
    }
    assert_eq!(batches, vec![2, 2, 1]);
    // Without reporting applies, no more than one batch is handed out.
    let mut core = new_core(
        2,
        &[1, 2, 3],
        Config {
            max_apply_batch: 2,
            ..config()
        },
        initial(1, None, &[]),
    );
    step(
        &mut core,
        1,
        append(1, LogId::default(), log_of(&[1; 5]), 5),
    );
    let _ = ready_persisted(&mut core);
    let ready = core.ready();
    assert_eq!(ready.committed.len(), 2);
    assert!(!core.has_ready(), "waits for the batch to be applied");
}

fn install(term: Term, last: LogId, offset: u64, data: &'static [u8], done: bool) -> Message {
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

#[test]
fn malformed_install_snapshots_are_refused_without_a_trace() {
    let mut core = follower();
    refused(
        &mut core,
        2,
        install(3, LogId::new(4, 9), 0, b"ab", true),
        Malformed::ImpossibleSnapshot {
            index: 9,
            last_term: 4,
            term: 3,
        },
    );
    refused(
        &mut core,
        2,
        install(3, LogId::new(0, 0), 0, b"", true),
        Malformed::ImpossibleSnapshot {
            index: 0,
            last_term: 0,
            term: 3,
        },
    );
    refused(
        &mut core,
        2,
        install(3, LogId::new(2, 9), 10, b"", false),
        Malformed::BadSnapshotChunk { offset: 10, len: 0 },
    );
    refused(
        &mut core,
        2,
        install(3, LogId::new(2, 9), u64::MAX, b"ab", false),
        Malformed::BadSnapshotChunk {
            offset: u64::MAX,
            len: 2,
        },
    );
    // Entry 2 is committed in term 2: a snapshot claiming term 1 there contradicts it.
    refused(
        &mut core,
        2,
        install(3, LogId::new(1, 2), 0, b"ab", true),
        Malformed::ContradictsCommitted { index: 2 },
    );
}

#[test]
fn install_reply_about_an_index_never_sent_is_refused() {
    let mut core = core_in_role(Role::Leader, &config());
    let term = core.status().term;
    let last = core.status().last_log.index;
    refused(
        &mut core,
        2,
        Message::InstallSnapshotReply(InstallSnapshotReply {
            term,
            last_included: LogId::new(term, last + 5),
            result: SnapshotResult::Installed,
        }),
        Malformed::NeverSent {
            index: last + 5,
            last,
        },
    );
}

/// A configuration entry without voters is refused; a non-member may act as a leader
/// but not ask for votes.
#[test]
fn configurations_without_voters_and_non_member_votes_are_refused() {
    let mut core = follower();
    let empty = ClusterConfig::Joint {
        old: Membership::new([1, 2, 3], []),
        new: Membership::new([], [4]),
    };
    let e = Entry {
        term: 2,
        index: 4,
        payload: Payload::Membership(Box::new(empty.clone())),
    };
    refused(
        &mut core,
        2,
        append(2, LogId::new(2, 3), vec![e], 2),
        Malformed::NoVoters { index: 4 },
    );
    let now = core.now;
    assert_eq!(
        core.step(now, env(7, 1, vote_reply(2, true))),
        Err(StepError::UnknownPeer { from: 7 })
    );
    assert_eq!(
        core.status().term,
        2,
        "a non-member's reply changes nothing"
    );
    // A leader this node does not know yet (its configuration is ahead) is followed.
    step(&mut core, 7, append(3, LogId::new(2, 3), vec![], 2));
    assert_eq!(core.status().leader, Some(7));
}
