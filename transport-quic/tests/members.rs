//! The QUIC transport follows the cluster's configuration: `add_peer`/`remove_peer`
//! give and take addresses at run time, `set_members` opens and closes peers and refuses
//! the replies of non-members (counted, reported as `QuicError::NotMember`), whose
//! requests still reach the node.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use actraft::core::{AppendRequest, Envelope, LogId, Message, NodeId, VoteReply};
use actraft::{Inbox, Member, Transport, TransportError};
use actraft_transport_quic::{ConfigError, DevCa, QuicConfig, QuicError, QuicTransport};
use common::{Layout, CLUSTER, RETRY, WAIT};
use tokio::sync::mpsc::Receiver;
use tokio::time::{timeout, Instant};

fn reply(term: u64) -> Message {
    Message::RequestVoteReply(VoteReply {
        term,
        granted: false,
    })
}

fn heartbeat(term: u64) -> Message {
    Message::AppendEntries(AppendRequest {
        term,
        prev_log: LogId::new(0, 0),
        entries: Vec::new(),
        leader_commit: 0,
        read_round: 0,
    })
}

fn member(id: NodeId, address: &str) -> Member {
    Member {
        id,
        address: address.to_string(),
    }
}

fn started(transport: &QuicTransport) -> Receiver<Envelope> {
    let (inbox, rx) = Inbox::channel();
    transport.start(inbox).unwrap();
    rx
}

/// Sends replies from `from` to `to` (terms from `tag` on) until one arrives in `rx`,
/// which must not see any reply from `banned.0` of term `banned.1` or later meanwhile.
async fn until_through(
    from: &QuicTransport,
    to: NodeId,
    rx: &mut Receiver<Envelope>,
    tag: u64,
    banned: Option<(NodeId, u64)>,
) {
    until_through_with(from, to, rx, tag, banned, reply).await;
}

/// [`until_through`] with the messages `make` gives for each term.
async fn until_through_with(
    from: &QuicTransport,
    to: NodeId,
    rx: &mut Receiver<Envelope>,
    tag: u64,
    banned: Option<(NodeId, u64)>,
    make: fn(u64) -> Message,
) {
    let deadline = Instant::now() + WAIT;
    for attempt in 0.. {
        assert!(
            Instant::now() < deadline,
            "{} -> {to}: nothing arrived",
            from.id()
        );
        from.send(Envelope {
            from: from.id(),
            to,
            message: make(tag + attempt),
        })
        .unwrap();
        let round = Instant::now() + RETRY;
        while let Ok(Some(got)) = tokio::time::timeout_at(round, rx.recv()).await {
            if let Some((node, term)) = banned {
                let late = got.from == node
                    && got.message.term() >= term
                    && !got.message.accepted_from_non_members();
                assert!(!late, "a non-member got through: {got:?}");
            }
            if got.from == from.id() && got.message.term() >= tag {
                return;
            }
        }
    }
}

#[tokio::test]
async fn peers_follow_add_peer_and_the_member_list() {
    common::init_tracing();
    let (mut layout, sockets) = Layout::bind(&[1, 2]);
    let mut transports = layout.transports(sockets).into_iter();
    let (_, one) = transports.next().unwrap();
    let (_, two) = transports.next().unwrap();
    let mut one_rx = started(&one);
    let mut two_rx = started(&two);
    let mut faults = one.subscribe_faults();

    // Node 3 joins: it knows 1 and 2, they do not know it.
    let (three, three_addr) = layout.join(3).unwrap();
    let mut three_rx = started(&three);
    assert_eq!(one.peers().keys().copied().collect::<Vec<_>>(), vec![2]);
    assert!(matches!(
        one.send(Envelope {
            from: 1,
            to: 3,
            message: reply(1)
        }),
        Err(TransportError::UnknownPeer(3))
    ));
    // No member list yet: 1 takes 3, whom the CA certified.
    until_through(&three, 1, &mut one_rx, 100, None).await;

    // The application gives 1 the new node's address; the configuration gives it to 2.
    let three_addr: SocketAddr = three_addr.parse().unwrap();
    one.add_peer(3, three_addr).unwrap();
    assert_eq!(one.peers().get(&3), Some(&three_addr));
    until_through(&one, 3, &mut three_rx, 200, None).await;
    one.set_members(&[member(2, ""), member(3, "")]);
    two.set_members(&[member(1, ""), member(3, &three_addr.to_string())]);
    three.set_members(&[member(1, ""), member(2, "")]);
    assert_eq!(one.members(), Some(BTreeSet::from([2, 3])));
    assert_eq!(two.peers().get(&3), Some(&three_addr));
    until_through(&two, 3, &mut three_rx, 300, None).await;
    until_through(&three, 2, &mut two_rx, 400, None).await;

    // 3 is removed from 1's and 2's configuration (3 has not heard yet).
    one.set_members(&[member(2, "")]);
    two.set_members(&[member(1, "")]);
    assert_eq!(one.peers().keys().copied().collect::<Vec<_>>(), vec![2]);
    assert!(!two.peers().contains_key(&3));
    for (from, t) in [(1, &one), (2, &two)] {
        let sent = t.send(Envelope {
            from,
            to: 3,
            message: reply(500),
        });
        assert!(
            matches!(sent, Err(TransportError::UnknownPeer(3))),
            "{sent:?}"
        );
    }
    // 3 keeps sending; 1 refuses it, counts it and reports it, and nothing gets through.
    let deadline = Instant::now() + WAIT;
    let mut term = 600;
    while one.stats().refused_non_member == 0 {
        assert!(
            Instant::now() < deadline,
            "1 never refused the removed node 3"
        );
        let _ = three.send(Envelope {
            from: 3,
            to: 1,
            message: reply(term),
        });
        term += 1;
        until_through(&two, 1, &mut one_rx, 10_000 + term * 10, Some((3, 600))).await;
    }
    let fault = loop {
        let fault = timeout(WAIT, faults.recv()).await.unwrap().unwrap();
        if matches!(*fault.error, QuicError::NotMember { .. }) {
            break fault;
        }
    };
    assert_eq!(fault.peer, Some(3));
    assert!(matches!(*fault.error, QuicError::NotMember { peer: 3 }));
    assert_eq!(one.stats().faults, 0, "a non-member is not a fault");

    // 3 is added back: it gets through again.
    one.set_members(&[member(2, ""), member(3, "")]);
    assert_eq!(one.peers().get(&3), Some(&three_addr));
    until_through(&three, 1, &mut one_rx, 100_000, None).await;
    until_through(&one, 3, &mut three_rx, 200_000, None).await;
}

