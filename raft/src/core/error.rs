//! Errors the core returns to its driver.
//!
//! [`ProposeError`] and [`StepError`] are recoverable: the one input is refused, nothing
//! changed, and the core stays usable. [`InitError`] (and the [`ConfigError`] inside it)
//! is fatal for that start: no core was built, and retrying with the same input fails
//! the same way.
//!
//! [`ConfigError`]: super::ConfigError

use thiserror::Error;

use super::types::{LogIndex, NodeId};

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
