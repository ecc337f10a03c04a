//! Core unit tests: §5.2: leader election.

use super::*;

// ===== §5.2: leader election ==========================================================

/// §5.2: "When servers start up, they begin as followers", with the term and vote they
/// recovered, no known leader, and an election timer armed.
#[test]
fn s5_2_nodes_start_as_followers() {
    let cfg = config();
    let c = Cluster::new(3, cfg.clone());
    for id in 1..=3 {
        let status = c.status(id);
        assert_eq!(status.role, Role::Follower);
        assert_eq!(
            (status.term, status.voted_for, status.leader),
            (0, None, None)
        );
        let deadline = c.node(id).next_deadline();
        assert!(deadline >= cfg.election_timeout_min && deadline < cfg.election_timeout_max);
    }
    let restarted = new_core(2, &[1, 2, 3], cfg, initial(5, Some(3), &[1, 4]));
    let status = restarted.status();
    assert_eq!(status.role, Role::Follower);
    assert_eq!((status.term, status.voted_for), (5, Some(3)));
    assert_eq!(status.last_log, LogId::new(4, 2));
    assert_eq!(
        status.commit_index, 0,
        "nothing is known committed on restart"
    );
}

/// §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries)
/// to all followers", every heartbeat interval, and nothing in between.
#[test]
fn s5_2_leader_sends_heartbeats_to_every_peer_each_interval() {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval * 2);
    let term = c.status(1).term;
    for _ in 0..3 {
        let deadline = c.node(1).next_deadline();
        c.node_mut(1).tick(deadline - NS);
        assert!(!c.node(1).has_ready(), "no heartbeat before the interval");
        let before = c.sent.len();
        c.fire(1);
        assert_eq!(c.now, deadline);
        let mut to = Vec::new();
        for e in &c.sent[before..] {
            let Message::AppendEntries(req) = &e.message else {
                panic!("unexpected {e:?}");
            };
            assert_eq!(e.from, 1);
            assert_eq!(req.term, term);
            assert!(req.entries.is_empty(), "a heartbeat carries no entries");
            assert_eq!(req.leader_commit, c.status(1).commit_index);
            to.push(e.to);
        }
        to.sort_unstable();
        assert_eq!(to, vec![2, 3]);
        assert_eq!(c.node(1).next_deadline(), deadline + cfg.heartbeat_interval);
        c.run();
    }
    assert_eq!(c.status(2).leader, Some(1));
}

/// §5.2: "If a follower receives no communication over a period of time called the
/// election timeout, then it ... begins an election": it increments its term, votes for
/// itself and sends RequestVote to every peer. The requests leave at once, beside the
/// write of the new term and vote (its own vote counts once that write is durable: see
/// `s5_2_own_vote_counts_once_durable`). A candidate that neither wins nor loses starts a
/// new election when its timer fires again.
#[test]
fn s5_2_follower_and_candidate_start_an_election_on_timeout() {
    let mut core = new_core(
        1,
        &[1, 2, 3],
        config_no_pre_vote(),
        initial(2, None, &[1, 2]),
    );
    let deadline = core.next_deadline();
    core.tick(deadline - NS);
    assert!(!core.has_ready());
    assert_eq!(core.status().role, Role::Follower);

    for term in [3, 4] {
        fire(&mut core);
        let status = core.status();
        assert_eq!(status.role, Role::Candidate);
        assert_eq!((status.term, status.voted_for), (term, Some(1)));
        let ready = core.ready();
        assert_eq!(
            ready.hard_state,
            Some(HardState {
                current_term: term,
                voted_for: Some(1)
            })
        );
        assert!(ready.persisted_messages.is_empty());
        let request = request_vote(term, LogId::new(2, 2));
        assert_eq!(
            ready.messages,
            vec![env(1, 2, request.clone()), env(1, 3, request)]
        );
        assert!(ready.events.contains(&Event::ElectionStarted {
            term,
            pre_vote: false
        }));
    }
}

