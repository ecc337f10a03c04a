//! Hostile and broken peers: every bad input closes that one connection with a typed,
//! reported error; the node keeps serving its other peers and nothing bad reaches its
//! inbox.

mod common;

use std::net::UdpSocket;

use actraft::core::{Envelope, Message, NodeId, VoteReply};
use actraft::{Inbox, Transport};
use actraft_transport_quic::frame::to_wire;
use actraft_transport_quic::wire::{Frame, Hello, PROTOCOL_VERSION, SUPPORTED_VERSIONS};
use actraft_transport_quic::{node_name, CloseCode, DevCa, PeerFault, QuicError, QuicTransport};
use common::{raw, Layout, CLUSTER, WAIT};
use quinn::{ConnectionError, VarInt};
use tokio::sync::{broadcast, mpsc::Receiver};
use tokio::time::timeout;

const MAX_FRAME: usize = 64 << 10;

/// Node 1 under test, node 3 a well-behaved peer, node 2's identity for the raw client.
struct Bench {
    layout: Layout,
    one: QuicTransport,
    one_rx: Receiver<Envelope>,
    faults: broadcast::Receiver<PeerFault>,
    three: QuicTransport,
    _two_socket: UdpSocket,
    marker: u64,
}

impl Bench {
    fn start() -> Self {
        common::init_tracing();
        let (layout, mut sockets) = Layout::bind(&[1, 2, 3]);
        let mut config = layout.config(1);
        config.max_frame_size = MAX_FRAME;
        let one = QuicTransport::with_socket(config, sockets.remove(&1).unwrap()).unwrap();
        let three =
            QuicTransport::with_socket(layout.config(3), sockets.remove(&3).unwrap()).unwrap();
        let faults = one.subscribe_faults();
        let (inbox, one_rx) = Inbox::channel();
        one.start(inbox).unwrap();
        three.start(Inbox::from_fn(|_| true)).unwrap();
        Self {
            layout,
            one,
            one_rx,
            faults,
            three,
            _two_socket: sockets.remove(&2).unwrap(),
            marker: 1_000,
        }
    }

    fn hello(&self, cluster: &str, from: NodeId) -> Vec<u8> {
        Self::hello_of_version(PROTOCOL_VERSION, cluster, from)
    }

    fn hello_of_version(version: u16, cluster: &str, from: NodeId) -> Vec<u8> {
        to_wire(&Frame::Hello(Hello {
            version,
            cluster: cluster.into(),
            from,
            instance: 42,
        }))
        .unwrap()
    }

    fn message(from: NodeId, to: NodeId) -> Vec<u8> {
        to_wire(&Frame::Message(
            Envelope {
                from,
                to,
                message: reply(7),
            }
            .into(),
        ))
        .unwrap()
    }

    /// Connects as node 2 (valid certificate), writes `bytes` on a stream, and returns
    /// the close code node 1 answered with, and the fault it reported.
    async fn as_two(&mut self, bytes: &[u8]) -> (Option<CloseCode>, PeerFault) {
        let identity = self.layout.ca.issue(2).unwrap();
        let (_endpoint, connection) = raw::connect(
            self.one.local_addr(),
            &node_name(CLUSTER, 1),
            self.layout.ca.cert_der(),
            Some(&identity),
        )
        .await
        .expect("a valid certificate is accepted");
        let mut stream = connection.open_uni().await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let closed = timeout(WAIT, connection.closed())
            .await
            .expect("closed in time");
        let fault = self.next_fault().await;
        (close_code(&closed), fault)
    }

    async fn next_fault(&mut self) -> PeerFault {
        timeout(WAIT, self.faults.recv())
            .await
            .expect("a fault in time")
            .expect("fault channel open")
    }

    /// Node 3 can still talk to node 1, and nothing else reached node 1's inbox.
    async fn still_serving(&mut self) {
        self.marker += 1;
        let marker = Envelope {
            from: 3,
            to: 1,
            message: reply(self.marker),
        };
        self.three.send(marker.clone()).unwrap();
        let got = timeout(WAIT, self.one_rx.recv())
            .await
            .expect("node 3's message in time")
            .unwrap();
        assert_eq!(got, marker, "only node 3's message may reach node 1");
    }
}

fn reply(term: u64) -> Message {
    Message::RequestVoteReply(VoteReply {
        term,
        granted: true,
    })
}

fn close_code(error: &ConnectionError) -> Option<CloseCode> {
    match error {
        ConnectionError::ApplicationClosed(close) => CloseCode::from_var_int(close.error_code),
        _ => None,
    }
}

/// A handshake the server refuses: the connection either never completes or, since TLS
/// 1.3 lets the client finish first, is closed by the server's TLS layer right after
/// (not by the application).
async fn refused_by_tls(result: Result<(quinn::Endpoint, quinn::Connection), ConnectionError>) {
    if let Ok((_e, connection)) = result {
        let closed = timeout(WAIT, connection.closed()).await.unwrap();
        assert!(
            !matches!(closed, ConnectionError::ApplicationClosed(_)),
            "{closed:?}"
        );
    }
}

