//! Which nodes a [`QuicTransport`] talks to, and how that follows the cluster.
//!
//! Two sources decide it:
//!
//! - **the application's addresses**: [`QuicConfig::peers`](crate::QuicConfig::peers),
//!   then [`QuicTransport::add_peer`] and [`QuicTransport::remove_peer`] at run time;
//! - **the configuration's members**, from [`Transport::set_members`](actraft::Transport::set_members),
//!   each with the address the configuration records, if any.
//!
//! Until a member list is set (or while it is empty: a node joining a cluster knows no
//! configuration yet), the peers are the application's addresses, and every message from
//! any node whose certificate the cluster's CA signed is taken, so a new node can reach
//! the cluster and be reached. Once a list is set, the peers are the nodes it lists, each
//! at the address the configuration gives, else the application's address for it, else
//! the address its latest connection to this node came from (a node dials from the
//! endpoint it listens on, so that is where it listens). A listed node with none of the
//! three is logged once and unreachable until one is given or it connects.
//!
//! The list also decides what is taken from whom. Connections from any node the CA
//! certified are taken, member or not, and so are its requests
//! ([`Message::accepted_from_non_members`]: AppendEntries, InstallSnapshot, TimeoutNow,
//! RequestVote, PreVote): a leader or candidate whose configuration this node's log
//! lacks yet (this node was cut off while the cluster added it) must be heard, or this
//! node would never catch up; the node itself judges them by their terms and logs, as
//! Raft §6 has it. Its replies and reads are refused unless it is listed: each one is
//! dropped, counted ([`QuicStats::refused_non_member`](crate::QuicStats)) and reported
//! ([`QuicError::NotMember`](crate::QuicError::NotMember)), and its connection stays.
//! The node lists whom it answers: its configuration's members and the leader it
//! follows, member or not; so when it follows such a leader, this transport opens a
//! peer for it at the address it connected from, and the node's answers reach it before
//! its log holds the configuration entry that records the leader's address.
//!
//! [`Message::accepted_from_non_members`]: actraft::core::Message::accepted_from_non_members
//!
//! Every peer has a [`Link`], two bounded queues and their two writer tasks; a node that
//! stops being a peer (or whose address changes) loses them all: sends to it fail at
//! once and its traffic metrics go, but the messages already queued for it still go
//! out (the node calls `set_members` after handing over its last messages to a node
//! that leaves, such as the heartbeat that tells a removed node its removal is
//! final). Its writers drain their queues, finish their streams and wait for the peer
//! to acknowledge them, for at most [`CLOSE_LINGER`]; then its connection is closed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use actraft::core::{Envelope, NodeId};
use actraft::Member;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::certs::node_name;
use crate::config::ConfigError;
use crate::error::CloseCode;
use crate::outbound::{run_writer, Class, Link};
use crate::transport::{QuicTransport, Shared, State};

/// How long a peer that is closed keeps its connection for the messages queued before:
/// its writers drain their queues and the peer acknowledges the data, or this bound
/// passes (a peer that cannot be reached), and the connection is closed.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// After the peer acknowledged the last data, how long the connection stays open before
/// it is closed, so that the peer reads the data before it sees the close (a QUIC stack
/// may discard acknowledged data its application has not read yet once the connection
/// closes).
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// The send side of one peer's two queues.
pub(crate) struct Queues {
    pub(crate) urgent: mpsc::Sender<Envelope>,
    pub(crate) bulk: mpsc::Sender<Envelope>,
}

/// What the transport keeps for one peer besides its queues' send side.
struct OpenPeer {
    addr: SocketAddr,
    link: Arc<Link>,
    /// The queues' receiving ends, until the transport starts and writers take them.
    pending: Vec<(Class, mpsc::Receiver<Envelope>)>,
    /// The writer tasks, once started.
    tasks: Vec<JoinHandle<()>>,
}

/// The transport's state and its peers, under one lock.
pub(crate) struct Control {
    pub(crate) state: State,
    /// The addresses the application gave.
    known: BTreeMap<NodeId, SocketAddr>,
    /// The current configuration's members other than this node, with the address it
    /// records for each (empty: not recorded); `None` before any list, or after an empty
    /// one.
    members: Option<BTreeMap<NodeId, String>>,
    open: BTreeMap<NodeId, OpenPeer>,
    /// Members already logged as unreachable for want of an address.
    unaddressed: BTreeSet<NodeId>,
}

impl Control {
    pub(crate) fn new(state: State, known: BTreeMap<NodeId, SocketAddr>) -> Self {
        Self {
            state,
            known,
            members: None,
            open: BTreeMap::new(),
            unaddressed: BTreeSet::new(),
        }
    }

