//! Plain protocol types: identifiers, log entries and the durable hard state.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Identifies one Raft node inside a cluster. Zero is a valid id.
pub type NodeId = u64;

/// A Raft term: the logical clock of §5.1. Terms start at 0 and only grow.
pub type Term = u64;

/// The position of an entry in the log. The first entry has index 1; index 0 names the
/// empty prefix that every log shares.
pub type LogIndex = u64;

/// The (term, index) pair that names one log position. `LogId::default()` is the empty
/// log's position (term 0, index 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogId {
    /// Term of the entry at `index`.
    pub term: Term,
    /// Index of the entry.
    pub index: LogIndex,
}

impl LogId {
    /// Builds a log id.
    pub const fn new(term: Term, index: LogIndex) -> Self {
        Self { term, index }
    }

    /// The §5.4.1 comparison: is a log ending at `self` at least as up to date as a log
    /// ending at `other`? The later last term wins; with equal terms the longer log wins.
    pub fn is_at_least_as_up_to_date_as(&self, other: &LogId) -> bool {
        (self.term, self.index) >= (other.term, other.index)
    }
}

impl std::fmt::Display for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.index, self.term)
    }
}

/// What a log entry carries.
///
/// Deliberately exhaustive: every storage and transport encodes each payload kind in its
/// own explicit, versioned format, and a new kind must fail to compile there until it
/// has one, rather than be dropped by a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// A command proposed by a client, opaque to Raft, handed to the state machine.
    Command(Bytes),
    /// The empty entry every new leader appends in its term (§8), so that entries of
    /// earlier terms commit without waiting for a client. State machines never see it.
    Noop,
    /// A cluster configuration (§6): it takes effect on each node when appended. State
    /// machines never see it. Boxed: configurations are rare and large, and every entry
    /// is as large as the largest payload, so inline they would triple the size of every
    /// entry the log moves and clones.
    Membership(Box<super::ClusterConfig>),
}

impl Payload {
    /// Size in bytes of the user data, used for batch and in-flight limits.
    pub fn len(&self) -> usize {
        match self {
            Payload::Command(b) => b.len(),
            Payload::Noop | Payload::Membership(_) => 0,
        }
    }

    /// True when the payload carries no user bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
    /// What the entry carries.
    pub payload: Payload,
}

impl Entry {
    /// The entry's (term, index).
    pub fn log_id(&self) -> LogId {
        LogId::new(self.term, self.index)
    }

    /// Approximate encoded size, used for byte limits on batches and pipelines.
    pub fn size_hint(&self) -> usize {
        24 + self.payload.len()
    }
}

/// The state that must be durable before a node answers any RPC (Figure 2, "Persistent
/// state on all servers", besides the log itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this node has seen.
    pub current_term: Term,
    /// The candidate this node voted for in `current_term`, if any.
    pub voted_for: Option<NodeId>,
}

/// The role a node plays in its current term. More may come (a non-voting learner, for
/// membership changes), so matches need a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Role {
    /// Passive: answers leaders and candidates.
    Follower,
    /// Asking whether it could win an election, without raising its term (Pre-Vote).
    PreCandidate,
    /// Running an election in its current term.
    Candidate,
    /// Handles proposals and replicates the log.
    Leader,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod size_tests {
    use super::{Entry, Payload};

    /// The log moves and clones entries by the million: an entry stays as small as a
    /// command's bytes handle plus its id. A large payload kind belongs behind a box (a
    /// joint configuration inline made every entry about three times this size).
    #[test]
    fn an_entry_is_a_bytes_handle_and_an_id() {
        assert!(
            std::mem::size_of::<Payload>() <= std::mem::size_of::<bytes::Bytes>() + 8,
            "Payload is {} bytes",
            std::mem::size_of::<Payload>()
        );
        assert!(
            std::mem::size_of::<Entry>() <= 56,
            "Entry is {} bytes",
            std::mem::size_of::<Entry>()
        );
    }

    /// Every message is moved several times between the core, the driver, the
    /// transport and the inbox: a message is as small as its commonest kind, an
    /// AppendEntries. A snapshot chunk (with its configuration) sits behind a box.
    #[test]
    fn a_message_is_the_size_of_an_append_request() {
        use crate::core::{AppendRequest, Message};
        assert!(
            std::mem::size_of::<Message>() <= std::mem::size_of::<AppendRequest>() + 8,
            "Message is {} bytes, AppendRequest {}",
            std::mem::size_of::<Message>(),
            std::mem::size_of::<AppendRequest>()
        );
    }
}
