//! The node actor: adapts the [`Driver`] to actix. It feeds the driver the time,
//! inbound messages, proposals and storage completions, and executes the driver's output
//! against the storage, the transport and the watchers. No protocol or bookkeeping
//! decision lives here: that is the driver's, which the simulator runs too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::{broadcast, oneshot, watch};

use super::handle::{ClientError, Command, NodeEvent};
use super::queue::{Raised, Wake, WakeQueue, WakeSignal, Wakes};
use super::storage::StorageHolder;
use super::timer::{TimerId, Timers};
use crate::core::{Envelope, Event, LogId, NodeId, Role, Status, TransferError};
use crate::driver::{Driver, Responder, Run, TransferId, WriteId};
use crate::metrics::NodeMetrics;
use crate::storage::{LogStorage, StorageError};
use crate::transport::Transport;
use crate::StateMachine;

/// Where a proposal's outcome goes: the handle's channels.
pub(crate) struct Reply {
    pub(crate) accepted: Option<oneshot::Sender<LogId>>,
    pub(crate) done: oneshot::Sender<Result<Bytes, ClientError>>,
}

impl Responder for Reply {
    fn accepted(&mut self, id: LogId) {
        if let Some(tx) = self.accepted.take() {
            let _ = tx.send(id);
        }
    }

    fn respond(self, result: Result<Bytes, ClientError>) {
        let _ = self.done.send(result);
    }
}

/// A proposal on its way from a handle.
pub(crate) type Proposal = (Bytes, Reply);

/// A read barrier on its way from a handle ([`RaftHandle::read_index`](crate::RaftHandle::read_index)).
pub(crate) type ReadRequest = (crate::ReadMode, Reply);

/// The node's timer fired (the generation tells a current timer from a replaced one).
struct Tick(u64);

impl actix::Message for Tick {
    type Result = ();
}

/// Runs the driver again after it yielded, once the messages and wake-ups that came
/// meanwhile were let in.
struct Flush;

impl actix::Message for Flush {
    type Result = ();
}

type WriteFuture = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;

/// The receivers that every handle of a node shares, one per watched value. The node
/// holds them too, so each of its watch channels always has exactly one receiver besides
/// the subscribers' ([`RaftHandle::watch_status`](crate::RaftHandle::watch_status),
/// [`watch_metrics`](crate::RaftHandle::watch_metrics), waits). A change is stored for
/// every reader, and announced (waking receivers, which costs a lock per waker slot)
/// only while there is a subscriber: see [`announce`].
// Held, never read: their count is what matters.
#[allow(dead_code)]
pub(crate) struct Views {
    pub(crate) status: Arc<watch::Receiver<Status>>,
    pub(crate) metrics: Arc<watch::Receiver<crate::metrics::RaftMetrics>>,
}

/// True when a channel of a node has subscribers to wake: receivers besides the one its
/// handles share ([`Views`]). Called inside `send_if_modified`, under the channel's
/// lock: a receiver cloned after the count was read reads the value after the change
/// is stored, so no subscriber misses a change it could not see.
pub(crate) fn announce<T>(tx: &watch::Sender<T>) -> bool {
    tx.receiver_count() > 1
}

/// The channels a node shares with its handles.
pub(crate) struct Shared {
    pub(crate) views: Views,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) started: oneshot::Sender<Result<(), crate::transport::TransportError>>,
    pub(crate) proposals: Arc<WakeQueue<Proposal>>,
    pub(crate) reads: Arc<WakeQueue<ReadRequest>>,
    pub(crate) inbound: Arc<WakeQueue<Envelope>>,
    /// Raised by whoever fills one of the three queues.
    pub(crate) wake: Arc<WakeSignal>,
    pub(crate) snapshot_store: Option<Arc<dyn crate::SnapshotStore>>,
    pub(crate) snapshots: watch::Sender<Option<crate::SnapshotMeta>>,
    pub(crate) transfer_on_shutdown: Option<Duration>,
    pub(crate) metrics: watch::Sender<crate::metrics::RaftMetrics>,
}

/// Where a leadership transfer's outcome goes.
type TransferReply = oneshot::Sender<Result<NodeId, TransferError>>;
/// Where a membership change's outcome goes.
type MembershipReply = oneshot::Sender<Result<crate::core::LogIndex, crate::core::MembershipError>>;

