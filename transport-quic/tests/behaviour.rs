//! What the transport promises beyond the conformance suite: order per stream, urgent
//! messages overtaking large ones, bounded queues for an unreachable peer, and clear
//! errors for a bad configuration or a start outside a runtime.

mod common;

use std::time::Instant;

use actraft::core::{AppendRequest, Entry, Envelope, LogId, Message, Payload, VoteReply};
use actraft::{Inbox, Transport, TransportError};
use actraft_transport_quic::{ConfigError, QuicConfig, QuicError, QuicTransport};
use bytes::Bytes;
use common::{Layout, WAIT};
use tokio::time::timeout;

fn reply(term: u64) -> Message {
    Message::RequestVoteReply(VoteReply {
        term,
        granted: false,
    })
}

fn big_append(term: u64, entries: u64) -> Message {
    Message::AppendEntries(AppendRequest {
        term,
        prev_log: LogId::default(),
        entries: (1..=entries)
            .map(|index| Entry {
                term,
                index,
                payload: Payload::Command(Bytes::from(vec![index as u8; 1 << 20])),
            })
            .collect(),
        leader_commit: 0,
        read_round: 0,
    })
}

/// Nodes 1 and 2, both started; node 2's inbound messages arrive on the channel.
fn started_pair() -> (
    QuicTransport,
    QuicTransport,
    tokio::sync::mpsc::Receiver<Envelope>,
) {
    let (layout, sockets) = Layout::bind(&[1, 2]);
    let mut transports = layout.transports(sockets).into_iter();
    let (_, one) = transports.next().unwrap();
    let (_, two) = transports.next().unwrap();
    one.start(Inbox::from_fn(|_| true)).unwrap();
    let (inbox, rx) = Inbox::channel();
    two.start(inbox).unwrap();
    (one, two, rx)
}

#[tokio::test]
async fn messages_of_one_stream_keep_their_order() {
    common::init_tracing();
    let (one, _two, mut rx) = started_pair();
    for term in 0..1000 {
        one.send(Envelope {
            from: 1,
            to: 2,
            message: reply(term),
        })
        .unwrap();
    }
    for term in 0..1000 {
        let got = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(got.message, reply(term));
    }
}

#[tokio::test]
async fn a_heartbeat_overtakes_a_large_append() {
    common::init_tracing();
    let (one, _two, mut rx) = started_pair();
    // Warm the connection up, so both streams exist.
    for message in [reply(1), big_append(1, 1)] {
        one.send(Envelope {
            from: 1,
            to: 2,
            message,
        })
        .unwrap();
    }
    for _ in 0..2 {
        timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    }
    // 16 MiB of entries, then a heartbeat: the heartbeat arrives first.
    let heartbeat = Message::AppendEntries(AppendRequest {
        term: 3,
        prev_log: LogId::default(),
        entries: Vec::new(),
        leader_commit: 0,
        read_round: 0,
    });
    assert!(heartbeat.is_urgent());
    for message in [big_append(2, 16), heartbeat.clone()] {
        one.send(Envelope {
            from: 1,
            to: 2,
            message,
        })
        .unwrap();
    }
    let first = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(
        first.message, heartbeat,
        "the heartbeat waited behind the append"
    );
    let second = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(second.message.term(), 2);
}

#[tokio::test]
async fn an_unreachable_peer_costs_a_bounded_queue_and_never_blocks() {
    common::init_tracing();
    // Node 2's socket is bound but nobody serves it: dials to it never complete.
    let (layout, mut sockets) = Layout::bind(&[1, 2]);
    let mut config = layout.config(1);
    config.urgent_queue = 8;
    let one = QuicTransport::with_socket(config, sockets.remove(&1).unwrap()).unwrap();
    one.start(Inbox::from_fn(|_| true)).unwrap();
    let started = Instant::now();
    for term in 0..10_000 {
        one.send(Envelope {
            from: 1,
            to: 2,
            message: reply(term),
        })
        .unwrap();
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let stats = one.stats();
    assert!(stats.dropped_full >= 10_000 - 8 - 1, "{stats:?}");
    assert_eq!(stats.sent, 0);

    // Sends to strangers and after stop fail cleanly.
    let stranger = Envelope {
        from: 1,
        to: 7,
        message: reply(0),
    };
    assert!(matches!(
        one.send(stranger),
        Err(TransportError::UnknownPeer(7))
    ));
    one.stop();
    let late = Envelope {
        from: 1,
        to: 2,
        message: reply(0),
    };
    assert!(matches!(one.send(late), Err(TransportError::NotRunning)));
}

#[test]
fn start_outside_a_runtime_is_a_start_error() {
    let (layout, mut sockets) = Layout::bind(&[1, 2]);
    let one = QuicTransport::with_socket(layout.config(1), sockets.remove(&1).unwrap()).unwrap();
    let error = one.start(Inbox::from_fn(|_| true)).unwrap_err();
    let TransportError::Start(source) = &error else {
        panic!("expected a start error, got {error:?}");
    };
    assert!(
        matches!(source.downcast_ref(), Some(QuicError::NoRuntime)),
        "{error:?}"
    );
    assert!(error.is_fatal());
}

/// The kernel's cap on a socket's receive buffer.
#[cfg(target_os = "linux")]
fn rmem_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .expect("net.core.rmem_max")
        .trim()
        .parse()
        .expect("a number")
}

