//! Core unit tests: cluster membership changes (§6 of the Raft paper, joint consensus),
//! learners, and removed nodes (Ongaro's thesis §4.2.3).

use super::*;

fn m(voters: &[NodeId], learners: &[NodeId]) -> Membership {
    Membership::new(voters.iter().copied(), learners.iter().copied())
}

/// A 3-node cluster led by node 1, with the joining nodes `joining` present (no
/// configuration yet) and reachable.
fn led_by_1_with_joining(joining: &[NodeId]) -> Cluster {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    for &id in joining {
        c.nodes
            .insert(id, new_core(id, &[], cfg.clone(), InitialState::default()));
    }
    c.elect(1);
    c.run();
    c
}

/// Proposes `target` on node 1 and runs the cluster to quiescence.
fn change(c: &mut Cluster, target: Membership) -> LogId {
    let id = c
        .node_mut(1)
        .propose_membership(target, true)
        .expect("change accepted");
    c.run();
    id
}

fn stable(c: &Cluster, id: NodeId) -> Membership {
    match c.node(id).membership() {
        ClusterConfig::Stable(m) => m.clone(),
        other => panic!("node {id} is in {other:?}"),
    }
}

/// A joining node has no configuration, never campaigns, and is not "removed"; once a
/// learner it has the log but still never campaigns, and a learner-only change needs
/// no joint phase.
#[test]
fn s6_learner_gets_the_log_and_never_campaigns() {
    let mut c = led_by_1_with_joining(&[4]);
    assert!(!c.status(4).removed && !c.status(4).voter);
    let entry = change(&mut c, m(&[1, 2, 3], &[4]));
    assert_eq!(stable(&c, 1), m(&[1, 2, 3], &[4]), "no joint phase");
    for id in 1..=4 {
        assert_eq!(c.node(id).membership_index(), entry.index, "node {id}");
    }
    c.node_mut(1).propose("x".into()).unwrap();
    c.run();
    assert_eq!(c.log(4), c.log(1), "the learner holds the leader's log");
    let since = c.now;
    // Isolate the leader: the learner's timer fires many times but it never campaigns;
    // the voters elect a new leader.
    c.isolate(1);
    c.run_for(Duration::from_secs(3));
    assert!(!c
        .events_of(4, since)
        .iter()
        .any(|e| matches!(e, Event::ElectionStarted { .. })));
    assert!(c.leaders().iter().any(|&l| l == 2 || l == 3));
}

/// §6: the voters change through C_old,new; the leader appends C_new by itself once
/// the joint entry commits, and every node ends in C_new.
#[test]
fn s6_promotion_goes_through_the_joint_configuration() {
    let mut c = led_by_1_with_joining(&[4, 5]);
    change(&mut c, m(&[1, 2, 3], &[4, 5]));
    let since = c.now;
    let joint = change(&mut c, m(&[1, 2, 3, 4, 5], &[]));
    let changes: Vec<Event> = c
        .events_of(2, since)
        .into_iter()
        .filter(|e| matches!(e, Event::MembershipChanged { index, .. } if *index >= joint.index))
        .collect();
    assert_eq!(
        changes,
        vec![
            Event::MembershipChanged {
                index: joint.index,
                joint: true
            },
            Event::MembershipChanged {
                index: joint.index + 1,
                joint: false
            },
        ]
    );
    // Followers learn the last commit with the next heartbeat.
    c.run_for(config().heartbeat_interval * 2);
    for id in 1..=5 {
        assert_eq!(stable(&c, id), m(&[1, 2, 3, 4, 5], &[]), "node {id}");
        assert!(c.status(id).commit_index > joint.index, "node {id}");
    }
}

