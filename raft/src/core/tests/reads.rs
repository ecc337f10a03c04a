//! Linearizable reads without the log (thesis §6.4): ReadIndex rounds, leases and
//! follower reads.

use super::*;

fn lease_config() -> Config {
    Config {
        lease_reads: true,
        ..Config::default()
    }
}

/// A 3-node cluster with node 1 leading and its no-op committed everywhere.
fn led_cluster(config: Config) -> Cluster {
    let mut c = Cluster::new(3, config);
    // Every node starts its clock at zero (with leases on, a node refuses votes for
    // the minimum election timeout after it starts).
    for id in 1..=3 {
        c.node_mut(id).tick(Duration::ZERO);
    }
    c.elect(1);
    c.run();
    let commit = c.status(1).commit_index;
    assert!(commit >= 1 && c.node(1).log_term(commit) == Some(c.status(1).term));
    c
}

fn read_heartbeats(c: &Cluster, from: usize) -> usize {
    c.sent[from..]
        .iter()
        .filter(|e| matches!(&e.message, Message::AppendEntries(r) if r.entries.is_empty()))
        .count()
}

impl Cluster {
    /// Asks node `id` for a read index now.
    fn read(&mut self, id: NodeId, read: ReadId, mode: ReadMode) {
        let now = self.now;
        self.node_mut(id).read_index(now, read, mode);
    }
}

fn outcome(c: &Cluster, id: ReadId) -> Option<Result<LogIndex, ReadError>> {
    c.reads
        .iter()
        .find(|(_, _, r)| r.id == id)
        .map(|(_, _, r)| r.result)
}

#[test]
fn s6_4_read_index_waits_for_a_majority_and_batches_reads() {
    let mut c = led_cluster(config());
    c.node_mut(1).propose("x".into()).unwrap();
    c.run();
    let commit = c.status(1).commit_index;
    let sent = c.sent.len();
    c.read(1, 1, ReadMode::Index);
    c.read(1, 2, ReadMode::Index);
    c.read(1, 3, ReadMode::Lease); // leases off: as Index
    assert!(c.node(1).has_ready());
    // Nothing is answered before the followers acknowledge the round.
    c.drain(1);
    assert_eq!(outcome(&c, 1), None, "answered before a majority confirmed");
    assert_eq!(read_heartbeats(&c, sent), 2, "one round for three reads");
    c.run();
    for id in 1..=3 {
        assert_eq!(outcome(&c, id), Some(Ok(commit)));
    }
}

#[test]
fn s6_4_an_old_acknowledgement_does_not_confirm_a_new_read() {
    let mut c = led_cluster(config());
    // Replies to the round's heartbeats are lost: only old acknowledgements exist.
    c.set_filter(|e| !matches!(e.message, Message::AppendEntriesReply(_)));
    c.read(1, 7, ReadMode::Index);
    c.run();
    assert_eq!(outcome(&c, 7), None);
    // Past the deadline the read fails with a typed error, never a stale index.
    c.run_for(Duration::from_millis(400));
    let result = outcome(&c, 7).expect("answered by the deadline");
    assert!(
        matches!(
            result,
            Err(ReadError::NotConfirmed | ReadError::NotLeader { .. })
        ),
        "{result:?}"
    );
}

#[test]
fn s6_4_followers_refuse_index_reads_and_forward_follower_reads() {
    let mut c = led_cluster(config());
    c.read(2, 1, ReadMode::Index);
    c.drain(2);
    assert_eq!(
        outcome(&c, 1),
        Some(Err(ReadError::NotLeader { leader: Some(1) }))
    );
    let before = c.status(1).commit_index;
    c.read(2, 2, ReadMode::Follower);
    c.node_mut(1).propose("y".into()).unwrap();
    c.run();
    let index = outcome(&c, 2).expect("answered").expect("a read index");
    assert!(index >= before && index <= c.status(1).commit_index);
    // A node with no known leader answers at once.
    let mut lone = Cluster::new(3, config());
    lone.read(3, 9, ReadMode::Follower);
    lone.drain(3);
    assert_eq!(outcome(&lone, 9), Some(Err(ReadError::NoLeader)));
}