/// §5.2: a candidate wins an election if it receives votes from a majority (its own
/// included), loses (returns to follower) once a majority refused, and otherwise stays a
/// candidate. One round, for clusters of 1, 3 and 5 nodes (etcd's
/// TestLeaderElectionInOneRoundRPC).
#[test]
fn s5_2_election_outcome_in_one_round() {
    let cases: &[(u64, Votes, Role)] = &[
        (1, &[], Role::Leader),
        (3, &[(2, true), (3, true)], Role::Leader),
        (3, &[(2, true)], Role::Leader),
        (3, &[(2, false), (3, true)], Role::Leader),
        (
            5,
            &[(2, true), (3, true), (4, true), (5, true)],
            Role::Leader,
        ),
        (5, &[(2, true), (3, true), (4, true)], Role::Leader),
        (5, &[(2, true), (3, true)], Role::Leader),
        (
            5,
            &[(2, false), (3, false), (4, true), (5, true)],
            Role::Leader,
        ),
        (3, &[(2, false), (3, false)], Role::Follower),
        (
            5,
            &[(2, false), (3, false), (4, false), (5, false)],
            Role::Follower,
        ),
        (
            5,
            &[(2, true), (3, false), (4, false), (5, false)],
            Role::Follower,
        ),
        (5, &[(2, false), (3, false), (4, false)], Role::Follower),
        (3, &[], Role::Candidate),
        (3, &[(2, false)], Role::Candidate),
        (5, &[(2, true)], Role::Candidate),
        (5, &[(2, false), (3, false)], Role::Candidate),
        (5, &[(2, true), (3, false), (4, false)], Role::Candidate),
    ];
    for &(size, votes, want) in cases {
        let members: Vec<NodeId> = (1..=size).collect();
        let mut core = new_core(1, &members, config_no_pre_vote(), InitialState::default());
        fire(&mut core);
        let _ = ready_persisted(&mut core);
        for &(from, granted) in votes {
            step(&mut core, from, vote_reply(1, granted));
        }
        let status = core.status();
        assert_eq!(status.role, want, "size {size}, votes {votes:?}");
        assert_eq!(status.term, 1, "size {size}, votes {votes:?}");
        let leader = (want == Role::Leader).then_some(1);
        assert_eq!(status.leader, leader, "size {size}, votes {votes:?}");
    }
}

/// §5.2 with Pre-Vote (thesis §9.6): a majority of granted pre-votes turns the node into
/// a real candidate of the next term (whose RequestVotes wait for durability); a majority
/// of refusals sends it back to follower; its term never moves during the pre-vote.
#[test]
fn s5_2_pre_vote_outcome_in_one_round() {
    let cases: &[(u64, Votes, Role)] = &[
        (1, &[], Role::Leader),
        (3, &[(2, true)], Role::Candidate),
        (3, &[(2, false), (3, true)], Role::Candidate),
        (5, &[(2, true), (3, true)], Role::Candidate),
        (3, &[(2, false), (3, false)], Role::Follower),
        (
            5,
            &[(2, true), (3, false), (4, false), (5, false)],
            Role::Follower,
        ),
        (3, &[], Role::PreCandidate),
        (3, &[(2, false)], Role::PreCandidate),
        (5, &[(2, true)], Role::PreCandidate),
        (5, &[(2, true), (3, false), (4, false)], Role::PreCandidate),
    ];
    for &(size, votes, want) in cases {
        let members: Vec<NodeId> = (1..=size).collect();
        let mut core = new_core(1, &members, config(), initial(4, None, &[4]));
        fire(&mut core);
        let ready = ready_persisted(&mut core);
        if size > 1 {
            assert_eq!(core.status().term, 4, "Pre-Vote keeps the term");
            assert_eq!(ready.hard_state, None);
            assert_eq!(ready.messages.len(), size as usize - 1);
            assert!(ready.messages.iter().all(|e| e.message
                == Message::PreVote(VoteRequest {
                    term: 5,
                    last_log: LogId::new(4, 1),
                    leader_transfer: false,
                })));
        }
        for &(from, granted) in votes {
            // A granted pre-vote echoes the proposed term; a refusal carries the voter's.
            let term = if granted { 5 } else { 4 };
            step(
                &mut core,
                from,
                Message::PreVoteReply(VoteReply { term, granted }),
            );
        }
        let status = core.status();
        assert_eq!(status.role, want, "size {size}, votes {votes:?}");
        let want_term = if matches!(want, Role::Candidate | Role::Leader) {
            5
        } else {
            4
        };
        assert_eq!(status.term, want_term, "size {size}, votes {votes:?}");
        if want == Role::Candidate {
            let ready = core.ready();
            assert_eq!(ready.messages.len(), size as usize - 1);
            assert!(ready
                .messages
                .iter()
                .all(|e| e.message == request_vote(5, LogId::new(4, 1))));
        }
    }
}