pub(crate) struct RaftNode<S: LogStorage, T: Transport, M: StateMachine> {
    driver: Driver<Box<M>, Reply>,
    storage: Arc<StorageHolder<S>>,
    transport: Arc<T>,
    origin: Instant,
    status: watch::Sender<Status>,
    /// Held so that the count of receivers [`announce`] reads is exact.
    _views: Views,
    events: broadcast::Sender<NodeEvent>,
    started: Option<oneshot::Sender<Result<(), crate::transport::TransportError>>>,
    proposals: Arc<WakeQueue<Proposal>>,
    /// Reads from handles: many reads cost one wake-up of the node, not one message each.
    reads: Arc<WakeQueue<ReadRequest>>,
    inbound: Arc<WakeQueue<Envelope>>,
    wake: Arc<WakeSignal>,
    /// The end of the snapshot last published on the snapshots watch.
    published_snapshot: Option<LogId>,
    spare_proposals: Vec<Proposal>,
    spare_reads: Vec<ReadRequest>,
    spare_inbound: Vec<Envelope>,
    /// The driver's write list, swapped out while its writes start.
    spare_writes: Vec<(WriteId, crate::LogWrite)>,
    span: tracing::Span,
    timer: Option<(Duration, TimerId)>,
    timer_generation: u64,
    flush_scheduled: bool,
    /// The status and metrics went out after the driver last ran (before answers), so
    /// the end of the drive need not compare them again.
    published: bool,
    stopping: Vec<oneshot::Sender<()>>,
    shutting_down: bool,
    snapshot_store: Option<Arc<dyn crate::SnapshotStore>>,
    snapshots: watch::Sender<Option<crate::SnapshotMeta>>,
    transfer_replies: Vec<(TransferId, TransferReply)>,
    membership_replies: Vec<(crate::driver::MembershipId, MembershipReply)>,
    transfer_on_shutdown: Option<Duration>,
    /// The transfer a leader's shutdown waits for.
    shutdown_transfer: Option<TransferId>,
    /// That transfer is over: finish the shutdown.
    shutdown_ready: bool,
    metrics: NodeMetrics,
    /// Snapshot chunks being read (leader) and written (follower) off the node's thread.
    install_io: super::install::InstallIo,
    /// What the transport was last told ([`Transport::set_members`]).
    members_told: Vec<crate::transport::Member>,
}

impl<S: LogStorage, T: Transport, M: StateMachine> RaftNode<S, T, M> {
    pub(crate) fn new(
        driver: Driver<Box<M>, Reply>,
        storage: Arc<StorageHolder<S>>,
        transport: Arc<T>,
        shared: Shared,
    ) -> Self {
        let status = driver.status();
        let span = tracing::info_span!("raft", node = status.id, term = status.term);
        let published_snapshot = shared.snapshots.borrow().as_ref().map(|m| m.last_included);
        Self {
            driver,
            storage,
            transport,
            origin: Instant::now(),
            status: shared.status,
            _views: shared.views,
            events: shared.events,
            started: Some(shared.started),
            proposals: shared.proposals,
            reads: shared.reads,
            inbound: shared.inbound,
            wake: shared.wake,
            published_snapshot,
            spare_proposals: Vec::new(),
            spare_reads: Vec::new(),
            spare_inbound: Vec::new(),
            spare_writes: Vec::new(),
            span,
            timer: None,
            timer_generation: 0,
            flush_scheduled: false,
            published: false,
            stopping: Vec::new(),
            shutting_down: false,
            snapshot_store: shared.snapshot_store,
            snapshots: shared.snapshots,
            transfer_replies: Vec::new(),
            membership_replies: Vec::new(),
            transfer_on_shutdown: shared.transfer_on_shutdown,
            shutdown_transfer: None,
            shutdown_ready: false,
            metrics: NodeMetrics::new(&status, shared.metrics),
            install_io: Default::default(),
            members_told: Vec::new(),
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(Flush);
        }
    }

