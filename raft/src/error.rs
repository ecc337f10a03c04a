//! The error a client of a node gets: shared by the driver, which decides it, and the
//! node's handle, which returns it.

use std::time::Duration;

use thiserror::Error;

use crate::core::{LogIndex, NodeId, ReadError, Term};

/// Why a client request to a node failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// This node is not the leader; send the request to `leader` (when known).
    #[error("node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The node lost its leadership and, with it, its copy of the entry before the entry
    /// committed. The command was most likely not applied, but a later leader that holds a
    /// copy could still commit it: retry idempotently, or read back to find out.
    #[error("entry {index} of term {term} was lost to a leader change before it committed")]
    LeadershipLost {
        /// Where the entry was.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// The node is overloaded: its proposal queue, its table of proposals waiting for an
    /// answer, or the leader's uncommitted tail
    /// ([`Config::max_uncommitted_entries`](crate::Config::max_uncommitted_entries),
    /// [`Config::max_uncommitted_bytes`](crate::Config::max_uncommitted_bytes)) is full.
    /// Nothing was appended: retry after a while, with backoff.
    #[error("the node is busy: too many proposals waiting; retry later")]
    Busy,
    /// This node stopped leading while the entry waited to commit. The entry is in some
    /// logs and may still commit under a later leader, or be replaced: the outcome is
    /// unknown. Retry idempotently (client sessions), or read back to find out.
    #[error("entry {index} of term {term}: outcome unknown, this node stopped leading before it committed")]
    OutcomeUnknown {
        /// Where the entry is.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// The node stopped (shutdown, a fatal storage error) before answering.
    #[error("the node has stopped")]
    Stopped,
    /// The wait timed out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The leader is handing leadership to `target` and takes no proposals meanwhile.
    /// Nothing was appended: retry at the new leader.
    #[error("leadership is being transferred to node {target}; retry there")]
    TransferInProgress {
        /// The node leadership is being handed to.
        target: NodeId,
    },
    /// A linearizable read got no read index (see [`ReadError`]); nothing stale was
    /// served.
    #[error("read failed: {0}")]
    Read(#[from] ReadError),
}
