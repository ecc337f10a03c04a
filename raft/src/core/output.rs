//! What the core hands its driver: the [`Ready`] batch, events and status.

use serde::{Deserialize, Serialize};

use super::message::Envelope;
use super::types::{Entry, HardState, LogId, LogIndex, NodeId, Role, Term};

/// Everything the driver must do after feeding the core some inputs. See the driving
/// contract on [`RaftCore`](super::RaftCore) for the order in which to do it.
#[derive(Debug, Default)]
#[must_use = "a Ready holds writes and messages that must be executed"]
pub struct Ready {
    /// The hard state to make durable, when it changed since the last `Ready`.
    pub hard_state: Option<HardState>,
    /// Remove every stored entry at or after this index before appending `entries`
    /// (a conflicting suffix replaced by the leader's entries, §5.3).
    pub truncate_from: Option<LogIndex>,
    /// Entries to append to stable storage, contiguous and in order.
    pub entries: Vec<Entry>,
    /// Messages that may be sent right away, before the write above is durable.
    pub messages: Vec<Envelope>,
    /// Messages that may leave only once the write above (hard state and entries) is
    /// durable: granted votes, vote requests, and acknowledgements of appended entries.
    pub persisted_messages: Vec<Envelope>,
    /// Newly committed entries to apply to the state machine, in order.
    pub committed: Vec<Entry>,
    /// What changed, for the driver's bookkeeping and for observers.
    pub events: Vec<Event>,
    /// Outcomes of reads asked with [`RaftCore::read_index`](super::RaftCore::read_index).
    pub reads: Vec<super::ReadState>,
    /// Before anything else in this batch's write: drop every stored entry and restart
    /// the stored log right after this id (a snapshot from the leader replaced the log;
    /// the entries kept after it are in `entries`).
    pub reset_log: Option<LogId>,
    /// Snapshot chunks received from the leader, in order: write them to the snapshot
    /// store off the node's thread (see [`InstallSnapshotRequest`](super::InstallSnapshotRequest)).
    pub install_chunks: Vec<super::InstallSnapshotRequest>,
    /// Snapshot chunks to read from the snapshot store and send (leader).
    pub snapshot_sends: Vec<super::SnapshotSend>,
    /// Stored entries to read for followers behind the in-memory window (leader): read
    /// each off the node's thread and report with
    /// [`RaftCore::log_read_done`](super::RaftCore::log_read_done).
    pub log_reads: Vec<super::LogRead>,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.truncate_from.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.committed.is_empty()
            && self.events.is_empty()
            && self.reads.is_empty()
            && self.reset_log.is_none()
            && self.install_chunks.is_empty()
            && self.snapshot_sends.is_empty()
            && self.log_reads.is_empty()
    }

    /// True when this batch carries a write for stable storage.
    pub fn has_write(&self) -> bool {
        self.hard_state.is_some()
            || self.truncate_from.is_some()
            || !self.entries.is_empty()
            || self.reset_log.is_some()
    }

    /// The id to pass to [`RaftCore::persisted`](super::RaftCore::persisted) once the
    /// write is durable: the last entry written, if any.
    pub fn persist_ack(&self) -> Option<LogId> {
        self.entries.last().map(Entry::log_id)
    }
}

/// Why a vote (or pre-vote) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum VoteRefusal {
    /// The request's term is behind the voter's.
    StaleTerm,
    /// The voter already voted for another candidate in this term (§5.2).
    AlreadyVoted {
        /// Who got the vote.
        voted_for: NodeId,
    },
    /// The voter knows a leader for this term.
    HasLeader {
        /// The leader.
        leader: NodeId,
    },
    /// The voter heard from a live leader within the minimum election timeout
    /// (CheckQuorum's leader lease).
    LeaderLease {
        /// The leader.
        leader: NodeId,
    },
    /// The candidate's log is less up to date than the voter's (§5.4.1).
    LogNotUpToDate {
        /// The voter's last log id.
        ours: LogId,
        /// The candidate's last log id.
        theirs: LogId,
    },
}

/// A change inside the core, reported in [`Ready::events`]. New kinds are added as the
/// protocol grows, so matches need a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// The node now plays `role` in `term`.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The term it plays it in.
        term: Term,
    },
    /// The node adopted a higher term.
    TermChanged {
        /// The new term.
        term: Term,
    },
    /// The node's idea of the leader changed.
    LeaderChanged {
        /// The leader, if one is known.
        leader: Option<NodeId>,
        /// The term of that knowledge.
        term: Term,
    },
    /// The node's election timer fired and it asks for (pre-)votes.
    ElectionStarted {
        /// The term campaigned in (for a pre-vote: the term it would campaign in).
        term: Term,
        /// True for the Pre-Vote phase.
        pre_vote: bool,
    },
    /// This node granted its (pre-)vote.
    VoteGranted {
        /// The candidate.
        candidate: NodeId,
        /// The request's term.
        term: Term,
        /// True for a pre-vote.
        pre_vote: bool,
    },
    /// This node refused a (pre-)vote.
    VoteRefused {
        /// The candidate.
        candidate: NodeId,
        /// The request's term.
        term: Term,
        /// True for a pre-vote.
        pre_vote: bool,
        /// Why.
        reason: VoteRefusal,
    },
    /// A leader stepped down because it had not heard from a majority within the
    /// minimum election timeout (CheckQuorum).
    QuorumLost {
        /// The term it led.
        term: Term,
    },
    /// The commit index advanced.
    Committed {
        /// The new commit index.
        index: LogIndex,
    },
    /// This leader started handing leadership to `target` and stopped taking
    /// proposals (thesis §3.10).
    TransferStarted {
        /// The node leadership is handed to.
        target: NodeId,
        /// The term this node leads.
        term: Term,
    },
    /// The transfer to `target` did not complete within an election timeout; this
    /// node leads on and takes proposals again.
    TransferAbandoned {
        /// The node leadership was to go to.
        target: NodeId,
        /// The term this node leads.
        term: Term,
    },
    /// A snapshot received from the leader replaced this node's state machine and the
    /// log up to `last_included`.
    SnapshotInstalled {
        /// The snapshot's last included entry.
        last_included: LogId,
    },
    /// The configuration in force changed (a membership entry appended or truncated, a
    /// snapshot installed). Read it with
    /// [`RaftCore::membership`](super::RaftCore::membership).
    MembershipChanged {
        /// The index of the entry that set it.
        index: LogIndex,
        /// True when it is a joint configuration.
        joint: bool,
    },
}

/// A snapshot of a node's volatile and persistent state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// Whom it voted for in this term.
    pub voted_for: Option<NodeId>,
    /// The leader it knows of in this term.
    pub leader: Option<NodeId>,
    /// Its last log id (durable or not).
    pub last_log: LogId,
    /// Highest index known committed.
    pub commit_index: LogIndex,
    /// Highest index the driver reported durable.
    pub persisted_index: LogIndex,
    /// Highest index the driver reported applied.
    pub applied_index: LogIndex,
    /// The index of the entry that set the configuration in force (the log's start
    /// for the bootstrap or snapshot configuration). The configuration itself is in
    /// [`RaftCore::membership`](super::RaftCore::membership) and the node's metrics.
    pub membership_index: LogIndex,
    /// True when this node votes in the configuration in force (either half).
    pub voter: bool,
    /// True while the configuration in force is joint (a change in progress).
    pub joint: bool,
    /// True when the configuration in force has voters and this node is not a member
    /// of it (voter or learner): it was removed, and never campaigns. A joining node,
    /// with no configuration yet, is not removed.
    pub removed: bool,
}