    /// Runs the driver and executes its output until it has nothing more to do (or
    /// yields), then publishes the status and re-arms the timer.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        let span = self.span.clone();
        let _entered = span.enter();
        loop {
            self.published = false;
            let run = self.driver.run();
            self.execute(ctx);
            match run {
                Run::Fatal => {
                    let error = self.driver.fatal_error().map(ToString::to_string);
                    tracing::error!(error, "storage write failed; stopping the node");
                    ctx.stop();
                    return;
                }
                Run::Yield => {
                    // Let ticks and messages in before the next batch of applies.
                    self.schedule_flush(ctx);
                    break;
                }
                Run::Done if self.driver.has_work() => continue,
                Run::Done => break,
            }
        }
        if self.shutdown_ready {
            self.shutdown_ready = false;
            self.finish_shutdown(ctx);
            return;
        }
        if self.shutting_down && self.driver.storage_idle() {
            ctx.stop();
            return;
        }
        self.proposals.set_held(self.driver.pending_proposals());
        self.reads.set_held(self.driver.pending_reads());
        if !self.published {
            self.publish();
        }
        self.arm_timer(ctx);
    }

    /// Executes the driver's output: writes, messages, events, then the status and the
    /// answers.
    fn execute(&mut self, ctx: &mut Context<Self>) {
        let mut writes = std::mem::take(&mut self.spare_writes);
        std::mem::swap(&mut writes, &mut self.driver.output().writes);
        for (id, write) in writes.drain(..) {
            self.start_write(id, write, ctx);
        }
        self.spare_writes = writes;
        self.execute_snapshots(ctx);
        self.execute_install(ctx);
        self.execute_log_reads(ctx);
        self.execute_restores(ctx);
        let links = self.driver.output().links.take();
        // Before the messages, nodes that join: their first messages find them known.
        if let Some(both) = links
            .as_deref()
            .and_then(|next| crate::driver::links_before_messages(&self.members_told, next))
        {
            self.tell_transport_members(&both);
        }
        let out = self.driver.output();
        for envelope in out.messages.drain(..) {
            if let Err(error) = self.transport.send(envelope) {
                tracing::debug!(%error, "send failed");
            }
        }
        // After the messages: the last ones to a node that leaves are queued before the
        // transport forgets it.
        if let Some(links) = links.filter(|next| *next != self.members_told) {
            self.tell_transport_members(&links);
        }
        let out = self.driver.output();
        if !out.events.is_empty() {
            let status = self.driver.status();
            let out = self.driver.output();
            for event in out.events.drain(..) {
                self.metrics.event(&event);
                // Commit progress is on the status watch; as an event it would wake every
                // subscriber once per commit.
                if matches!(event, Event::Committed { .. }) {
                    continue;
                }
                if let Event::TermChanged { term } = event {
                    self.span.record("term", term);
                }
                tracing::debug!(?event, "raft event");
                if self.events.receiver_count() > 0 {
                    let _ = self.events.send(NodeEvent {
                        node: status.id,
                        at: Instant::now(),
                        role: status.role,
                        term: status.term,
                        event,
                    });
                }
            }
        }
        self.answer_transfers();
        self.answer_memberships();
        if !self.driver.output().replies.is_empty() || !self.driver.output().read_replies.is_empty()
        {
            // A client that reads the status after its answer sees its entry applied.
            self.publish();
            self.published = true;
            for (reply, result) in self.driver.output().replies.drain(..) {
                reply.respond(result);
            }
            for (reply, result) in self.driver.output().read_replies.drain(..) {
                reply.read_done(result);
            }
        }
    }

    /// Hands one write to the storage. A storage that completes at once costs no thread
    /// hop; one that does not completes on its own thread and wakes the node.
    fn start_write(&mut self, id: WriteId, write: crate::LogWrite, ctx: &mut Context<Self>) {
        let storage = Arc::clone(&self.storage);
        let started = self.metrics.write_started(write.entries.len());
        // Polling the future hands the write to the storage, which keeps the order in
        // which writes were handed to it.
        let mut fut: WriteFuture = Box::pin(async move { storage.get().write(write).await });
        match (&mut fut).now_or_never() {
            Some(result) => {
                self.metrics.write_done(started);
                self.driver.write_done(id, result);
            }
            None => {
                ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
                    act.metrics.write_done(started);
                    act.driver.write_done(id, result);
                    act.drive(ctx);
                }));
            }
        }
    }

    /// Starts the driver's snapshot jobs off the node's thread and its storage
    /// compactions, and publishes the latest snapshot.
    fn execute_snapshots(&mut self, ctx: &mut Context<Self>) {
        let out = self.driver.output();
        let jobs = std::mem::take(&mut out.snapshots);
        let compactions = std::mem::take(&mut out.compactions);
        for job in jobs {
            let Some(store) = self.snapshot_store.clone() else {
                let meta = job.meta.clone();
                let error = crate::SnapshotError::Io(std::io::Error::other("no snapshot store"));
                self.driver.snapshot_done(meta, Err(error));
                continue;
            };
            let fut = super::snapshots::write_job(store, job);
            ctx.spawn(fut.into_actor(self).map(|(meta, result), act, ctx| {
                act.driver.snapshot_done(meta, result);
                act.drive(ctx);
            }));
        }
        for upto in compactions {
            let storage = Arc::clone(&self.storage);
            ctx.spawn(
                async move { storage.get().compact(upto).await }
                    .into_actor(self)
                    .map(move |result, _act, _ctx| {
                        if let Err(error) = result {
                            tracing::error!(%error, upto, "log compaction failed");
                        }
                    }),
            );
        }
        // Compared by the entry it ends at: two snapshots through one entry are alike.
        let latest = self.driver.latest_snapshot();
        let id = latest.map(|m| m.last_included);
        if id != self.published_snapshot {
            self.published_snapshot = id;
            self.snapshots.send_replace(latest.cloned());
        }
    }

    /// Reads stored entries for followers behind the core's in-memory window, off the
    /// node's thread; each result goes back to the driver.
    fn execute_log_reads(&mut self, ctx: &mut Context<Self>) {
        for read in std::mem::take(&mut self.driver.output().log_reads) {
            let storage = Arc::clone(&self.storage);
            ctx.spawn(
                async move { storage.get().entries(read.from, read.to).await }
                    .into_actor(self)
                    .map(move |result, act, ctx| {
                        act.driver.log_read_done(read, result);
                        act.drive(ctx);
                    }),
            );
        }
    }

    /// Decodes received snapshots on the blocking pool; the decoded state goes back to
    /// the driver, which swaps it in on this thread.
    fn execute_restores(&mut self, ctx: &mut Context<Self>) {
        for job in std::mem::take(&mut self.driver.output().restores) {
            let meta = job.meta.clone();
            ctx.spawn(
                async move { tokio::task::spawn_blocking(move || job.run()).await }
                    .into_actor(self)
                    .map(move |joined, act, ctx| {
                        let (meta, result) = joined.unwrap_or_else(|e| {
                            let error =
                                std::io::Error::other(format!("the decoding thread failed: {e}"));
                            (meta, Err(crate::SnapshotError::Io(error)))
                        });
                        act.driver.restore_done(&meta, result);
                        act.drive(ctx);
                    }),
            );
        }
    }

    /// Hands snapshot chunks to the transfer tasks: chunks to read and send, chunks
    /// received to write.
    fn execute_install(&mut self, ctx: &mut Context<Self>) {
        let out = self.driver.output();
        let sends = std::mem::take(&mut out.snapshot_sends);
        let chunks = std::mem::take(&mut out.install_chunks);
        if sends.is_empty() && chunks.is_empty() {
            return;
        }
        let Some(store) = self.snapshot_store.clone() else {
            tracing::warn!("snapshot transfer without a snapshot store");
            for chunk in chunks {
                let error = crate::SnapshotError::Io(std::io::Error::other("no snapshot store"));
                let progress = crate::driver::InstallProgress::Failed(error);
                self.driver.install_progress(&chunk.meta, progress);
            }
            return;
        };
        if !sends.is_empty() {
            let id = self.driver.core().id();
            self.install_io.send(id, &store, &self.transport, sends);
        }
        if !chunks.is_empty() {
            let report = ctx.address().recipient();
            self.install_io.receive(&store, &report, chunks);
        }
    }

    /// Publishes the status, then the metrics.
    fn publish(&mut self) {
        let status = self.driver.status();
        self.publish_status(status);
        self.metrics.publish(&self.driver, &status);
    }

    fn publish_status(&self, now: Status) {
        let tx = &self.status;
        tx.send_if_modified(|s| {
            if *s == now {
                return false;
            }
            *s = now;
            announce(tx)
        });
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let deadline = self.driver.next_deadline();
        if deadline == Duration::MAX {
            return;
        }
        if let Some((at, id)) = self.timer {
            if at <= deadline {
                return; // fires no later than needed; it re-arms itself then
            }
            Timers::global().cancel(id);
        }
        self.timer_generation += 1;
        let generation = self.timer_generation;
        let me = ctx.address().recipient::<Tick>();
        let id = Timers::global().schedule(self.origin + deadline, move || {
            me.do_send(Tick(generation));
        });
        self.timer = Some((deadline, id));
    }

    fn answer_all(&mut self, error: ClientError) {
        self.driver.fail_all(error);
        for (reply, result) in self.driver.output().replies.drain(..) {
            reply.respond(result);
        }
        for (reply, result) in self.driver.output().read_replies.drain(..) {
            reply.read_done(result);
        }
        self.answer_transfers();
        self.answer_memberships();
    }

    /// Delivers the outcomes of membership changes.
    fn answer_memberships(&mut self) {
        let outcomes = std::mem::take(&mut self.driver.output().memberships);
        if outcomes.is_empty() {
            return;
        }
        // A caller that reads the membership after its answer sees the change.
        self.publish();
        for (id, result) in outcomes {
            if let Some(i) = self.membership_replies.iter().position(|(m, _)| *m == id) {
                let (_, done) = self.membership_replies.swap_remove(i);
                let _ = done.send(result);
            }
        }
    }

    /// Tells the transport the nodes this node talks to (all but itself, with their
    /// addresses): the configuration's members, and on a leader the nodes it still
    /// replicates to.
    fn tell_transport_members(&mut self, members: &[crate::transport::Member]) {
        tracing::debug!(?members, "peers changed, updating the transport");
        self.transport.set_members(members);
        self.members_told = members.to_vec();
    }

    /// Delivers the outcomes of leadership transfers; the one a shutdown waits for lets
    /// the shutdown go on, and so does this node stepping down: once it no longer leads
    /// (it lost its quorum, or the target's election deposed it) there is nothing left
    /// to hand over, and who leads next is not the shutdown's to wait for.
    fn answer_transfers(&mut self) {
        if self.shutdown_transfer.is_some() && self.driver.core().role() != Role::Leader {
            tracing::info!("stepped down before shutdown");
            self.shutdown_transfer = None;
            self.shutdown_ready = true;
        }
        let outcomes = std::mem::take(&mut self.driver.output().transfers);
        for (id, result) in outcomes {
            if self.shutdown_transfer == Some(id) {
                tracing::info!(?result, "leadership handed over before shutdown");
                self.shutdown_transfer = None;
                self.shutdown_ready = true;
            }
            if let Some(i) = self.transfer_replies.iter().position(|(t, _)| *t == id) {
                let (_, done) = self.transfer_replies.swap_remove(i);
                let _ = done.send(result);
            }
        }
    }

    /// Stops the node: finish what the core already asked for, then stop once the
    /// writes in flight are durable.
    fn finish_shutdown(&mut self, ctx: &mut Context<Self>) {
        self.drive(ctx);
        self.shutting_down = true;
        self.answer_all(ClientError::Stopped);
        for (_, done) in self.transfer_replies.drain(..) {
            let _ = done.send(Err(TransferError::Stopped));
        }
        for (_, done) in self.membership_replies.drain(..) {
            let _ = done.send(Err(crate::core::MembershipError::Stopped));
        }
        if self.driver.storage_idle() {
            ctx.stop();
        }
    }
}

