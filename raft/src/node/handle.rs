//! The public face of a running node: propose, watch, wait, stop.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use bytes::Bytes;
use tokio::sync::{broadcast, oneshot, watch};

use super::actor::{Proposal, Reply};
use super::queue::{Refused, Wake, WakeQueue, WakeSignal};
use crate::core::{Event, LogId, LogIndex, NodeId, ReadMode, Role, Status, Term, TransferError};
use crate::driver::{CounterSnapshot, Counters};
pub use crate::error::ClientError;

/// An event inside a node, with when and where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeEvent {
    /// The node.
    pub node: NodeId,
    /// When.
    pub at: Instant,
    /// The node's role and term right after the event.
    pub role: Role,
    /// The term right after the event.
    pub term: Term,
    /// What happened.
    pub event: Event,
}

/// Requests from handles to the node actor.
#[derive(Debug)]
pub(crate) enum Command {
    Shutdown {
        done: oneshot::Sender<()>,
    },
    Kill,
    TriggerSnapshot,
    TransferLeadership {
        to: Option<NodeId>,
        done: oneshot::Sender<Result<NodeId, TransferError>>,
    },
    ChangeMembership {
        change: crate::driver::MembershipChange,
        done: oneshot::Sender<Result<LogIndex, crate::core::MembershipError>>,
    },
}

impl actix::Message for Command {
    type Result = ();
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct RaftHandle {
    pub(crate) id: NodeId,
    pub(crate) commands: Recipient<Command>,
    pub(crate) wake: Arc<WakeSignal>,
    pub(crate) proposals: Arc<WakeQueue<Proposal>>,
    pub(crate) reads: Arc<WakeQueue<super::actor::ReadRequest>>,
    /// Shared by every handle of the node (see `actor::Views`).
    pub(crate) status: Arc<watch::Receiver<Status>>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) released: watch::Receiver<bool>,
    pub(crate) snapshots: watch::Receiver<Option<crate::SnapshotMeta>>,
    /// Shared by every handle of the node (see `actor::Views`).
    pub(crate) metrics: Arc<watch::Receiver<crate::metrics::RaftMetrics>>,
    pub(crate) arbiter: actix_rt::ArbiterHandle,
}

/// A proposal the leader has appended: where its entry went, and its outcome to come.
#[derive(Debug)]
pub struct Submitted {
    /// The entry's index and term.
    pub id: LogId,
    response: oneshot::Receiver<Result<Bytes, ClientError>>,
}

impl Submitted {
    /// Waits for the state machine's response (or why there is none), as
    /// [`RaftHandle::propose`] does.
    pub async fn response(self) -> Result<Bytes, ClientError> {
        self.response.await.unwrap_or(Err(ClientError::Stopped))
    }
}

/// Returned by [`RaftHandle::kill`]: the node is stopping. Await it to wait until the
/// node has released its storage, so the same storage can be opened again; drop it to
/// not wait.
#[derive(Debug)]
pub struct Stopping {
    released: watch::Receiver<bool>,
}

impl IntoFuture for Stopping {
    type Output = ();
    type IntoFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(super::storage::wait_released(self.released))
    }
}

