//! The node: one actix actor per Raft node, a thin shell around the
//! [`Driver`], which holds the node's logic around [`RaftCore`].
//!
//! Start one with [`NodeBuilder`]; talk to it through the [`RaftHandle`] it returns.
//!
//! The shell keeps these rules:
//! - the term and vote are durable before a vote is granted, entries are durable before
//!   a follower acknowledges them, and a leader counts itself toward a commit only once
//!   its own write is durable (it replicates to followers while that write is in flight);
//! - writes are serialized: they reach the storage in order and complete in order; a few
//!   may be in flight at once, so a disk storage always has the next write queued behind
//!   the one syncing, and everything the core produces while they are in flight merges into
//!   the next one (group commit), whose entries leave in the same AppendEntries;
//! - the actor never blocks its thread on storage: a storage future that is ready at once
//!   (memory) completes inline, one that is not (disk) completes on the storage's thread
//!   and wakes the actor, while ticks and heartbeats keep flowing;
//! - committed entries are applied in order, once, in bounded batches, and each proposal
//!   is answered with its entry's response, with [`ClientError::LeadershipLost`] when its
//!   entry is replaced, or with [`ClientError::OutcomeUnknown`] as soon as this node stops
//!   leading;
//! - every queue is bounded ([`Limits`]): a full proposal queue or reply table answers
//!   [`ClientError::Busy`], a full inbound queue drops peer messages and counts them.

mod actor;
pub(crate) use actor::announce;
mod handle;
mod install;
mod membership;
mod queue;
mod snapshots;
mod storage;
mod timer;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ArbiterHandle};
use thiserror::Error;
use tokio::sync::{broadcast, oneshot, watch};

pub use handle::{ClientError, NodeEvent, RaftHandle, Stopping, Submitted};

use crate::core::{Config, InitError, InitialState, NodeId, RaftCore};
use crate::driver::{Counters, Driver, Limits};
use crate::storage::{LogStorage, StorageError};
use crate::transport::{Transport, TransportError};
use actor::RaftNode;
use queue::{WakeQueue, WakeSignal};
use storage::StorageHolder;

/// Events a subscriber may fall behind by before it starts missing them (it is then
/// told how many it missed: see [`RaftHandle::subscribe`]).
pub const EVENT_CAPACITY: usize = 4096;

/// How long a leader's shutdown waits at most for the leader it hands over to, by
/// default ([`NodeBuilder::transfer_on_shutdown`]).
pub const DEFAULT_SHUTDOWN_TRANSFER: Duration = Duration::from_secs(1);

