//! Proposing to whichever node leads: the benchmarks' long runs go on through a leader
//! change (a loaded machine can delay heartbeats past an election timeout) and count
//! it, instead of ending the run.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actraft::core::{NodeId, Role};
use actraft::{ClientError, RaftHandle};
use bytes::Bytes;

/// How long a client waits before retrying when no leader is known.
const NO_LEADER_WAIT: Duration = Duration::from_millis(5);

/// The cluster's handles and the node the clients believe leads, shared by the client
/// tasks of one thread.
#[derive(Clone)]
pub struct Leader {
    handles: Rc<Vec<RaftHandle>>,
    current: Rc<Cell<NodeId>>,
    /// Proposals whose outcome a leader change left unknown (or lost).
    unknown: Rc<Cell<u64>>,
}

/// What one proposal came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed and applied.
    Applied,
    /// Refused with `Busy`: nothing was appended.
    Busy,
    /// A leader change left its outcome unknown (counted); the client goes on.
    Unknown,
    /// No leader took it (none known, or a transfer): retried after a short wait.
    Retry,
}

impl Leader {
    /// Proposals go to `leader` first.
    pub fn new(handles: Vec<RaftHandle>, leader: NodeId) -> Self {
        Self {
            handles: Rc::new(handles),
            current: Rc::new(Cell::new(leader)),
            unknown: Rc::new(Cell::new(0)),
        }
    }

    /// Proposals whose outcome a leader change left unknown.
    pub fn unknown(&self) -> u64 {
        self.unknown.get()
    }

    fn handle(&self) -> Option<&RaftHandle> {
        let id = self.current.get();
        self.handles.iter().find(|h| h.id() == id)
    }

    /// Proposes `command` to the node believed to lead, following a redirect.
    /// Errors other than those of a leader change end the run.
    pub async fn propose(&self, command: Bytes) -> Result<Outcome, ClientError> {
        let Some(handle) = self.handle() else {
            return Err(ClientError::Stopped);
        };
        match handle.propose(command).await {
            Ok(_) => Ok(Outcome::Applied),
            Err(ClientError::Busy) => Ok(Outcome::Busy),
            Err(ClientError::NotLeader { leader: Some(id) }) if id != handle.id() => {
                self.current.set(id);
                Ok(Outcome::Retry)
            }
            Err(ClientError::NotLeader { .. } | ClientError::TransferInProgress { .. }) => {
                tokio::time::sleep(NO_LEADER_WAIT).await;
                self.follow();
                Ok(Outcome::Retry)
            }
            Err(ClientError::OutcomeUnknown { .. } | ClientError::LeadershipLost { .. }) => {
                self.unknown.set(self.unknown.get() + 1);
                self.follow();
                Ok(Outcome::Unknown)
            }
            Err(e) => Err(e),
        }
    }

    /// Points at the node that leads in the highest term, if any does.
    fn follow(&self) {
        if let Some(leader) = leading(&self.handles) {
            self.current.set(leader.id());
        }
    }
}

/// The running node that leads in the highest term, if any does.
fn leading(handles: &[RaftHandle]) -> Option<&RaftHandle> {
    handles
        .iter()
        .filter(|h| h.is_running())
        .map(|h| (h, h.status()))
        .filter(|(_, s)| s.role == Role::Leader)
        .max_by_key(|(_, s)| s.term)
        .map(|(h, _)| h)
}

/// A client's way around a leader change during a run: the node that leads now among
/// `nodes`, waiting (until `until`) for one to be known; `node` when none is by then.
pub async fn leader_now(
    nodes: &[RaftHandle],
    node: &RaftHandle,
    until: std::time::Instant,
) -> RaftHandle {
    wait_for_leader(nodes, until)
        .await
        .unwrap_or_else(|| node.clone())
}

/// The node that leads now among `nodes`, waiting (until `until`) for one to be known;
/// `None` when none is by then.
pub async fn wait_for_leader(
    nodes: &[RaftHandle],
    until: std::time::Instant,
) -> Option<RaftHandle> {
    while std::time::Instant::now() < until {
        if let Some(leader) = leading(nodes) {
            return Some(leader.clone());
        }
        // No leader yet: an election takes a few timeouts.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Whether a failed request failed only because leadership moved (retry it on the
/// node that leads now).
pub fn leadership_moved(error: &ClientError) -> bool {
    use ClientError as E;
    matches!(
        error,
        E::NotLeader { .. } | E::LeadershipLost { .. } | E::OutcomeUnknown { .. } | E::Timeout(_)
    )
}
