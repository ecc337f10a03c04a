//! The node driver: everything a node does between the protocol core and the outside
//! world, with no IO of its own.
//!
//! [`RaftCore`] decides what Raft does; a shell (the actix node, the simulator) owns the
//! clock, the storage, the network and the threads. Between them, [`Driver`] holds the
//! node's own logic, so that every shell runs the same code and the simulator's seeds
//! exercise it:
//!
//! - **writes**: what each `Ready` asks to persist is merged into one pending write while
//!   earlier writes are in flight (group commit); at most
//!   [`Limits::max_writes_in_flight`] are handed out at once, and they complete in the
//!   order they were issued, whatever order the storage reports them in. Messages that
//!   must wait for durability leave when their write completes;
//! - **proposals**: each accepted proposal waits in a bounded table for its entry to be
//!   applied, and is answered with the state machine's response, or with
//!   [`ClientError::LeadershipLost`] when its entry is replaced, or with
//!   [`ClientError::OutcomeUnknown`] as soon as this node stops leading;
//! - **applying**: committed entries are applied in order, in batches of at most
//!   [`Config::max_apply_batch`](crate::Config::max_apply_batch), and one
//!   [`run`](Driver::run) applies at most [`Limits::max_applies_per_run`] before it
//!   yields, so a long catch-up never stalls ticks and heartbeats;
//! - **deadlines**: [`next_deadline`](Driver::next_deadline) says when to tick next.
//!
//! # Driving contract
//!
//! 1. Feed inputs: [`tick`](Driver::tick), [`receive`](Driver::receive),
//!    [`propose`](Driver::propose), [`write_done`](Driver::write_done).
//! 2. Call [`run`](Driver::run). It drains the core and fills [`Output`].
//! 3. Execute the output, taking it with [`output`](Driver::output):
//!    - start every write of [`Output::writes`] on the storage, in order; report each
//!      completion with [`write_done`](Driver::write_done) (at once for a storage that
//!      completes inline);
//!    - send [`Output::messages`], then hand [`Output::links`], if any, to the
//!      transport;
//!    - publish the status ([`status`](Driver::status)), then deliver
//!      [`Output::replies`], so that a client that reads the status after its answer
//!      sees its entry applied;
//!    - observe [`Output::events`].
//! 4. While [`has_work`](Driver::has_work), go back to 2. When `run` returned
//!    [`Run::Yield`], first let other inputs in (a tick, a message), then go back to 2.
//! 5. Sleep until an input or [`next_deadline`](Driver::next_deadline).
//!
//! When [`run`](Driver::run) returns [`Run::Fatal`], a write failed: the node can no
//! longer promise durability and must stop (see [`fail_all`](Driver::fail_all)).

mod counters;
mod install;
mod membership;
mod reads;
mod snapshots;
mod transfers;
mod writes;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use counters::{CounterSnapshot, Counters};
pub use install::{ChunkReader, ChunkWriter, InstallProgress, RestoreJob};
pub use membership::{links_before_messages, MembershipChange, MembershipId};
pub use snapshots::{check_snapshot_against_log, SnapshotJob};
pub use transfers::TransferId;
pub use writes::WriteId;

use crate::core::{
    Envelope, Event, LogId, LogIndex, NodeId, ProposeError, RaftCore, ReadMode, Ready, Role,
    Status, StepError, Term, TransferError,
};
use crate::error::ClientError;
use crate::storage::{LogWrite, StorageError};
use crate::StateMachine;
use writes::Writes;

/// Bounds on a node's own queues and work, with what happens when each is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most storage writes handed out at once. One syncing while the next waits keeps a
    /// disk busy; everything produced meanwhile merges into one pending write. Default 2.
    pub max_writes_in_flight: usize,
    /// Most accepted proposals waiting for their entry to apply. When full, a proposal
    /// is answered [`ClientError::Busy`] at once. The node's handles count the proposals
    /// queued for the node and those pending in it (as the node last published) against
    /// this bound too, and refuse on the caller's thread, so a full node does not spend
    /// its own thread refusing. Default 16 384.
    pub max_pending_proposals: usize,
    /// Most proposals queued between client handles and the node. When full,
    /// `propose` answers [`ClientError::Busy`] at once. Default 16 384.
    pub max_queued_proposals: usize,
    /// Most inbound messages queued for the node. When full, further messages are
    /// dropped and counted ([`CounterSnapshot::inbound_dropped`]): Raft tolerates loss,
    /// and the sender retries. Default 8 192.
    pub max_inbound_messages: usize,
    /// Most entries applied by one [`Driver::run`] before it yields to other inputs.
    /// Default 4 096.
    pub max_applies_per_run: usize,
    /// Most linearizable reads waiting for their read index or for the state machine to
    /// apply it. When full, a read is answered [`ClientError::Busy`] at once.
    /// Default 16 384.
    pub max_pending_reads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_writes_in_flight: 2,
            max_pending_proposals: 16 * 1024,
            max_queued_proposals: 16 * 1024,
            max_inbound_messages: 8 * 1024,
            max_applies_per_run: 4096,
            max_pending_reads: 16 * 1024,
        }
    }
}

