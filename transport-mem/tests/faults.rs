//! Fault injection of `MemRouter`: isolation, partitions, healing, drop rates, delays,
//! per-link faults, determinism, counters and the observer. Delays are checked on
//! tokio's paused clock, so no test waits on the wall clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actraft::core::{Envelope, Message, NodeId, VoteReply};
use actraft::testkit::transport::sample;
use actraft::{Inbox, Transport, TransportError};
use actraft_transport_mem::{MemRouter, MemTransport};
use tokio::sync::mpsc::Receiver;
use tokio::time::Instant;

/// A started cluster on `router` with ids `1..=n`.
struct Net {
    router: MemRouter,
    nodes: Vec<(MemTransport, Receiver<Envelope>)>,
}

impl Net {
    fn new(n: u64) -> Self {
        Self::on(MemRouter::new(), n)
    }

    fn on(router: MemRouter, n: u64) -> Self {
        let nodes = (1..=n)
            .map(|id| {
                let transport = router.transport(id);
                let (inbox, rx) = Inbox::channel();
                transport.start(inbox).unwrap();
                (transport, rx)
            })
            .collect();
        Self { router, nodes }
    }

    /// Sends a message tagged `seq` (its term) from `from` to `to`.
    fn send(&self, from: NodeId, to: NodeId, seq: u64) {
        let envelope = Envelope {
            from,
            to,
            message: reply(seq),
        };
        self.nodes[from as usize - 1].0.send(envelope).unwrap();
    }

    /// The tags of the messages already waiting for `id`, in arrival order.
    fn received(&mut self, id: NodeId) -> Vec<u64> {
        let rx = &mut self.nodes[id as usize - 1].1;
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| {
                assert_eq!(e.to, id);
                e.message.term()
            })
            .collect()
    }

    /// True when a message from `from` sent now reaches `to` at once.
    fn reaches(&mut self, from: NodeId, to: NodeId) -> bool {
        self.send(from, to, 7);
        self.received(to) == [7]
    }

    async fn next(&mut self, id: NodeId) -> Envelope {
        self.nodes[id as usize - 1].1.recv().await.unwrap()
    }
}

fn reply(term: u64) -> Message {
    Message::RequestVoteReply(VoteReply {
        term,
        granted: true,
    })
}

#[test]
fn fast_path_delivers_synchronously_without_a_runtime() {
    let mut net = Net::new(2);
    net.send(1, 2, 1);
    net.send(2, 1, 2);
    assert_eq!(net.received(2), [1]);
    assert_eq!(net.received(1), [2]);
    let stats = net.router.stats();
    assert_eq!((stats.sent, stats.delivered, stats.dropped), (2, 2, 0));
}

#[test]
fn unknown_stopped_and_restarted_peers() {
    let router = MemRouter::new();
    let mut net = Net::on(router.clone(), 2);
    let stranger = Envelope {
        from: 1,
        to: 9,
        message: reply(1),
    };
    assert!(matches!(
        net.nodes[0].0.send(stranger),
        Err(TransportError::UnknownPeer(9))
    ));

    net.nodes[1].0.stop();
    assert!(!router.is_running(2));
    net.send(1, 2, 2); // silently dropped: the peer went away
    assert_eq!(router.stats().dropped_peer_down, 1);
    let late = Envelope {
        from: 2,
        to: 1,
        message: reply(3),
    };
    assert!(matches!(
        net.nodes[1].0.send(late),
        Err(TransportError::NotRunning)
    ));

    // A fresh transport for 2 takes the place of the stopped one.
    let fresh = router.transport(2);
    let (inbox, mut rx) = Inbox::channel();
    fresh.start(inbox).unwrap();
    net.send(1, 2, 4);
    assert_eq!(rx.try_recv().unwrap().message.term(), 4);
    assert!(net.received(2).is_empty(), "the old inbox gets nothing");
}

#[test]
fn a_new_transport_takes_over_a_running_one() {
    let router = MemRouter::new();
    let mut net = Net::on(router.clone(), 2);
    let fresh = router.transport(2);
    let (inbox, mut rx) = Inbox::channel();
    fresh.start(inbox).unwrap();
    assert!(
        !net.nodes[1].0.is_running(),
        "the old incarnation is retired"
    );
    net.send(1, 2, 1);
    assert_eq!(rx.try_recv().unwrap().message.term(), 1);
    assert!(net.received(2).is_empty());
    // The old one stopping (or dropping) does not unregister the new one.
    net.nodes[1].0.stop();
    assert!(router.is_running(2));
}

