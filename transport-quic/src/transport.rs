//! [`QuicTransport`]: the [`Transport`] of one node over one QUIC endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use actraft::core::{Envelope, NodeId};
use actraft::{Inbox, Member, Transport, TransportError};
use quinn::{Connection, Endpoint, EndpointConfig, TokioRuntime};
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

use crate::config::QuicConfig;
use crate::error::{CloseCode, PeerFault, QuicError};
use crate::inbound::accept_loop;
use crate::metrics::QuicMetrics;
use crate::outbound::{Class, Link};
use crate::peers::{Control, Queues};
use crate::socket::{size_socket_buffers, ClosableSocket};
use crate::tls::{configs, PeerNames};
use crate::wire::{Hello, PROTOCOL_VERSION};

/// A counter in [`QuicStats`].
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.add(1);
    }
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: Counter,
    pub(crate) delivered: Counter,
    pub(crate) dropped_full: Counter,
    pub(crate) dropped_oversized: Counter,
    pub(crate) connects: Counter,
    pub(crate) faults: Counter,
    pub(crate) non_member: Counter,
}

/// What a transport has done since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuicStats {
    /// Messages written to a peer's stream.
    pub sent: u64,
    /// Messages received and handed to the inbox.
    pub delivered: u64,
    /// Messages dropped because the peer's queue was full (it is slow or unreachable).
    pub dropped_full: u64,
    /// Messages dropped because they exceed `max_frame_size`.
    pub dropped_oversized: u64,
    /// Outbound connections established.
    pub connects: u64,
    /// Connections refused or closed because of bad input or failed checks.
    pub faults: u64,
    /// Replies and reads refused because their sender is not a member of the current
    /// configuration ([`set_members`](Transport::set_members)); its requests are
    /// delivered (see [`Message::accepted_from_non_members`]).
    ///
    /// [`Message::accepted_from_non_members`]: actraft::core::Message::accepted_from_non_members
    pub refused_non_member: u64,
}

/// State shared by the transport and its tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) config: QuicConfig,
    pub(crate) instance: u64,
    pub(crate) names: PeerNames,
    pub(crate) client_config: quinn::ClientConfig,
    /// The outbound path of every current peer.
    pub(crate) links: RwLock<BTreeMap<NodeId, Arc<Link>>>,
    /// The nodes whose replies and reads are taken (any node the CA certified may send
    /// requests): `None` until a member list is set (then anyone's).
    pub(crate) admitted: RwLock<Option<BTreeSet<NodeId>>>,
    /// The address each node last connected from (its listening address): one entry
    /// per node the CA certified that connected.
    pub(crate) learned: Mutex<BTreeMap<NodeId, SocketAddr>>,
    /// Non-members already logged at `warn` (until they are members again).
    pub(crate) non_members_logged: Mutex<BTreeSet<NodeId>>,
    pub(crate) inbox: RwLock<Option<Inbox>>,
    pub(crate) inbound: Mutex<BTreeMap<NodeId, Connection>>,
    pub(crate) instances: Mutex<BTreeMap<NodeId, u64>>,
    pub(crate) faults: broadcast::Sender<PeerFault>,
    pub(crate) stats: Counters,
    pub(crate) metrics: QuicMetrics,
}

impl Shared {
    pub(crate) fn hello(&self) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            cluster: self.config.cluster.clone(),
            from: self.id,
            instance: self.instance,
        }
    }

    /// True when every message from `peer` is taken, replies included.
    pub(crate) fn admits(&self, peer: NodeId) -> bool {
        self.admitted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|members| members.contains(&peer))
    }

    /// The outbound path to `peer`, if it is a peer.
    pub(crate) fn link(&self, peer: NodeId) -> Option<Arc<Link>> {
        self.links
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned()
    }

    pub(crate) fn deliver(&self, envelope: Envelope) {
        let inbox = self.inbox.read().unwrap_or_else(|e| e.into_inner());
        if let Some(inbox) = inbox.as_ref() {
            self.stats.delivered.inc();
            inbox.deliver(envelope);
        }
    }
}

pub(crate) enum State {
    /// Created, not started: the socket is bound.
    Ready {
        socket: std::net::UdpSocket,
        server_config: quinn::ServerConfig,
    },
    Running {
        endpoint: Endpoint,
        socket: Arc<ClosableSocket>,
        runtime: tokio::runtime::Handle,
        accept: AbortHandle,
    },
    Stopped,
}