#[tokio::test]
async fn oversized_frame_closes_the_connection() {
    let mut b = Bench::start();
    let mut bytes = b.hello(CLUSTER, 2);
    bytes.extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
    let (code, fault) = b.as_two(&bytes).await;
    assert_eq!(code, Some(CloseCode::FrameTooLarge));
    assert!(
        matches!(*fault.error, QuicError::FrameTooLarge { len, max } if len == MAX_FRAME as u64 + 1 && max == MAX_FRAME),
        "{fault:?}"
    );
    assert_eq!(fault.peer, Some(2));
    b.still_serving().await;
}

#[tokio::test]
async fn undecodable_frame_closes_the_connection() {
    let mut b = Bench::start();
    let mut bytes = b.hello(CLUSTER, 2);
    bytes.extend_from_slice(&[0, 0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]);
    let (code, fault) = b.as_two(&bytes).await;
    assert_eq!(code, Some(CloseCode::Undecodable));
    assert!(matches!(*fault.error, QuicError::Codec(_)), "{fault:?}");
    b.still_serving().await;

    // Garbage from the very first byte, too.
    let (code, _) = b.as_two(&[0, 0, 0, 3, 1, 2, 3]).await;
    assert_eq!(code, Some(CloseCode::Undecodable));
    b.still_serving().await;
}

#[tokio::test]
async fn sender_other_than_the_certificate_closes_the_connection() {
    let mut b = Bench::start();
    // The hello claims node 3 with node 2's certificate.
    let (code, fault) = b.as_two(&b.hello(CLUSTER, 3)).await;
    assert_eq!(code, Some(CloseCode::SenderMismatch));
    assert!(
        matches!(
            *fault.error,
            QuicError::SenderMismatch {
                certified: 2,
                claimed: 3
            }
        ),
        "{fault:?}"
    );
    b.still_serving().await;

    // A correct hello, then a message claiming to come from node 3.
    let mut bytes = b.hello(CLUSTER, 2);
    bytes.extend(Bench::message(3, 1));
    let (code, _) = b.as_two(&bytes).await;
    assert_eq!(code, Some(CloseCode::SenderMismatch));
    b.still_serving().await;
}

#[tokio::test]
async fn other_cluster_closes_the_connection() {
    let mut b = Bench::start();
    let mut bytes = b.hello("elsewhere", 2);
    bytes.extend(Bench::message(2, 1));
    let (code, fault) = b.as_two(&bytes).await;
    assert_eq!(code, Some(CloseCode::ClusterMismatch));
    assert!(
        matches!(&*fault.error, QuicError::ClusterMismatch { expected, got } if expected == CLUSTER && got == "elsewhere"),
        "{fault:?}"
    );
    b.still_serving().await;
}

#[tokio::test]
async fn unsupported_version_closes_the_connection() {
    let mut b = Bench::start();
    let unsupported = (0..=u16::MAX)
        .rev()
        .find(|v| !SUPPORTED_VERSIONS.contains(v))
        .unwrap();
    let mut bytes = Bench::hello_of_version(unsupported, CLUSTER, 2);
    bytes.extend(Bench::message(2, 1));
    let (code, fault) = b.as_two(&bytes).await;
    assert_eq!(code, Some(CloseCode::Version));
    assert!(
        matches!(*fault.error, QuicError::Version { supported, got } if supported == SUPPORTED_VERSIONS && got == unsupported),
        "{fault:?}"
    );
    assert_eq!(fault.peer, Some(2));
    b.still_serving().await;

    // A hello laid out differently after its version (as a later version's may be) is
    // still refused as a version mismatch, not as garbage.
    let mut hello = Bench::hello_of_version(unsupported, CLUSTER, 2)[4..].to_vec();
    hello.extend_from_slice(b"fields this version does not know");
    let mut bytes = (hello.len() as u32).to_be_bytes().to_vec();
    bytes.extend(hello);
    let (code, fault) = b.as_two(&bytes).await;
    assert_eq!(code, Some(CloseCode::Version));
    assert!(
        matches!(*fault.error, QuicError::Version { got, .. } if got == unsupported),
        "{fault:?}"
    );
    b.still_serving().await;
}