impl<S: LogStorage, T: Transport, M: StateMachine> Actor for RaftNode<S, T, M> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _entered = self.span.clone().entered();
        let inbound = Arc::clone(&self.inbound);
        let counters = Arc::clone(self.driver.counters());
        let wake = Arc::clone(&self.wake);
        ctx.add_stream(Wakes(Arc::clone(&self.wake)));
        let inbox = crate::transport::Inbox::from_fn(move |envelope| {
            match inbound.push(envelope) {
                // One wake per burst: the node drains the whole queue when it wakes.
                Ok(true) => wake.raise(Wake::Inbound),
                Ok(false) => {}
                Err(super::queue::Refused::Full(_)) => {
                    crate::driver::Counters::add(&counters.inbound_dropped, 1);
                }
                Err(super::queue::Refused::Closed(_)) => return false,
            }
            true
        });
        let result = self.transport.start(inbox);
        let failed = result.is_err();
        if let Some(started) = self.started.take() {
            let _ = started.send(result);
        }
        if failed {
            ctx.stop();
            return;
        }
        tracing::info!(membership = ?self.driver.core().membership(), "node started");
        if let Some(links) = self.driver.take_links() {
            self.tell_transport_members(&links);
        }
        self.drive(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let _entered = self.span.clone().entered();
        if let Some((_, id)) = self.timer.take() {
            Timers::global().cancel(id);
        }
        self.transport.stop();
        self.inbound.close();
        for (_, reply) in self.proposals.close() {
            reply.respond(Err(ClientError::Stopped));
        }
        for (_, reply) in self.reads.close() {
            reply.respond(Err(ClientError::Stopped));
        }
        self.answer_all(ClientError::Stopped);
        for done in self.stopping.drain(..) {
            let _ = done.send(());
        }
        tracing::info!("node stopped");
    }
}