/// The [`Transport`] of one node over QUIC with mutual TLS.
///
/// One UDP socket both accepts peers' connections and dials them. Each peer gets one
/// outbound connection, reused, carrying an urgent and a bulk stream; messages are
/// length-prefixed bincode frames (see [`codec`](crate::codec)). Every peer proves who
/// it is with a certificate signed by the cluster's CA that names its node id; every
/// frame it sends is checked against that name and against the cluster name.
///
/// Which nodes are peers follows the cluster: [`add_peer`](Self::add_peer) and
/// [`remove_peer`](Self::remove_peer) give and take addresses at run time, and
/// [`set_members`](Transport::set_members) makes the listed nodes the peers and refuses
/// the replies and reads of every other node, whose requests still reach the node (see
/// the [crate docs](crate#adding-a-node)).
///
/// [`send`](Transport::send) only puts the message in the peer's bounded queue (dropping
/// it when the queue is full) and returns: it never blocks the node. The transport's
/// tasks run on the tokio runtime that calls [`start`](Transport::start) (an actix
/// arbiter's, when a node starts it), so a node and its transport share a thread.
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use actraft_transport_quic::{DevCa, QuicConfig, QuicTransport};
///
/// let ca = DevCa::new("demo")?;
/// let peers = [(2, "127.0.0.1:7002".parse()?), (3, "127.0.0.1:7003".parse()?)];
/// let config = QuicConfig::new(1, "demo", "127.0.0.1:7001".parse()?, peers.into(), ca.issue(1)?);
/// let transport = QuicTransport::new(config)?; // binds the socket; start() runs it
/// # Ok(()) }
/// ```
pub struct QuicTransport {
    pub(crate) shared: Arc<Shared>,
    local_addr: SocketAddr,
    /// The send side of every current peer's queues.
    pub(crate) queues: RwLock<BTreeMap<NodeId, Queues>>,
    running: AtomicBool,
    pub(crate) control: Mutex<Control>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("id", &self.shared.id)
            .field("local_addr", &self.local_addr)
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// Checks `config`, builds the TLS configurations and binds `config.listen`. Needs no
    /// runtime: the transport runs once [`start`](Transport::start)ed.
    pub fn new(config: QuicConfig) -> Result<Self, QuicError> {
        let socket =
            std::net::UdpSocket::bind(config.listen).map_err(|source| QuicError::Bind {
                addr: config.listen,
                source,
            })?;
        Self::with_socket(config, socket)
    }

    /// Like [`new`](Self::new), on a socket the caller bound (`config.listen` is
    /// ignored). Handy when ports are picked by the OS and must be known before the
    /// peers' configurations are written.
    pub fn with_socket(config: QuicConfig, socket: std::net::UdpSocket) -> Result<Self, QuicError> {
        config.validate()?;
        let local_addr = socket.local_addr().map_err(|source| QuicError::Bind {
            addr: config.listen,
            source,
        })?;
        if config.socket_buffer > 0 {
            match size_socket_buffers(&socket, config.socket_buffer) {
                // Linux reports twice the size it granted, so a full grant reads as at
                // least what was asked.
                Ok((recv, send)) if recv.min(send) < config.socket_buffer => tracing::info!(
                    node = config.id,
                    asked = config.socket_buffer,
                    recv,
                    send,
                    "UDP socket buffers capped by the kernel (net.core.rmem_max, \
                     net.core.wmem_max): bursts of AppendEntries may be dropped and resent"
                ),
                Ok((recv, send)) => {
                    tracing::debug!(node = config.id, recv, send, "UDP socket buffers")
                }
                Err(error) => tracing::warn!(
                    node = config.id,
                    %error,
                    "cannot size the UDP socket buffers; the system's defaults stay"
                ),
            }
        }
        let (server_config, client_config) = configs(&config)?;
        let instance = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let shared = Arc::new(Shared {
            id: config.id,
            names: PeerNames::new(&config),
            client_config,
            links: RwLock::new(BTreeMap::new()),
            admitted: RwLock::new(None),
            learned: Mutex::new(BTreeMap::new()),
            non_members_logged: Mutex::new(BTreeSet::new()),
            inbox: RwLock::new(None),
            inbound: Mutex::new(BTreeMap::new()),
            instances: Mutex::new(BTreeMap::new()),
            faults: broadcast::channel(256).0,
            stats: Counters::default(),
            metrics: QuicMetrics::new(config.id),
            instance,
            config,
        });
        let known = shared.config.peers.clone();
        let transport = Self {
            shared,
            local_addr,
            queues: RwLock::new(BTreeMap::new()),
            running: AtomicBool::new(false),
            control: Mutex::new(Control::new(
                State::Ready {
                    socket,
                    server_config,
                },
                known,
            )),
        };
        transport.reconcile(&mut transport.control());
        Ok(transport)
    }