/// §6: while joint, an entry commits only with a majority of BOTH halves. Replacing a
/// majority ({1,2,3} -> {1,4,5}) with the new nodes cut off leaves the joint entry
/// uncommitted although the whole old configuration holds it.
#[test]
fn s6_joint_commit_needs_both_majorities() {
    let mut c = led_by_1_with_joining(&[4, 5]);
    change(&mut c, m(&[1, 2, 3], &[4, 5]));
    c.set_filter(|e| ![4, 5].contains(&e.to) && ![4, 5].contains(&e.from));
    let joint = c
        .node_mut(1)
        .propose_membership(m(&[1, 4, 5], &[]), true)
        .unwrap();
    c.run();
    assert!(c.node(2).membership().is_joint(), "appended = in force");
    assert!(
        c.status(1).commit_index < joint.index,
        "the old majority alone does not commit C_old,new"
    );
    assert_eq!(
        c.node_mut(1).propose_membership(m(&[1], &[]), true),
        Err(MembershipError::ChangeInProgress)
    );
    c.heal();
    c.run_for(config().heartbeat_interval * 3);
    assert_eq!(stable(&c, 1), m(&[1, 4, 5], &[]));
    assert!(c.status(1).commit_index > joint.index);
    assert_eq!(c.status(1).role, Role::Leader, "1 stays: it is in C_new");
}

/// §6: a leader that is not in C_new manages the change, steps down once C_new
/// commits, and hands over to an up-to-date voter of C_new at once. Being removed, it
/// never campaigns again and says so.
#[test]
fn s6_removed_leader_steps_down_and_stays_quiet() {
    let mut c = led_by_1_with_joining(&[]);
    let since = c.now;
    change(&mut c, m(&[2, 3], &[]));
    assert_eq!(stable(&c, 2), m(&[2, 3], &[]));
    let s1 = c.status(1);
    assert_ne!(s1.role, Role::Leader);
    assert!(s1.removed && !s1.voter);
    let leaders = c.leaders();
    assert!(leaders == vec![2] || leaders == vec![3], "{leaders:?}");
    assert_eq!(c.now, since, "handed over without an election timeout");
    let seen = c.events.len();
    c.run_for(Duration::from_secs(3));
    assert!(!c.events[seen..]
        .iter()
        .any(|(_, id, e)| *id == 1 && matches!(e, Event::ElectionStarted { .. })));
}

/// Thesis §4.2.3: a removed node that never learnt of its removal campaigns, but with
/// Pre-Vote and the CheckQuorum lease the members refuse it and it never raises anyone's
/// term.
#[test]
fn s6_removed_node_does_not_disrupt() {
    let mut c = led_by_1_with_joining(&[]);
    c.isolate(3);
    change(&mut c, m(&[1, 2], &[]));
    assert_eq!(stable(&c, 1), m(&[1, 2], &[]));
    assert!(
        !c.node(3).membership().target().voters().is_empty() && c.node(3).membership().is_voter(3),
        "node 3 missed its removal"
    );
    let term = c.status(1).term;
    // Node 3 campaigns on its own; its requests reach the others.
    c.fire(3);
    let requests: Vec<Envelope> = c.queue.drain(..).filter(|e| e.from == 3).collect();
    assert!(!requests.is_empty(), "node 3 asked for votes");
    for e in requests {
        assert!(matches!(e.message, Message::PreVote(_)));
        let to = e.to;
        let now = c.now;
        c.node_mut(to).step(now, e).unwrap();
        let refusal = c
            .node_mut(to)
            .ready()
            .events
            .into_iter()
            .find_map(|e| match e {
                Event::VoteRefused { reason, .. } => Some(reason),
                _ => None,
            });
        assert!(
            matches!(
                refusal,
                Some(VoteRefusal::LeaderLease { leader: 1 } | VoteRefusal::LogNotUpToDate { .. })
            ),
            "node {to}: {refusal:?}"
        );
    }
    assert_eq!(c.status(1).term, term);
    assert_eq!(c.status(1).role, Role::Leader);
}

