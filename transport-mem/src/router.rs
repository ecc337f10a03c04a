//! The router: the routing table, the faults, and the path every message takes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use actraft::core::{Envelope, Message, NodeId};
use actraft::Inbox;

use crate::faults::{DelayRange, Faults};
use crate::filter::{FilterAction, FilterId};
use crate::stats::{LinkCounters, NodeStats, Stats};
use crate::transport::MemTransport;

/// The seed of [`MemRouter::new`].
pub const DEFAULT_SEED: u64 = 0x5EED_5EED_5EED_5EED;

/// Links the nodes of one process, and injects faults between them.
///
/// Cloning is cheap: every clone is the same router. Make one per cluster, give each
/// node `router.transport(id)`, and keep a clone to inject faults while the cluster
/// runs. A router knows an id once a transport was made for it: sending to an id it
/// never heard of fails with [`TransportError::UnknownPeer`], while a message to a
/// known node that is not running (stopped, or not started yet) is silently dropped, as
/// a network drops packets for a host that is down.
///
/// [`TransportError::UnknownPeer`]: actraft::TransportError::UnknownPeer
///
/// # Faults
///
/// All faults apply at run time, to messages sent afterwards:
///
/// - [`isolate`](Self::isolate) cuts a node off in both directions;
///   [`partition`](Self::partition) splits the cluster into groups; [`heal`](Self::heal)
///   undoes both. A delayed message is checked again when it comes due, so after
///   `isolate` or `partition` returns nothing crosses the cut, even a message sent before.
/// - [`set_drop_rate`](Self::set_drop_rate) loses each message with a probability;
///   [`set_delay`](Self::set_delay) delays each message by a uniform random time, and
///   the jitter reorders messages. The per-link versions override the router-wide
///   setting on one directed link.
/// - [`add_filter`](Self::add_filter) adds a content filter: a closure that sees each
///   message (sender, receiver, kind, term, entries) and lets it pass, drops it, delays
///   it or duplicates it ([`FilterAction`]), e.g. to lose every AppendEntriesReply to
///   the leader, or to slow down votes only. [`remove_filter`](Self::remove_filter)
///   takes one away.
/// - [`clear_faults`](Self::clear_faults) removes every fault and filter at once.
///
/// A message meets the faults in this order: isolation and partitions, then the
/// filters (the first that does not pass decides), then the drop rate, then the delay.
///
/// Every random decision (a filter's included) draws from one generator seeded by
/// [`with_seed`](Self::with_seed): the same seed, configuration and sequence of sends
/// give the same drops and delays. (In a multi-threaded cluster the sequence of
/// sends itself depends on scheduling.)
///
/// # Counters
///
/// Every directed link between known ids (a node's link to itself included) counts its
/// messages: sent and delivered by kind, dropped by cause, delayed, duplicated. Both
/// paths count everything; [`stats`](Self::stats) sums every link,
/// [`node_stats`](Self::node_stats) the links from and to one node, and
/// [`link_stats`](Self::link_stats) reads one link. The counters survive restarts:
/// they belong to the ids, not to one transport.
///
/// # Fast path
///
/// With no fault, no filter and no observer set, `send` looks the destination and the
/// link's counters up under a shared read lock and hands the message to its inbox on
/// the caller's thread: no task, no allocation, no global counter. It counts `sent`,
/// `delivered` and `dropped_peer_down` on the link, in atomics that only the link's
/// sender writes. Faults, filters and the observer take the slow path: one mutex per
/// send (two with filters, which run between the two, outside the lock). Delayed
/// messages ride a `tokio` task each, so delays need a tokio runtime (actix runs on
/// one).
#[derive(Clone)]
pub struct MemRouter {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Set while a fault, a filter or an observer is configured: sends then take the
    /// slow path.
    pub(crate) slow: AtomicBool,
    table: RwLock<Table>,
    faults: Mutex<Faults>,
    next_token: AtomicU64,
    /// The (receiver, sender) pairs already logged as refused, so each is logged once.
    pub(crate) refusals_logged: Mutex<BTreeSet<(NodeId, NodeId)>>,
}

