//! The node actor: a thin shell that feeds the core and executes its `Ready` batches
//! against the storage, the transport and the state machine. No protocol decision lives
//! here.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::{broadcast, oneshot, watch};

use super::handle::{ClientError, Command, NodeEvent};
use super::proposals::{ProposalQueue, Reply};
use super::timer::{TimerId, Timers};
use crate::core::{Envelope, Event, LogId, LogIndex, Payload, RaftCore, Ready, Status, Term};
use crate::storage::{LogStorage, LogWrite, StorageError};
use crate::transport::Transport;
use crate::StateMachine;

/// A message delivered by the transport.
pub(crate) struct Inbound(pub(crate) Envelope);

impl actix::Message for Inbound {
    type Result = ();
}

/// The node's timer fired (the generation tells a current timer from a replaced one).
struct Tick(u64);

impl actix::Message for Tick {
    type Result = ();
}

/// Runs the Ready loop once the mailbox is drained, so that everything that arrived
/// together leaves together (group commit).
struct Flush;

impl actix::Message for Flush {
    type Result = ();
}

type WriteFuture = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;

/// Most writes handed to a storage at once. One write syncing while the next ones queue
/// behind it keeps a disk busy; everything produced meanwhile merges into the next write.
const MAX_WRITES_IN_FLIGHT: usize = 4;

/// A write handed to the storage, with what to do once it is durable.
struct InFlight {
    seq: u64,
    ack: Option<LogId>,
    after: Vec<Envelope>,
    result: Option<Result<(), StorageError>>,
}

/// Writes waiting for the one in flight, merged into one, with what to do once durable.
#[derive(Default)]
struct PendingWrite {
    write: LogWrite,
    ack: Option<LogId>,
    after: Vec<Envelope>,
    any: bool,
}

impl PendingWrite {
    fn add(&mut self, ready: &mut Ready) {
        self.any = true;
        self.write.merge(LogWrite {
            truncate_from: ready.truncate_from,
            entries: std::mem::take(&mut ready.entries),
            hard_state: ready.hard_state,
        });
        if let Some(last) = self.write.entries.last() {
            self.ack = Some(last.log_id());
        }
        self.after.append(&mut ready.persisted_messages);
    }
}

pub(crate) struct RaftNode<S: LogStorage, T: Transport, M: StateMachine> {
    pub(crate) core: RaftCore,
    pub(crate) storage: Arc<S>,
    pub(crate) transport: Arc<T>,
    pub(crate) state_machine: Box<M>,
    pub(crate) origin: Instant,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) started: Option<oneshot::Sender<Result<(), crate::transport::TransportError>>>,
    queue: Arc<ProposalQueue>,
    spare: Vec<(Bytes, Reply)>,
    /// Answers waiting for the status to be published (reused buffer).
    replies: Vec<(Reply, Result<Bytes, ClientError>)>,
    timer: Option<(Duration, TimerId)>,
    timer_generation: u64,
    flush_scheduled: bool,
    /// Writes handed to the storage and not yet reported, oldest first.
    inflight: VecDeque<InFlight>,
    write_seq: u64,
    pending: PendingWrite,
    proposals: BTreeMap<LogIndex, (Term, oneshot::Sender<Result<Bytes, ClientError>>)>,
    stopping: Vec<oneshot::Sender<()>>,
    shutting_down: bool,
}