/// Why a node could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// Reading the log and hard state failed.
    #[error("could not recover from storage: {0}")]
    Storage(#[from] StorageError),
    /// The configuration or the recovered state is invalid.
    #[error(transparent)]
    Init(#[from] InitError),
    /// The transport could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The arbiter to run on has stopped.
    #[error("the arbiter to run the node on is gone")]
    ArbiterGone,
    /// The latest snapshot could not be read or restored, or does not fit the log.
    #[error("could not recover from the snapshot: {0}")]
    Snapshot(#[from] crate::snapshot::SnapshotError),
}

/// Configures and starts a node.
///
/// ```no_run
/// # async fn demo<S: actraft::LogStorage, T: actraft::Transport, M: actraft::StateMachine>(
/// #     storage: S, transport: T, state_machine: M) -> Result<(), actraft::StartError> {
/// use actraft::{core::Config, NodeBuilder};
/// let node = NodeBuilder::new(1, vec![1, 2, 3])
///     .config(Config::default())
///     .start(storage, transport, state_machine)
///     .await?;
/// let response = node.propose("set x 1").await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    id: NodeId,
    members: Vec<NodeId>,
    config: Config,
    limits: Limits,
    seed: Option<u64>,
    arbiter: Option<ArbiterHandle>,
    snapshot_store: Option<Arc<dyn crate::SnapshotStore>>,
    transfer_on_shutdown: Option<Duration>,
}

impl NodeBuilder {
    /// A node `id` that joins a running cluster: it starts with no configuration,
    /// never campaigns, and takes the log (or a snapshot) from a leader once it is added
    /// ([`RaftHandle::add_learner`]); from then on it follows the configuration its log
    /// gives it. On restart it recovers that configuration from its storage.
    pub fn joining(id: NodeId) -> Self {
        Self::new(id, Vec::new())
    }

    /// A node `id` in a cluster of `members` (which includes `id`). `members` is the
    /// bootstrap configuration, used only while the node's storage holds none (no
    /// snapshot, no membership entry): after a change, a restarted node obeys the
    /// configuration it recovers.
    pub fn new(id: NodeId, members: Vec<NodeId>) -> Self {
        Self {
            id,
            members,
            config: Config::default(),
            limits: Limits::default(),
            seed: None,
            arbiter: None,
            snapshot_store: None,
            transfer_on_shutdown: Some(DEFAULT_SHUTDOWN_TRANSFER),
        }
    }

    /// The protocol configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Bounds on the node's queues (default: [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Seeds the election timeouts, for reproducible runs (default: from the clock).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Runs the node on this arbiter (default: the caller's). Nodes on one arbiter share
    /// a thread and talk without thread hops; nodes on several use several cores.
    pub fn arbiter(mut self, arbiter: ArbiterHandle) -> Self {
        self.arbiter = Some(arbiter);
        self
    }

    /// Where the node keeps its snapshots (default: none, and the node never takes a
    /// snapshot nor compacts its log). With a store, the node snapshots by
    /// [`Config::snapshot_after_entries`] and [`Config::snapshot_after_bytes`] or on
    /// [`RaftHandle::trigger_snapshot`], and restarts from the latest snapshot.
    pub fn snapshot_store(mut self, store: impl crate::SnapshotStore) -> Self {
        self.snapshot_store = Some(Arc::new(store));
        self
    }

    /// Whether [`RaftHandle::shutdown`] of a leader first hands leadership to its most
    /// up-to-date follower, and how long it waits at most for the new leader before it
    /// stops anyway. It stops as soon as it no longer leads: a leader that lost its
    /// quorum (the others stopped, or a partition) steps down and stops then, not at the
    /// bound. `None` stops at once (the others then elect a leader after an election
    /// timeout). Default: on, waiting at most one second.
    pub fn transfer_on_shutdown(mut self, bound: Option<Duration>) -> Self {
        self.transfer_on_shutdown = bound;
        self
    }

    /// Recovers the node's state from `storage` and starts it. Must be called from
    /// within an actix system.
    pub async fn start<S, T, M>(
        self,
        storage: S,
        transport: T,
        state_machine: M,
    ) -> Result<RaftHandle, StartError>
    where
        S: LogStorage,
        T: Transport,
        M: crate::StateMachine,
    {
        let state = storage.state().await?;
        let recovered =
            snapshots::recover(&storage, &state, self.snapshot_store.clone(), state_machine)
                .await?;
        let state_machine = recovered.state_machine;
        let snapshot_point = recovered.snapshot.as_ref().map(|m| m.last_included);
        let initial = InitialState {
            hard_state: state.hard_state,
            log_prefix: recovered.log_prefix,
            entries: recovered.entries,
            applied_index: state_machine
                .applied_index()
                .max(snapshot_point.map_or(0, |p| p.index)),
            snapshot: snapshot_point.unwrap_or_default(),
            // A snapshot without voters predates membership in snapshots: the
            // bootstrap members apply.
            membership: recovered
                .snapshot
                .as_ref()
                .map(|m| m.membership.clone())
                .filter(|c| !c.voters().is_empty()),
        };
        let (snapshot_tx, snapshot_rx) = watch::channel(recovered.snapshot.clone());
        let seed = self.seed.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ self.id.rotate_left(32)
        });
        let core = RaftCore::new(self.id, self.members, self.config, initial, seed)?;
        let (status_tx, status_rx) = watch::channel(core.status());
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (started_tx, started_rx) = oneshot::channel();
        let (storage, released) = StorageHolder::new(storage);
        let storage = Arc::new(storage);
        let transport = Arc::new(transport);
        // Handles refuse while the queue and the node's pending table together hold as
        // many proposals as the table takes: the node never answers Busy for a full
        // table on its own thread.
        let proposals = Arc::new(WakeQueue::with_held_limit(
            self.limits.max_queued_proposals,
            self.limits.max_pending_proposals,
        ));
        let inbound = Arc::new(WakeQueue::new(self.limits.max_inbound_messages));
        // Like proposals: refused at the handle while the queue and the reads the node
        // holds together reach the node's bound.
        let reads = Arc::new(WakeQueue::with_held_limit(
            self.limits.max_pending_reads,
            self.limits.max_pending_reads,
        ));
        let counters = Arc::new(Counters::default());
        let wake = Arc::new(WakeSignal::default());
        let (metrics_tx, metrics_rx) = crate::metrics::NodeMetrics::channel(&core.status());
        metrics_tx.send_modify(|m| m.membership = core.membership().clone());
        let status_rx = Arc::new(status_rx);
        let metrics_rx = Arc::new(metrics_rx);
        let shared = actor::Shared {
            views: actor::Views {
                status: Arc::clone(&status_rx),
                metrics: Arc::clone(&metrics_rx),
            },
            status: status_tx,
            events: events.clone(),
            started: started_tx,
            proposals: Arc::clone(&proposals),
            reads: Arc::clone(&reads),
            inbound,
            wake: Arc::clone(&wake),
            snapshot_store: self.snapshot_store.clone(),
            snapshots: snapshot_tx,
            transfer_on_shutdown: self.transfer_on_shutdown,
            metrics: metrics_tx,
        };
        let driver = Driver::new(
            core,
            Box::new(state_machine),
            self.limits,
            Arc::clone(&counters),
        )
        .with_latest_snapshot(recovered.snapshot);
        let make = move || RaftNode::new(driver, storage, transport, shared);
        let arbiter = self
            .arbiter
            .clone()
            .unwrap_or_else(actix_rt::Arbiter::current);
        let addr = match &self.arbiter {
            Some(arbiter) => {
                let node = make();
                RaftNode::start_in_arbiter(arbiter, move |_| node)
            }
            None => make().start(),
        };
        started_rx.await.map_err(|_| StartError::ArbiterGone)??;
        Ok(RaftHandle {
            id: self.id,
            commands: addr.clone().recipient(),
            wake,
            proposals,
            reads,
            status: status_rx,
            events,
            counters,
            released,
            snapshots: snapshot_rx,
            metrics: metrics_rx,
            arbiter,
        })
    }
}