#[cfg(target_os = "linux")]
#[test]
fn the_socket_buffers_are_sized_as_configured() {
    let (layout, mut sockets) = Layout::bind(&[1, 2]);
    let recv = |s: &std::net::UdpSocket| socket2::SockRef::from(s).recv_buffer_size().unwrap();

    // The default asks for DEFAULT_SOCKET_BUFFER; the kernel grants up to its cap.
    let socket = sockets.remove(&1).unwrap();
    let probe = socket.try_clone().unwrap();
    let before = recv(&probe);
    let config = layout.config(1);
    assert_eq!(config.socket_buffer, QuicConfig::DEFAULT_SOCKET_BUFFER);
    let _one = QuicTransport::with_socket(config, socket).unwrap();
    let granted = recv(&probe);
    let expected = QuicConfig::DEFAULT_SOCKET_BUFFER.min(rmem_max());
    assert!(
        granted >= expected && granted > before,
        "asked for {} (cap {}), had {before}, got {granted}",
        QuicConfig::DEFAULT_SOCKET_BUFFER,
        rmem_max()
    );

    // 0 leaves the system's default.
    let socket = sockets.remove(&2).unwrap();
    let probe = socket.try_clone().unwrap();
    let before = recv(&probe);
    let mut config = layout.config(2);
    config.socket_buffer = 0;
    let _two = QuicTransport::with_socket(config, socket).unwrap();
    assert_eq!(recv(&probe), before);
}

#[test]
fn bad_configurations_are_refused() {
    let (layout, _sockets) = Layout::bind(&[1, 2]);
    let check = |edit: &dyn Fn(&mut actraft_transport_quic::QuicConfig)| {
        let mut config = layout.config(1);
        config.listen = "127.0.0.1:0".parse().unwrap();
        edit(&mut config);
        match QuicTransport::new(config) {
            Err(e @ QuicError::Config(_)) => {
                assert!(e.is_fatal());
                let QuicError::Config(error) = e else {
                    unreachable!()
                };
                error
            }
            other => panic!("expected a configuration error, got {other:?}"),
        }
    };
    assert_eq!(
        check(&|c| c.cluster = "two words".into()),
        ConfigError::ClusterName {
            name: "two words".into()
        }
    );
    assert_eq!(
        check(&|c| c.cluster = String::new()),
        ConfigError::ClusterName { name: "".into() }
    );
    assert_eq!(
        check(&|c| {
            c.peers.insert(1, "127.0.0.1:1".parse().unwrap());
        }),
        ConfigError::SelfAsPeer { id: 1 }
    );
    assert_eq!(
        check(&|c| c.max_frame_size = 10),
        ConfigError::MaxFrameSize { max_frame_size: 10 }
    );
    assert_eq!(check(&|c| c.urgent_queue = 0), ConfigError::ZeroQueue);
    assert!(matches!(
        check(&|c| c.keep_alive = c.idle_timeout),
        ConfigError::KeepAlive { .. }
    ));
    assert!(matches!(
        check(&|c| c.idle_timeout = std::time::Duration::MAX),
        ConfigError::IdleTimeout { .. }
    ));
    assert!(matches!(
        check(&|c| c.flow.stream_receive_window = 0),
        ConfigError::FlowControl { .. }
    ));
    assert!(matches!(
        check(&|c| c.flow.receive_window = c.flow.stream_receive_window - 1),
        ConfigError::FlowControl { .. }
    ));
    assert!(matches!(
        check(&|c| c.flow.send_window = 0),
        ConfigError::FlowControl { .. }
    ));

    // A port already taken is a bind error naming the address.
    let taken = layout.addrs[&2];
    let mut config = layout.config(1);
    config.listen = taken;
    assert!(matches!(
        QuicTransport::new(config),
        Err(QuicError::Bind { addr, .. }) if addr == taken
    ));
}