/// A node the CA certified that the member list does not name (a leader whose
/// configuration this node lacks) keeps its connection: its requests reach the node,
/// its replies are refused, counted and reported. Once listed with no address, it is
/// reached at the address it connected from, whether it connected before the list named
/// it or after.
#[tokio::test]
async fn a_non_member_s_requests_get_through_and_it_is_answered_where_it_came_from() {
    common::init_tracing();
    let (mut layout, sockets) = Layout::bind(&[1, 2]);
    let (_, one) = layout.transports(sockets).into_iter().next().unwrap();
    let mut one_rx = started(&one);
    let mut faults = one.subscribe_faults();
    one.set_members(&[member(2, "")]);

    // Node 3 joins: it knows 1; 1 neither lists it nor knows its address.
    let (three, three_addr) = layout.join(3).unwrap();
    let three_addr: SocketAddr = three_addr.parse().unwrap();
    let mut three_rx = started(&three);
    until_through_with(&three, 1, &mut one_rx, 100, None, heartbeat).await;

    // A reply, then requests on the same stream: the reply is refused, the connection
    // stays and the requests behind it get through.
    three
        .send(Envelope {
            from: 3,
            to: 1,
            message: reply(200),
        })
        .unwrap();
    until_through_with(&three, 1, &mut one_rx, 300, Some((3, 200)), heartbeat).await;
    assert_eq!(one.stats().refused_non_member, 1);
    let fault = timeout(WAIT, faults.recv()).await.unwrap().unwrap();
    assert_eq!(fault.peer, Some(3));
    assert!(matches!(*fault.error, QuicError::NotMember { peer: 3 }));
    assert_eq!(one.stats().faults, 0, "a non-member is not a fault");
    assert_eq!(three.stats().connects, 1, "the connection stayed up");

    // 1 follows 3 as its leader: listed with no address, it is reached where it came
    // from, and its replies are taken.
    assert!(matches!(
        one.send(Envelope {
            from: 1,
            to: 3,
            message: reply(400)
        }),
        Err(TransportError::UnknownPeer(3))
    ));
    one.set_members(&[member(2, ""), member(3, "")]);
    assert_eq!(one.peers().get(&3), Some(&three_addr));
    until_through(&one, 3, &mut three_rx, 500, None).await;
    until_through(&three, 1, &mut one_rx, 600, None).await;

    // Listed before it ever connected: unreachable until it does, then reached.
    let (four, four_addr) = layout.join(4).unwrap();
    let four_addr: SocketAddr = four_addr.parse().unwrap();
    let mut four_rx = started(&four);
    one.set_members(&[member(2, ""), member(3, ""), member(4, "")]);
    assert!(!one.peers().contains_key(&4));
    assert!(matches!(
        one.send(Envelope {
            from: 1,
            to: 4,
            message: reply(700)
        }),
        Err(TransportError::UnknownPeer(4))
    ));
    until_through_with(&four, 1, &mut one_rx, 800, None, heartbeat).await;
    until_through(&one, 4, &mut four_rx, 900, None).await;
    assert_eq!(one.peers().get(&4), Some(&four_addr));
}

