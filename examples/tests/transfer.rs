//! Cluster tests of leadership transfer (thesis §3.10) over the in-memory transport:
//! to a named node and to the best one, to a node that is down (abandoned, the leader
//! leads on), and a leader's shutdown handing over well within an election timeout.

use std::time::{Duration, Instant};

use actraft::core::{Config, Event, TransferError};
use actraft_examples::cluster::{Cluster, ClusterOptions};
use bytes::Bytes;

const WAIT: Duration = Duration::from_secs(10);

#[actix_rt::test]
async fn transfer_to_named_node_then_to_best() {
    let (cluster, old, _) =
        Cluster::start_with_leader(ClusterOptions::new(3).config(Config::default()), WAIT)
            .await
            .unwrap();
    cluster
        .propose(Bytes::from_static(b"before"), WAIT)
        .await
        .unwrap();
    let target = *cluster.members().iter().find(|&&m| m != old).unwrap();
    let leader = cluster.handle(old).unwrap();
    assert_eq!(leader.transfer_leadership(Some(target)).await, Ok(target));
    let (new, _) = cluster.wait_for_leader(WAIT).await.unwrap();
    assert_eq!(new, target);

    let handle = cluster.handle(target).unwrap();
    let best = handle.transfer_leadership(None).await.unwrap();
    assert_ne!(best, target);
    let (now, _) = cluster.wait_for_leader(WAIT).await.unwrap();
    assert_eq!(now, best);
    cluster
        .propose(Bytes::from_static(b"after"), WAIT)
        .await
        .unwrap();
    assert!(cluster.leaders_by_term().values().all(|l| l.len() == 1));
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn transfer_to_a_down_node_is_abandoned_and_the_leader_resumes() {
    let (mut cluster, old, term) =
        Cluster::start_with_leader(ClusterOptions::new(3).config(Config::default()), WAIT)
            .await
            .unwrap();
    let down = *cluster.members().iter().find(|&&m| m != old).unwrap();
    cluster.kill(down).await;
    let leader = cluster.handle(old).unwrap();
    let mut events = leader.subscribe();
    assert_eq!(
        leader.transfer_leadership(Some(down)).await,
        Err(TransferError::Abandoned { target: down })
    );
    let mut started = false;
    let mut abandoned = false;
    while let Ok(e) = events.try_recv() {
        started |= e.event == Event::TransferStarted { target: down, term };
        abandoned |= e.event == Event::TransferAbandoned { target: down, term };
    }
    assert!(started && abandoned, "events of the transfer");
    let s = leader.status();
    assert_eq!(
        (s.leader, s.term),
        (Some(old), term),
        "still leads its term"
    );
    leader
        .propose_timeout("after", WAIT)
        .await
        .expect("proposals accepted again");
    assert_eq!(
        cluster
            .handle(old)
            .unwrap()
            .transfer_leadership(Some(99))
            .await,
        Err(TransferError::UnknownTarget { target: 99 })
    );
    let other = *cluster
        .members()
        .iter()
        .find(|&&m| m != old && m != down)
        .unwrap();
    assert!(matches!(
        cluster
            .handle(other)
            .unwrap()
            .transfer_leadership(None)
            .await,
        Err(TransferError::NotLeader { .. })
    ));
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn leader_shutdown_hands_over_well_within_an_election_timeout() {
    let config = Config::default();
    let (mut cluster, old, term) =
        Cluster::start_with_leader(ClusterOptions::new(3).config(config.clone()), WAIT)
            .await
            .unwrap();
    cluster
        .propose(Bytes::from_static(b"x"), WAIT)
        .await
        .unwrap();
    let watcher = *cluster.members().iter().find(|&&m| m != old).unwrap();
    let mut events = cluster.handle(watcher).unwrap().subscribe();
    let start = Instant::now();
    cluster.shutdown(old).await;
    let known = loop {
        let e = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("an event")
            .expect("no lag");
        if let Event::LeaderChanged {
            leader: Some(l),
            term: t,
        } = e.event
        {
            if l != old && t > term {
                break e.at;
            }
        }
    };
    let took = known.saturating_duration_since(start);
    assert!(
        took < config.election_timeout_min,
        "new leader known after {took:?}, not well before an election timeout"
    );
    cluster.wait_for_leader(WAIT).await.unwrap();
    cluster
        .propose(Bytes::from_static(b"y"), WAIT)
        .await
        .unwrap();
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn a_leader_left_alone_stops_when_it_steps_down_not_at_the_hand_over_bound() {
    // A bound far beyond the test's own wait: reaching it fails the test.
    let options = ClusterOptions::new(3).transfer_on_shutdown(Some(Duration::from_secs(600)));
    let (mut cluster, leader, _) = Cluster::start_with_leader(options, WAIT).await.unwrap();
    for id in cluster.members().to_vec() {
        if id != leader {
            cluster.shutdown(id).await;
        }
    }
    // No follower answers the hand-over; the leader loses its quorum, steps down, and
    // has nothing left to hand over.
    tokio::time::timeout(WAIT, cluster.shutdown(leader))
        .await
        .expect("the leader stops once it stepped down");
}