#[test]
fn isolate_blocks_both_directions_and_heal_restores() {
    let mut net = Net::new(3);
    net.router.isolate(1);
    assert!(!net.reaches(1, 2) && !net.reaches(2, 1) && !net.reaches(3, 1));
    assert!(net.reaches(2, 3) && net.reaches(3, 2));
    assert_eq!(net.router.stats().dropped_cut, 3);
    net.router.reconnect(1);
    assert!(net.reaches(1, 2) && net.reaches(2, 1));
    net.router.isolate(3);
    net.router.heal();
    assert!(net.reaches(3, 1) && net.reaches(1, 3));
}

#[test]
fn partition_groups_and_unlisted_nodes() {
    let mut net = Net::new(5);
    net.router.partition(&[&[1, 2], &[3, 4]]);
    assert!(net.reaches(1, 2) && net.reaches(2, 1) && net.reaches(3, 4) && net.reaches(4, 3));
    assert!(!net.reaches(1, 3) && !net.reaches(4, 2));
    // 5 is listed nowhere: alone.
    assert!(!net.reaches(5, 1) && !net.reaches(1, 5) && !net.reaches(3, 5));
    // A new partition replaces the old one.
    net.router.partition(&[&[1, 3, 5], &[2, 4]]);
    assert!(net.reaches(1, 3) && net.reaches(5, 1) && net.reaches(2, 4));
    assert!(!net.reaches(1, 2));
    net.router.heal();
    for from in 1..=5 {
        for to in (1..=5).filter(|&to| to != from) {
            assert!(net.reaches(from, to), "{from} -> {to} after heal");
        }
    }
}

#[test]
fn drop_rates_zero_half_and_one() {
    let mut net = Net::new(2);
    net.router.set_drop_rate(1.0);
    (0..1_000).for_each(|i| net.send(1, 2, i));
    assert!(net.received(2).is_empty());
    net.router.set_drop_rate(0.0);
    (0..1_000).for_each(|i| net.send(1, 2, i));
    assert_eq!(net.received(2).len(), 1_000);
    net.router.set_drop_rate(0.5);
    (0..1_000).for_each(|i| net.send(1, 2, i));
    let got = net.received(2).len();
    assert!((400..=600).contains(&got), "{got} of 1000 at rate 0.5");
    let stats = net.router.stats();
    assert_eq!(stats.sent, 3_000);
    assert_eq!(stats.dropped_lost, 1_000 + (1_000 - got as u64));
    assert_eq!(stats.delivered + stats.dropped, stats.sent);
}

#[test]
fn per_link_drop_rate_affects_only_that_link() {
    let mut net = Net::new(3);
    net.router.set_link_drop_rate(1, 2, 1.0);
    assert!(!net.reaches(1, 2));
    assert!(net.reaches(2, 1) && net.reaches(1, 3) && net.reaches(3, 2));
    // A link's own rate overrides the router-wide one.
    net.router.set_drop_rate(1.0);
    net.router.set_link_drop_rate(2, 1, 0.0);
    assert!(net.reaches(2, 1) && !net.reaches(1, 3));
    net.router.clear_link_faults(2, 1);
    assert!(!net.reaches(2, 1));
    net.router.clear_faults();
    assert!(net.reaches(1, 2) && net.reaches(1, 3));
}

/// Which of 500 messages a router seeded with `seed` delivers at a 30% drop rate.
fn drop_pattern(seed: u64) -> Vec<u64> {
    let mut net = Net::on(MemRouter::with_seed(seed), 2);
    net.router.set_drop_rate(0.3);
    (0..500).for_each(|i| net.send(1, 2, i));
    net.received(2)
}

#[test]
fn same_seed_same_drops() {
    assert_eq!(drop_pattern(42), drop_pattern(42));
    assert_ne!(drop_pattern(42), drop_pattern(43));
}