/// The known ids, and the links between them.
#[derive(Default)]
pub(crate) struct Table {
    /// Every known id, with the transport running for it, if any.
    pub(crate) nodes: BTreeMap<NodeId, Option<Live>>,
    /// The counters of every directed link between known ids, a node's link to itself
    /// included. Ids are never forgotten, so neither are links.
    pub(crate) links: BTreeMap<(NodeId, NodeId), Arc<LinkCounters>>,
}

impl Table {
    /// Makes `id` known, with its links to every known id and from each.
    pub(crate) fn register(&mut self, id: NodeId) {
        if self.nodes.contains_key(&id) {
            return;
        }
        self.nodes.insert(id, None);
        for &other in self.nodes.keys() {
            self.links
                .entry((id, other))
                .or_insert_with(|| Arc::new(LinkCounters::new(id, other)));
            self.links
                .entry((other, id))
                .or_insert_with(|| Arc::new(LinkCounters::new(other, id)));
        }
    }
}

/// The running transport of one id.
#[derive(Clone)]
pub(crate) struct Live {
    /// Tells this transport's instance apart from earlier and later ones of the id.
    pub(crate) token: u64,
    pub(crate) inbox: Inbox,
    /// The instance's running flag, cleared when a newer instance takes over.
    pub(crate) running: Arc<AtomicBool>,
    /// The nodes it takes every message from ([`Transport::set_members`]); `None`:
    /// anyone. Other nodes' requests still get through.
    ///
    /// [`Transport::set_members`]: actraft::Transport::set_members
    pub(crate) members: Option<Arc<BTreeSet<NodeId>>>,
}

impl Live {
    /// True when this node takes `message` from `from`: anything from a listed node (or
    /// from anyone before a list), and from any other node the requests the node judges
    /// itself ([`Message::accepted_from_non_members`]: a leader or a candidate its
    /// configuration does not name yet); not its replies or reads.
    ///
    /// [`Message::accepted_from_non_members`]: actraft::core::Message::accepted_from_non_members
    pub(crate) fn admits(&self, from: NodeId, message: &Message) -> bool {
        message.accepted_from_non_members()
            || self.members.as_ref().is_none_or(|m| m.contains(&from))
    }
}

