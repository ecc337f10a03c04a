//! Errors the core returns to its driver. None of them is fatal: the core stays usable.

use thiserror::Error;

use super::types::{LogIndex, NodeId};

/// Why a proposal was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals; `leader` is the one this node knows of.
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
}

/// Why an inbound message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
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

/// Why the core could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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
