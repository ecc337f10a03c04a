//! The public face of a running node: propose, watch, wait, stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use bytes::Bytes;
use thiserror::Error;
use tokio::sync::{broadcast, oneshot, watch};

use super::proposals::ProposalQueue;
use crate::core::{Event, LogIndex, NodeId, Role, Status, Term};

/// Why a client request to a node failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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
    /// The node stopped (shutdown, a fatal storage error) before answering.
    #[error("the node has stopped")]
    Stopped,
    /// The wait timed out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

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
    /// Proposals are waiting in the shared queue.
    DrainProposals,
    Shutdown {
        done: oneshot::Sender<()>,
    },
    Kill,
}

impl actix::Message for Command {
    type Result = ();
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct RaftHandle {
    pub(crate) id: NodeId,
    pub(crate) commands: Recipient<Command>,
    pub(crate) proposals: Arc<ProposalQueue>,
    pub(crate) status: watch::Receiver<Status>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
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
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Proposes a command. Resolves with the state machine's response once the entry is
    /// committed and applied on this node. Fails at once with
    /// [`ClientError::NotLeader`] on a follower.
    pub async fn propose(&self, command: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        let (reply, rx) = oneshot::channel();
        match self.proposals.push(command.into(), reply) {
            Ok(true) => self.commands.do_send(Command::DrainProposals),
            Ok(false) => {}
            Err(_) => return Err(ClientError::Stopped),
        }
        rx.await.unwrap_or(Err(ClientError::Stopped))
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
        self.status.clone()
    }

    /// Subscribes to the node's events: role, term and leader changes, elections and
    /// votes. Commit progress is not sent as events (it would wake subscribers once per
    /// commit): watch [`Status::commit_index`] instead.
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
        let mut rx = self.status.clone();
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

    /// Stops the node gracefully: no new work, the write in flight completes, pending
    /// proposals fail with [`ClientError::Stopped`]. Resolves once the node has stopped.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        self.commands.do_send(Command::Shutdown { done });
        let _ = rx.await;
    }

    /// Stops the node at once, as a crash would: nothing more is written. What the
    /// storage already made durable stays, so a node restarted on it recovers.
    pub fn kill(&self) {
        self.commands.do_send(Command::Kill);
    }
}