impl Default for MemRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.inner.table();
        let running: Vec<NodeId> = table
            .nodes
            .iter()
            .filter_map(|(id, live)| live.as_ref().map(|_| *id))
            .collect();
        f.debug_struct("MemRouter")
            .field("known", &table.nodes.keys().collect::<Vec<_>>())
            .field("running", &running)
            .field("faults_active", &self.inner.slow.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl MemRouter {
    /// A router with no faults, seeded with [`DEFAULT_SEED`].
    pub fn new() -> Self {
        Self::with_seed(DEFAULT_SEED)
    }

    /// A router with no faults whose random drops and delays derive from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                slow: AtomicBool::new(false),
                table: RwLock::new(Table::default()),
                faults: Mutex::new(Faults::new(seed)),
                next_token: AtomicU64::new(1),
                refusals_logged: Mutex::new(BTreeSet::new()),
            }),
        }
    }

    /// A transport for node `id`, which becomes a known id. Call it again for the same
    /// id to restart a node: starting the new transport takes over from the old one.
    pub fn transport(&self, id: NodeId) -> MemTransport {
        self.inner.table_mut().register(id);
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        MemTransport::new(id, token, Arc::clone(&self.inner))
    }

    /// True while a started transport serves `id`.
    pub fn is_running(&self, id: NodeId) -> bool {
        matches!(self.inner.table().nodes.get(&id), Some(Some(_)))
    }

    /// Cuts `id` off from every other node, both ways, until [`reconnect`](Self::reconnect)
    /// or [`heal`](Self::heal).
    pub fn isolate(&self, id: NodeId) {
        tracing::debug!(node = id, "isolate");
        self.update(|f| f.isolate(id));
    }

    /// Ends the isolation of `id` (partitions stay).
    pub fn reconnect(&self, id: NodeId) {
        tracing::debug!(node = id, "reconnect");
        self.update(|f| f.reconnect(id));
    }

    /// Splits the nodes into `groups`: nodes of one group talk, nodes of different groups
    /// do not. **A node that no group lists is alone**: it reaches nobody and nobody
    /// reaches it. Replaces any earlier partition; isolation stays in force on top.
    ///
    /// ```
    /// # let router = actraft_transport_mem::MemRouter::new();
    /// router.partition(&[&[1, 2, 3], &[4, 5]]);
    /// ```
    ///
    /// # Panics
    ///
    /// If a node is listed in two different groups.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        tracing::debug!(?groups, "partition");
        self.update(|f| f.partition(groups));
    }

    /// Removes every partition and every isolation. Drop rates and delays stay.
    pub fn heal(&self) {
        tracing::debug!("heal");
        self.update(Faults::heal);
    }

    /// Loses each message with probability `rate` (0.0: none, 1.0: all), on every link
    /// without a rate of its own.
    ///
    /// # Panics
    ///
    /// If `rate` is not within `[0, 1]`.
    pub fn set_drop_rate(&self, rate: f64) {
        check_rate(rate);
        tracing::debug!(rate, "set drop rate");
        self.update(|f| f.set_drop_rate(rate));
    }

    /// Loses each message from `from` to `to` (that direction only) with probability
    /// `rate`, instead of the router-wide rate.
    ///
    /// # Panics
    ///
    /// If `rate` is not within `[0, 1]`.
    pub fn set_link_drop_rate(&self, from: NodeId, to: NodeId, rate: f64) {
        check_rate(rate);
        tracing::debug!(from, to, rate, "set link drop rate");
        self.update(|f| f.set_link_drop_rate(from, to, rate));
    }

    /// Delays each message by a uniform random time in `[min, max]`, on every link
    /// without a delay of its own. Messages with different delays overtake each other.
    /// `set_delay(Duration::ZERO, Duration::ZERO)` removes the delay.
    ///
    /// # Panics
    ///
    /// If `min > max`.
    pub fn set_delay(&self, min: Duration, max: Duration) {
        let range = check_range(min, max);
        tracing::debug!(?min, ?max, "set delay");
        self.update(|f| f.set_delay(range));
    }

    /// Delays each message from `from` to `to` (that direction only) by a uniform random
    /// time in `[min, max]`, instead of the router-wide delay. A zero range makes that
    /// link immediate even while a router-wide delay is set.
    ///
    /// # Panics
    ///
    /// If `min > max`.
    pub fn set_link_delay(&self, from: NodeId, to: NodeId, min: Duration, max: Duration) {
        let range = check_range(min, max);
        tracing::debug!(from, to, ?min, ?max, "set link delay");
        self.update(|f| f.set_link_delay(from, to, range));
    }

    /// Removes the drop rate and delay set for the link from `from` to `to`: it follows
    /// the router-wide settings again.
    pub fn clear_link_faults(&self, from: NodeId, to: NodeId) {
        tracing::debug!(from, to, "clear link faults");
        self.update(|f| f.clear_link(from, to));
    }

    /// Removes every fault: partitions, isolation, drop rates and delays (router-wide and
    /// per link) and content filters. The observer stays, and the random generator goes
    /// on from where it is.
    pub fn clear_faults(&self) {
        tracing::debug!("clear faults");
        self.update(Faults::clear);
    }

    /// Calls `observer` with every message just before it is handed to its destination's
    /// inbox, on the thread that delivers it (the sender's, or a tokio task's for a
    /// delayed message), never under a lock of the router. Replaces any earlier
    /// observer. Keep it quick: it runs on the hot path. Setting an observer turns the
    /// fast path off (one mutex per send), like a fault does.
    ///
    /// ```
    /// # use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
    /// # use actraft::core::{AppendResult, Message};
    /// # let router = actraft_transport_mem::MemRouter::new();
    /// let rejections = Arc::new(AtomicU64::new(0));
    /// let count = Arc::clone(&rejections);
    /// router.set_observer(move |envelope| {
    ///     if let Message::AppendEntriesReply(reply) = &envelope.message {
    ///         if matches!(reply.result, AppendResult::Conflict { .. }) {
    ///             count.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    /// });
    /// ```
    pub fn set_observer(&self, observer: impl Fn(&Envelope) + Send + Sync + 'static) {
        self.update(|f| f.observer = Some(Arc::new(observer)));
    }

    /// Removes the observer.
    pub fn clear_observer(&self) {
        self.update(|f| f.observer = None);
    }

    /// Adds a content filter, called with each message sent afterwards (on the sender's
    /// thread, never under a lock of the router) that isolation and partitions let
    /// through. Filters are asked in the order they were added; the first whose answer
    /// is not [`FilterAction::Pass`] decides, and the others are not asked. A delayed
    /// message is not filtered again when it comes due. Returns the id to
    /// [`remove_filter`](Self::remove_filter) it with. Setting a filter turns the fast
    /// path off, like a fault does.
    ///
    /// A filter should be a plain function of the message: for random decisions, return
    /// [`FilterAction::DropWithProbability`] or [`FilterAction::DelayBetween`] and let
    /// the router draw from its seed.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use actraft::core::Message;
    /// use actraft_transport_mem::FilterAction;
    /// # let router = actraft_transport_mem::MemRouter::new();
    /// // Node 1 can send, but hears no answer to its AppendEntries.
    /// let deaf = router.add_filter(|envelope| match envelope.message {
    ///     Message::AppendEntriesReply(_) if envelope.to == 1 => FilterAction::Drop,
    ///     _ => FilterAction::Pass,
    /// });
    /// // Votes take 50 ms; everything else stays immediate.
    /// router.add_filter(|envelope| match envelope.message {
    ///     Message::RequestVote(_) | Message::RequestVoteReply(_) => {
    ///         FilterAction::Delay(Duration::from_millis(50))
    ///     }
    ///     _ => FilterAction::Pass,
    /// });
    /// assert!(router.remove_filter(deaf));
    /// ```
    pub fn add_filter(
        &self,
        filter: impl Fn(&Envelope) -> FilterAction + Send + Sync + 'static,
    ) -> FilterId {
        let id = self.update(|f| f.add_filter(Arc::new(filter)));
        tracing::debug!(?id, "add filter");
        id
    }

    /// Removes the filter `id` (for messages sent afterwards). Returns false if it was
    /// already gone (removed, or cleared by [`clear_faults`](Self::clear_faults)).
    pub fn remove_filter(&self, id: FilterId) -> bool {
        let removed = self.update(|f| f.remove_filter(id));
        tracing::debug!(?id, removed, "remove filter");
        removed
    }

    /// Removes every content filter; other faults stay.
    pub fn clear_filters(&self) {
        tracing::debug!("clear filters");
        self.update(Faults::clear_filters);
    }

    /// What every transport of this router has sent, delivered and dropped so far: the
    /// sum of every link's counters.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::zero();
        for link in self.inner.table().links.values() {
            link.add_to(&mut stats);
        }
        stats
    }

    /// What `from` has sent to `to` so far (that direction only), and what became of
    /// it; zeros when either id is unknown.
    pub fn link_stats(&self, from: NodeId, to: NodeId) -> Stats {
        let mut stats = Stats::zero();
        if let Some(link) = self.inner.table().links.get(&(from, to)) {
            link.add_to(&mut stats);
        }
        stats
    }

    /// What `id` has sent and what was sent to it so far, and what became of it, across
    /// every transport it had; zeros for an unknown id.
    pub fn node_stats(&self, id: NodeId) -> NodeStats {
        let mut stats = NodeStats::zero();
        for (&(from, to), link) in &self.inner.table().links {
            if from == id {
                link.add_to(&mut stats.outbound);
            }
            if to == id {
                link.add_to(&mut stats.inbound);
            }
        }
        stats
    }

    fn update<R>(&self, change: impl FnOnce(&mut Faults) -> R) -> R {
        let mut faults = self.inner.faults();
        let result = change(&mut faults);
        self.inner.slow.store(faults.active(), Ordering::Release);
        result
    }
}

impl Inner {
    pub(crate) fn table(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn table_mut(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn check_rate(rate: f64) {
    assert!(
        (0.0..=1.0).contains(&rate),
        "drop rate must be within [0, 1], got {rate}"
    );
}

fn check_range(min: Duration, max: Duration) -> DelayRange {
    assert!(min <= max, "delay range: min {min:?} exceeds max {max:?}");
    DelayRange { min, max }
}