impl<S: LogStorage, T: Transport, M: StateMachine> RaftNode<S, T, M> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        core: RaftCore,
        storage: Arc<S>,
        transport: Arc<T>,
        state_machine: M,
        origin: Instant,
        status: watch::Sender<Status>,
        events: broadcast::Sender<NodeEvent>,
        started: oneshot::Sender<Result<(), crate::transport::TransportError>>,
        queue: Arc<ProposalQueue>,
    ) -> Self {
        Self {
            core,
            storage,
            transport,
            state_machine: Box::new(state_machine),
            origin,
            status,
            events,
            started: Some(started),
            queue,
            spare: Vec::new(),
            replies: Vec::new(),
            timer: None,
            timer_generation: 0,
            flush_scheduled: false,
            inflight: VecDeque::new(),
            write_seq: 0,
            pending: PendingWrite::default(),
            proposals: BTreeMap::new(),
            stopping: Vec::new(),
            shutting_down: false,
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

    /// Executes every Ready the core has, starts the next write when none is in flight,
    /// publishes the status and re-arms the timer.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        loop {
            while self.core.has_ready() {
                let ready = self.core.ready();
                self.execute(ready);
            }
            if !self.pending.any || self.inflight.len() >= MAX_WRITES_IN_FLIGHT {
                break;
            }
            let pending = std::mem::take(&mut self.pending);
            let storage = Arc::clone(&self.storage);
            let write = pending.write;
            // Polling the future hands the write to the storage, which keeps the order in
            // which writes were handed to it.
            let mut fut: WriteFuture = Box::pin(async move { storage.write(write).await });
            match (&mut fut).now_or_never() {
                // A storage that never blocks completes here, with no thread hop.
                Some(result) if self.inflight.is_empty() => {
                    self.write_done(result, pending.ack, pending.after, ctx)
                }
                Some(result) => {
                    self.inflight.push_back(InFlight {
                        seq: 0,
                        ack: pending.ack,
                        after: pending.after,
                        result: Some(result),
                    });
                    self.complete_writes(ctx);
                }
                None => {
                    self.write_seq += 1;
                    let seq = self.write_seq;
                    self.inflight.push_back(InFlight {
                        seq,
                        ack: pending.ack,
                        after: pending.after,
                        result: None,
                    });
                    ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
                        if let Some(w) = act.inflight.iter_mut().find(|w| w.seq == seq) {
                            w.result = Some(result);
                        }
                        act.complete_writes(ctx);
                        act.drive(ctx);
                    }));
                }
            }
        }
        self.publish_status();
        self.arm_timer(ctx);
    }

    /// Finishes the writes at the front of the in-flight queue that are done, in the
    /// order they were issued.
    fn complete_writes(&mut self, ctx: &mut Context<Self>) {
        while self.inflight.front().is_some_and(|w| w.result.is_some()) {
            let w = self.inflight.pop_front().expect("checked");
            let result = w.result.expect("checked");
            self.write_done(result, w.ack, w.after, ctx);
        }
    }

    fn execute(&mut self, mut ready: Ready) {
        if !ready.events.is_empty() {
            let status = self.core.status();
            let id = status.id;
            for event in &ready.events {
                // Commit progress is on the status watch; as an event it would wake every
                // subscriber once per commit.
                if matches!(event, Event::Committed { .. }) {
                    continue;
                }
                tracing::debug!(node = id, term = status.term, ?event, "raft event");
                if self.events.receiver_count() > 0 {
                    let _ = self.events.send(NodeEvent {
                        node: id,
                        at: Instant::now(),
                        role: status.role,
                        term: status.term,
                        event: *event,
                    });
                }
            }
        }
        if let Some(from) = ready.truncate_from {
            for (index, (term, reply)) in self.proposals.split_off(&from) {
                let _ = reply.send(Err(ClientError::LeadershipLost { index, term }));
            }
        }
        if ready.has_write() || !ready.persisted_messages.is_empty() {
            self.pending.add(&mut ready);
        }
        for envelope in ready.messages {
            self.send(envelope);
        }
        if let Some(last) = ready.committed.last().map(|e| e.index) {
            for entry in &ready.committed {
                let response = match &entry.payload {
                    Payload::Command(command) => self.state_machine.apply(entry.index, command),
                    Payload::Noop => Bytes::new(),
                };
                while let Some(first) = self.proposals.first_entry() {
                    if *first.key() > entry.index {
                        break;
                    }
                    let (index, (term, reply)) = first.remove_entry();
                    let result = if index == entry.index && term == entry.term {
                        Ok(response.clone())
                    } else {
                        Err(ClientError::LeadershipLost { index, term })
                    };
                    self.replies.push((reply, result));
                }
            }
            self.core.applied(last);
            // A client that reads the status after its answer sees its entry applied.
            self.publish_status();
            for (reply, result) in self.replies.drain(..) {
                let _ = reply.send(result);
            }
        }
    }

    fn send(&self, envelope: Envelope) {
        if let Err(e) = self.transport.send(envelope) {
            tracing::debug!(node = self.core.id(), error = %e, "send failed");
        }
    }

    fn write_done(
        &mut self,
        result: Result<(), StorageError>,
        ack: Option<LogId>,
        after: Vec<Envelope>,
        ctx: &mut Context<Self>,
    ) {
        match result {
            Ok(()) => {
                if let Some(ack) = ack {
                    self.core.persisted(ack);
                }
                for envelope in after {
                    self.send(envelope);
                }
                if self.shutting_down && self.inflight.is_empty() {
                    ctx.stop();
                }
            }
            Err(error) => {
                tracing::error!(node = self.core.id(), %error, "storage write failed; stopping the node");
                ctx.stop();
            }
        }
    }

    fn publish_status(&self) {
        let now = self.core.status();
        self.status.send_if_modified(|s| {
            if *s != now {
                *s = now;
                true
            } else {
                false
            }
        });
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let deadline = self.core.next_deadline();
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

    fn fail_all(&mut self) {
        for (_, (_, reply)) in std::mem::take(&mut self.proposals) {
            let _ = reply.send(Err(ClientError::Stopped));
        }
    }
}