/// §5.2: "Each server will vote for at most one candidate in a given term, on a
/// first-come-first-served basis." Asking again for the vote already granted is answered
/// with the same grant (a lost reply must not cost the candidate its vote).
#[test]
fn s5_2_one_vote_per_term_first_come_first_served() {
    let mut voter = new_core(1, &[1, 2, 3], config_no_pre_vote(), initial(1, None, &[1]));
    let last = LogId::new(1, 1);

    step(&mut voter, 2, request_vote(2, last));
    assert_eq!(voter.status().voted_for, Some(2));
    let ready = voter.ready();
    assert_eq!(
        ready.hard_state,
        Some(HardState {
            current_term: 2,
            voted_for: Some(2)
        }),
        "the vote is persisted"
    );
    assert!(ready.messages.is_empty());
    assert_eq!(
        ready.persisted_messages,
        vec![env(1, 2, vote_reply(2, true))]
    );

    step(&mut voter, 3, request_vote(2, last));
    assert_eq!(voter.status().voted_for, Some(2));
    let ready = voter.ready();
    assert_eq!(ready.messages, vec![env(1, 3, vote_reply(2, false))]);
    assert!(ready.events.contains(&Event::VoteRefused {
        candidate: 3,
        term: 2,
        pre_vote: false,
        reason: VoteRefusal::AlreadyVoted { voted_for: 2 },
    }));

    step(&mut voter, 2, request_vote(2, last));
    let ready = voter.ready();
    assert_eq!(
        ready.persisted_messages,
        vec![env(1, 2, vote_reply(2, true))]
    );

    // A new term brings a new vote.
    step(&mut voter, 3, request_vote(3, last));
    assert_eq!(voter.status().voted_for, Some(3));
    assert_eq!(voter.status().term, 3);
}

/// §5.2: "If the AppendEntries RPC is from another server claiming to be leader ... and
/// the leader's term is at least as large as the candidate's current term, then the
/// candidate recognizes the leader as legitimate and returns to follower state." Also for
/// a pre-candidate.
#[test]
fn s5_2_candidate_steps_down_on_append_from_a_leader_of_its_term() {
    let mut candidate = core_in_role(Role::Candidate, &config());
    let term = candidate.status().term;
    step(&mut candidate, 2, append(term, LogId::new(1, 1), vec![], 0));
    let status = candidate.status();
    assert_eq!(status.role, Role::Follower);
    assert_eq!((status.term, status.leader), (term, Some(2)));
    assert_eq!(
        status.voted_for,
        Some(1),
        "the vote of this term stays cast"
    );
    let ready = ready_persisted(&mut candidate);
    assert!(ready.events.contains(&Event::RoleChanged {
        role: Role::Follower,
        term
    }));
    assert_eq!(
        ready.messages,
        vec![env(
            1,
            2,
            Message::AppendEntriesReply(AppendReply {
                term,
                result: AppendResult::Success { match_index: 1 },
                read_round: 0
            })
        )]
    );

    let mut pre = core_in_role(Role::PreCandidate, &config());
    let term = pre.status().term;
    step(&mut pre, 3, append(term, LogId::new(1, 1), vec![], 0));
    assert_eq!(pre.status().role, Role::Follower);
    assert_eq!(pre.status().leader, Some(3));
    assert_eq!(pre.status().term, term);
}