#[tokio::test]
async fn addresses_come_from_the_configuration_else_from_the_application() {
    common::init_tracing();
    let (layout, sockets) = Layout::bind(&[1, 2]);
    let (_, one) = layout.transports(sockets).into_iter().next().unwrap();
    let configured = layout.addrs[&2];
    let elsewhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let peers = |t: &QuicTransport| -> BTreeMap<NodeId, SocketAddr> { t.peers() };

    // Works before start too.
    assert_eq!(peers(&one), BTreeMap::from([(2, configured)]));
    assert_eq!(one.members(), None);
    // A member without an address anywhere is not a peer until one is given.
    one.set_members(&[member(2, ""), member(5, "")]);
    assert_eq!(peers(&one), BTreeMap::from([(2, configured)]));
    one.add_peer(5, elsewhere).unwrap();
    assert_eq!(
        peers(&one),
        BTreeMap::from([(2, configured), (5, elsewhere)])
    );
    // The configuration's address wins over the application's; a bad one falls back.
    one.set_members(&[
        member(2, &elsewhere.to_string()),
        member(5, "not an address"),
    ]);
    assert_eq!(
        peers(&one),
        BTreeMap::from([(2, elsewhere), (5, elsewhere)])
    );
    // An address the application forgets is gone unless the configuration has one.
    assert!(one.remove_peer(5));
    assert!(!one.remove_peer(5));
    assert!(one.remove_peer(2));
    assert_eq!(peers(&one), BTreeMap::from([(2, elsewhere)]));
    // An empty list: back to the application's addresses, anyone certified is taken.
    one.set_members(&[]);
    assert_eq!(one.members(), None);
    assert_eq!(peers(&one), BTreeMap::new());
    one.add_peer(2, configured).unwrap();
    assert_eq!(peers(&one), BTreeMap::from([(2, configured)]));
    // The local node is never its own peer.
    assert!(matches!(
        one.add_peer(1, elsewhere),
        Err(ConfigError::SelfAsPeer { id: 1 })
    ));
    one.set_members(&[member(1, ""), member(2, "")]);
    assert_eq!(one.members(), Some(BTreeSet::from([2])));
}

/// The development CA flow for a node added later: the CA is saved when the cluster is
/// certified, loaded again to certify the new node; the running nodes accept it both
/// ways (it dials them, and they dial it once they have its address).
#[tokio::test]
async fn a_node_certified_later_by_the_saved_ca_is_accepted() {
    common::init_tracing();
    let (layout, sockets) = Layout::bind(&[1, 2]);
    let (_, one) = layout.transports(sockets).into_iter().next().unwrap();
    let mut one_rx = started(&one);
    let dir = tempfile::tempdir().unwrap();
    layout.ca.save(dir.path()).unwrap();

    let ca = DevCa::load(dir.path(), CLUSTER).unwrap();
    let socket = common::loopback_socket();
    let addr = socket.local_addr().unwrap();
    let peers = BTreeMap::from([(1, one.local_addr())]);
    let config = QuicConfig::new(3, CLUSTER, addr, peers, ca.issue(3).unwrap());
    let three = QuicTransport::with_socket(config, socket).unwrap();
    let mut three_rx = started(&three);

    until_through(&three, 1, &mut one_rx, 100, None).await;
    one.add_peer(3, addr).unwrap();
    until_through(&one, 3, &mut three_rx, 200, None).await;
    assert_eq!(one.stats().faults, 0);
    assert_eq!(three.stats().faults, 0);
}

/// Messages handed over before a peer leaves the member list still reach it (the node
/// sends a removed node the heartbeat that tells it its removal is final, then drops it
/// from the list): the writers drain the queue before the connection closes. Later
/// sends to it fail at once.
#[tokio::test]
async fn messages_queued_before_a_peer_leaves_the_list_still_reach_it() {
    common::init_tracing();
    let (layout, sockets) = Layout::bind(&[1, 2]);
    let mut transports = layout.transports(sockets).into_iter();
    let (_, one) = transports.next().unwrap();
    let (_, two) = transports.next().unwrap();
    let _one_rx = started(&one);
    let mut two_rx = started(&two);
    one.set_members(&[member(2, ""), member(3, "")]);
    two.set_members(&[member(1, "")]);

    // Queued before the connection is even up, then 2 leaves 1's list at once.
    for term in 1..=20 {
        one.send(Envelope {
            from: 1,
            to: 2,
            message: reply(term),
        })
        .unwrap();
    }
    one.set_members(&[member(3, "")]);
    assert!(!one.peers().contains_key(&2));
    assert!(matches!(
        one.send(Envelope {
            from: 1,
            to: 2,
            message: reply(21)
        }),
        Err(TransportError::UnknownPeer(2))
    ));
    for term in 1..=20 {
        let got = timeout(WAIT, two_rx.recv()).await.unwrap().unwrap();
        assert_eq!((got.from, got.message.term()), (1, term));
    }
}