impl<S: LogStorage, T: Transport, M: StateMachine> StreamHandler<Raised> for RaftNode<S, T, M> {
    /// Drains every queue whose bit was raised, then drives once for all of it: what
    /// arrived together leaves together (group commit).
    fn handle(&mut self, raised: Raised, ctx: &mut Context<Self>) {
        if raised.has(Wake::Inbound) {
            let mut batch = std::mem::take(&mut self.spare_inbound);
            self.inbound.drain(&mut batch);
            if !self.shutting_down {
                let now = self.now();
                let _entered = self.span.enter();
                for envelope in batch.drain(..) {
                    // A refused message was logged and counted by the driver.
                    let _ = self.driver.receive(now, envelope);
                }
            }
            batch.clear();
            self.spare_inbound = batch;
        }
        if raised.has(Wake::Proposals) {
            let mut batch = std::mem::take(&mut self.spare_proposals);
            self.proposals.drain(&mut batch);
            for (command, reply) in batch.drain(..) {
                if self.shutting_down {
                    reply.respond(Err(ClientError::Stopped));
                } else {
                    self.driver.propose(command, reply);
                }
            }
            self.spare_proposals = batch;
            self.proposals.set_held(self.driver.pending_proposals());
        }
        if raised.has(Wake::Reads) {
            let mut batch = std::mem::take(&mut self.spare_reads);
            self.reads.drain(&mut batch);
            let now = self.now();
            for (mode, reply) in batch.drain(..) {
                if self.shutting_down {
                    reply.respond(Err(ClientError::Stopped));
                } else {
                    self.driver.read(now, mode, reply);
                }
            }
            self.spare_reads = batch;
            self.reads.set_held(self.driver.pending_reads());
        }
        self.drive(ctx);
    }