    /// Starts the writers of every peer opened before the transport ran; returns how
    /// many peers there are.
    pub(crate) fn start_writers(&mut self, shared: &Arc<Shared>) -> usize {
        for peer in self.open.values_mut() {
            spawn_writers(&self.state, shared, peer);
        }
        self.open.len()
    }

    /// Aborts every writer (the transport stops).
    pub(crate) fn stop_writers(&mut self) {
        for peer in self.open.values_mut() {
            for task in peer.tasks.drain(..) {
                task.abort();
            }
        }
    }

    /// Where each node that should be a peer now is; `learned` holds the addresses
    /// nodes connected from.
    fn desired(
        &mut self,
        local: NodeId,
        learned: &BTreeMap<NodeId, SocketAddr>,
    ) -> BTreeMap<NodeId, SocketAddr> {
        let Some(members) = &self.members else {
            return self.known.clone();
        };
        let mut desired = BTreeMap::new();
        for (&id, address) in members {
            let recorded = if address.is_empty() {
                None
            } else {
                match address.parse::<SocketAddr>() {
                    Ok(addr) => Some(addr),
                    Err(_) => {
                        if self.unaddressed.insert(id) {
                            tracing::warn!(
                                node = local,
                                peer = id,
                                address,
                                "the configuration's address of a member is not HOST:PORT with an IP; using the one the application gave, if any"
                            );
                        }
                        None
                    }
                }
            };
            let found = recorded
                .or_else(|| self.known.get(&id).copied())
                .or_else(|| learned.get(&id).copied());
            match found {
                Some(addr) => {
                    desired.insert(id, addr);
                }
                None => {
                    if self.unaddressed.insert(id) {
                        tracing::warn!(
                            node = local,
                            peer = id,
                            "no address for a member: neither the configuration nor the application gives one (add_peer), and it has not connected; it is unreachable until one is given or it connects"
                        );
                    }
                }
            }
        }
        desired
    }
}

/// Spawns the writers of `peer`'s queues if the transport runs (else they wait).
fn spawn_writers(state: &State, shared: &Arc<Shared>, peer: &mut OpenPeer) {
    let State::Running {
        endpoint, runtime, ..
    } = state
    else {
        return;
    };
    for (class, queue) in peer.pending.drain(..) {
        let writer = run_writer(
            shared.clone(),
            endpoint.clone(),
            peer.link.clone(),
            class,
            queue,
        );
        peer.tasks.push(runtime.spawn(writer));
    }
}

