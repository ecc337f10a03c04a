//! Errors of the QUIC transport, and the close codes a peer sees.

use std::net::SocketAddr;
use std::path::PathBuf;

use actraft::core::NodeId;
use thiserror::Error;

use crate::codec::CodecError;
use crate::config::ConfigError;

/// Everything that can go wrong in the QUIC transport.
///
/// Two families, told apart by [`QuicError::is_fatal`]:
///
/// - **fatal** (`Config`, `Pem`, `Tls`, `Bind`, `AlreadyStarted`, `NoRuntime`): setting
///   the transport up failed, and it does not start;
/// - **recoverable** (the rest): something went wrong on one connection, which is
///   closed; the transport logs it, reports it to
///   [`QuicTransport::subscribe_faults`](crate::QuicTransport::subscribe_faults), keeps
///   serving every other peer, and redials (or accepts) the peer again.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum QuicError {
    /// Fatal. The configuration breaks a rule stated on one of its fields.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Fatal. A PEM file could not be read or holds nothing usable.
    #[error("cannot load {what} from {path}: {reason}")]
    Pem {
        /// What the file was meant to hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// Fatal. rustls or quinn refused the certificates, the key or the TLS settings;
    /// the TLS library's error is the source.
    #[error("TLS configuration: {0}")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Fatal. [`start`](actraft::Transport::start) was called on a transport that had
    /// already started; create a new one to restart.
    #[error("a transport starts once; create a new one to restart")]
    AlreadyStarted,
    /// Fatal. [`start`](actraft::Transport::start) was called outside a tokio runtime.
    #[error("start() must be called within a tokio runtime")]
    NoRuntime,
    /// Fatal. The UDP socket could not be bound or set up.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Recoverable. A connection attempt could not even start (bad server name, endpoint
    /// closed).
    #[error("cannot connect to node {peer} at {addr}: {reason}")]
    Connect {
        /// The peer dialled.
        peer: NodeId,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Recoverable. The QUIC or TLS handshake failed: no certificate, a certificate not signed by the
    /// cluster's CA, a server certificate that does not name the node dialled, a timeout.
    #[error("handshake with {remote} failed: {reason}")]
    Handshake {
        /// The remote address.
        remote: SocketAddr,
        /// Why (as quinn and rustls describe it).
        reason: String,
    },
    /// Recoverable. A client certificate signed by the CA that names no node of this
    /// cluster (or several, or this node itself).
    #[error("certificate of {remote} names no other node of cluster {cluster:?}")]
    UnknownPeerCertificate {
        /// The remote address.
        remote: SocketAddr,
        /// This node's cluster.
        cluster: String,
    },
    /// Recoverable. A frame's length prefix exceeds the configured maximum; nothing was allocated.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The configured `max_frame_size`.
        max: usize,
    },
    /// Recoverable. A frame could not be decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Recoverable. The peer's hello announces a version of the wire protocol this node does not
    /// speak (see [`wire`](crate::wire)).
    #[error("peer speaks protocol version {got}; this node speaks {supported:?}")]
    Version {
        /// The versions this node accepts ([`SUPPORTED_VERSIONS`](crate::wire::SUPPORTED_VERSIONS)).
        supported: &'static [u16],
        /// The version the peer announced.
        got: u16,
    },
    /// Recoverable. The peer belongs to another cluster.
    #[error("peer is in cluster {got:?}, this node in {expected:?}")]
    ClusterMismatch {
        /// Ours.
        expected: String,
        /// Theirs.
        got: String,
    },
    /// Recoverable. A frame claims a sender other than the node the peer's certificate names.
    #[error("certificate names node {certified} but the frame claims to come from {claimed}")]
    SenderMismatch {
        /// The node the certificate proves.
        certified: NodeId,
        /// The `from` of the frame.
        claimed: NodeId,
    },
    /// Recoverable. A message addressed to another node.
    #[error("message for node {to} arrived at node {local}")]
    WrongRecipient {
        /// This node.
        local: NodeId,
        /// The message's `to`.
        to: NodeId,
    },
    /// Recoverable. The frames came in an order the protocol forbids (a message before the hello, a
    /// second hello).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// Recoverable. The peer's certificate is valid, but the peer is not a member of the
    /// cluster's current configuration ([`set_members`](actraft::Transport::set_members)):
    /// a removed node, or one not added yet. One of its replies or reads was dropped;
    /// its connection stays, and its requests still reach the node, which judges them.
    #[error("node {peer} is not a member of the current configuration")]
    NotMember {
        /// The peer, as its certificate names it.
        peer: NodeId,
    },
    /// Recoverable. Reading a stream failed mid-frame (the peer went away or reset the stream).
    #[error("stream from node {peer} broke: {reason}")]
    Stream {
        /// The peer.
        peer: NodeId,
        /// Why.
        reason: String,
    },
}