    /// The stream never ends; should it, the node goes on (its mailbox still works).
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl<S: LogStorage, T: Transport, M: StateMachine> Handler<super::install::InstallReport>
    for RaftNode<S, T, M>
{
    type Result = ();

    fn handle(&mut self, report: super::install::InstallReport, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let _entered = self.span.clone().entered();
        self.driver.install_progress(&report.meta, report.progress);
        self.drive(ctx);
    }
}

impl<S: LogStorage, T: Transport, M: StateMachine> Handler<Tick> for RaftNode<S, T, M> {
    type Result = ();

    fn handle(&mut self, Tick(generation): Tick, ctx: &mut Context<Self>) {
        if generation != self.timer_generation || self.shutting_down {
            return;
        }
        self.timer = None;
        let now = self.now();
        self.driver.tick(now);
        self.drive(ctx);
    }
}

impl<S: LogStorage, T: Transport, M: StateMachine> Handler<Flush> for RaftNode<S, T, M> {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        self.drive(ctx);
    }
}

impl<S: LogStorage, T: Transport, M: StateMachine> Handler<Command> for RaftNode<S, T, M> {
    type Result = ();

    fn handle(&mut self, command: Command, ctx: &mut Context<Self>) {
        match command {
            Command::Shutdown { done } => {
                self.stopping.push(done);
                if self.shutdown_transfer.is_some() {
                    return; // the shutdown already waits for its transfer
                }
                let core = self.driver.core();
                let hand_over = core.role() == Role::Leader && core.membership().voters().len() > 1;
                match self.transfer_on_shutdown {
                    Some(bound) if hand_over && !self.shutting_down => {
                        let now = self.now();
                        let id = self.driver.transfer_leadership(now, None, Some(bound));
                        self.shutdown_transfer = Some(id);
                        self.drive(ctx);
                    }
                    _ => self.finish_shutdown(ctx),
                }
            }
            Command::TransferLeadership { to, done } => {
                if self.shutting_down {
                    let _ = done.send(Err(TransferError::Stopped));
                    return;
                }
                let now = self.now();
                let id = self.driver.transfer_leadership(now, to, None);
                self.transfer_replies.push((id, done));
                self.drive(ctx);
            }
            Command::ChangeMembership { change, done } => {
                if self.shutting_down {
                    let _ = done.send(Err(crate::core::MembershipError::Stopped));
                    return;
                }
                let id = self.driver.change_membership(change);
                self.membership_replies.push((id, done));
                self.drive(ctx);
            }
            Command::Kill => {
                self.shutting_down = true;
                ctx.stop();
            }
            Command::TriggerSnapshot => {
                self.driver.request_snapshot();
                self.drive(ctx);
            }
        }
    }
}
