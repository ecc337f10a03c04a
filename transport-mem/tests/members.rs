//! `MemTransport::set_members`: once a node has a list, it takes every message from its
//! members and only requests from other nodes, counts their refused replies on their
//! link, and sends only to the nodes listed.

mod common;

use std::time::Duration;

use actraft::core::Envelope;
use actraft::{Inbox, Member, Transport, TransportError};
use actraft_transport_mem::MemRouter;
use common::{append_reply, heartbeat, pre_vote, vote, vote_reply, Net};

fn members(ids: &[u64]) -> Vec<Member> {
    ids.iter()
        .map(|&id| Member {
            id,
            address: String::new(),
        })
        .collect()
}

/// A node with a list takes everything from its members, and from other nodes the
/// requests it judges itself (a leader or candidate its configuration does not name
/// yet); their replies are refused and counted on their link.
#[test]
fn a_node_refuses_non_members_replies_takes_their_requests_and_counts_the_refused() {
    let mut net = Net::new(3);
    // Before any list: anyone gets through.
    net.send(3, 2, vote_reply(1));
    assert_eq!(net.terms(2), vec![1]);

    net.nodes[1].0.set_members(&members(&[1]));
    net.send(3, 2, vote_reply(2)); // refused: 3 is not a member of 2's configuration
    net.send(3, 2, append_reply(3)); // refused too
    net.send(3, 2, vote(4)); // a request: the node decides
    net.send(3, 2, pre_vote(5));
    net.send(3, 2, heartbeat(6)); // a leader the configuration does not name yet
    net.send(1, 2, vote_reply(7)); // a member: delivered
    net.send(3, 1, vote_reply(8)); // 1 has no list: delivered
    assert_eq!(net.terms(2), vec![4, 5, 6, 7]);
    assert_eq!(net.terms(1), vec![8]);

    let refused = net.router.link_stats(3, 2);
    assert_eq!((refused.sent, refused.delivered), (6, 4));
    assert_eq!((refused.dropped, refused.dropped_refused), (2, 2));
    assert_eq!(net.router.link_stats(1, 2).dropped_refused, 0);
    assert_eq!(net.router.node_stats(2).inbound.dropped_refused, 2);
    assert_eq!(net.router.stats().dropped_refused, 2);

    // 2 does not send to 3 either, until it lists it (as a node lists the leader it
    // follows, member or not).
    let to_three = Envelope {
        from: 2,
        to: 3,
        message: append_reply(9),
    };
    assert!(matches!(
        net.nodes[1].0.send(to_three.clone()),
        Err(TransportError::UnknownPeer(3))
    ));
    assert!(net.terms(3).is_empty());

    // 3 is listed: both ways work again.
    net.nodes[1].0.set_members(&members(&[1, 3]));
    net.nodes[1].0.send(to_three).unwrap();
    net.send(3, 2, vote_reply(10));
    assert_eq!(net.terms(3), vec![9]);
    assert_eq!(net.terms(2), vec![10]);

    // An empty list means "no configuration known yet": anyone gets through.
    net.nodes[1].0.set_members(&[]);
    net.send(3, 2, vote_reply(11));
    assert_eq!(net.terms(2), vec![11]);
    assert_eq!(net.router.stats().dropped_refused, 2);
}

#[test]
fn a_list_set_before_start_applies_from_the_start_and_a_restart_starts_without() {
    let router = MemRouter::new();
    let one = router.transport(1);
    let two = router.transport(2);
    let three = router.transport(3);
    two.set_members(&members(&[1]));
    let (inbox, mut rx) = Inbox::channel();
    two.start(inbox).unwrap();
    for t in [&one, &three] {
        t.start(Inbox::from_fn(|_| true)).unwrap();
    }
    let send = |t: &actraft_transport_mem::MemTransport, from, term| {
        t.send(Envelope {
            from,
            to: 2,
            message: append_reply(term),
        })
        .unwrap();
    };
    send(&three, 3, 1);
    send(&one, 1, 2);
    assert_eq!(rx.try_recv().unwrap().message.term(), 2);
    assert!(rx.try_recv().is_err());
    assert_eq!(router.link_stats(3, 2).dropped_refused, 1);

    // A restarted node knows no configuration until it is told again.
    two.stop();
    drop(two);
    let fresh = router.transport(2);
    let (inbox, mut rx) = Inbox::channel();
    fresh.start(inbox).unwrap();
    send(&three, 3, 3);
    assert_eq!(rx.try_recv().unwrap().message.term(), 3);
}

/// A delayed message is judged again when it comes due, by the list in force then.
#[tokio::test(start_paused = true)]
async fn a_delayed_message_from_a_node_removed_meanwhile_is_refused() {
    let router = MemRouter::new();
    router.set_delay(Duration::from_millis(10), Duration::from_millis(10));
    let mut net = Net::on(router, 3);
    net.send(3, 2, vote_reply(1));
    net.send(1, 2, vote_reply(2));
    net.send(3, 2, heartbeat(3)); // a request: still delivered when it comes due
    net.nodes[1].0.set_members(&members(&[1]));
    let mut terms = vec![net.next(2).await.message.term()];
    terms.push(net.next(2).await.message.term());
    terms.sort_unstable();
    assert_eq!(terms, vec![2, 3]);
    net.settle().await;
    assert!(net.terms(2).is_empty());
    let link = net.router.link_stats(3, 2);
    assert_eq!((link.delayed, link.dropped_refused), (2, 1));
}