    pub(crate) fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address the node's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// Every connection this transport closes because of bad input or a failed check,
    /// from now on. The same faults are logged at `warn`.
    pub fn subscribe_faults(&self) -> broadcast::Receiver<PeerFault> {
        self.shared.faults.subscribe()
    }

    /// Counters of what the transport did.
    pub fn stats(&self) -> QuicStats {
        let c = &self.shared.stats;
        QuicStats {
            sent: c.sent.get(),
            delivered: c.delivered.get(),
            dropped_full: c.dropped_full.get(),
            dropped_oversized: c.dropped_oversized.get(),
            connects: c.connects.get(),
            faults: c.faults.get(),
            refused_non_member: c.non_member.get(),
        }
    }

    fn run(&self, inbox: Inbox) -> Result<(), QuicError> {
        let mut control = self.control();
        let State::Ready { .. } = &control.state else {
            return Err(QuicError::AlreadyStarted);
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| QuicError::NoRuntime)?;
        let State::Ready {
            socket,
            server_config,
        } = std::mem::replace(&mut control.state, State::Stopped)
        else {
            unreachable!("checked above");
        };
        let socket = Arc::new(
            ClosableSocket::new(socket).map_err(|source| QuicError::Bind {
                addr: self.local_addr,
                source,
            })?,
        );
        let endpoint = Endpoint::new_with_abstract_socket(
            EndpointConfig::default(),
            Some(server_config),
            socket.clone(),
            Arc::new(TokioRuntime),
        )
        .map_err(|source| QuicError::Bind {
            addr: self.local_addr,
            source,
        })?;
        *self.shared.inbox.write().unwrap_or_else(|e| e.into_inner()) = Some(inbox);
        let accept = runtime
            .spawn(accept_loop(self.shared.clone(), endpoint.clone()))
            .abort_handle();
        control.state = State::Running {
            endpoint,
            socket,
            runtime,
            accept,
        };
        let peers = control.start_writers(&self.shared);
        self.running.store(true, Ordering::Release);
        tracing::info!(
            node = self.shared.id,
            addr = %self.local_addr,
            peers,
            "QUIC transport started"
        );
        Ok(())
    }
}

impl Transport for QuicTransport {
    fn start(&self, inbox: Inbox) -> Result<(), TransportError> {
        self.run(inbox).map_err(|e| {
            tracing::error!(node = self.shared.id, error = %e, "QUIC transport failed to start");
            TransportError::Start(Box::new(e))
        })
    }

    fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        let mut queues = self.queues.read().unwrap_or_else(|e| e.into_inner());
        if !queues.contains_key(&envelope.to) {
            drop(queues);
            // A listed node without an address may have connected since the list was
            // set: open it now with the address it connected from.
            if !self.open_learned(envelope.to) {
                return Err(TransportError::UnknownPeer(envelope.to));
            }
            queues = self.queues.read().unwrap_or_else(|e| e.into_inner());
        }
        let Some(queues) = queues.get(&envelope.to) else {
            return Err(TransportError::UnknownPeer(envelope.to));
        };
        if !self.running.load(Ordering::Acquire) {
            return Err(TransportError::NotRunning);
        }
        let queue = match Class::of(&envelope) {
            Class::Urgent => &queues.urgent,
            Class::Bulk => &queues.bulk,
        };
        match queue.try_send(envelope) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(envelope)) => {
                // The peer is slow or unreachable: drop, Raft will retry.
                self.shared.stats.dropped_full.inc();
                self.shared.metrics.dropped_full.increment(1);
                tracing::trace!(
                    node = self.shared.id,
                    to = envelope.to,
                    "queue full; dropped"
                );
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(TransportError::NotRunning),
        }
    }

    fn stop(&self) {
        self.running.store(false, Ordering::Release);
        self.shared
            .inbox
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut control = self.control();
        let previous = std::mem::replace(&mut control.state, State::Stopped);
        if let State::Running {
            endpoint,
            socket,
            accept,
            ..
        } = previous
        {
            endpoint.close(CloseCode::Stopped.var_int(), b"stopped");
            socket.close();
            accept.abort();
            control.stop_writers();
            tracing::info!(node = self.shared.id, "QUIC transport stopped");
        }
    }

    fn set_members(&self, members: &[Member]) {
        self.follow_members(members);
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.stop();
    }
}