/// §5.2: "Raft uses randomized election timeouts ... chosen randomly from a fixed
/// interval": across seeds, timeouts cover the whole [min, max) range about uniformly,
/// and the same seed always gives the same timeout.
#[test]
fn s5_2_election_timeouts_are_spread_over_the_range() {
    let cfg = config();
    let (lo, hi) = (cfg.election_timeout_min, cfg.election_timeout_max);
    let samples = 1000u32;
    let mut buckets = [0u32; 10];
    let (mut min, mut max) = (Duration::MAX, Duration::ZERO);
    for seed in 0..u64::from(samples) {
        let make = || {
            RaftCore::new(1, vec![1, 2, 3], cfg.clone(), InitialState::default(), seed)
                .expect("valid")
        };
        let timeout = make().next_deadline();
        assert_eq!(make().next_deadline(), timeout, "deterministic per seed");
        min = min.min(timeout);
        max = max.max(timeout);
        let bucket =
            ((timeout.saturating_sub(lo)).as_nanos() * 10 / (hi - lo).as_nanos()).min(9) as usize;
        buckets[bucket] += 1;
    }
    assert!(min >= lo, "{min:?} below {lo:?}");
    assert!(max < hi, "{max:?} not below {hi:?}");
    for (i, &n) in buckets.iter().enumerate() {
        assert!(
            n >= samples / 20,
            "bucket {i} got {n} of {samples}: {buckets:?}"
        );
    }

    // One node's successive timeouts vary too.
    let mut core = new_core(1, &[1, 2, 3], config_no_pre_vote(), InitialState::default());
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let start = core.next_deadline();
        core.tick(start);
        let _ = ready_persisted(&mut core);
        let timeout = core.next_deadline() - start;
        assert!(timeout >= lo && timeout < hi);
        seen.insert(timeout);
    }
    assert!(seen.len() > 10, "re-armed timeouts repeat: {seen:?}");
}

/// §5.2: a cluster left alone elects exactly one leader, which every other node follows
/// (Election Safety is also checked by the harness on every event).
#[test]
fn s5_2_a_cluster_elects_one_leader() {
    for size in [1, 3, 5] {
        let mut c = Cluster::new(size, config());
        c.run_for(Duration::from_secs(2));
        let leaders = c.leaders();
        assert_eq!(leaders.len(), 1, "size {size}");
        let leader = leaders[0];
        let term = c.status(leader).term;
        for id in 1..=size {
            assert_eq!(c.status(id).leader, Some(leader), "size {size}");
            assert_eq!(c.status(id).term, term, "size {size}");
        }
    }
}

/// A candidate's own vote counts only once its new term and vote are durable: a crash
/// before then could let it vote again in that term, for a rival. Grants from voters are
/// durable before they are sent, so a quorum of them alone elects it; it then sends
/// nothing until its own term is durable.
#[test]
fn s5_2_own_vote_counts_once_durable() {
    // Three voters: one grant and our own durable vote make a quorum.
    let mut core = new_core(1, &[1, 2, 3], config_no_pre_vote(), initial(2, None, &[1]));
    fire(&mut core);
    let ready = core.ready();
    let hard = ready.hard_state.expect("the new term and vote are written");
    step(&mut core, 2, vote_reply(3, true));
    assert_eq!(
        core.status().role,
        Role::Candidate,
        "one grant without our own durable vote is no quorum of three"
    );
    core.hard_state_persisted(hard);
    assert_eq!(core.status().role, Role::Leader);
    let ready = core.ready();
    assert!(
        ready.messages.iter().any(|e| e.to == 2),
        "a leader whose term is durable sends at once"
    );

    // Five voters: three grants alone are a quorum; the leader's term is not durable
    // yet, so everything it sends waits for its write.
    let mut core = new_core(
        1,
        &[1, 2, 3, 4, 5],
        config_no_pre_vote(),
        initial(2, None, &[1]),
    );
    fire(&mut core);
    let ready = core.ready();
    let hard = ready.hard_state.expect("the new term and vote are written");
    step(&mut core, 2, vote_reply(3, true));
    step(&mut core, 3, vote_reply(3, true));
    assert_eq!(core.status().role, Role::Candidate);
    step(&mut core, 4, vote_reply(3, true));
    assert_eq!(core.status().role, Role::Leader);
    let ready = core.ready();
    assert!(
        ready.messages.is_empty(),
        "nothing leaves before the term is durable"
    );
    assert!(ready.persisted_messages.iter().any(|e| e.to == 5));
    core.hard_state_persisted(hard);
    fire(&mut core);
    let ready = core.ready();
    assert!(
        ready.messages.iter().any(|e| e.to == 5),
        "once the term is durable, heartbeats leave at once"
    );
}