/// Where a proposal's outcome goes: a reply channel in the node, a record in the
/// simulator.
pub trait Responder {
    /// The proposal was appended to the leader's log at `id`. Called at most once, before
    /// [`respond`](Self::respond).
    fn accepted(&mut self, id: LogId) {
        let _ = id;
    }

    /// The proposal's outcome: the state machine's response, or why there is none.
    fn respond(self, result: Result<Bytes, ClientError>);

    /// A read's outcome ([`Driver::read`]): its read index, once this node's state
    /// machine has applied that far, or why there is none. The default answers
    /// [`respond`](Self::respond) with the index as 8 big-endian bytes.
    fn read_done(self, result: Result<LogIndex, ClientError>)
    where
        Self: Sized,
    {
        self.respond(result.map(|index| Bytes::copy_from_slice(&index.to_be_bytes())));
    }
}

/// A responder that ignores the outcome.
impl Responder for () {
    fn respond(self, _result: Result<Bytes, ClientError>) {}
}

/// Work the driver hands its shell. Drain every field; the buffers are reused.
#[derive(Debug)]
pub struct Output<R> {
    /// Writes to start on the storage, in this order.
    pub writes: Vec<(WriteId, LogWrite)>,
    /// Messages to send.
    pub messages: Vec<Envelope>,
    /// Answers to deliver, after publishing the status.
    pub replies: Vec<(R, Result<Bytes, ClientError>)>,
    /// What changed in the core, in order (commit progress included).
    pub events: Vec<Event>,
    /// Snapshots to write off the node's thread (see [`SnapshotJob`]).
    pub snapshots: Vec<SnapshotJob>,
    /// Compact the stored log up to and including each index, in order (a snapshot
    /// covering it is durable).
    pub compactions: Vec<LogIndex>,
    /// Outcomes of leadership transfer requests
    /// ([`transfer_leadership`](Driver::transfer_leadership)).
    pub transfers: Vec<(TransferId, Result<NodeId, TransferError>)>,
    /// Answers to reads ([`Responder::read_done`]), after publishing the status.
    pub read_replies: Vec<(R, Result<LogIndex, ClientError>)>,
    /// Snapshot chunks received from the leader, in order: write them off the node's
    /// thread (a [`ChunkWriter`]) and report with [`Driver::install_progress`].
    pub install_chunks: Vec<crate::core::InstallSnapshotRequest>,
    /// Snapshot chunks to read off the node's thread (a [`ChunkReader`] per follower)
    /// and send.
    pub snapshot_sends: Vec<crate::core::SnapshotSend>,
    /// Stored entries to read off the node's thread for followers behind the core's
    /// in-memory window; report each with [`Driver::log_read_done`].
    pub log_reads: Vec<crate::core::LogRead>,
    /// Received snapshots to decode off the node's thread (see [`RestoreJob`]); report
    /// each with [`Driver::restore_done`].
    pub restores: Vec<RestoreJob>,
    /// Outcomes of membership change requests
    /// ([`change_membership`](Driver::change_membership)): the index of the committed
    /// configuration that completes the change, or why not.
    pub memberships: Vec<(MembershipId, Result<LogIndex, crate::core::MembershipError>)>,
    /// The nodes this node talks to changed ([`RaftCore::links`]): hand them to the
    /// transport ([`Transport::set_members`](crate::Transport::set_members)) after
    /// sending [`messages`](Self::messages), so that the last messages to a node that
    /// leaves go out before the transport forgets it; when nodes join, first hand it
    /// the old and new ones together ([`links_before_messages`]), so that the first
    /// messages to a node that joins find it known.
    pub links: Option<Vec<crate::transport::Member>>,
}

