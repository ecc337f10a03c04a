//! Core unit tests: Pre-Vote and CheckQuorum.

use super::*;

// ===== Pre-Vote (thesis §9.6) =========================================================

/// Pre-Vote: a node cut off from the cluster keeps timing out, but only asks for
/// pre-votes, so its term does not grow; when it comes back, its pre-votes are refused
/// (the followers heard from the leader recently) and the leader keeps its term and role.
#[test]
fn pre_vote_rejoining_node_does_not_disturb_a_stable_leader() {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval * 2);
    let term = c.status(1).term;
    let since = c.now;

    c.isolate(3);
    let id = c
        .node_mut(1)
        .propose("while 3 is away".into())
        .expect("leader");
    c.run_for(cfg.election_timeout_max * 5);
    let pre_votes = c
        .events_of(3, since)
        .into_iter()
        .filter(|e| matches!(e, Event::ElectionStarted { pre_vote: true, .. }))
        .count();
    assert!(pre_votes >= 3, "node 3 timed out only {pre_votes} times");
    assert_eq!(c.status(3).term, term, "Pre-Vote keeps the term");
    assert_eq!(c.status(3).role, Role::PreCandidate);

    // Node 3 is back just as its timer fires once more.
    let deadline = c.node(3).next_deadline();
    c.run_for(deadline - c.now - NS);
    c.heal();
    let rejoined = c.now;
    c.fire(3);
    c.run();
    for voter in [1, 2] {
        assert!(
            c.events_of(voter, rejoined).iter().any(|e| matches!(
                e,
                Event::VoteRefused {
                    candidate: 3,
                    pre_vote: true,
                    ..
                }
            )),
            "node {voter} refused the pre-vote"
        );
    }
    c.run_for(cfg.election_timeout_max * 3);
    let leader = c.status(1);
    assert_eq!((leader.role, leader.term), (Role::Leader, term));
    let status = c.status(3);
    assert_eq!((status.role, status.term), (Role::Follower, term));
    assert_eq!(status.leader, Some(1));
    assert_eq!(
        c.node(3).log_term(id.index),
        Some(id.term),
        "node 3 caught up"
    );
    assert!(
        !c.events
            .iter()
            .any(|(at, _, e)| *at >= since && matches!(e, Event::TermChanged { .. })),
        "no node changed term"
    );
}

// ===== CheckQuorum (thesis §6.2) ======================================================

/// CheckQuorum: a leader that has not heard from a majority for an election timeout
/// steps down (reporting `Event::QuorumLost`) — within about an election timeout of
/// being cut off. Without CheckQuorum it would stay leader.
#[test]
fn check_quorum_leader_cut_off_steps_down() {
    for check_quorum in [true, false] {
        let cfg = Config {
            check_quorum,
            ..config()
        };
        let mut c = Cluster::new(3, cfg.clone());
        c.elect(1);
        c.run_for(cfg.heartbeat_interval * 3);
        let term = c.status(1).term;
        let cut = c.now;
        c.isolate(1);
        c.run_for(cfg.election_timeout_max * 2);

        let lost = c
            .events
            .iter()
            .find(|(_, n, e)| *n == 1 && *e == Event::QuorumLost { term })
            .map(|(at, _, _)| *at);
        if !check_quorum {
            assert_eq!(lost, None);
            assert_eq!(c.status(1).role, Role::Leader);
            continue;
        }
        let at = lost.expect("the leader reported QuorumLost");
        let earliest = cut + cfg.election_timeout_min - cfg.heartbeat_interval;
        let latest = cut + cfg.election_timeout_min + cfg.heartbeat_interval;
        assert!(
            at >= earliest && at <= latest,
            "stepped down {:?} after being cut off",
            at - cut
        );
        assert!(c.events_of(1, at).contains(&Event::RoleChanged {
            role: Role::Follower,
            term
        }));
        assert_ne!(c.status(1).role, Role::Leader);
        assert_eq!(
            c.status(1).term,
            term,
            "isolated, it cannot learn a newer term"
        );
        // The majority side elected a new leader meanwhile.
        let others = c.leaders();
        assert_eq!(others.len(), 1);
        assert!(c.status(others[0]).term > term);
    }
}

/// CheckQuorum's lease: a follower that heard from its leader within the lease (the
/// minimum election timeout less half a heartbeat) refuses a RequestVote of a higher
/// term and does not adopt that term; once the lease has run out, the same request is
/// granted.
#[test]
fn check_quorum_follower_in_lease_refuses_a_higher_term_vote() {
    let cfg = config();
    let lease = cfg.election_timeout_min - cfg.heartbeat_interval / 2;
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.fire(1); // a heartbeat
    c.run();
    let heard = c.now;
    let before = c.status(2);
    assert_eq!(before.leader, Some(1));
    let term = before.term;
    let vote = request_vote(term + 1, LogId::new(term + 1, 100));

    let follower = c.node_mut(2);
    follower
        .step(heard + lease - NS, env(3, 2, vote.clone()))
        .expect("step");
    let status = follower.status();
    assert_eq!(status.term, term, "the higher term is not adopted");
    assert_eq!(status.voted_for, before.voted_for);
    assert_eq!(status.leader, Some(1));
    let ready = follower.ready();
    assert_eq!(ready.hard_state, None);
    assert_eq!(ready.messages, vec![env(2, 3, vote_reply(term, false))]);
    assert!(ready.events.contains(&Event::VoteRefused {
        candidate: 3,
        term: term + 1,
        pre_vote: false,
        reason: VoteRefusal::LeaderLease { leader: 1 },
    }));

    follower.step(heard + lease, env(3, 2, vote)).expect("step");
    let status = follower.status();
    assert_eq!((status.term, status.voted_for), (term + 1, Some(3)));
}
