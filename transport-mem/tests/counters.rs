//! Per-node and per-link counters of `MemRouter`: each drop cause lands on the right link
//! and node, the fast path counts too, counters survive restarts, and links and nodes add
//! up to the router's totals.

mod common;

use std::time::Duration;

use actraft::core::Message;
use actraft::{Inbox, Transport};
use actraft_transport_mem::{FilterAction, MemRouter, Stats};
use common::{append, append_reply, heartbeat, sum, vote, vote_reply, Net};

/// Every directed link between ids `1..=n`, a node's link to itself included.
fn links(n: u64) -> impl Iterator<Item = (u64, u64)> {
    (1..=n).flat_map(move |from| (1..=n).map(move |to| (from, to)))
}

/// Checks that links and nodes add up to the router's totals.
fn assert_adds_up(router: &MemRouter, n: u64) -> Stats {
    let total = router.stats();
    let by_link: Vec<Stats> = links(n).map(|(f, t)| router.link_stats(f, t)).collect();
    assert_eq!(sum(&by_link), total, "links add up to the totals");
    let by_node: Vec<_> = (1..=n).map(|id| router.node_stats(id)).collect();
    assert_eq!(
        sum(by_node.iter().map(|s| &s.outbound)),
        total,
        "what nodes sent adds up to the totals"
    );
    assert_eq!(
        sum(by_node.iter().map(|s| &s.inbound)),
        total,
        "what nodes were sent adds up to the totals"
    );
    total
}

#[test]
fn each_cause_lands_on_its_link_and_nodes() {
    let mut net = Net::new(4);
    let router = net.router.clone();
    // Fast path: three delivered.
    (1..=3).for_each(|t| net.send(1, 2, vote(t)));
    // Cut: 3 is isolated.
    router.isolate(3);
    net.send(1, 3, heartbeat(1));
    net.send(1, 3, heartbeat(2));
    net.send(3, 1, vote_reply(1));
    router.heal();
    // Lost: a drop rate of 1 on 1 -> 2.
    router.set_link_drop_rate(1, 2, 1.0);
    (1..=4).for_each(|t| net.send(1, 2, append(t, 1)));
    router.clear_link_faults(1, 2);
    // Filtered: everything from 2; a self-send of 1 duplicated.
    router.add_filter(|e| match (e.from, e.to) {
        (2, _) => FilterAction::Drop,
        (1, 1) => FilterAction::Duplicate,
        _ => FilterAction::Pass,
    });
    (1..=5).for_each(|t| net.send(2, 1, append_reply(t)));
    net.send(2, 4, append_reply(9));
    net.send(1, 1, vote(7));
    router.clear_faults();
    // Peer down: 4 stopped.
    net.nodes[3].0.stop();
    net.send(1, 4, heartbeat(3));
    net.send(1, 4, heartbeat(4));

    assert_eq!(net.terms(1), [7, 7]);
    assert_eq!(net.terms(2), [1, 2, 3]);

    let link = |f, t| router.link_stats(f, t);
    let l12 = link(1, 2);
    assert_eq!((l12.sent, l12.delivered, l12.dropped_lost), (7, 3, 4));
    assert_eq!(
        (l12.sent_of("RequestVote"), l12.sent_of("AppendEntries")),
        (3, 4)
    );
    assert_eq!(link(1, 3).dropped_cut, 2);
    assert_eq!(link(3, 1).dropped_cut, 1);
    assert_eq!(link(2, 1).dropped_filter, 5);
    assert_eq!(link(2, 4).dropped_filter, 1);
    let l11 = link(1, 1);
    assert_eq!((l11.sent, l11.duplicated, l11.delivered), (1, 1, 2));
    assert_eq!(link(1, 4).dropped_peer_down, 2);
    let l41 = link(4, 1);
    assert_eq!((l41.sent, l41.delivered, l41.dropped), (0, 0, 0));

    let one = router.node_stats(1);
    assert_eq!(one.outbound.sent, 3 + 2 + 4 + 1 + 2);
    assert_eq!(one.outbound.dropped, 2 + 4 + 2);
    assert_eq!(one.inbound.sent, 1 + 5 + 1);
    assert_eq!(one.inbound.delivered, 2);
    assert_eq!(
        (one.inbound.dropped_cut, one.inbound.dropped_filter),
        (1, 5)
    );
    let four = router.node_stats(4);
    assert_eq!(four.outbound.sent, 0);
    assert_eq!(
        (four.inbound.dropped_filter, four.inbound.dropped_peer_down),
        (1, 2)
    );

    let total = assert_adds_up(&router, 4);
    assert_eq!(
        (
            total.dropped_cut,
            total.dropped_lost,
            total.dropped_filter,
            total.dropped_peer_down
        ),
        (3, 4, 6, 2)
    );
    assert_eq!(
        total.sent + total.duplicated,
        total.delivered + total.dropped
    );
}