#[tokio::test]
async fn protocol_violations_close_the_connection() {
    let mut b = Bench::start();
    // A message before any hello.
    let (code, _) = b.as_two(&Bench::message(2, 1)).await;
    assert_eq!(code, Some(CloseCode::Protocol));
    b.still_serving().await;

    // A message for another node.
    let mut bytes = b.hello(CLUSTER, 2);
    bytes.extend(Bench::message(2, 3));
    let (code, fault) = b.as_two(&bytes).await;
    assert_eq!(code, Some(CloseCode::WrongRecipient));
    assert!(
        matches!(*fault.error, QuicError::WrongRecipient { local: 1, to: 3 }),
        "{fault:?}"
    );
    b.still_serving().await;

    // A valid message does get through the raw client, which shows the checks above
    // are what stopped the others.
    let mut bytes = b.hello(CLUSTER, 2);
    bytes.extend(Bench::message(2, 1));
    let identity = b.layout.ca.issue(2).unwrap();
    let (_e, connection) = raw::connect(
        b.one.local_addr(),
        &node_name(CLUSTER, 1),
        b.layout.ca.cert_der(),
        Some(&identity),
    )
    .await
    .unwrap();
    let mut stream = connection.open_uni().await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let got = timeout(WAIT, b.one_rx.recv()).await.unwrap().unwrap();
    assert_eq!((got.from, got.to, got.message), (2, 1, reply(7)));
    connection.close(VarInt::from_u32(0), b"done");
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let mut b = Bench::start();
    let result = raw::connect(
        b.one.local_addr(),
        &node_name(CLUSTER, 1),
        b.layout.ca.cert_der(),
        None,
    )
    .await;
    refused_by_tls(result).await;
    let fault = b.next_fault().await;
    assert!(
        matches!(*fault.error, QuicError::Handshake { .. }),
        "{fault:?}"
    );
    assert_eq!(fault.peer, None);
    b.still_serving().await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let mut b = Bench::start();
    let rogue = DevCa::new(CLUSTER).unwrap().issue(2).unwrap();
    let result = raw::connect(
        b.one.local_addr(),
        &node_name(CLUSTER, 1),
        b.layout.ca.cert_der(),
        Some(&rogue),
    )
    .await;
    refused_by_tls(result).await;
    // The rogue CA has the same name as the real one, so rustls finds the "issuer" and
    // then the signature fails: BadSignature (UnknownIssuer for a CA of another name).
    let fault = b.next_fault().await;
    assert!(
        matches!(&*fault.error, QuicError::Handshake { reason, .. } if reason.contains("invalid peer certificate")),
        "{fault:?}"
    );
    b.still_serving().await;
}

#[tokio::test]
async fn certificate_naming_no_peer_is_refused() {
    let mut b = Bench::start();
    for names in [
        vec!["client-9.test".to_string()],                     // not a node
        vec!["node-1.test".to_string()],                       // the node itself
        vec!["node-09.test".to_string()],                      // not canonical
        vec!["node-2.elsewhere".to_string()],                  // another cluster
        vec!["node-2.test".into(), "node-3.test".to_string()], // ambiguous
        vec!["*.test".to_string()],                            // wildcard
    ] {
        let identity = b.layout.ca.issue_for_names(names.clone()).unwrap();
        let (_e, connection) = raw::connect(
            b.one.local_addr(),
            &node_name(CLUSTER, 1),
            b.layout.ca.cert_der(),
            Some(&identity),
        )
        .await
        .unwrap();
        let closed = timeout(WAIT, connection.closed()).await.unwrap();
        assert_eq!(
            close_code(&closed),
            Some(CloseCode::UnknownPeer),
            "{names:?}"
        );
        let fault = b.next_fault().await;
        assert!(
            matches!(*fault.error, QuicError::UnknownPeerCertificate { .. }),
            "{names:?}: {fault:?}"
        );
        b.still_serving().await;
    }
}

/// A whole node whose certificate comes from another CA (same cluster name, same ids):
/// neither side accepts the other, both keep running.
#[tokio::test]
async fn peer_with_certificate_from_another_ca_is_refused_both_ways() {
    common::init_tracing();
    let (layout, mut sockets) = Layout::bind(&[1, 2]);
    let rogue_ca = DevCa::new(CLUSTER).unwrap();
    let mut rogue_config = layout.config(2);
    rogue_config.tls = rogue_ca.issue(2).unwrap();
    let one = QuicTransport::with_socket(layout.config(1), sockets.remove(&1).unwrap()).unwrap();
    let rogue = QuicTransport::with_socket(rogue_config, sockets.remove(&2).unwrap()).unwrap();
    let (mut one_faults, mut rogue_faults) = (one.subscribe_faults(), rogue.subscribe_faults());
    let (inbox, mut one_rx) = Inbox::channel();
    one.start(inbox).unwrap();
    let (inbox, mut rogue_rx) = Inbox::channel();
    rogue.start(inbox).unwrap();
    for (from, to, transport) in [(1, 2, &one), (2, 1, &rogue)] {
        let envelope = Envelope {
            from,
            to,
            message: reply(1),
        };
        transport.send(envelope).unwrap();
    }
    // Each side refuses the other's dial (both dial eagerly at start).
    for faults in [&mut one_faults, &mut rogue_faults] {
        let fault = timeout(WAIT, faults.recv()).await.unwrap().unwrap();
        assert!(
            matches!(*fault.error, QuicError::Handshake { .. }),
            "{fault:?}"
        );
    }
    assert!(one_rx.try_recv().is_err());
    assert!(rogue_rx.try_recv().is_err());
    assert_eq!(one.stats().connects + rogue.stats().connects, 0);
    assert_eq!(one.stats().delivered + rogue.stats().delivered, 0);
}