/// With leases on, the leader answers a follower's request from its lease (no round of
/// heartbeats), with an index covering every write committed before the read; once the
/// leader is cut off and its lease has run out, a follower's read is never answered
/// with an index.
#[test]
fn s6_4_a_leader_with_a_lease_answers_followers_without_a_round() {
    let mut c = led_cluster(lease_config());
    c.node_mut(1).propose("x".into()).unwrap();
    c.run_for(Duration::from_millis(60)); // committed, and a heartbeat round acknowledged
    let before = c.status(1).commit_index;
    let sent = c.sent.len();
    c.read(2, 1, ReadMode::Follower);
    c.run();
    let index = outcome(&c, 1).expect("answered").expect("a read index");
    assert!(index >= before, "{index} < {before}");
    assert_eq!(read_heartbeats(&c, sent), 0, "answered from the lease");

    // Without leases the same request takes a round.
    let mut plain = led_cluster(config());
    plain.run_for(Duration::from_millis(60));
    let sent = plain.sent.len();
    plain.read(2, 1, ReadMode::Follower);
    plain.run();
    assert!(outcome(&plain, 1).expect("answered").is_ok());
    assert!(read_heartbeats(&plain, sent) > 0, "confirmed by a round");

    // The leader stops hearing acknowledgements (the followers still hear it, so they
    // stay with it): once its lease has run out, and before CheckQuorum would step it
    // down, a follower's request must wait for a round that no majority confirms.
    let config = lease_config();
    let window =
        config.election_timeout_min - config.heartbeat_interval / 2 - config.clock_drift_margin;
    c.set_filter(|e| !matches!(e.message, Message::AppendEntriesReply(_)));
    c.run_for(window + Duration::from_millis(1));
    assert_eq!(
        c.status(1).role,
        Role::Leader,
        "still leading: the lease alone decides"
    );
    let sent = c.sent.len();
    c.read(2, 2, ReadMode::Follower);
    c.run();
    assert_eq!(outcome(&c, 2), None, "served past the lease");
    assert!(read_heartbeats(&c, sent) > 0, "a round instead");
    c.heal();
    c.run_for(Duration::from_millis(100));
    assert!(outcome(&c, 2).expect("answered once healed").is_ok());
}

/// Follower reads that arrive before the same `Ready` share one ReadIndex request to
/// the leader; its one answer resolves them all, with an index that covers every write
/// committed before any of them began.
#[test]
fn s6_4_follower_reads_of_one_batch_share_one_request() {
    let mut c = led_cluster(config());
    c.node_mut(1).propose("x".into()).unwrap();
    c.run();
    let before = c.status(1).commit_index;
    let sent = c.sent.len();
    for id in 10..15 {
        c.read(2, id, ReadMode::Follower);
    }
    c.run();
    let requests = c.sent[sent..]
        .iter()
        .filter(|e| matches!(e.message, Message::ReadIndex(_)))
        .count();
    assert_eq!(requests, 1, "five reads, one request");
    for id in 10..15 {
        let index = outcome(&c, id).expect("answered").expect("a read index");
        assert!(index >= before, "read {id}: {index} < {before}");
    }
}

#[test]
fn s6_4_a_new_leader_reads_only_after_its_noop_commits() {
    let mut c = Cluster::new(3, config());
    c.set_filter(|e| !matches!(e.message, Message::AppendEntriesReply(_)));
    c.fire(1);
    c.run();
    assert_eq!(c.status(1).role, Role::Leader);
    assert_eq!(c.status(1).commit_index, 0, "no-op not committed yet");
    c.read(1, 1, ReadMode::Index);
    c.run();
    assert_eq!(
        outcome(&c, 1),
        None,
        "read served before the no-op committed"
    );
    c.heal();
    c.run_for(Duration::from_millis(60));
    assert_eq!(outcome(&c, 1), Some(Ok(c.status(1).commit_index)));
    assert!(c.status(1).commit_index >= 1);
}