impl<R> Default for Output<R> {
    fn default() -> Self {
        Self {
            writes: Vec::new(),
            messages: Vec::new(),
            replies: Vec::new(),
            events: Vec::new(),
            snapshots: Vec::new(),
            compactions: Vec::new(),
            transfers: Vec::new(),
            read_replies: Vec::new(),
            install_chunks: Vec::new(),
            snapshot_sends: Vec::new(),
            log_reads: Vec::new(),
            restores: Vec::new(),
            memberships: Vec::new(),
            links: None,
        }
    }
}

impl<R> Output<R> {
    /// True when there is nothing to execute.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.messages.is_empty()
            && self.replies.is_empty()
            && self.events.is_empty()
            && self.snapshots.is_empty()
            && self.compactions.is_empty()
            && self.transfers.is_empty()
            && self.read_replies.is_empty()
            && self.install_chunks.is_empty()
            && self.snapshot_sends.is_empty()
            && self.log_reads.is_empty()
            && self.restores.is_empty()
            && self.memberships.is_empty()
            && self.links.is_none()
    }
}

/// How a [`Driver::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Run {
    /// Everything the inputs so far asked for is in the output.
    Done,
    /// The apply budget ran out: execute the output, let other inputs in, run again.
    Yield,
    /// A write failed: the node must stop.
    Fatal,
}

/// One node's logic between the core and its shell. See the [module docs](self).
#[derive(Debug)]
pub struct Driver<M, R> {
    core: RaftCore,
    state_machine: M,
    limits: Limits,
    writes: Writes,
    /// Accepted proposals in index order (a leader appends them at its log's end),
    /// with the term of their entry.
    proposals: VecDeque<(LogIndex, Term, R)>,
    reads: reads::Reads<R>,
    out: Output<R>,
    counters: Arc<Counters>,
    fatal: Option<StorageError>,
    snapshots: snapshots::Snapshots,
    /// The received snapshot being decoded off the node's thread, if any.
    restoring: Option<crate::core::LogId>,
    transfers: transfers::Transfers,
    memberships: membership::Memberships,
}

impl<M: StateMachine, R: Responder> Driver<M, R> {
    /// A driver for `core`, applying to `state_machine`, counting into `counters`.
    pub fn new(core: RaftCore, state_machine: M, limits: Limits, counters: Arc<Counters>) -> Self {
        let applied = core.status().applied_index;
        let applied = LogId::new(core.log_term(applied).unwrap_or(0), applied);
        Self {
            writes: Writes::new(limits.max_writes_in_flight),
            core,
            state_machine,
            limits,
            proposals: VecDeque::new(),
            reads: reads::Reads::default(),
            out: Output::default(),
            snapshots: snapshots::Snapshots::new(None, applied),
            restoring: None,
            counters,
            fatal: None,
            transfers: transfers::Transfers::default(),
            memberships: membership::Memberships::default(),
        }
    }

    /// The protocol core.
    pub fn core(&self) -> &RaftCore {
        &self.core
    }

    /// The state machine.
    pub fn state_machine(&self) -> &M {
        &self.state_machine
    }

