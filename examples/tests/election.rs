//! Cluster tests of leader election over the in-memory transport (§5.2, Pre-Vote,
//! CheckQuorum). Each also checks that no two nodes applied different entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actraft::core::{Config, Event, Message, Role};
use actraft::testkit::SplitMix64;
use actraft_examples::cluster::{fast_config, Cluster, ClusterOptions};
use bytes::Bytes;

const WAIT: Duration = Duration::from_secs(10);

#[actix_rt::test]
async fn initial_election_is_stable() {
    // Elections of 1-2 s, heartbeats every 50 ms: a stall of the whole process shorter
    // than a second (a busy machine) leaves every follower's timer well short of firing,
    // so any campaign seen here is the protocol's doing, not the scheduler's.
    let config = Config {
        heartbeat_interval: Duration::from_millis(50),
        ..Config::with_election_range(Duration::from_secs(1), Duration::from_secs(2))
    };
    let cluster = Cluster::start(ClusterOptions::new(3).config(config))
        .await
        .unwrap();
    let (leader, term) = cluster.wait_for_leader(WAIT).await.unwrap();
    let statuses = cluster
        .wait_for(WAIT, "every node to follow", |s| {
            s.iter().all(|s| s.leader == Some(leader) && s.term == term)
        })
        .await
        .unwrap();
    assert_eq!(
        statuses.iter().filter(|s| s.role == Role::Leader).count(),
        1,
        "exactly one leader: {statuses:?}"
    );
    // An observation window measured in the leader's own heartbeats (a clock that a
    // busy machine slows down with the nodes): 100 heartbeats to each follower are two
    // and a half of the longest election timeouts. Without faults, nobody campaigns.
    let (beats, mut heartbeats) = tokio::sync::watch::channel(0u64);
    let campaigns = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&campaigns);
    cluster
        .router()
        .set_observer(move |env| match &env.message {
            Message::AppendEntries(_) if env.from == leader => beats.send_modify(|n| *n += 1),
            Message::PreVote(_) | Message::RequestVote(_) => {
                seen.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        });
    let mut events = cluster.handle(leader).unwrap().subscribe();
    tokio::time::timeout(Duration::from_secs(60), heartbeats.wait_for(|&n| n >= 200))
        .await
        .expect("the leader keeps sending heartbeats")
        .unwrap();
    cluster.router().clear_observer();
    assert_eq!(campaigns.load(Ordering::Relaxed), 0, "a node campaigned");
    for s in cluster.statuses() {
        assert_eq!(
            (s.term, s.leader),
            (term, Some(leader)),
            "no new election: {s:?}"
        );
    }
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(
                e.event,
                Event::TermChanged { .. } | Event::RoleChanged { .. }
            ),
            "leader saw {e:?}"
        );
    }
    assert!(cluster.leaders_by_term().values().all(|l| l.len() == 1));
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn reelection_after_leader_isolation_and_rejoin_without_term_raise() {
    let (cluster, old, term) =
        Cluster::start_with_leader(ClusterOptions::new(3).config(fast_config()), WAIT)
            .await
            .unwrap();
    let others: Vec<u64> = cluster
        .members()
        .iter()
        .copied()
        .filter(|&id| id != old)
        .collect();
    cluster.router().isolate(old);
    let (new, new_term) = cluster.wait_for_leader_among(&others, WAIT).await.unwrap();
    assert_ne!(new, old);
    assert!(new_term > term);
    // The old leader notices it lost its quorum (CheckQuorum) and steps down.
    let old_handle = cluster.handle(old).unwrap();
    old_handle
        .wait_until(WAIT, |s| s.role != Role::Leader)
        .await
        .unwrap();
    cluster
        .propose(Bytes::from_static(b"while-isolated"), WAIT)
        .await
        .unwrap();
    cluster.router().heal();
    let s = old_handle
        .wait_until(WAIT, |s| s.leader == Some(new))
        .await
        .unwrap();
    assert_eq!(s.role, Role::Follower);
    // Pre-Vote: the rejoining node never raised the term past the new leader's.
    for s in cluster.statuses() {
        assert_eq!(s.term, new_term, "the cluster's term was not raised: {s:?}");
    }
    let commit = cluster.handle(new).unwrap().status().commit_index;
    cluster.wait_for_applied(commit, WAIT).await.unwrap();
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn no_leader_without_a_majority() {
    let cluster = Cluster::start(ClusterOptions::new(3).config(fast_config()))
        .await
        .unwrap();
    cluster.wait_for_leader(WAIT).await.unwrap();
    cluster.router().partition(&[&[1], &[2], &[3]]);
    cluster
        .wait_for(WAIT, "the leader to step down", |s| {
            s.iter().all(|s| s.role != Role::Leader)
        })
        .await
        .unwrap();
    // Watch every node for a while: nobody may win without a majority.
    let mut events: Vec<_> = cluster.live().iter().map(|h| h.subscribe()).collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    for rx in &mut events {
        while let Ok(e) = rx.try_recv() {
            assert!(
                !matches!(
                    e.event,
                    Event::RoleChanged {
                        role: Role::Leader,
                        ..
                    }
                ),
                "a leader without a majority: {e:?}"
            );
        }
    }
    // Two of three can talk again: a leader among them.
    cluster.router().partition(&[&[1, 2], &[3]]);
    let (leader, _) = cluster.wait_for_leader_among(&[1, 2], WAIT).await.unwrap();
    assert!(leader == 1 || leader == 2);
    cluster.router().heal();
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn many_elections_at_most_one_leader_per_term() {
    let cluster = Cluster::start(ClusterOptions::new(7).config(fast_config()))
        .await
        .unwrap();
    let mut rng = SplitMix64::new(7);
    cluster.wait_for_leader(WAIT).await.unwrap();
    for round in 0..10 {
        let mut ids: Vec<u64> = cluster.members().to_vec();
        // Isolate three nodes chosen at random.
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let (cut, rest) = ids.split_at(3);
        for &id in cut {
            cluster.router().isolate(id);
        }
        cluster
            .wait_for_leader_among(rest, WAIT)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        cluster
            .propose(Bytes::from(format!("round {round}")), WAIT)
            .await
            .unwrap();
        cluster.router().heal();
    }
    for (term, leaders) in cluster.leaders_by_term() {
        assert_eq!(leaders.len(), 1, "term {term} had leaders {leaders:?}");
    }
    cluster.check_agreement().unwrap();
}