#[test]
fn s6_4_lease_reads_need_no_round_until_the_lease_runs_out() {
    let mut c = led_cluster(lease_config());
    c.run_for(Duration::from_millis(60)); // a heartbeat round acknowledged
    let sent = c.sent.len();
    c.read(1, 1, ReadMode::Lease);
    c.drain(1);
    assert_eq!(outcome(&c, 1), Some(Ok(c.status(1).commit_index)));
    assert_eq!(read_heartbeats(&c, sent), 0, "a lease read needs no round");

    // Cut the leader off. The others elect a new leader and commit; the old leader's
    // lease must have run out before that, so it never serves a lease read after.
    c.isolate(1);
    let isolated_at = c.now;
    c.run_for(Duration::from_millis(1000));
    let new_leader = c.leaders().into_iter().find(|&l| l != 1);
    let new_leader = new_leader.expect("the majority elected a new leader");
    let first_commit = c
        .events
        .iter()
        .filter(|(_, n, e)| *n == new_leader && matches!(e, Event::Committed { .. }))
        .map(|(at, _, _)| *at)
        .find(|&at| at > isolated_at)
        .expect("the new leader committed");
    let lease_end = c
        .reads
        .iter()
        .filter(|(_, n, r)| *n == 1 && r.result.is_ok())
        .map(|(at, _, _)| *at)
        .max()
        .unwrap();
    assert!(lease_end < first_commit);
    // The old leader (stepped down by CheckQuorum, or still believing) refuses.
    for (id, mode) in [(2, ReadMode::Lease), (3, ReadMode::Index)] {
        c.read(1, id, mode);
        c.drain(1);
        c.run_for(Duration::from_millis(400));
        let result = outcome(&c, id).expect("answered");
        assert!(result.is_err(), "isolated old leader served {result:?}");
    }
}

#[test]
fn s6_4_an_isolated_leader_stops_serving_lease_reads_within_the_lease() {
    let config = Config {
        check_quorum: true,
        ..lease_config()
    };
    let mut c = led_cluster(config.clone());
    c.run_for(Duration::from_millis(60));
    c.isolate(1);
    let cut = c.now;
    let window =
        config.election_timeout_min - config.heartbeat_interval / 2 - config.clock_drift_margin;
    // Ask for a lease read every millisecond: none may be served past the window.
    let mut id = 100;
    while c.now < cut + Duration::from_millis(400) {
        id += 1;
        c.read(1, id, ReadMode::Lease);
        c.drain(1);
        c.run_for(Duration::from_millis(1));
    }
    let served: Vec<Duration> = c
        .reads
        .iter()
        .filter(|(_, n, r)| *n == 1 && r.id > 100 && r.result.is_ok())
        .map(|(at, _, _)| *at)
        .collect();
    assert!(!served.is_empty(), "the lease held right after the cut");
    assert!(
        served.iter().all(|&at| at < cut + window),
        "served past the lease"
    );
}

/// §6.4 with §3.10: voters grant the transfer target's flagged RequestVote within the
/// lease, so a leader that sent TimeoutNow holds no lease for the rest of its term,
/// even while the TimeoutNow is still on its way.
#[test]
fn s6_4_a_leader_that_sent_timeout_now_holds_no_lease() {
    let mut c = led_cluster(lease_config());
    c.run_for(Duration::from_millis(60)); // a heartbeat round acknowledged
    c.read(1, 1, ReadMode::Lease);
    c.drain(1);
    assert!(matches!(outcome(&c, 1), Some(Ok(_))), "the lease holds");

    assert_eq!(c.node_mut(1).transfer_leadership(Some(2)), Ok(2));
    let sent = c.sent.len();
    c.drain(1);
    assert!(
        c.sent[sent..]
            .iter()
            .any(|e| matches!(e.message, Message::TimeoutNow(_))),
        "the up-to-date target gets TimeoutNow at once"
    );
    // The TimeoutNow is not delivered yet, and node 1 still leads: no lease read.
    assert_eq!(c.status(1).role, Role::Leader);
    c.read(1, 2, ReadMode::Lease);
    c.drain(1);
    assert_eq!(
        outcome(&c, 2),
        None,
        "a lease read after TimeoutNow was sent"
    );
}