/// A membership entry takes effect when appended and reverts when a new leader's log
/// replaces it.
#[test]
fn s6_truncated_configuration_reverts() {
    let mut core = new_core(2, &[1, 2, 3], config(), initial(1, None, &[1]));
    let joint = ClusterConfig::Joint {
        old: m(&[1, 2, 3], &[]),
        new: m(&[1, 2, 3, 4], &[]),
    };
    let e = Entry {
        term: 1,
        index: 2,
        payload: Payload::Membership(Box::new(joint.clone())),
    };
    step(&mut core, 1, append(1, LogId::new(1, 1), vec![e], 1));
    assert_eq!(core.membership(), &joint);
    assert_eq!(core.members(), vec![1, 2, 3, 4]);
    let _ = ready_persisted(&mut core);
    // Node 3 leads term 2 with another entry at index 2.
    step(
        &mut core,
        3,
        append(2, LogId::new(1, 1), vec![noop(2, 2)], 1),
    );
    assert_eq!(core.membership(), &ClusterConfig::bootstrap([1, 2, 3]));
    assert_eq!(core.membership_index(), 0);
    let events = core.ready().events;
    assert!(events.contains(&Event::MembershipChanged {
        index: 0,
        joint: false
    }));
}

/// A restarted node obeys the configuration in its log (and its snapshot's), not the
/// bootstrap members it is given.
#[test]
fn s6_configuration_recovered_at_restart() {
    let later = ClusterConfig::bootstrap([2, 3, 4]);
    let mut state = initial(2, None, &[1, 1]);
    state.entries.push(Entry {
        term: 2,
        index: 3,
        payload: Payload::Membership(Box::new(later.clone())),
    });
    let core = new_core(4, &[1, 2, 3], config(), state);
    assert_eq!(core.membership(), &later);
    assert_eq!(core.membership_index(), 3);
    assert!(core.status().voter);

    let snap = ClusterConfig::bootstrap([5, 6, 7]);
    let state = InitialState {
        log_prefix: LogId::new(3, 40),
        snapshot: LogId::new(3, 40),
        applied_index: 40,
        membership: Some(snap.clone()),
        ..InitialState::default()
    };
    let core = RaftCore::new(1, vec![1, 2, 3], config(), state, 1).unwrap();
    assert_eq!(core.membership(), &snap);
    assert!(core.status().removed);
    assert!(matches!(
        RaftCore::new(9, vec![1, 2], config(), InitialState::default(), 1),
        Err(InitError::NotAMember { .. })
    ));
}

/// Checked promotion refuses a lagging learner; a change needs a leader, voters, and
/// no change in progress.
#[test]
fn s6_change_refusals() {
    let mut c = led_by_1_with_joining(&[4]);
    c.set_filter(|e| e.to != 4);
    change(&mut c, m(&[1, 2, 3], &[4]));
    let cfg = config();
    for _ in 0..=cfg.max_promotion_lag {
        c.node_mut(1).propose("x".into()).unwrap();
    }
    c.run();
    assert!(matches!(
        c.node_mut(1).propose_membership(m(&[1, 2, 3, 4], &[]), true),
        Err(MembershipError::Lagging { id: 4, behind }) if behind > cfg.max_promotion_lag
    ));
    assert!(matches!(
        c.node_mut(1).propose_membership(m(&[], &[1]), false),
        Err(MembershipError::Invalid(_))
    ));
    assert_eq!(
        c.node_mut(2).propose_membership(m(&[1, 2], &[]), false),
        Err(MembershipError::NotLeader { leader: Some(1) })
    );
    // Unchecked, the lagging learner is promoted; it catches up once reachable.
    c.node_mut(1)
        .propose_membership(m(&[1, 2, 3, 4], &[]), false)
        .unwrap();
    c.heal();
    c.run_for(cfg.heartbeat_interval * 4);
    assert_eq!(stable(&c, 4), m(&[1, 2, 3, 4], &[]));
    assert_eq!(c.log(4), c.log(1));
}

/// Leadership transfer and CheckQuorum count voters only: a learner is no transfer
/// target, and a leader whose voters are silent steps down although its learners answer.
#[test]
fn s6_learners_count_for_nothing() {
    let mut c = led_by_1_with_joining(&[4]);
    change(&mut c, m(&[1, 2, 3], &[4]));
    assert_eq!(
        c.node_mut(1).transfer_leadership(Some(4)),
        Err(TransferError::UnknownTarget { target: 4 })
    );
    c.set_filter(|e| [1, 4].contains(&e.from) && [1, 4].contains(&e.to));
    c.run_for(config().election_timeout_max * 2);
    assert_ne!(c.status(1).role, Role::Leader, "1 + learner is no quorum");
}

