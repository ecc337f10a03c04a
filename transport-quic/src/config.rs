//! Configuration of a [`QuicTransport`](crate::QuicTransport).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use actraft::core::NodeId;

use thiserror::Error;

use crate::certs::{node_name, TlsIdentity};

/// Everything a QUIC transport needs: who this node is, where it and its peers listen,
/// its certificates, and limits. [`QuicConfig::new`] fills the limits with defaults
/// suited to a LAN; adjust fields after.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// This node.
    pub id: NodeId,
    /// The cluster's name. It is part of every certificate's name
    /// (`node-<id>.<cluster>`) and of every stream's hello, so nodes of two clusters
    /// sharing a CA still refuse each other. Letters, digits and `-` only.
    pub cluster: String,
    /// The UDP address to bind: the node accepts and dials from this one socket.
    pub listen: SocketAddr,
    /// Where each peer listens: the peers until the node learns its cluster's
    /// configuration, and the addresses used for members the configuration gives none.
    /// [`QuicTransport::add_peer`](crate::QuicTransport::add_peer) and
    /// [`remove_peer`](crate::QuicTransport::remove_peer) change them at run time.
    /// Messages to a node that is not a peer fail with `UnknownPeer`.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// This node's certificate and key, and the CA it trusts.
    pub tls: TlsIdentity,
    /// Largest frame accepted or sent, in bytes. A peer announcing a larger one is
    /// disconnected before anything is allocated; a larger outgoing message is dropped
    /// (with a warning). Must exceed Raft's `max_append_bytes` with room for the largest
    /// single entry. Default 64 MiB.
    pub max_frame_size: usize,
    /// Messages queued per peer for the urgent stream (votes, replies, heartbeats)
    /// before new ones are dropped. Default 1024.
    pub urgent_queue: usize,
    /// AppendEntries carrying entries queued per peer before new ones are dropped.
    /// Raft's own pipeline bound (`max_inflight_appends`) normally keeps this from
    /// filling. Default 256.
    pub bulk_queue: usize,
    /// First delay before redialling a peer that could not be reached; it doubles on
    /// every failure up to `reconnect_max`. Default 20 ms.
    pub reconnect_min: Duration,
    /// Longest delay between two dials of an unreachable peer. Default 1 s.
    pub reconnect_max: Duration,
    /// How long one dial may take before it counts as failed. Default 2 s.
    pub connect_timeout: Duration,
    /// A connection with no traffic for this long is dead (the peer crashed or the
    /// network broke). Default 5 s.
    pub idle_timeout: Duration,
    /// Keep-alive interval, so that idle connections between live nodes never time out.
    /// Must be well below `idle_timeout`. Default 1 s.
    pub keep_alive: Duration,
    /// QUIC's flow-control windows: how much a peer may send ahead of what this node has
    /// read, and how much this node keeps unacknowledged. Default
    /// [`FlowControl::default`], sized for a LAN.
    pub flow: FlowControl,
    /// Bytes asked of the kernel for the UDP socket's receive and send buffers
    /// ([`size_socket_buffers`](crate::size_socket_buffers)); 0 keeps the system's
    /// default. A leader sends an AppendEntries of many entries as a burst of datagrams,
    /// and a follower busy applying reads them a little later: with the usual default
    /// (about 200 KiB) the burst overflows the buffer, the kernel drops datagrams, and
    /// QUIC retransmits them and halves its congestion window. The kernel caps the size
    /// at `net.core.rmem_max` / `net.core.wmem_max`; the transport logs when it was
    /// capped. Default [`QuicConfig::DEFAULT_SOCKET_BUFFER`].
    pub socket_buffer: usize,
}

