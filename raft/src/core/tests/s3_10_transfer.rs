//! Core unit tests: leadership transfer (Ongaro's thesis §3.10). The leader stops
//! taking proposals, brings the target up to date, sends it TimeoutNow; the target
//! campaigns at once, without Pre-Vote, and voters within the CheckQuorum lease still
//! grant its flagged RequestVote. A transfer that does not complete within an election
//! timeout is abandoned.

use super::*;

fn timeout_now(term: Term, last_log: LogId) -> Message {
    Message::TimeoutNow(TimeoutNow { term, last_log })
}

fn is_timeout_now(e: &Envelope) -> bool {
    matches!(e.message, Message::TimeoutNow(_))
}

/// A 3-node cluster led by node 1, every follower in its lease.
fn led_by_1() -> Cluster {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval * 2);
    c
}

/// §3.10: transfer to a named, up-to-date follower. It gets TimeoutNow at once, skips
/// Pre-Vote, and wins the next term although every voter is within the leader lease.
#[test]
fn transfer_to_named_follower_wins_at_once() {
    let mut c = led_by_1();
    let term = c.status(1).term;
    let since = c.now;
    assert_eq!(c.node_mut(1).transfer_leadership(Some(2)), Ok(2));
    c.run();
    let s2 = c.status(2);
    assert_eq!((s2.role, s2.term), (Role::Leader, term + 1));
    assert_eq!(c.status(1).role, Role::Follower);
    assert_eq!(c.status(1).leader, Some(2));
    assert_eq!(c.status(3).leader, Some(2));
    assert_eq!(
        c.now, since,
        "no time passed: no election timeout was waited for"
    );
    let started = c.events_of(2, since);
    assert!(started.contains(&Event::ElectionStarted {
        term: term + 1,
        pre_vote: false
    }));
    assert!(
        !started
            .iter()
            .any(|e| matches!(e, Event::ElectionStarted { pre_vote: true, .. })),
        "the target skipped Pre-Vote"
    );
    assert!(c
        .events_of(1, since)
        .contains(&Event::TransferStarted { target: 2, term }));
    let flagged = c.delivered.iter().any(|e| {
        e.from == 2
            && matches!(
                &e.message,
                Message::RequestVote(VoteRequest {
                    leader_transfer: true,
                    ..
                })
            )
    });
    assert!(
        flagged,
        "the target's RequestVote carries the transfer flag"
    );
}

/// §3.10: while transferring, the leader refuses proposals; it sends TimeoutNow only
/// once the target holds its whole log, so the target can win.
#[test]
fn lagging_target_is_caught_up_before_timeout_now() {
    let mut c = led_by_1();
    let term = c.status(1).term;
    c.set_filter(|e| e.to != 2 || !matches!(e.message, Message::AppendEntries(_)));
    for k in 0..3 {
        c.node_mut(1).propose(format!("x{k}").into()).unwrap();
    }
    c.run();
    let last = c.status(1).last_log;
    assert!(c.status(2).last_log.index < last.index, "node 2 lags");
    c.heal();
    assert_eq!(c.node_mut(1).transfer_leadership(Some(2)), Ok(2));
    assert_eq!(
        c.node_mut(1).propose("refused".into()),
        Err(ProposeError::TransferInProgress { target: 2 })
    );
    // The lost entries are sent again once the leader sees the pipeline stalled.
    c.run_for(config().heartbeat_interval * 3);
    let caught_up = c
        .sent
        .iter()
        .position(|e| {
            e.from == 2
                && matches!(
                    e.message,
                    Message::AppendEntriesReply(AppendReply {
                        result: AppendResult::Success { match_index },
                        ..
                    }) if match_index >= last.index
                )
        })
        .expect("node 2 caught up");
    let at = c
        .sent
        .iter()
        .position(is_timeout_now)
        .expect("TimeoutNow sent");
    assert!(caught_up < at, "no TimeoutNow before the target caught up");
    let Message::TimeoutNow(sent) = c.sent[at].message.clone() else {
        unreachable!()
    };
    assert_eq!(sent.last_log, last);
    assert_eq!(c.status(2).role, Role::Leader);
    assert_eq!(c.status(2).term, term + 1);
    assert!(
        c.status(2).last_log.index > last.index,
        "it kept every entry"
    );
    assert_eq!(c.node(2).log_term(last.index), Some(last.term));
}

/// §3.10 "to the best": without a named target the leader picks the most up-to-date
/// follower.
#[test]
fn unnamed_target_is_the_most_up_to_date_follower() {
    let mut c = led_by_1();
    c.set_filter(|e| e.to != 3 || !matches!(e.message, Message::AppendEntries(_)));
    c.node_mut(1).propose("only on 1 and 2".into()).unwrap();
    c.run();
    c.heal();
    assert_eq!(c.node_mut(1).transfer_leadership(None), Ok(2));
    c.run();
    assert_eq!(c.status(2).role, Role::Leader);
}