/// A node removed while it is reachable learns that its removal is committed (the
/// leader's last heartbeat to it carries the commit) and stops campaigning; until then
/// the leader's links (what its transport reaches) keep it, afterwards they are the
/// configuration's members. A follower's links are its configuration's members.
#[test]
fn s6_removed_node_hears_its_removal_commit_and_loses_its_link_after() {
    let mut c = led_by_1_with_joining(&[]);
    let set = |ids: &[NodeId]| {
        ids.iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(c.node(1).links(), set(&[2, 3]));
    c.node_mut(1)
        .propose_membership(m(&[1, 2], &[]), true)
        .expect("change accepted");
    assert!(c.node(1).membership().is_joint());
    assert_eq!(c.node(1).links(), set(&[2, 3]), "still replicating to 3");
    c.run();
    assert_eq!(stable(&c, 1), m(&[1, 2], &[]));
    let s3 = c.status(3);
    assert!(s3.removed && !s3.voter);
    assert!(
        s3.commit_index >= s3.membership_index,
        "node 3 knows its removal is committed: {s3:?}"
    );
    assert!(!c.node(3).can_campaign());
    assert_eq!(c.node(1).links(), set(&[2]), "node 3 let go");
    assert_eq!(c.node(2).links(), set(&[1]));
    assert_eq!(c.node(3).links(), set(&[1, 2]));
    let members = c.node(1).link_members();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, 2);
    // Many election timeouts later it still has not asked for a vote.
    let since = c.now;
    c.run_for(Duration::from_secs(3));
    assert!(!c
        .events_of(3, since)
        .iter()
        .any(|e| matches!(e, Event::ElectionStarted { .. })));
    assert_eq!(c.status(3).term, s3.term);
}

/// A removed node that cannot be reached is let go once it has been silent for an
/// election timeout, on the leader's heartbeat tick, even when no follower answers any
/// more (here the leader is the only voter left).
#[test]
fn s6_silent_removed_node_is_let_go_on_a_heartbeat() {
    let mut c = led_by_1_with_joining(&[]);
    c.isolate(3);
    change(&mut c, m(&[1], &[]));
    assert_eq!(stable(&c, 1), m(&[1], &[]));
    assert!(c.node(1).links().contains(&3), "node 3 not heard from yet");
    c.run_for(config().election_timeout_max * 2);
    assert!(c.node(1).links().is_empty(), "node 3 let go");
    assert_eq!(c.status(1).role, Role::Leader);
}

/// A removed node the leader has not reached yet stays among the nodes it replicates to
/// when the next change is appended before the removal's last heartbeat went out: it
/// still learns that its removal is committed once it can be reached.
#[test]
fn s6_removed_node_keeps_its_last_heartbeat_through_the_next_change() {
    let mut c = led_by_1_with_joining(&[4]);
    c.isolate(3);
    change(&mut c, m(&[1, 2], &[]));
    assert_eq!(stable(&c, 1), m(&[1, 2], &[]));
    assert!(c.node(1).links().contains(&3), "node 3 not heard from yet");
    c.node_mut(1)
        .propose_membership(m(&[1, 2], &[4]), true)
        .expect("change accepted");
    assert!(
        c.node(1).links().contains(&3),
        "node 3 is still owed the heartbeat that tells it its removal"
    );
    c.heal();
    c.run();
    assert_eq!(stable(&c, 1), m(&[1, 2], &[4]));
    let s3 = c.status(3);
    assert!(s3.removed && !s3.voter, "{s3:?}");
    assert!(
        s3.commit_index >= s3.membership_index,
        "node 3 knows its removal is committed: {s3:?}"
    );
    assert!(!c.node(3).can_campaign());
    assert!(!c.node(1).links().contains(&3), "node 3 let go");
}