/// The flow-control windows of the transport's QUIC connections.
///
/// The receive windows cap what a peer may send ahead of what this node has read; on a
/// fast link whose receiver is busy (a node applies entries on the thread that reads
/// them, so the window update waits for it) a small receive window, not the network,
/// sets the pace of large AppendEntries, so they are large.
///
/// The send window caps what this node keeps written and unacknowledged per
/// connection, and so what it has in flight. It is small on purpose. On a link without
/// loss (a LAN, loopback) nothing else bounds what is in flight: the congestion window
/// keeps growing, and the excess only waits in queues (socket buffers), adding
/// latency. And quinn finds the bytes of every packet it sends by walking the stream's
/// unacknowledged writes from the oldest, while an AppendEntries of N commands is about
/// 2N writes (each command is sent from the buffer it arrived in, not copied): with
/// megabytes in flight that walk took half of a leader thread at 4 KiB commands. 1 MiB
/// is a round trip of 10 Gbit/s at 800 µs; raise it for a link with a larger
/// bandwidth-delay product (a WAN), where it would otherwise set the pace.
///
/// They are also the memory a peer can make this node hold: at most `receive_window`
/// bytes per connection that the node has not read yet, and at most `send_window`
/// bytes per connection written and not yet acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowControl {
    /// Bytes a peer may send on one stream beyond what this node has read from it.
    /// Default 16 MiB (quinn's own default, 1.25 MB, is sized for 100 Mbit/s at 100 ms).
    pub stream_receive_window: u32,
    /// Bytes a peer may send on one connection, all streams together, beyond what this
    /// node has read. At least `stream_receive_window`. Default 32 MiB.
    pub receive_window: u32,
    /// Bytes this node keeps written and unacknowledged per connection: what it has in
    /// flight at most. Default 1 MiB.
    pub send_window: u64,
}

impl Default for FlowControl {
    fn default() -> Self {
        Self {
            stream_receive_window: 16 << 20,
            receive_window: 32 << 20,
            send_window: 1 << 20,
        }
    }
}

impl FlowControl {
    /// Sets these windows on a quinn transport configuration. The transport does it for
    /// its connections; a measurement of raw quinn can start from them.
    pub fn apply(&self, transport: &mut quinn::TransportConfig) {
        transport
            .stream_receive_window(quinn::VarInt::from_u32(self.stream_receive_window))
            .receive_window(quinn::VarInt::from_u32(self.receive_window))
            .send_window(self.send_window);
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.stream_receive_window == 0
            || self.receive_window < self.stream_receive_window
            || self.send_window == 0
        {
            return Err(ConfigError::FlowControl { flow: *self });
        }
        Ok(())
    }
}

impl QuicConfig {
    /// The default [`socket_buffer`](Self::socket_buffer): 4 MiB.
    pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

    /// A configuration with default limits.
    pub fn new(
        id: NodeId,
        cluster: impl Into<String>,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        tls: TlsIdentity,
    ) -> Self {
        Self {
            id,
            cluster: cluster.into(),
            listen,
            peers,
            tls,
            max_frame_size: 64 << 20,
            urgent_queue: 1024,
            bulk_queue: 256,
            reconnect_min: Duration::from_millis(20),
            reconnect_max: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            flow: FlowControl::default(),
            socket_buffer: Self::DEFAULT_SOCKET_BUFFER,
        }
    }

    /// The configuration of member `id` of a cluster whose every member, `id` included,
    /// listens at the address `members` gives: `id` listens at its own, and every other
    /// member is a peer. `None` when `id` is not in `members`.
    pub fn for_member(
        id: NodeId,
        cluster: impl Into<String>,
        members: &BTreeMap<NodeId, SocketAddr>,
        tls: TlsIdentity,
    ) -> Option<Self> {
        let listen = *members.get(&id)?;
        let peers = members
            .iter()
            .filter(|(&p, _)| p != id)
            .map(|(&p, &a)| (p, a))
            .collect();
        Some(Self::new(id, cluster, listen, peers, tls))
    }