impl QuicTransport {
    /// Gives the address of node `id`, at run time: a node added to the cluster, or one
    /// that moved. Until a member list is set it becomes a peer at once (connected to on
    /// the first message); once a list is set it is used for `id` while the list names
    /// `id` without an address of its own. Replaces an earlier address for `id`.
    ///
    /// Fails only if `id` is this node, or its certificate name would not be a valid
    /// DNS name.
    pub fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), ConfigError> {
        if id == self.shared.id {
            return Err(ConfigError::SelfAsPeer { id });
        }
        let name = node_name(&self.shared.config.cluster, id);
        if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
            return Err(ConfigError::NodeName { name });
        }
        let mut control = self.control();
        control.known.insert(id, addr);
        control.unaddressed.remove(&id);
        tracing::info!(node = self.shared.id, peer = id, %addr, "peer address added");
        self.reconcile(&mut control);
        Ok(())
    }

    /// Forgets the address the application gave for node `id` (from the configuration
    /// or [`add_peer`](Self::add_peer)). Unless the current member list records an
    /// address of its own for `id`, `id` is no longer a peer: its connection is closed
    /// and what was queued for it is dropped. Returns false if no address was known.
    pub fn remove_peer(&self, id: NodeId) -> bool {
        let mut control = self.control();
        let known = control.known.remove(&id).is_some();
        if known {
            tracing::info!(node = self.shared.id, peer = id, "peer address removed");
            self.reconcile(&mut control);
        }
        known
    }

    /// The current peers (the nodes this transport sends to) and their addresses.
    pub fn peers(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.control()
            .open
            .iter()
            .map(|(&id, peer)| (id, peer.addr))
            .collect()
    }

    /// The member list in force (without this node), or `None` before any list (or
    /// after an empty one), when every message of any node the CA certified is taken.
    pub fn members(&self) -> Option<BTreeSet<NodeId>> {
        self.shared
            .admitted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Opens node `id` as a peer if the member list names it and it has no peer yet
    /// for want of an address, but it has connected since (see [`Control::desired`]).
    /// Returns true if `id` is a peer now.
    pub(crate) fn open_learned(&self, id: NodeId) -> bool {
        let learned = self
            .shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id);
        if !learned {
            return false;
        }
        let mut control = self.control();
        let listed = control
            .members
            .as_ref()
            .is_some_and(|members| members.contains_key(&id));
        if listed && !control.open.contains_key(&id) {
            self.reconcile(&mut control);
        }
        control.open.contains_key(&id)
    }

    /// [`Transport::set_members`](actraft::Transport::set_members).
    pub(crate) fn follow_members(&self, members: &[Member]) {
        let list: BTreeMap<NodeId, String> = members
            .iter()
            .filter(|m| m.id != self.shared.id)
            .map(|m| (m.id, m.address.clone()))
            .collect();
        let mut control = self.control();
        if control.members.as_ref() == Some(&list) {
            return;
        }
        tracing::info!(
            node = self.shared.id,
            members = ?list.keys().collect::<Vec<_>>(),
            "member list"
        );
        control.members = (!list.is_empty()).then_some(list);
        self.reconcile(&mut control);
    }

    /// Makes the peers and the admitted nodes match `control`.
    pub(crate) fn reconcile(&self, control: &mut Control) {
        let shared = &self.shared;
        let admitted: Option<BTreeSet<NodeId>> = control
            .members
            .as_ref()
            .map(|members| members.keys().copied().collect());
        *shared.admitted.write().unwrap_or_else(|e| e.into_inner()) = admitted.clone();
        if let Some(admitted) = &admitted {
            shared
                .non_members_logged
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|id| !admitted.contains(id));
        }

        let learned = shared
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let desired = control.desired(shared.id, &learned);
        let stale: Vec<NodeId> = control
            .open
            .iter()
            .filter(|(id, peer)| desired.get(id) != Some(&peer.addr))
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            self.close_peer(control, id);
        }
        for (id, addr) in desired {
            if !control.open.contains_key(&id) {
                self.open_peer(control, id, addr);
            }
        }
    }

    fn open_peer(&self, control: &mut Control, id: NodeId, addr: SocketAddr) {
        let shared = &self.shared;
        let config = &shared.config;
        let link = Arc::new(Link::new(id, addr, config.reconnect_min));
        let (urgent, urgent_rx) = mpsc::channel(config.urgent_queue);
        let (bulk, bulk_rx) = mpsc::channel(config.bulk_queue);
        shared.metrics.add_peer(id);
        shared
            .links
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, link.clone());
        self.queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Queues { urgent, bulk });
        let mut peer = OpenPeer {
            addr,
            link,
            pending: vec![(Class::Urgent, urgent_rx), (Class::Bulk, bulk_rx)],
            tasks: Vec::new(),
        };
        spawn_writers(&control.state, shared, &mut peer);
        control.open.insert(id, peer);
        tracing::debug!(node = shared.id, peer = id, %addr, "peer opened");
    }

    fn close_peer(&self, control: &mut Control, id: NodeId) {
        let Some(peer) = control.open.remove(&id) else {
            return;
        };
        let shared = &self.shared;
        // Dropping the queues' send side: later sends to `id` fail, and the writers end
        // once they have written what is queued.
        self.queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        shared
            .links
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let addr = peer.addr;
        linger_and_close(&control.state, id, peer);
        shared.metrics.remove_peer(id);
        shared
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        tracing::info!(node = shared.id, peer = id, %addr, "peer closed");
    }
}

/// Closes the connection of a peer that is no longer one, once its writers have sent
/// what was queued for it and the peer acknowledged it (or after [`CLOSE_LINGER`]);
/// at once when the transport does not run.
fn linger_and_close(state: &State, id: NodeId, peer: OpenPeer) {
    let OpenPeer { link, tasks, .. } = peer;
    let State::Running { runtime, .. } = state else {
        for task in tasks {
            task.abort();
        }
        link.reset(CloseCode::Removed, "no longer a peer");
        return;
    };
    runtime.spawn(async move {
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let drained = tokio::time::timeout(CLOSE_LINGER, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
        match drained {
            Ok(()) => tokio::time::sleep(CLOSE_GRACE).await,
            Err(_) => {
                tracing::debug!(
                    peer = id,
                    "a closed peer did not take its last messages in time"
                );
                for abort in aborts {
                    abort.abort();
                }
            }
        }
        link.reset(CloseCode::Removed, "no longer a peer");
    });
}
