//! Core unit tests: §5.1: terms.

use super::*;

// ===== §5.1: terms ====================================================================

/// §5.1: "If a server's current term is smaller than the other's, it updates its current
/// term to the larger value. If a candidate or leader discovers that its term is out of
/// date, it immediately reverts to follower state." Checked for every RPC and reply a
/// node can receive (a refused pre-vote reply carries the voter's real term), from every
/// role. (CheckQuorum is off so that the leader's lease does not refuse the RequestVote.)
#[test]
fn s5_1_any_message_with_a_larger_term_makes_a_follower_of_that_term() {
    let base = Config {
        check_quorum: false,
        ..config()
    };
    type MakeMessage = fn(Term) -> Message;
    let kinds: [(&str, MakeMessage); 5] = [
        ("RequestVote", |t| request_vote(t, LogId::default())),
        ("RequestVoteReply", |t| vote_reply(t, false)),
        ("AppendEntries", |t| append(t, LogId::default(), vec![], 0)),
        ("AppendEntriesReply", |t| {
            Message::AppendEntriesReply(AppendReply {
                term: t,
                result: AppendResult::Success { match_index: 0 },
                read_round: 0,
            })
        }),
        ("refused PreVoteReply", |t| {
            Message::PreVoteReply(VoteReply {
                term: t,
                granted: false,
            })
        }),
    ];
    for role in [
        Role::Follower,
        Role::PreCandidate,
        Role::Candidate,
        Role::Leader,
    ] {
        for (name, make) in kinds {
            let mut core = core_in_role(role, &base);
            let term = core.status().term + 2;
            step(&mut core, 2, make(term));
            let status = core.status();
            assert_eq!(status.term, term, "{role} given {name}");
            assert_eq!(status.role, Role::Follower, "{role} given {name}");
            if name == "AppendEntries" {
                assert_eq!(status.leader, Some(2), "{role} given {name}");
            } else {
                assert_eq!(status.leader, None, "{role} given {name}");
            }
            let ready = core.ready();
            assert_eq!(
                ready.hard_state.map(|h| h.current_term),
                Some(term),
                "{role} given {name}: the new term must be persisted"
            );
            assert!(ready.events.contains(&Event::TermChanged { term }));
        }
    }
}

/// §5.1 with Pre-Vote: a PreVote request proposes a term nobody holds yet, and a granted
/// pre-vote reply only echoes it; neither raises the receiver's term.
#[test]
fn s5_1_pre_vote_messages_do_not_raise_the_term() {
    let mut voter = new_core(1, &[1, 2, 3], config(), initial(2, None, &[1, 2]));
    step(
        &mut voter,
        2,
        Message::PreVote(VoteRequest {
            term: 5,
            last_log: LogId::new(2, 2),
            leader_transfer: false,
        }),
    );
    let status = voter.status();
    assert_eq!((status.term, status.voted_for), (2, None));
    let ready = voter.ready();
    assert_eq!(ready.hard_state, None, "nothing to persist for a pre-vote");
    assert_eq!(
        ready.messages,
        vec![env(
            1,
            2,
            Message::PreVoteReply(VoteReply {
                term: 5,
                granted: true
            })
        )]
    );
    assert!(ready.persisted_messages.is_empty());

    // A pre-candidate of a 5-node cluster gets one granted reply (not yet a quorum).
    let mut pre = new_core(1, &[1, 2, 3, 4, 5], config(), initial(2, None, &[1, 2]));
    fire(&mut pre);
    assert_eq!(pre.status().role, Role::PreCandidate);
    assert_eq!(pre.status().term, 2, "Pre-Vote does not raise the term");
    step(
        &mut pre,
        2,
        Message::PreVoteReply(VoteReply {
            term: 3,
            granted: true,
        }),
    );
    assert_eq!(pre.status().term, 2);
    assert_eq!(pre.status().role, Role::PreCandidate);
}

/// §5.1: "If a server receives a request with a stale term number, it rejects the
/// request." The rejection carries the current term so that the sender updates.
#[test]
fn s5_1_requests_with_a_stale_term_are_rejected() {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(3, None, &[1, 3]));
    let deadline = core.next_deadline();

    step(
        &mut core,
        2,
        append(2, LogId::new(1, 1), vec![entry(2, 2)], 1),
    );
    let status = core.status();
    assert_eq!(status.term, 3);
    assert_eq!(status.leader, None, "a stale leader is not recognised");
    assert_eq!(status.last_log, LogId::new(3, 2), "log untouched");
    assert_eq!(status.commit_index, 0);
    assert_eq!(core.next_deadline(), deadline, "election timer not reset");
    let ready = core.ready();
    assert_eq!(ready.hard_state, None);
    assert!(ready.entries.is_empty() && ready.truncate_from.is_none());
    assert_eq!(ready.messages.len(), 1);
    let reply = &ready.messages[0];
    assert_eq!((reply.to, reply.message.term()), (2, 3));
    assert!(is_conflict(&reply.message), "{reply:?}");

    step(&mut core, 3, request_vote(2, LogId::new(2, 9)));
    assert_eq!(core.status().voted_for, None);
    assert_eq!(core.status().term, 3);
    let ready = core.ready();
    assert_eq!(ready.messages, vec![env(1, 3, vote_reply(3, false))]);
    assert!(ready.persisted_messages.is_empty());

    // And a stale leader learns the newer term from that rejection (§5.1).
    let mut leader = core_in_role(Role::Leader, &config_no_pre_vote());
    let term = leader.status().term;
    step(
        &mut leader,
        2,
        Message::AppendEntriesReply(AppendReply {
            term: term + 1,
            result: AppendResult::Conflict {
                rejected: 1,
                hint: ConflictHint {
                    term: None,
                    index: 3,
                },
            },
            read_round: 0,
        }),
    );
    assert_eq!(leader.status().role, Role::Follower);
    assert_eq!(leader.status().term, term + 1);
}

/// A node's term is never below a term in its log. A node that restarts with a log (or a
/// snapshot) of a later term than its saved term (the snapshot was durable, the write of
/// the leader's term was lost in the crash) takes that term back up, with no vote, and
/// saves it; its next pre-vote proposes the term after it.
#[test]
fn s5_1_a_restarted_node_takes_its_term_up_to_its_log() {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(0, None, &[5, 5]));
    assert_eq!(core.status().term, 5);
    assert_eq!(core.status().voted_for, None);
    let ready = core.ready();
    assert_eq!(
        ready.hard_state,
        Some(HardState {
            current_term: 5,
            voted_for: None
        }),
        "the raised term is saved"
    );
    fire(&mut core);
    let ready = core.ready();
    let pre_vote = Message::PreVote(VoteRequest {
        term: 6,
        last_log: LogId::new(5, 2),
        leader_transfer: false,
    });
    assert_eq!(
        ready.messages,
        vec![env(1, 2, pre_vote.clone()), env(1, 3, pre_vote)]
    );
}
