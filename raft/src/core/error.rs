//! Errors the core returns to its driver.
//!
//! [`ProposeError`] and [`StepError`] are recoverable: the one input is refused, nothing
//! changed, and the core stays usable. [`InitError`] (and the [`ConfigError`] inside it)
//! is fatal for that start: no core was built, and retrying with the same input fails
//! the same way.
//!
//! [`ConfigError`]: super::ConfigError

use thiserror::Error;

use super::types::{LogIndex, NodeId, Term};

/// Why a proposal was refused (recoverable: retry elsewhere or later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// Only the leader accepts proposals; `leader` is the one this node knows of.
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The leader's uncommitted tail is at its configured bound
    /// ([`Config::max_uncommitted_entries`](super::Config::max_uncommitted_entries) or
    /// [`Config::max_uncommitted_bytes`](super::Config::max_uncommitted_bytes)): clients
    /// outrun the cluster. Nothing was appended; retry after a while.
    #[error("busy: {entries} entries ({bytes} bytes) are waiting to commit")]
    Busy {
        /// Uncommitted entries on the leader.
        entries: usize,
        /// Their payload bytes.
        bytes: usize,
    },
    /// The leader is handing leadership to `target` and takes no proposals until the
    /// transfer completes or is abandoned. Retry at the new leader.
    #[error("leadership is being transferred to node {target}")]
    TransferInProgress {
        /// The node leadership is being handed to.
        target: NodeId,
    },
}

/// Why an inbound message was refused (recoverable: the message is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StepError {
    /// The message is addressed to another node.
    #[error("message for node {to} delivered to node {this}")]
    WrongRecipient {
        /// The addressee.
        to: NodeId,
        /// This node.
        this: NodeId,
    },
    /// The sender is not a member of this cluster.
    #[error("message from unknown node {from}")]
    UnknownPeer {
        /// The sender.
        from: NodeId,
    },
    /// No honest peer could have sent this message. It was dropped and changed nothing.
    #[error("malformed {kind} from node {from}: {reason}")]
    Malformed {
        /// The sender.
        from: NodeId,
        /// The message kind.
        kind: &'static str,
        /// What is wrong with it.
        reason: Malformed,
    },
}

/// What makes a message malformed (see [`StepError::Malformed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The entries of an AppendEntries do not follow `prev_log` one by one.
    #[error("entries are not contiguous: expected index {expected}, found {found}")]
    NotContiguous {
        /// The index the entry should have had.
        expected: LogIndex,
        /// The index it had.
        found: LogIndex,
    },
    /// An entry's term is lower than the entry (or `prev_log`) before it.
    #[error("entry {index} has term {term}, below the {before} before it")]
    TermDecreases {
        /// The entry.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The term before it.
        before: Term,
    },
    /// An entry carries a term above the message's own.
    #[error("entry {index} has term {entry_term}, above the message's term {term}")]
    EntryTermAboveMessage {
        /// The entry.
        index: LogIndex,
        /// Its term.
        entry_term: Term,
        /// The message's term.
        term: Term,
    },
    /// `prev_log` carries a term above the message's own (or a term for index 0).
    #[error("prev_log term {prev_term} is above {term}")]
    PrevTermAboveMessage {
        /// The `prev_log` term.
        prev_term: Term,
        /// The highest it may be.
        term: Term,
    },
    /// The leader's commit index is beyond the last entry the message vouches for.
    #[error("leader_commit {leader_commit} is beyond the message's last index {last}")]
    CommitBeyondMessage {
        /// The commit index carried.
        leader_commit: LogIndex,
        /// The last index the message covers.
        last: LogIndex,
    },
    /// Another node claims to lead this node's own leadership term.
    #[error("a second leader in term {term}")]
    SecondLeader {
        /// The term.
        term: Term,
    },
    /// The message disagrees with an entry this node knows is committed.
    #[error("contradicts the committed entry at index {index}")]
    ContradictsCommitted {
        /// The committed index.
        index: LogIndex,
    },
    /// A reply acknowledges or rejects an index this leader never sent.
    #[error("reply about index {index}, but this leader's log ends at {last}")]
    NeverSent {
        /// The index in the reply.
        index: LogIndex,
        /// The leader's last index.
        last: LogIndex,
    },
    /// A TimeoutNow that does not come from the leader of this node's current term.
    #[error("TimeoutNow in term {term} from a node that does not lead it")]
    TimeoutNowNotFromLeader {
        /// The term.
        term: Term,
    },
    /// A candidate claims a last log term above the term it campaigns in.
    #[error("candidate's last log term {last_term} is above its term {term}")]
    CandidateLogAboveTerm {
        /// The last log term claimed.
        last_term: Term,
        /// The term asked for.
        term: Term,
    },
    /// A snapshot's last included entry is of a term above the message's, or names
    /// no entry (index 0, or a term for index 0).
    #[error("snapshot through index {index} in term {last_term} is impossible in term {term}")]
    ImpossibleSnapshot {
        /// The snapshot's last included index.
        index: LogIndex,
        /// Its term.
        last_term: Term,
        /// The message's term.
        term: Term,
    },
    /// A snapshot chunk that is not the last carries no bytes, or its range overflows.
    #[error("snapshot chunk at offset {offset} of {len} bytes is not a valid chunk")]
    BadSnapshotChunk {
        /// The chunk's offset.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A membership entry has a half without voters:
    /// no leader ever proposes one, and obeying it would leave the cluster without a
    /// quorum forever.
    #[error("the configuration at index {index} has no voters")]
    NoVoters {
        /// The entry's index.
        index: LogIndex,
    },
}

/// Why the core could not be built (fatal for this start: fix the input).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InitError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    /// This node's id is not among the voters.
    #[error("node {id} is not a member of the cluster {members:?}")]
    NotAMember {
        /// This node.
        id: NodeId,
        /// The members given.
        members: Vec<NodeId>,
    },
    /// The recovered entries are not contiguous after the compacted prefix.
    #[error("recovered log is not contiguous at index {index}")]
    BrokenLog {
        /// The first index out of place.
        index: LogIndex,
    },
}