#[tokio::test(start_paused = true)]
async fn delay_delays() {
    let mut net = Net::new(2);
    net.router
        .set_delay(Duration::from_millis(100), Duration::from_millis(100));
    let sent_at = Instant::now();
    net.send(1, 2, 1);
    assert!(net.received(2).is_empty(), "not delivered at once");
    assert_eq!(net.router.stats().in_flight(), 1);
    assert_eq!(net.next(2).await.message.term(), 1);
    let waited = sent_at.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_millis(110),
        "{waited:?}"
    );
    assert_eq!(net.router.stats().in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn jitter_reorders_and_loses_nothing() {
    let mut net = Net::new(2);
    net.router
        .set_delay(Duration::ZERO, Duration::from_millis(50));
    (0..100).for_each(|i| net.send(1, 2, i));
    let mut order = Vec::new();
    for _ in 0..100 {
        order.push(net.next(2).await.message.term());
    }
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..100).collect::<Vec<_>>(),
        "everything arrives once"
    );
    assert_ne!(order, sorted, "jitter reorders");
}

#[tokio::test(start_paused = true)]
async fn per_link_delay_affects_only_that_link() {
    let mut net = Net::new(3);
    net.router
        .set_link_delay(1, 2, Duration::from_millis(50), Duration::from_millis(50));
    let sent_at = Instant::now();
    net.send(1, 2, 1);
    assert!(
        net.reaches(1, 3) && net.reaches(2, 1),
        "other links are immediate"
    );
    assert!(net.received(2).is_empty());
    assert_eq!(net.next(2).await.message.term(), 1);
    assert!(sent_at.elapsed() >= Duration::from_millis(50));
    // A zero link delay makes one link immediate under a router-wide delay.
    net.router.clear_link_faults(1, 2);
    net.router
        .set_delay(Duration::from_millis(10), Duration::from_millis(10));
    net.router
        .set_link_delay(2, 3, Duration::ZERO, Duration::ZERO);
    assert!(net.reaches(2, 3) && !net.reaches(3, 2));
}

#[tokio::test(start_paused = true)]
async fn a_cut_drops_delayed_messages_already_on_their_way() {
    let mut net = Net::new(3);
    net.router
        .set_delay(Duration::from_millis(20), Duration::from_millis(20));
    net.send(1, 2, 1);
    net.send(1, 3, 2);
    net.router.isolate(2);
    // 1 -> 3 arrives after the delay; 1 -> 2 was cut while in flight.
    assert_eq!(net.next(3).await.message.term(), 2);
    let settled = async {
        while net.router.stats().in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), settled)
        .await
        .expect("the cut message's fate is decided");
    assert!(net.received(2).is_empty());
    let stats = net.router.stats();
    assert_eq!((stats.delivered, stats.dropped_cut), (1, 1));
}

#[test]
fn stats_by_kind_and_observer() {
    let mut net = Net::new(2);
    let appends = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&appends);
    net.router.set_observer(move |e| {
        if matches!(e.message, Message::AppendEntries(_)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    let sender = &net.nodes[0].0;
    for seq in 0..12 {
        let message = sample(seq); // two messages of each of the six kinds
        sender
            .send(Envelope {
                from: 1,
                to: 2,
                message,
            })
            .unwrap();
    }
    assert_eq!(net.received(2).len(), 12);
    assert_eq!(appends.load(Ordering::Relaxed), 2);
    net.router.clear_observer();
    net.router.isolate(2);
    let before = net.router.stats();
    net.send(1, 2, 99);
    let stats = net.router.stats();
    assert_eq!(stats.delivered_of("AppendEntries"), 2);
    assert_eq!(stats.sent_of("RequestVoteReply"), 3);
    assert_eq!(stats.delivered_of("RequestVoteReply"), 2);
    let phase = stats.since(&before);
    assert_eq!((phase.sent, phase.delivered, phase.dropped_cut), (1, 0, 1));
}

#[actix_rt::test]
async fn delays_work_inside_actix() {
    let mut net = Net::new(2);
    net.router
        .set_delay(Duration::from_millis(1), Duration::from_millis(2));
    net.send(1, 2, 5);
    let got = tokio::time::timeout(Duration::from_secs(5), net.next(2)).await;
    assert_eq!(got.expect("delivered").message.term(), 5);
}