/// §3.10: a transfer whose target never wins is abandoned after an election timeout;
/// the leader keeps its term and takes proposals again.
#[test]
fn transfer_to_unreachable_node_is_abandoned() {
    let cfg = config();
    let mut c = led_by_1();
    let term = c.status(1).term;
    c.isolate(2);
    let since = c.now;
    assert_eq!(c.node_mut(1).transfer_leadership(Some(2)), Ok(2));
    assert!(c.node(1).next_deadline() <= since + cfg.election_timeout_max);
    assert!(c.node_mut(1).propose("refused".into()).is_err());
    c.run_for(cfg.election_timeout_max + NS);
    let events = c.events_of(1, since);
    assert!(events.contains(&Event::TransferAbandoned { target: 2, term }));
    assert_eq!(c.node(1).transfer_target(), None);
    let s1 = c.status(1);
    assert_eq!((s1.role, s1.term), (Role::Leader, term));
    let id = c.node_mut(1).propose("accepted again".into()).unwrap();
    c.run();
    assert!(c.status(1).commit_index >= id.index);
}

/// The typed refusals: not the leader, an unknown target, a second target while one
/// transfer is in progress; naming the leader itself changes nothing.
#[test]
fn transfer_refusals() {
    let mut c = led_by_1();
    assert_eq!(
        c.node_mut(2).transfer_leadership(Some(3)),
        Err(TransferError::NotLeader { leader: Some(1) })
    );
    assert_eq!(
        c.node_mut(1).transfer_leadership(Some(9)),
        Err(TransferError::UnknownTarget { target: 9 })
    );
    assert_eq!(c.node_mut(1).transfer_leadership(Some(1)), Ok(1));
    assert_eq!(c.node(1).transfer_target(), None);
    c.isolate(2);
    assert_eq!(c.node_mut(1).transfer_leadership(Some(2)), Ok(2));
    assert_eq!(c.node_mut(1).transfer_leadership(None), Ok(2));
    assert_eq!(
        c.node_mut(1).transfer_leadership(Some(3)),
        Err(TransferError::InProgress { target: 2 })
    );
    let mut single = new_core(1, &[1], config(), InitialState::default());
    fire(&mut single);
    let _ = ready_persisted(&mut single);
    assert_eq!(
        single.transfer_leadership(None),
        Err(TransferError::NoCandidate)
    );
}

/// §3.10: the flag lets a voter within the leader lease grant the vote; without it the
/// same request is refused (CheckQuorum).
#[test]
fn transfer_flag_overrides_the_leader_lease() {
    let mut c = led_by_1();
    let term = c.status(1).term;
    let last = c.status(3).last_log;
    let voter = c.node_mut(3);
    step(voter, 2, request_vote(term + 1, last));
    let r = ready_persisted(voter);
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::VoteRefused {
            reason: VoteRefusal::LeaderLease { .. },
            ..
        }
    )));
    step(
        voter,
        2,
        Message::RequestVote(VoteRequest {
            term: term + 1,
            last_log: last,
            leader_transfer: true,
        }),
    );
    let r = ready_persisted(voter);
    assert!(r.events.contains(&Event::VoteGranted {
        candidate: 2,
        term: term + 1,
        pre_vote: false
    }));
}

/// A TimeoutNow whose last entry this node does not hold is ignored (the node could
/// not win); one from the leader with a matching log starts an election at once.
#[test]
fn timeout_now_needs_the_leaders_log() {
    let mut core = new_core(2, &[1, 2, 3], config(), initial(2, None, &[1, 2]));
    step(&mut core, 1, append(2, LogId::new(2, 2), vec![], 2));
    let _ = ready_persisted(&mut core);
    step(&mut core, 1, timeout_now(2, LogId::new(2, 3)));
    assert_eq!(core.status().role, Role::Follower, "log behind: ignored");
    step(&mut core, 1, timeout_now(2, LogId::new(2, 2)));
    assert_eq!(core.status().role, Role::Candidate);
    assert_eq!(core.status().term, 3);
}

/// Validation: TimeoutNow comes only from the leader of the current term.
#[test]
fn timeout_now_from_a_non_leader_is_refused() {
    let mut core = new_core(2, &[1, 2, 3], config(), initial(2, None, &[1, 2]));
    step(&mut core, 1, append(2, LogId::new(2, 2), vec![], 2));
    let _ = ready_persisted(&mut core);
    let before = core.status();
    let got = core.step(core.now, env(3, 2, timeout_now(2, LogId::new(2, 2))));
    assert_eq!(
        got,
        Err(StepError::Malformed {
            from: 3,
            kind: "TimeoutNow",
            reason: Malformed::TimeoutNowNotFromLeader { term: 2 },
        })
    );
    assert_eq!(core.status(), before);
    assert!(!core.has_ready());

    let mut leader = core_in_role(Role::Leader, &config());
    let term = leader.status().term;
    let got = leader.step(leader.now, env(2, 1, timeout_now(term, LogId::new(1, 1))));
    assert_eq!(
        got,
        Err(StepError::Malformed {
            from: 2,
            kind: "TimeoutNow",
            reason: Malformed::SecondLeader { term },
        })
    );
}