    /// Checks the rules stated on each field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        if c.is_empty()
            || c.len() > 63
            || c.starts_with('-')
            || c.ends_with('-')
            || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(ConfigError::ClusterName { name: c.clone() });
        }
        if self.peers.contains_key(&self.id) {
            return Err(ConfigError::SelfAsPeer { id: self.id });
        }
        for id in self.peers.keys().chain([&self.id]) {
            let name = node_name(c, *id);
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(ConfigError::NodeName { name });
            }
        }
        if self.max_frame_size < 1024 || self.max_frame_size > u32::MAX as usize {
            return Err(ConfigError::MaxFrameSize {
                max_frame_size: self.max_frame_size,
            });
        }
        if self.urgent_queue == 0 || self.bulk_queue == 0 {
            return Err(ConfigError::ZeroQueue);
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return Err(ConfigError::ReconnectRange {
                min: self.reconnect_min,
                max: self.reconnect_max,
            });
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroConnectTimeout);
        }
        if self.keep_alive.is_zero() || self.keep_alive * 2 > self.idle_timeout {
            return Err(ConfigError::KeepAlive {
                keep_alive: self.keep_alive,
                idle_timeout: self.idle_timeout,
            });
        }
        if quinn::IdleTimeout::try_from(self.idle_timeout).is_err() {
            return Err(ConfigError::IdleTimeout {
                idle_timeout: self.idle_timeout,
            });
        }
        if self.tls.ca.is_empty() || self.tls.cert_chain.is_empty() {
            return Err(ConfigError::MissingCertificates);
        }
        self.flow.validate()
    }
}

/// Why a [`QuicConfig`] was refused (by [`QuicConfig::validate`], which
/// [`QuicTransport::new`](crate::QuicTransport::new) calls). Fix the field and retry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cluster name is not 1-63 letters, digits or inner dashes.
    #[error("cluster name {name:?} must be 1-63 letters, digits or inner dashes")]
    ClusterName {
        /// The name given.
        name: String,
    },
    /// The node lists itself among its peers.
    #[error("node {id} lists itself as a peer")]
    SelfAsPeer {
        /// This node.
        id: NodeId,
    },
    /// A node's certificate name (`node-<id>.<cluster>`) is not a valid DNS name.
    #[error("{name:?} is not a valid DNS name")]
    NodeName {
        /// The name.
        name: String,
    },
    /// `max_frame_size` is outside 1 KiB ..= 4 GiB.
    #[error("max_frame_size {max_frame_size} must be between 1 KiB and 4 GiB")]
    MaxFrameSize {
        /// The value given.
        max_frame_size: usize,
    },
    /// `urgent_queue` or `bulk_queue` is zero.
    #[error("queue sizes must be positive")]
    ZeroQueue,
    /// Not `0 < reconnect_min <= reconnect_max`.
    #[error("need 0 < reconnect_min ({min:?}) <= reconnect_max ({max:?})")]
    ReconnectRange {
        /// `reconnect_min`.
        min: Duration,
        /// `reconnect_max`.
        max: Duration,
    },
    /// `connect_timeout` is zero.
    #[error("connect_timeout must be positive")]
    ZeroConnectTimeout,
    /// `keep_alive` is zero or more than half of `idle_timeout`.
    #[error("keep_alive ({keep_alive:?}) must be positive and at most half of idle_timeout ({idle_timeout:?})")]
    KeepAlive {
        /// `keep_alive`.
        keep_alive: Duration,
        /// `idle_timeout`.
        idle_timeout: Duration,
    },
    /// `idle_timeout` is longer than QUIC can express.
    #[error("idle_timeout {idle_timeout:?} is too long for QUIC")]
    IdleTimeout {
        /// `idle_timeout`.
        idle_timeout: Duration,
    },
    /// The TLS identity lacks a CA certificate or a node certificate.
    #[error("TLS identity needs a CA certificate and a node certificate")]
    MissingCertificates,
    /// A flow-control window is zero, or the connection's receive window is smaller
    /// than a stream's.
    #[error("flow-control windows must be positive, and receive_window at least stream_receive_window: {flow:?}")]
    FlowControl {
        /// The windows given.
        flow: FlowControl,
    },
}