/// §6: servers process incoming requests without consulting their configuration. A
/// follower cut off while the cluster added a node that then became leader still holds
/// the old configuration: it takes the new leader's AppendEntries and names that leader
/// among its links, with no address (its log has none yet), so that its transport lets
/// it answer; it then catches up, configuration included.
#[test]
fn s6_lagging_follower_links_to_a_leader_its_configuration_lacks() {
    let mut c = led_by_1_with_joining(&[4]);
    let set = |ids: &[NodeId]| {
        ids.iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
    };
    c.isolate(3);
    change(&mut c, m(&[1, 2, 3], &[4]));
    change(&mut c, m(&[1, 2, 3, 4], &[]));
    assert_eq!(stable(&c, 1), m(&[1, 2, 3, 4], &[]));
    assert_eq!(c.node_mut(1).transfer_leadership(Some(4)), Ok(4));
    c.run();
    assert_eq!(c.status(4).role, Role::Leader);
    assert_eq!(
        stable(&c, 3),
        m(&[1, 2, 3], &[]),
        "node 3 missed the change"
    );
    assert_eq!(c.node(3).links(), set(&[1, 2]));

    // Node 4's next heartbeat reaches node 3, which follows it at once.
    c.heal();
    c.fire(4);
    c.run_only(|e| e.from == 4 && e.to == 3);
    assert_eq!(c.status(3).leader, Some(4));
    assert_eq!(stable(&c, 3), m(&[1, 2, 3], &[]));
    assert_eq!(c.node(3).links(), set(&[1, 2, 4]));
    let leader = c.node(3).link_members().into_iter().find(|l| l.id == 4);
    assert_eq!(leader.map(|l| l.address), Some(String::new()));

    // Its answers reach node 4, which brings it up to date.
    c.run_for(config().election_timeout_max);
    assert_eq!(stable(&c, 3), m(&[1, 2, 3, 4], &[]));
    assert_eq!(c.log(3), c.log(4));
    assert_eq!(c.status(3).commit_index, c.status(4).commit_index);
    assert_eq!(c.node(3).links(), set(&[1, 2, 4]));
}

/// §6 again, for votes: a voter that missed the change adding a node still answers that
/// node's campaign, so that a new configuration whose leader is lost can elect the
/// added node with the lagging voter's vote. Nodes 1 and 2 are lost after the cluster
/// moved from {1, 2, 3} to {2, 3, 4} without node 3; node 4 needs node 3's vote, and
/// node 3 must name it among its links to send the grant.
#[test]
fn s6_lagging_voter_answers_a_candidate_its_configuration_lacks() {
    let mut c = led_by_1_with_joining(&[4]);
    c.isolate(3);
    change(&mut c, m(&[1, 2, 3], &[4]));
    change(&mut c, m(&[2, 3, 4], &[]));
    c.run_for(config().election_timeout_max * 2);
    let leader = [2, 4]
        .into_iter()
        .find(|&id| c.status(id).role == Role::Leader)
        .expect("the new configuration elected a leader");
    if leader != 2 {
        assert_eq!(c.node_mut(leader).transfer_leadership(Some(2)), Ok(2));
        c.run();
    }
    assert_eq!(c.status(2).role, Role::Leader);
    assert_eq!(
        stable(&c, 3),
        m(&[1, 2, 3], &[]),
        "node 3 missed the change"
    );

    // Nodes 1 and 2 are lost; node 3 is back. Node 4 campaigns.
    c.heal();
    c.set_filter(|e| ![1, 2].contains(&e.from) && ![1, 2].contains(&e.to));
    c.fire(4);
    c.run_only(|e| e.from == 4 && e.to == 3);
    assert!(
        c.node(3).links().contains(&4),
        "node 3 granted node 4 and names it: {:?}",
        c.node(3).links()
    );
    c.run_for(config().election_timeout_max * 4);
    assert_eq!(c.status(4).role, Role::Leader);
    assert_eq!(c.status(3).leader, Some(4));
    assert_eq!(stable(&c, 3), m(&[2, 3, 4], &[]));
}