#[test]
fn the_fast_path_counts_per_link() {
    let mut net = Net::new(3);
    assert!(format!("{:?}", net.router).contains("faults_active: false"));
    net.send(1, 2, heartbeat(1));
    net.send(1, 3, heartbeat(1));
    net.send(2, 1, append_reply(1));
    net.nodes[2].0.stop();
    net.send(1, 3, heartbeat(2));
    assert_eq!(net.received(2).len() + net.received(1).len(), 2);
    assert_eq!(net.router.link_stats(1, 2).delivered_of("AppendEntries"), 1);
    assert_eq!(
        net.router
            .link_stats(2, 1)
            .delivered_of("AppendEntriesReply"),
        1
    );
    let to_three = net.router.link_stats(1, 3);
    assert_eq!(
        (
            to_three.sent,
            to_three.delivered,
            to_three.dropped_peer_down
        ),
        (2, 1, 1)
    );
    assert_eq!(net.router.node_stats(1).outbound.sent, 3);
    assert_adds_up(&net.router, 3);
}

#[test]
fn counters_belong_to_ids_and_survive_restarts() {
    let mut net = Net::new(2);
    net.send(2, 1, vote_reply(1));
    // Node 2 restarts on a new transport.
    let fresh = net.router.transport(2);
    let (inbox, _rx) = Inbox::channel();
    fresh.start(inbox).unwrap();
    fresh
        .send(actraft::core::Envelope {
            from: 2,
            to: 1,
            message: vote_reply(2),
        })
        .unwrap();
    assert_eq!(net.terms(1), [1, 2]);
    assert_eq!(net.router.node_stats(2).outbound.delivered, 2);
    assert_eq!(net.router.link_stats(2, 1).sent, 2);
}

#[test]
fn unknown_ids_read_as_zero() {
    let net = Net::new(2);
    net.send(1, 2, vote(1));
    let zero = net.router.link_stats(1, 9);
    assert_eq!((zero.sent, zero.delivered), (0, 0));
    assert_eq!(zero.sent_of("RequestVote"), 0);
    assert_eq!(net.router.node_stats(9).inbound.sent, 0);
    assert_eq!(net.router.node_stats(9).outbound.sent, 0);
}

#[tokio::test(start_paused = true)]
async fn delayed_messages_are_in_flight_on_their_link() {
    let mut net = Net::new(3);
    net.router
        .set_link_delay(1, 2, Duration::from_millis(10), Duration::from_millis(10));
    net.send(1, 2, heartbeat(1));
    net.send(1, 2, heartbeat(2));
    net.send(1, 3, heartbeat(3));
    let link = net.router.link_stats(1, 2);
    assert_eq!((link.delayed, link.in_flight()), (2, 2));
    assert_eq!(net.router.node_stats(2).inbound.in_flight(), 2);
    assert_eq!(net.router.node_stats(1).outbound.in_flight(), 2);
    assert_eq!(net.router.link_stats(1, 3).in_flight(), 0);
    net.settle().await;
    assert_eq!(net.terms(2), [1, 2]);
    assert_eq!(net.router.link_stats(1, 2).delivered, 2);
}

/// Many rounds of all-to-all traffic under every fault at once; afterwards links and
/// nodes must add up to the router's totals, with every cause seen.
#[tokio::test(start_paused = true)]
async fn links_and_nodes_add_up_under_every_fault() {
    let n = 4;
    let mut net = Net::on(MemRouter::with_seed(5), n);
    let router = net.router.clone();
    router.set_drop_rate(0.1);
    router.set_delay(Duration::ZERO, Duration::from_millis(3));
    router.add_filter(|e| match &e.message {
        Message::AppendEntries(r) if r.term % 5 == 0 => FilterAction::Duplicate,
        Message::AppendEntriesReply(_) if e.to == 1 => FilterAction::Drop,
        _ => FilterAction::Pass,
    });
    for round in 0..200 {
        match round {
            50 => router.partition(&[&[1, 2], &[3, 4]]),
            100 => router.heal(),
            150 => net.nodes[3].0.stop(),
            _ => {}
        }
        for (from, to) in links(n) {
            if from == 4 && round >= 150 {
                continue; // stopped
            }
            let message = match (round + from + to) % 3 {
                0 => append(round, round % 2),
                1 => append_reply(round),
                _ => vote(round),
            };
            net.send(from, to, message);
        }
        if round % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    net.settle().await;
    for id in 1..=n {
        net.received(id);
    }
    let total = assert_adds_up(&router, n);
    assert_eq!(total.sent, 150 * 16 + 50 * 12);
    assert_eq!(
        total.sent + total.duplicated,
        total.delivered + total.dropped
    );
    for (cause, count) in [
        ("cut", total.dropped_cut),
        ("lost", total.dropped_lost),
        ("filter", total.dropped_filter),
        ("peer down", total.dropped_peer_down),
        ("delayed", total.delayed),
        ("duplicated", total.duplicated),
    ] {
        assert!(count > 0, "no message {cause}: {total:?}");
    }
}