    /// The state machine, to change it (a shell's own bookkeeping; never to apply).
    pub fn state_machine_mut(&mut self) -> &mut M {
        &mut self.state_machine
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The node's counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The node's current status.
    pub fn status(&self) -> Status {
        self.core.status()
    }

    /// When the driver next needs a [`tick`](Self::tick).
    pub fn next_deadline(&self) -> Duration {
        self.core
            .next_deadline()
            .min(self.transfers.next_deadline())
    }

    /// Accepted proposals waiting for their entry.
    pub fn pending_proposals(&self) -> usize {
        self.proposals.len()
    }

    /// Storage writes handed out and not yet completed in order.
    pub fn writes_in_flight(&self) -> usize {
        self.writes.in_flight()
    }

    /// The write failure that made [`run`](Self::run) return [`Run::Fatal`].
    pub fn fatal_error(&self) -> Option<&StorageError> {
        self.fatal.as_ref()
    }

    /// The clock reached `now`: fire the election or heartbeat timer if due.
    pub fn tick(&mut self, now: Duration) {
        self.core.tick(now);
        self.expire_transfers(now);
    }

    /// Feeds one inbound message. A malformed message, or one from a non-member, is
    /// refused with the core's typed reason, logged at `warn`, counted, and changes
    /// nothing.
    pub fn receive(&mut self, now: Duration, envelope: Envelope) -> Result<(), StepError> {
        Counters::add(&self.counters.messages_received, 1);
        let result = self.core.step(now, envelope);
        if let Err(error) = &result {
            Counters::add(&self.counters.messages_refused, 1);
            tracing::warn!(node = self.core.id(), %error, "refused a message");
        }
        result
    }

    /// Proposes `command`; `responder` gets its outcome. Refused at once with
    /// [`ClientError::NotLeader`] on a follower and [`ClientError::Busy`] when the
    /// pending-proposal table or the leader's uncommitted tail is full.
    pub fn propose(&mut self, command: Bytes, mut responder: R) {
        if self.proposals.len() >= self.limits.max_pending_proposals {
            Counters::add(&self.counters.proposals_busy, 1);
            self.out.replies.push((responder, Err(ClientError::Busy)));
            return;
        }
        match self.core.propose(command) {
            Ok(id) => {
                Counters::add(&self.counters.proposals_accepted, 1);
                responder.accepted(id);
                // Indexes only grow while this node leads; should one not, the proposals
                // from it on lost their entries.
                if self
                    .proposals
                    .back()
                    .is_some_and(|&(index, ..)| index >= id.index)
                {
                    self.lose_proposals_from(id.index);
                }
                self.proposals.push_back((id.index, id.term, responder));
            }
            Err(ProposeError::NotLeader { leader }) => {
                Counters::add(&self.counters.proposals_not_leader, 1);
                self.out
                    .replies
                    .push((responder, Err(ClientError::NotLeader { leader })));
            }
            Err(ProposeError::Busy { .. }) => {
                Counters::add(&self.counters.proposals_busy, 1);
                self.out.replies.push((responder, Err(ClientError::Busy)));
            }
            Err(ProposeError::TransferInProgress { target }) => {
                Counters::add(&self.counters.proposals_not_leader, 1);
                self.out
                    .replies
                    .push((responder, Err(ClientError::TransferInProgress { target })));
            }
        }
    }

    /// Starts a linearizable read (see [`ReadMode`]); `responder` gets
    /// [`Responder::read_done`] once this node's state machine has applied everything
    /// committed before this call, or a typed [`ClientError::Read`] failure. Answered
    /// [`ClientError::Busy`] at once when [`Limits::max_pending_reads`] reads wait.
    pub fn read(&mut self, now: Duration, mode: ReadMode, responder: R) {
        if self.reads.len() >= self.limits.max_pending_reads {
            self.out
                .read_replies
                .push((responder, Err(ClientError::Busy)));
            return;
        }
        let id = self.reads.start(responder);
        self.core.read_index(now, id, mode);
    }

    /// Reads waiting for their read index or for it to be applied.
    pub fn pending_reads(&self) -> usize {
        self.reads.len()
    }

    /// Reports that write `id` completed. Completions may arrive in any order; they take
    /// effect in the order the writes were issued.
    pub fn write_done(&mut self, id: WriteId, result: Result<(), StorageError>) {
        if !self.writes.complete(id, result) {
            tracing::warn!(node = self.core.id(), ?id, "completion of an unknown write");
        }
    }

    /// True when a [`run`](Self::run) would produce something.
    pub fn has_work(&self) -> bool {
        self.core.has_ready() || self.writes.can_issue() || self.writes_completed()
    }

    /// True when no write is pending or in flight.
    pub fn storage_idle(&self) -> bool {
        self.writes.is_idle()
    }

    fn writes_completed(&self) -> bool {
        // pop_completed needs &mut; peek through a cheap probe instead.
        self.writes.front_done()
    }

    /// Drains the core into the [`Output`]. See the driving contract.
    pub fn run(&mut self) -> Run {
        let mut applied = 0;
        loop {
            while let Some(done) = self.writes.pop_completed() {
                match done.result {
                    Ok(()) => {
                        if let Some(hard) = done.hard {
                            self.core.hard_state_persisted(hard);
                        }
                        if let Some(ack) = done.ack {
                            self.core.persisted(ack);
                        }
                        self.out.messages.extend(done.after);
                    }
                    Err(error) => {
                        tracing::error!(node = self.core.id(), %error, "storage write failed");
                        self.fatal = Some(error);
                        return Run::Fatal;
                    }
                }
            }
            if self.core.has_ready() && applied < self.limits.max_applies_per_run {
                let ready = self.core.ready();
                applied += self.execute(ready);
                continue;
            }
            match self.writes.issue() {
                Some((id, write)) => {
                    Counters::add(&self.counters.writes, 1);
                    Counters::add(&self.counters.entries_written, write.entries.len() as u64);
                    self.out.writes.push((id, write));
                }
                None => break,
            }
        }
        self.maybe_snapshot();
        self.settle_transfers();
        self.settle_memberships();
        if let Some(links) = self.take_links() {
            self.out.links = Some(links);
        }
        if self.core.has_ready() {
            Run::Yield
        } else {
            Run::Done
        }
    }

    /// The work to execute. Drain every field.
    pub fn output(&mut self) -> &mut Output<R> {
        &mut self.out
    }

    /// Answers every waiting proposal with `error` (the node is stopping).
    pub fn fail_all(&mut self, error: ClientError) {
        for (_, _, responder) in self.proposals.drain(..) {
            self.out.replies.push((responder, Err(error.clone())));
        }
        self.fail_transfers(TransferError::Stopped);
        self.fail_memberships(crate::core::MembershipError::Stopped);
        self.reads.fail_all(&error, &mut self.out.read_replies);
    }

    /// Answers the proposals at `from` and after: their entries were removed.
    fn lose_proposals_from(&mut self, from: LogIndex) {
        let at = self.proposals.partition_point(|&(index, ..)| index < from);
        for (index, term, responder) in self.proposals.drain(at..) {
            Counters::add(&self.counters.proposals_lost, 1);
            self.out
                .replies
                .push((responder, Err(ClientError::LeadershipLost { index, term })));
        }
    }

    /// Executes one `Ready`; returns how many entries it applied.
    fn execute(&mut self, mut ready: Ready) -> usize {
        for event in &ready.events {
            match event {
                Event::ElectionStarted { .. } => {
                    Counters::add(&self.counters.elections_started, 1);
                }
                Event::RoleChanged {
                    role: Role::Leader, ..
                } => Counters::add(&self.counters.elections_won, 1),
                _ => {}
            }
        }
        self.out.events.append(&mut ready.events);
        self.take_install_io(&mut ready);
        self.out.log_reads.append(&mut ready.log_reads);
        if let Some(from) = ready.truncate_from {
            self.lose_proposals_from(from);
        }
        self.writes.add(&mut ready);
        self.out.messages.append(&mut ready.messages);
        let applied = ready.committed.len();
        if let Some(last) = ready.committed.last().map(|e| e.index) {
            Counters::add(&self.counters.apply_batches, 1);
            Counters::add(&self.counters.entries_applied, applied as u64);
            for entry in &ready.committed {
                let response = self.state_machine.apply_entry(entry);
                while self
                    .proposals
                    .front()
                    .is_some_and(|&(index, ..)| index <= entry.index)
                {
                    let (index, term, responder) =
                        self.proposals.pop_front().expect("checked above");
                    let result = if index == entry.index && term == entry.term {
                        Ok(response.clone())
                    } else {
                        Counters::add(&self.counters.proposals_lost, 1);
                        Err(ClientError::LeadershipLost { index, term })
                    };
                    self.out.replies.push((responder, result));
                }
            }
            self.core.applied(last);
            self.snapshots.applied(&ready.committed);
        }
        let applied_index = self.core.status().applied_index;
        for state in std::mem::take(&mut ready.reads) {
            if let Some(answer) = self.reads.outcome(state, applied_index) {
                self.out.read_replies.push(answer);
            }
        }
        self.reads
            .applied(applied_index, &mut self.out.read_replies);
        if self.core.role() != Role::Leader && !self.proposals.is_empty() {
            // This node no longer leads: whether its entries commit is now up to another
            // leader. Answer at once rather than when the log is repaired.
            for (index, term, responder) in self.proposals.drain(..) {
                Counters::add(&self.counters.proposals_lost, 1);
                self.out
                    .replies
                    .push((responder, Err(ClientError::OutcomeUnknown { index, term })));
            }
        }
        self.core.recycle(ready);
        applied
    }
}
