//! The `Transport` trait: how messages travel between nodes.

use std::sync::Arc;

use thiserror::Error;
use tokio::sync::mpsc;

use crate::core::{Envelope, NodeId};

/// Why a transport could not start, or take a message.
///
/// Only [`Start`](TransportError::Start) is fatal (see [`is_fatal`](Self::is_fatal)):
/// the node cannot run without its transport. The others concern one message, which is
/// not sent; Raft retries on its own.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Recoverable. The destination is not a node this transport knows how to reach.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// Recoverable. The local node is not started, or has stopped.
    #[error("the transport is not running")]
    NotRunning,
    /// Fatal. The transport could not start (binding a socket, loading certificates,
    /// ...); the transport's own error is the source.
    #[error("transport failed to start: {0}")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl TransportError {
    /// True when the node cannot go on with this transport.
    pub fn is_fatal(&self) -> bool {
        matches!(self, TransportError::Start(_))
    }
}

/// Where a transport hands the messages it receives for the local node.
///
/// Cloning is cheap. A node passes its inbox to [`Transport::start`]; tests can build one
/// over a channel with [`Inbox::channel`].
#[derive(Clone)]
pub struct Inbox {
    sink: Arc<dyn Fn(Envelope) -> bool + Send + Sync>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

impl Inbox {
    /// An inbox that calls `sink` for every message; `sink` returns false once the
    /// receiver is gone.
    pub fn from_fn(sink: impl Fn(Envelope) -> bool + Send + Sync + 'static) -> Self {
        Self {
            sink: Arc::new(sink),
        }
    }

    /// An inbox feeding a channel of [`Inbox::CHANNEL_CAPACITY`] messages, and the
    /// channel's receiving end. When the channel is full, further messages are dropped
    /// (as a node's own bounded inbox drops them); delivery reports false only once the
    /// receiver is gone.
    pub fn channel() -> (Self, mpsc::Receiver<Envelope>) {
        let (tx, rx) = mpsc::channel(Self::CHANNEL_CAPACITY);
        let sink = move |env| match tx.try_send(env) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        };
        (Self::from_fn(sink), rx)
    }

    /// Messages an [`Inbox::channel`] holds before it drops.
    pub const CHANNEL_CAPACITY: usize = 65_536;

    /// Hands one message to the local node. Returns false if the node is gone.
    pub fn deliver(&self, envelope: Envelope) -> bool {
        (self.sink)(envelope)
    }
}

/// Carries Raft messages between nodes. One instance serves one local node.
///
/// # Correctness rules
///
/// 1. **Best effort.** A transport may drop, delay, duplicate or reorder messages: Raft
///    tolerates all of it. It must never alter one, nor deliver a message to a node other
///    than `envelope.to`, nor deliver a message whose `from` it has not authenticated
///    when it authenticates peers at all.
/// 2. **Never blocks.** [`send`](Transport::send) is called on the node's thread, between
///    heartbeats: it queues or drops, and returns at once. A transport must bound what it
///    queues for a peer it cannot reach.
/// 3. **Per-peer order where it can.** Messages to one peer should arrive in the order
///    sent (Raft is correct without it, but pipelined replication is faster with it), and
///    small urgent messages ([`Message::is_urgent`](crate::core::Message::is_urgent))
///    should not wait behind large AppendEntries.
/// 4. **Errors.** [`send`](Transport::send) returns [`TransportError::UnknownPeer`] for a
///    destination it cannot name; loss in transit is not an error. Neither is fatal.
pub trait Transport: Send + Sync + 'static {
    /// Starts delivering messages addressed to the local node to `inbox`.
    fn start(&self, inbox: Inbox) -> Result<(), TransportError>;

    /// Queues `envelope` for `envelope.to`, without blocking.
    fn send(&self, envelope: Envelope) -> Result<(), TransportError>;

    /// Stops delivering to the local node; later sends may fail with `NotRunning`.
    fn stop(&self) {}

    /// The nodes the local node talks to changed: `members` lists every node of the
    /// current configuration other than the local one (voters and learners, both halves
    /// of a joint configuration); on a leader, the nodes a membership change removed
    /// that it still replicates to (until they have heard that their removal is
    /// committed); on any other node, the leader it follows in its current term even
    /// when its configuration does not name that leader (a node cut off while the
    /// cluster added the leader still holds the older configuration, and must answer
    /// the leader to catch up). Each comes with the address the configuration gives it,
    /// if any (none for such a leader, until the node's log has the entry that added it).
    ///
    /// The node calls this once before its first message and again whenever that list
    /// changes (a membership entry appended or truncated, a snapshot installed, a
    /// removed node let go, leadership gained or lost, another leader followed). When
    /// the list grows, it calls it before handing over the messages produced with the
    /// change (the first AppendEntries to a node just added must not find it unknown),
    /// with the old and new nodes together; when nodes leave it, after those messages:
    /// messages already handed over to a node that is no longer listed should still be
    /// sent (or be dropped only when it cannot be reached).
    ///
    /// A transport opens what it needs to reach the listed nodes and closes what it kept
    /// for nodes no longer listed. It may refuse the replies and reads of nodes that are
    /// not listed, but must deliver their requests
    /// ([`Message::accepted_from_non_members`](crate::core::Message::accepted_from_non_members)):
    /// the node decides on those (a leader the node has not heard of yet, a candidate
    /// of a configuration its log lacks). The default does nothing: the transport keeps
    /// the peers it was built with.
    fn set_members(&self, members: &[Member]) {
        let _ = members;
    }
}

/// A node of the cluster as the transport sees it: its id, and the address the cluster
/// configuration records for it (opaque to Raft; for example `"10.0.0.4:7000"` for QUIC).
/// An empty address means the configuration does not say: the transport uses what the
/// application gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// The node's id.
    pub id: NodeId,
    /// Where to reach it, in the transport's own format; empty when unknown.
    pub address: String,
}

/// A boxed transport is a transport, so nodes can pick one at run time.
impl<T: Transport + ?Sized> Transport for Box<T> {
    fn start(&self, inbox: Inbox) -> Result<(), TransportError> {
        (**self).start(inbox)
    }

    fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        (**self).send(envelope)
    }

    fn stop(&self) {
        (**self).stop()
    }

    fn set_members(&self, members: &[Member]) {
        (**self).set_members(members)
    }
}
