//! The router: the routing table, the faults, and the path every message takes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use actraft::core::{Envelope, NodeId};
use actraft::Inbox;

use crate::faults::{DelayRange, Faults};
use crate::stats::{Counters, Stats};
use crate::transport::MemTransport;

/// The seed of [`MemRouter::new`].
pub const DEFAULT_SEED: u64 = 0x5EED_5EED_5EED_5EED;

/// Links the nodes of one process, and injects faults between them.
///
/// Cloning is cheap: every clone is the same router. Make one per cluster, give each
/// node `router.transport(id)`, and keep a clone to inject faults while the cluster
/// runs. A router knows an id once a transport was made for it: sending to an id it
/// never heard of fails with [`TransportError::UnknownPeer`], while a message to a known
/// node that is not running (stopped, or not started yet) is silently dropped, as a
/// network drops packets for a host that is down.
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
/// - [`clear_faults`](Self::clear_faults) removes every fault at once.
///
/// Every random decision draws from one seeded generator (SplitMix64), seeded by
/// [`with_seed`](Self::with_seed): the same seed, configuration and sequence of sends
/// give the same drops and delays. (In a multi-threaded cluster the sequence of
/// sends itself depends on scheduling.)
///
/// # Fast path
///
/// With no fault and no observer set, `send` looks the destination up under a shared
/// read lock and hands the message to its inbox on the caller's thread: no task, no
/// allocation, no global counter. Delayed messages ride a `tokio` task each, so delays
/// need a tokio runtime (actix runs on one).
#[derive(Clone)]
pub struct MemRouter {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Set while a fault or an observer is configured: sends then take the slow path.
    pub(crate) slow: AtomicBool,
    /// Every known id, with the transport running for it, if any.
    table: RwLock<BTreeMap<NodeId, Option<Live>>>,
    faults: Mutex<Faults>,
    /// Counters of every transport ever made, summed by `stats()`.
    counters: Mutex<Vec<Arc<Counters>>>,
    next_token: AtomicU64,
}

/// The running transport of one id.
#[derive(Clone)]
pub(crate) struct Live {
    /// Tells this transport's instance apart from earlier and later ones of the id.
    pub(crate) token: u64,
    pub(crate) inbox: Inbox,
    /// The instance's running flag, cleared when a newer instance takes over.
    pub(crate) running: Arc<AtomicBool>,
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
            .iter()
            .filter_map(|(id, live)| live.as_ref().map(|_| *id))
            .collect();
        f.debug_struct("MemRouter")
            .field("known", &table.keys().collect::<Vec<_>>())
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
                table: RwLock::new(BTreeMap::new()),
                faults: Mutex::new(Faults::new(seed)),
                counters: Mutex::new(Vec::new()),
                next_token: AtomicU64::new(1),
            }),
        }
    }

    /// A transport for node `id`, which becomes a known id. Call it again for the same
    /// id to restart a node: starting the new transport takes over from the old one.
    pub fn transport(&self, id: NodeId) -> MemTransport {
        self.inner.table_mut().entry(id).or_insert(None);
        let counters = Arc::new(Counters::default());
        lock(&self.inner.counters).push(Arc::clone(&counters));
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        MemTransport::new(id, token, Arc::clone(&self.inner), counters)
    }

    /// True while a started transport serves `id`.
    pub fn is_running(&self, id: NodeId) -> bool {
        matches!(self.inner.table().get(&id), Some(Some(_)))
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

    /// Removes every fault: partitions, isolation, drop rates and delays, router-wide and
    /// per link. The observer stays, and the random generator goes on from where it is.
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

    /// What every transport of this router has sent, delivered and dropped so far.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::zero();
        for counters in lock(&self.inner.counters).iter() {
            counters.add_to(&mut stats);
        }
        stats
    }

    fn update(&self, change: impl FnOnce(&mut Faults)) {
        let mut faults = self.inner.faults();
        change(&mut faults);
        self.inner.slow.store(faults.active(), Ordering::Release);
    }
}

impl Inner {
    pub(crate) fn table(&self) -> RwLockReadGuard<'_, BTreeMap<NodeId, Option<Live>>> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn table_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<NodeId, Option<Live>>> {
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
