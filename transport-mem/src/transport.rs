//! The per-node [`Transport`] of a [`MemRouter`](crate::MemRouter).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use actraft::core::{Envelope, NodeId};
use actraft::{Inbox, Member, Transport, TransportError};

use crate::router::{Inner, Live};
use crate::MemRouter;

/// One node's end of a [`MemRouter`], made by [`MemRouter::transport`].
///
/// - [`start`](Transport::start) registers the node's inbox with the router. If another
///   transport of the same id is running (a node restarted before its old incarnation
///   stopped), the new one takes over: the old one stops receiving, and its sends fail
///   with [`TransportError::NotRunning`].
/// - [`send`](Transport::send) fails with [`TransportError::NotRunning`] before `start`
///   and after `stop`, with [`TransportError::UnknownPeer`] for an id the router never
///   made a transport for, and otherwise returns `Ok` whatever becomes of the message.
///   Faults are judged by this transport's id, whatever `envelope.from` says.
/// - [`stop`](Transport::stop) (or dropping the transport) unregisters the inbox: later
///   messages to the node are dropped, as are delayed ones that come due meanwhile.
///   Stopping twice is harmless; a stopped transport can be started again.
/// - [`set_members`](Transport::set_members) makes the node follow its cluster's
///   configuration: the router delivers to it every message from the listed nodes, and
///   from any other node only the requests the node judges itself
///   ([`Message::accepted_from_non_members`]: AppendEntries, InstallSnapshot,
///   TimeoutNow, RequestVote, PreVote, which a leader or candidate the node's
///   configuration does not name yet may send). The replies and reads of unlisted nodes
///   are refused: they count as [`dropped_refused`](crate::Stats::dropped_refused) on
///   their link, logged at `warn` once per sender. Its sends to an unlisted node fail
///   with [`TransportError::UnknownPeer`] (the node lists whom it answers: its members,
///   and the leader it follows even when its configuration lacks that leader). Until a
///   list is set, or after an empty one (a node joining a cluster knows no
///   configuration yet), it takes messages from any node and sends to any id the router
///   knows. Addresses are ignored: every transport of the router is reachable by its
///   id, so a node added at run time needs nothing but `router.transport(id)`.
///
/// [`Message::accepted_from_non_members`]: actraft::core::Message::accepted_from_non_members
pub struct MemTransport {
    id: NodeId,
    token: u64,
    inner: Arc<Inner>,
    running: Arc<AtomicBool>,
    /// The current member list (`None`: none yet, or empty).
    members: RwLock<Option<Arc<BTreeSet<NodeId>>>>,
}

impl std::fmt::Debug for MemTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemTransport")
            .field("id", &self.id)
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl MemTransport {
    pub(crate) fn new(id: NodeId, token: u64, inner: Arc<Inner>) -> Self {
        Self {
            id,
            token,
            inner,
            running: Arc::new(AtomicBool::new(false)),
            members: RwLock::new(None),
        }
    }

    fn members(&self) -> Option<Arc<BTreeSet<NodeId>>> {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The node this transport serves.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The router this transport belongs to.
    pub fn router(&self) -> MemRouter {
        MemRouter {
            inner: Arc::clone(&self.inner),
        }
    }

    /// True between `start` and `stop` (or a takeover by a newer transport of the id).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

impl Transport for MemTransport {
    fn start(&self, inbox: Inbox) -> Result<(), TransportError> {
        let mut table = self.inner.table_mut();
        table.register(self.id);
        let slot = table.nodes.entry(self.id).or_insert(None);
        if let Some(old) = slot.as_ref().filter(|old| old.token != self.token) {
            tracing::info!(
                node = self.id,
                "a new transport takes over from a running one"
            );
            old.running.store(false, Ordering::Release);
        }
        *slot = Some(Live {
            token: self.token,
            inbox,
            running: Arc::clone(&self.running),
            members: self.members(),
        });
        self.running.store(true, Ordering::Release);
        tracing::debug!(node = self.id, "transport started");
        Ok(())
    }

    fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        if !self.running.load(Ordering::Relaxed) {
            return Err(TransportError::NotRunning);
        }
        let listed = self
            .members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|m| m.contains(&envelope.to));
        if !listed {
            return Err(TransportError::UnknownPeer(envelope.to));
        }
        self.inner.send(self.id, envelope)
    }

    fn set_members(&self, members: &[Member]) {
        let list = (!members.is_empty())
            .then(|| Arc::new(members.iter().map(|m| m.id).collect::<BTreeSet<_>>()));
        tracing::debug!(node = self.id, members = ?list, "member list");
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = list.clone();
        let mut table = self.inner.table_mut();
        if let Some(Some(live)) = table.nodes.get_mut(&self.id) {
            if live.token == self.token {
                live.members = list;
            }
        }
    }

    fn stop(&self) {
        let was_running = self.running.swap(false, Ordering::AcqRel);
        let mut table = self.inner.table_mut();
        if let Some(slot) = table.nodes.get_mut(&self.id) {
            if slot.as_ref().is_some_and(|live| live.token == self.token) {
                *slot = None;
            }
        }
        if was_running {
            tracing::debug!(node = self.id, "transport stopped");
        }
    }
}

impl Drop for MemTransport {
    fn drop(&mut self) {
        self.stop();
    }
}