impl std::fmt::Debug for RaftHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftHandle")
            .field("id", &self.id)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl RaftHandle {
    /// Asks the node to snapshot its applied state now (when it has a snapshot store
    /// and its state machine supports snapshots), whatever the policy says. Returns at
    /// once; watch [`latest_snapshot`](Self::latest_snapshot) or
    /// [`wait_for_snapshot`](Self::wait_for_snapshot) for the result.
    pub fn trigger_snapshot(&self) {
        self.commands.do_send(Command::TriggerSnapshot);
    }

    /// The latest durable snapshot of this node, if any.
    pub fn latest_snapshot(&self) -> Option<crate::SnapshotMeta> {
        self.snapshots.borrow().clone()
    }

    /// Waits until this node has a durable snapshot through `index` or later.
    pub async fn wait_for_snapshot(
        &self,
        index: LogIndex,
        timeout: Duration,
    ) -> Result<crate::SnapshotMeta, ClientError> {
        let mut rx = self.snapshots.clone();
        let wait = rx.wait_for(|s| s.as_ref().is_some_and(|m| m.last_included.index >= index));
        let outcome = match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(meta)) => Ok(meta.clone().expect("checked above")),
            Ok(Err(_)) => Err(ClientError::Stopped),
            Err(_) => Err(ClientError::Timeout(timeout)),
        };
        outcome
    }

    /// The arbiter (thread) the node runs on.
    ///
    /// Work spawned there — a service's request handlers, an actor of its own started
    /// with `Actor::start_in_arbiter` — proposes and reads with no cross-thread wake-up:
    /// the node and the caller share the thread, so the proposal, the node's processing
    /// and the answer are wake-ups of local tasks (only the replication to followers on
    /// other threads crosses threads). With every node of a cluster on one arbiter
    /// ([`NodeBuilder::arbiter`](crate::NodeBuilder::arbiter)), a commit crosses none.
    ///
    /// ```no_run
    /// # async fn demo(handle: actraft::RaftHandle) {
    /// let local = handle.clone();
    /// handle.arbiter().spawn(async move {
    ///     let _ = local.propose("set x = 1").await;
    /// });
    /// # }
    /// ```
    pub fn arbiter(&self) -> &actix_rt::ArbiterHandle {
        &self.arbiter
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Proposes a command. Resolves with the state machine's response once the entry is
    /// committed and applied on this node. Fails at once with
    /// [`ClientError::NotLeader`] on a follower and [`ClientError::Busy`] when the node is
    /// overloaded (it never waits for room: back off and retry). When this node stops
    /// leading before the entry commits, fails with [`ClientError::OutcomeUnknown`].
    pub async fn propose(&self, command: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        let (done, rx) = oneshot::channel();
        self.push(
            command.into(),
            Reply {
                accepted: None,
                done,
            },
        )?;
        rx.await.unwrap_or(Err(ClientError::Stopped))
    }

    /// Proposes a command and resolves as soon as the leader has appended it, with
    /// where its entry went ([`Submitted::id`]), without waiting for the commit; the
    /// outcome follows with [`Submitted::response`]. Fails as
    /// [`propose`](Self::propose) does when the command is not appended.
    pub async fn submit(&self, command: impl Into<Bytes>) -> Result<Submitted, ClientError> {
        let (accepted, accepted_rx) = oneshot::channel();
        let (done, response) = oneshot::channel();
        self.push(
            command.into(),
            Reply {
                accepted: Some(accepted),
                done,
            },
        )?;
        match accepted_rx.await {
            Ok(id) => Ok(Submitted { id, response }),
            // Refused before it was appended: the reason is the response.
            Err(_) => Err(response
                .await
                .unwrap_or(Err(ClientError::Stopped))
                .err()
                .unwrap_or(ClientError::Stopped)),
        }
    }

    fn push(&self, command: Bytes, reply: Reply) -> Result<(), ClientError> {
        let pushed = self.enqueue(&self.proposals, (command, reply), Wake::Proposals);
        if matches!(pushed, Err(ClientError::Busy)) {
            Counters::add(&self.counters.proposals_busy, 1);
        }
        pushed
    }

    /// Queues `item` for the node, waking it with `wake` when the queue was idle: `Busy`
    /// when the queue is full, `Stopped` once the node stopped.
    fn enqueue<T>(&self, queue: &WakeQueue<T>, item: T, wake: Wake) -> Result<(), ClientError> {
        match queue.push(item) {
            Ok(true) => self.wake.raise(wake),
            Ok(false) => {}
            Err(Refused::Full(_)) => return Err(ClientError::Busy),
            Err(Refused::Closed(_)) => return Err(ClientError::Stopped),
        }
        Ok(())
    }

    /// A linearizable read barrier. Resolves with a read index once this node's state
    /// machine has applied every entry committed before this call; from then on, the
    /// state machine's own state reflects every write that completed before the read
    /// began, so the service reads it locally (the status is published before the
    /// answer, so [`status`](Self::status) shows `applied_index` at least the returned
    /// index).
    ///
    /// # Rules
    ///
    /// - Read the state machine *after* this resolves, on any node (the state only moves
    ///   forward: a later state is still linearizable).
    /// - [`ReadMode::Index`] and [`ReadMode::Lease`] need the leader; a follower answers
    ///   [`ClientError::Read`] with [`ReadError::NotLeader`](crate::ReadError::NotLeader) (and the leader it knows).
    ///   [`ReadMode::Follower`] works on any node: the follower asks the leader for the
    ///   read index ([`ReadError::NoLeader`](crate::ReadError::NoLeader) when it knows none).
    /// - [`ReadMode::Lease`] trusts bounded clock drift (see
    ///   [`Config::lease_reads`](crate::Config::lease_reads)); without leases enabled it
    ///   costs what [`ReadMode::Index`] costs.
    /// - A node that cannot confirm its leadership in time answers
    ///   [`ReadError::NotConfirmed`](crate::ReadError::NotConfirmed), never a stale index; an old leader cut off from
    ///   the majority refuses once its lease ran out.
    /// - [`ClientError::Busy`] when too many reads wait on this node
    ///   ([`Limits::max_pending_reads`](crate::Limits::max_pending_reads)).
    ///
    /// Compared with a read through the log ([`propose`](Self::propose)), nothing is
    /// written: the read costs one round of heartbeats (batched with concurrent reads),
    /// or nothing with a lease.
    pub async fn read_index(&self, mode: ReadMode) -> Result<LogIndex, ClientError> {
        let (done, rx) = oneshot::channel();
        let reply = Reply {
            accepted: None,
            done,
        };
        self.enqueue(&self.reads, (mode, reply), Wake::Reads)?;
        let bytes = rx.await.unwrap_or(Err(ClientError::Stopped))?;
        let raw: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| ClientError::Stopped)?;
        Ok(u64::from_be_bytes(raw))
    }

    /// Like [`read_index`](Self::read_index), giving up after `timeout`.
    pub async fn read_index_timeout(
        &self,
        mode: ReadMode,
        timeout: Duration,
    ) -> Result<LogIndex, ClientError> {
        tokio::time::timeout(timeout, self.read_index(mode))
            .await
            .unwrap_or(Err(ClientError::Timeout(timeout)))
    }

    /// The node's counters: proposals accepted and refused, messages refused and dropped,
    /// writes, applies, elections.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// The node's metrics: role, term, leader, log indexes, each follower's progress (on
    /// the leader) and the counters, read now.
    pub fn metrics(&self) -> crate::metrics::RaftMetrics {
        crate::metrics::NodeMetrics::read(&self.metrics, &self.counters)
    }

    /// A receiver woken whenever the node's [`metrics`](Self::metrics) change (role,
    /// term, leader, indexes, follower progress; counters alone do not wake it).
    pub fn watch_metrics(&self) -> watch::Receiver<crate::metrics::RaftMetrics> {
        watch::Receiver::clone(&self.metrics)
    }

    /// Like [`propose`](Self::propose), giving up after `timeout` (the outcome is then
    /// unknown: the command may still commit).
    pub async fn propose_timeout(
        &self,
        command: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        tokio::time::timeout(timeout, self.propose(command))
            .await
            .unwrap_or(Err(ClientError::Timeout(timeout)))
    }

    /// The node's latest status.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        watch::Receiver::clone(&self.status)
    }

    /// Subscribes to the node's events: role, term and leader changes, elections and
    /// votes. Commit progress is not sent as events (it would wake subscribers once per
    /// commit): watch [`Status::commit_index`] instead.
    ///
    /// The node never waits for a subscriber: a subscriber more than
    /// [`EVENT_CAPACITY`](super::EVENT_CAPACITY) events behind is not silently skipped
    /// ahead, but gets `Err(RecvError::Lagged(n))` from `recv`, saying how many events it
    /// missed, and then continues with the oldest event still held. The lossless record
    /// of role, term and leader is the status watch ([`watch_status`](Self::watch_status)):
    /// every change of them is published there, and [`Status::term`] only grows, so a
    /// lagging subscriber resynchronises from [`status`](Self::status).
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// True while the node runs.
    pub fn is_running(&self) -> bool {
        self.commands.connected() && self.status.has_changed().is_ok()
    }

    /// Waits until `pred` holds for the node's status.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Status) -> bool,
    ) -> Result<Status, ClientError> {
        let mut rx = self.watch_status();
        let wait = async move {
            match rx.wait_for(|s| pred(s)).await {
                Ok(s) => Ok(*s),
                Err(_) => Err(ClientError::Stopped),
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(ClientError::Timeout(timeout)))
    }

    /// Waits until the node knows a leader, and returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, ClientError> {
        let s = self.wait_until(timeout, |s| s.leader.is_some()).await?;
        s.leader.ok_or(ClientError::Stopped)
    }

    /// Waits until the node has applied every entry up to `index`.
    pub async fn wait_for_applied(
        &self,
        index: LogIndex,
        timeout: Duration,
    ) -> Result<Status, ClientError> {
        self.wait_until(timeout, |s| s.applied_index >= index).await
    }

    /// Hands leadership to `to`, or with `None` to the most up-to-date follower (thesis
    /// §3.10). This node must lead. It stops taking proposals (they fail with
    /// [`ClientError::TransferInProgress`]), brings the target's log up to date and tells
    /// it to campaign at once. Resolves with the new leader as soon as this node knows
    /// it, usually within a few round trips; fails with
    /// [`TransferError::Abandoned`] when the target did not win within an election
    /// timeout (this node then leads on and takes proposals again), with
    /// [`TransferError::TimedOut`] when no new leader was known within twice the maximum
    /// election timeout, or at once with [`TransferError::NotLeader`],
    /// [`TransferError::UnknownTarget`] or [`TransferError::InProgress`].
    pub async fn transfer_leadership(&self, to: Option<NodeId>) -> Result<NodeId, TransferError> {
        let (done, rx) = oneshot::channel();
        self.commands
            .do_send(Command::TransferLeadership { to, done });
        rx.await.unwrap_or(Err(TransferError::Stopped))
    }

    /// Stops the node gracefully: no new work, the writes in flight complete, pending
    /// proposals fail with [`ClientError::Stopped`]. Resolves once the node has stopped
    /// and released its storage, so the same storage can be opened again at once.
    ///
    /// A leader first hands leadership to its most up-to-date follower and waits (within
    /// a bound) until it knows the new leader, so the cluster is without a leader for a
    /// few round trips rather than an election timeout; see
    /// [`NodeBuilder::transfer_on_shutdown`](super::NodeBuilder::transfer_on_shutdown).
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        self.commands.do_send(Command::Shutdown { done });
        let _ = rx.await;
        super::storage::wait_released(self.released.clone()).await;
    }

    /// Stops the node at once, as a crash would: nothing more is written. What the
    /// storage already made durable stays, so a node restarted on it recovers. Await
    /// the returned [`Stopping`] (`node.kill().await`) to wait until the node has
    /// released its storage.
    pub fn kill(&self) -> Stopping {
        self.commands.do_send(Command::Kill);
        Stopping {
            released: self.released.clone(),
        }
    }
}
