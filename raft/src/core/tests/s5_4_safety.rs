//! Core unit tests: §5.4: safety (the election restriction, committing entries from previous terms).

use super::*;

// ===== §5.4.1: election restriction ===================================================

/// §5.4.1: RequestVote (and PreVote) carry the candidate's last log term and index.
#[test]
fn s5_4_1_vote_requests_carry_the_last_log_id() {
    for (cfg, pre_vote) in [(config_no_pre_vote(), false), (config(), true)] {
        let mut core = new_core(1, &[1, 2, 3], cfg, initial(3, None, &[1, 1, 3]));
        fire(&mut core);
        let ready = core.ready();
        let request = VoteRequest {
            term: 4,
            last_log: LogId::new(3, 3),
            leader_transfer: false,
        };
        let (sent, message) = if pre_vote {
            (&ready.messages, Message::PreVote(request))
        } else {
            (&ready.messages, Message::RequestVote(request))
        };
        assert_eq!(
            *sent,
            vec![env(1, 2, message.clone()), env(1, 3, message)],
            "pre_vote {pre_vote}"
        );
    }
}

/// §5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
/// candidate": a later last term wins; with equal last terms the longer log wins.
#[test]
fn s5_4_1_votes_only_for_an_up_to_date_candidate() {
    // The voter's log is [1, 1, 2]: its last entry is 3@2.
    let cases = [
        (LogId::new(1, 5), false, "lower last term, longer log"),
        (LogId::new(1, 3), false, "lower last term, same length"),
        (LogId::new(2, 2), false, "same last term, shorter log"),
        (LogId::new(2, 3), true, "same last term, same length"),
        (LogId::new(2, 4), true, "same last term, longer log"),
        (LogId::new(3, 1), true, "higher last term, shorter log"),
        (LogId::new(3, 3), true, "higher last term"),
    ];
    for (last_log, granted, why) in cases {
        let mut voter = new_core(
            1,
            &[1, 2, 3],
            config_no_pre_vote(),
            initial(2, None, &[1, 1, 2]),
        );
        step(&mut voter, 2, request_vote(3, last_log));
        assert_eq!(voter.status().term, 3, "{why}");
        assert_eq!(voter.status().voted_for, granted.then_some(2), "{why}");
        let ready = voter.ready();
        let reply = vec![env(1, 2, vote_reply(3, granted))];
        if granted {
            assert_eq!(ready.persisted_messages, reply, "{why}");
        } else {
            assert_eq!(ready.messages, reply, "{why}");
            assert!(
                ready.events.contains(&Event::VoteRefused {
                    candidate: 2,
                    term: 3,
                    pre_vote: false,
                    reason: VoteRefusal::LogNotUpToDate {
                        ours: LogId::new(2, 3),
                        theirs: last_log
                    },
                }),
                "{why}"
            );
        }
    }
}

// ===== §5.4.2: committing entries from previous terms =================================

/// §5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only
/// log entries from the leader's current term are committed by counting replicas; once
/// an entry from the current term has been committed in this way, then all prior entries
/// are committed indirectly." The term-4 leader's entry 2 (term 2) is on a majority
/// ({1, 2}) but stays uncommitted while the leader's own no-op is not yet durable on a
/// majority; once it is, both commit.
#[test]
fn s5_4_2_old_term_entries_commit_only_with_a_current_term_entry() {
    let mut c = Cluster::with_states(
        config_no_pre_vote(),
        vec![
            (1, initial(3, None, &[1, 2])),
            (2, initial(3, None, &[1, 2])),
            (3, initial(3, None, &[1])),
        ],
    );
    c.isolate(3);
    c.fire(1);
    // The leader's write of its no-op stays in flight.
    c.hold_writes(1);
    c.run();
    let status = c.status(1);
    assert_eq!((status.role, status.term), (Role::Leader, 4));
    assert_eq!(status.last_log, LogId::new(4, 3));
    assert_eq!(status.persisted_index, 2);
    // Node 2 stores and acknowledges everything.
    assert_eq!(terms_of(&c.log(2)), vec![1, 2, 4]);
    assert_eq!(c.node(1).progress[&2].matched, 3);
    assert_eq!(
        status.commit_index, 0,
        "entry 2 of term 2 is on a majority but must not commit in term 4"
    );
    assert!(c.applied_indexes(1).is_empty());

    c.release_writes(1);
    assert_eq!(c.status(1).commit_index, 3);
    assert_eq!(c.applied_indexes(1), vec![1, 2, 3]);
}