impl<S: LogStorage, T: Transport, M: StateMachine> Actor for RaftNode<S, T, M> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let inbound = ctx.address().recipient::<Inbound>();
        let inbox = crate::transport::Inbox::from_fn(move |envelope| {
            inbound.do_send(Inbound(envelope));
            inbound.connected()
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
        tracing::info!(node = self.core.id(), members = ?self.core.members(), "node started");
        self.drive(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some((_, id)) = self.timer.take() {
            Timers::global().cancel(id);
        }
        self.transport.stop();
        self.queue.close();
        self.fail_all();
        for done in self.stopping.drain(..) {
            let _ = done.send(());
        }
        tracing::info!(node = self.core.id(), "node stopped");
    }
}

impl<S: LogStorage, T: Transport, M: StateMachine> Handler<Inbound> for RaftNode<S, T, M> {
    type Result = ();

    fn handle(&mut self, Inbound(envelope): Inbound, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let now = self.now();
        if let Err(error) = self.core.step(now, envelope) {
            tracing::warn!(node = self.core.id(), %error, "dropped a message");
            return;
        }
        self.schedule_flush(ctx);
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
        self.core.tick(now);
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
            Command::DrainProposals => {
                let mut batch = std::mem::take(&mut self.spare);
                self.queue.drain(&mut batch);
                for (command, reply) in batch.drain(..) {
                    if self.shutting_down {
                        let _ = reply.send(Err(ClientError::Stopped));
                        continue;
                    }
                    match self.core.propose(command) {
                        Ok(id) => {
                            self.proposals.insert(id.index, (id.term, reply));
                        }
                        Err(crate::core::ProposeError::NotLeader { leader }) => {
                            let _ = reply.send(Err(ClientError::NotLeader { leader }));
                        }
                    }
                }
                self.spare = batch;
                self.schedule_flush(ctx);
            }
            Command::Shutdown { done } => {
                self.stopping.push(done);
                // Finish what the core already asked for, then stop.
                self.drive(ctx);
                self.shutting_down = true;
                self.fail_all();
                if self.inflight.is_empty() {
                    ctx.stop();
                }
            }
            Command::Kill => {
                self.shutting_down = true;
                ctx.stop();
            }
        }
    }
}