impl QuicError {
    /// True when the transport cannot start; false for the errors of one connection,
    /// which the transport survives.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            QuicError::Config(_)
                | QuicError::Pem { .. }
                | QuicError::Tls(_)
                | QuicError::AlreadyStarted
                | QuicError::NoRuntime
                | QuicError::Bind { .. }
        )
    }

    /// Wraps an error of the TLS libraries.
    pub(crate) fn tls(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        QuicError::Tls(Box::new(e))
    }

    /// The QUIC application close code sent to a peer whose connection this error
    /// closes, so the peer (and a test) can tell why.
    pub fn close_code(&self) -> CloseCode {
        match self {
            QuicError::FrameTooLarge { .. } => CloseCode::FrameTooLarge,
            QuicError::Codec(_) => CloseCode::Undecodable,
            QuicError::Version { .. } => CloseCode::Version,
            QuicError::ClusterMismatch { .. } => CloseCode::ClusterMismatch,
            QuicError::SenderMismatch { .. } => CloseCode::SenderMismatch,
            QuicError::WrongRecipient { .. } => CloseCode::WrongRecipient,
            QuicError::UnknownPeerCertificate { .. } => CloseCode::UnknownPeer,
            QuicError::Protocol(_) => CloseCode::Protocol,
            QuicError::NotMember { .. } => CloseCode::NotMember,
            _ => CloseCode::Internal,
        }
    }
}

/// The application close codes of this transport's connections. The numbers are part
/// of the wire protocol: never renumber one; new codes take new numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum CloseCode {
    /// The transport stopped.
    Stopped = 0,
    /// A newer connection from the same peer replaced this one.
    Replaced = 1,
    /// The peer restarted; this connection led to its previous incarnation.
    PeerRestarted = 2,
    /// See [`QuicError::FrameTooLarge`].
    FrameTooLarge = 10,
    /// See [`QuicError::Codec`].
    Undecodable = 11,
    /// See [`QuicError::Version`].
    Version = 12,
    /// See [`QuicError::ClusterMismatch`].
    ClusterMismatch = 13,
    /// See [`QuicError::SenderMismatch`].
    SenderMismatch = 14,
    /// See [`QuicError::WrongRecipient`].
    WrongRecipient = 15,
    /// See [`QuicError::UnknownPeerCertificate`].
    UnknownPeer = 16,
    /// See [`QuicError::Protocol`].
    Protocol = 17,
    /// See [`QuicError::NotMember`].
    NotMember = 18,
    /// This node no longer counts the peer among its members (or the peer's address
    /// changed): the connection to it is closed.
    Removed = 19,
    /// Anything else.
    Internal = 99,
}

impl CloseCode {
    /// The code as quinn sends it.
    pub fn var_int(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(self as u32)
    }

    /// The code a peer's close carried, if it is one of ours.
    pub fn from_var_int(code: quinn::VarInt) -> Option<Self> {
        const ALL: [CloseCode; 14] = [
            CloseCode::Stopped,
            CloseCode::Replaced,
            CloseCode::PeerRestarted,
            CloseCode::FrameTooLarge,
            CloseCode::Undecodable,
            CloseCode::Version,
            CloseCode::ClusterMismatch,
            CloseCode::SenderMismatch,
            CloseCode::WrongRecipient,
            CloseCode::UnknownPeer,
            CloseCode::Protocol,
            CloseCode::NotMember,
            CloseCode::Removed,
            CloseCode::Internal,
        ];
        ALL.into_iter().find(|c| c.var_int() == code)
    }
}

/// A connection this node closed because of bad input or a failed check, as reported
/// by [`QuicTransport::subscribe_faults`](crate::QuicTransport::subscribe_faults).
#[derive(Debug, Clone)]
pub struct PeerFault {
    /// Where the connection came from.
    pub remote: SocketAddr,
    /// The peer, once its certificate identified it.
    pub peer: Option<NodeId>,
    /// What was wrong.
    pub error: std::sync::Arc<QuicError>,
}
