//! QUIC transport for actraft: Raft between machines over quinn, with mutual TLS.
//!
//! - **One endpoint per node.** A [`QuicTransport`] binds one UDP socket that accepts
//!   peers' connections and dials its own. Each peer gets one outbound connection,
//!   reused and redialled with backoff when it breaks.
//! - **Two streams per connection.** Votes, replies and heartbeats go on an urgent
//!   stream, AppendEntries with entries on a bulk stream of lower priority, so a
//!   heartbeat never waits behind a megabyte of entries. Order is kept within a stream.
//! - **Large payloads cost little.** A writer takes every message queued for its stream
//!   and writes them in one vectored write; commands and snapshot chunks of 1 KiB and
//!   more go out as the very buffers the node holds, not copied into the frame, and a
//!   follower reads an AppendEntries without an allocation per command. The connection's
//!   flow-control windows ([`QuicConfig::flow`], [`FlowControl`]) are sized for a LAN,
//!   so a busy follower's late window update does not hold back a leader.
//! - **Never blocks.** `send` puts the message in the peer's bounded queue, or drops it
//!   when the queue is full (the peer is slow or unreachable): Raft retries.
//! - **Mutual TLS** (rustls with *ring*). A node presents a certificate signed by the
//!   cluster's CA naming `node-<id>.<cluster>`; it accepts a server only if its
//!   certificate names the node it dialled, and a client only if its certificate names
//!   one node of the cluster (whose every message must then come from that node). A
//!   connection without a valid client certificate fails the handshake.
//! - **Hostile input.** A frame over `max_frame_size`, an undecodable frame, a sender
//!   that is not the one its certificate names, another cluster's hello: the connection
//!   is closed with a [`CloseCode`], the error ([`QuicError`]) is logged and reported to
//!   [`QuicTransport::subscribe_faults`], and the node keeps serving its other peers.
//!
//! - **Follows the membership.** The peers are first the ones [`QuicConfig::peers`]
//!   names. [`set_members`](actraft::Transport::set_members) (which the node calls with
//!   its configuration, plus the removed nodes a leader still owes a last heartbeat, or
//!   on a follower the leader it follows when its configuration does not name it yet)
//!   makes them the listed nodes: new ones are connected to, removed ones forgotten
//!   (queues, metrics) and closed once what was queued for them went out. What an
//!   unlisted node sends is judged message by message: its requests (AppendEntries,
//!   InstallSnapshot, TimeoutNow, RequestVote, PreVote) reach the node, which decides on
//!   them as Raft §6 says (a leader added while this node was cut off must be heard, or
//!   this node never catches up), and its replies and reads are refused
//!   ([`QuicError::NotMember`], counted in [`QuicStats::refused_non_member`]) on a
//!   connection that stays open. Before a node knows a configuration, any node the
//!   cluster's CA certified is taken whole, so a new node can join.
//!
//! `DevCa` (with the `dev-certs` feature) generates a development CA and node
//! certificates for tests and demos; production deployments load their own PEM files
//! with [`TlsIdentity::from_pem_files`].
//!
//! # Adding a node
//!
//! 1. **Certify it** with the cluster's CA: a certificate naming `node-<id>.<cluster>`
//!    ([`node_name`]). The nodes trust the CA, so the running ones accept the new
//!    certificate as they are. With the development CA, keep it (`DevCa::save`,
//!    `DevCa::load`) to issue certificates later.
//! 2. **Start it** with the current members as its [`QuicConfig::peers`], so it can
//!    answer the leader (it knows no configuration yet).
//! 3. **Give the others its address**: the membership change records it (a
//!    [`Member`](actraft::Member)'s address, `"10.0.0.4:7000"`, reaches every node
//!    through `set_members`), or the application calls [`QuicTransport::add_peer`] on
//!    each node. An address in the configuration wins, then the application's; a
//!    member with neither is reached at the address it last connected from (the
//!    endpoint it listens on), and is unreachable (logged once) until it connects or
//!    an address is given. A node that missed the change and must answer the new node
//!    as its leader finds it this way.
//!
//! Removing a node needs nothing more: once the configuration leaves it out, the others
//! close their connections to it and refuse its replies (its requests still reach them:
//! Raft's Pre-Vote and leader lease keep a removed node from disrupting anyone).
//! [`QuicTransport::remove_peer`] forgets an address the application gave.
//!
//! # The wire format
//!
//! What goes on a stream is defined by the [`wire`] module, apart from the core's own
//! structs, and versioned: every stream opens with a hello naming its protocol version,
//! and a peer of an unsupported version is refused with [`QuicError::Version`]. Golden
//! bytes of every message kind are checked in (`tests/golden/`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use actraft::{Inbox, Transport};
//! use actraft_transport_quic::{DevCa, QuicConfig, QuicTransport, TlsIdentity};
//!
//! // Development: certificates from a throw-away CA.
//! let ca = DevCa::new("kv")?;
//! let peers = BTreeMap::from([(2, "10.0.0.2:7000".parse()?), (3, "10.0.0.3:7000".parse()?)]);
//! let config = QuicConfig::new(1, "kv", "0.0.0.0:7000".parse()?, peers.clone(), ca.issue(1)?);
//!
//! // Production: your own PEM files.
//! let tls = TlsIdentity::from_pem_files("ca.pem".as_ref(), "node-1.pem".as_ref(), "node-1.key".as_ref())?;
//! let config = QuicConfig::new(1, "kv", "0.0.0.0:7000".parse()?, peers, tls);
//!
//! let transport = QuicTransport::new(config)?;
//! let (inbox, mut received) = Inbox::channel();
//! transport.start(inbox)?; // within a tokio runtime; a node does this itself
//! # Ok(()) }
//! ```
//!
//! # Cost compared with the in-memory transport
//!
//! On a 2-core machine, 3 nodes on 3 arbiters in one process over loopback (so the
//! numbers show the transport's overhead, not a network's), 64-byte commands, medians of
//! five runs of each, the two transports in turn:
//!
//! | | in-memory | QUIC |
//! |---|---|---|
//! | append throughput, 32 clients | 336 k/s (p50 86 µs) | 218 k/s (p50 138 µs) |
//! | append throughput, 256 clients | 1.24 M/s (p50 183 µs) | 0.68 M/s (p50 353 µs) |
//! | election after a leader crash, p50 / p90 / p99 | 182 / 241 / 290 ms | 177 / 234 / 277 ms |
//! | elections needing a second round | 0.5 % | 1 % |
//!
//! Machines of the same class differ, and one machine from run to run: compare the two
//! transports within one run, not figures across machines. With small commands a commit
//! over QUIC costs about one QUIC round trip more than in memory (the benchmarks' report
//! prints the raw round trip beside it); with large ones (4 KiB, 256 clients), the
//! transport moves 58-63 % of what raw quinn moves on the same loopback.
//!
//! Election latency is set by the election timeout (150-300 ms, floor 181 ms); QUIC's
//! longer round trip (a few tenths of a millisecond for a vote) widens the window
//! in which two candidates start together and split the vote. Measured with the
//! `actraft-benches` binaries (`election -- --nodes 3 --trials 200 --transport mem|quic`,
//! `throughput -- --members 3 --clients 32|256 --ops 200000|1000000 --payload 64
//! --transport mem|quic`) and the demo (`cargo run --release --example demo -- --nodes 3
//! --writes 20000 --transport quic`).
#![warn(missing_docs)]

mod certs;
pub mod codec;
mod config;
#[cfg(feature = "dev-certs")]
mod dev_ca;
mod error;
pub mod frame;
mod inbound;
mod metrics;
mod outbound;
mod peers;
mod socket;
mod tls;
mod transport;
pub mod wire;

pub use certs::{client_name, node_name, CertFiles, TlsIdentity};
pub use config::{ConfigError, FlowControl, QuicConfig};
#[cfg(feature = "dev-certs")]
pub use dev_ca::{DevCa, DevCertError};
pub use error::{CloseCode, PeerFault, QuicError};
pub use socket::size_socket_buffers;
pub use tls::ALPN;
pub use transport::{QuicStats, QuicTransport};
