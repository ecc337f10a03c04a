//! Leadership transfers the node was asked for, waiting for their outcome: a new leader
//! known to this node, the transfer abandoned, or the wait's deadline passed.

use std::time::Duration;

use super::{Driver, Responder};
use crate::core::{NodeId, Role, Term, TransferError};
use crate::StateMachine;

/// Names one leadership transfer request, so its outcome can be matched
/// ([`Output::transfers`](super::Output::transfers)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u64);

/// A transfer request waiting for its outcome.
#[derive(Debug)]
struct Waiting {
    id: TransferId,
    target: NodeId,
    /// The term this node led when the transfer started.
    term: Term,
    deadline: Duration,
    timeout: Duration,
}

/// The transfer requests waiting for their outcome.
#[derive(Debug, Default)]
pub(super) struct Transfers {
    next_id: u64,
    waiting: Vec<Waiting>,
}

impl Transfers {
    /// The earliest deadline of a waiting request.
    pub(super) fn next_deadline(&self) -> Duration {
        self.waiting
            .iter()
            .map(|w| w.deadline)
            .min()
            .unwrap_or(Duration::MAX)
    }
}

impl<M: StateMachine, R: Responder> Driver<M, R> {
    /// Asks this node, which must lead, to hand leadership to `to` (`None`: the most
    /// up-to-date follower). The outcome comes out in
    /// [`Output::transfers`](super::Output::transfers) under the returned id: the new
    /// leader once this node knows it; [`TransferError::Abandoned`] when the target did
    /// not win within an election timeout; [`TransferError::TimedOut`] when no new leader
    /// was known within `timeout` (default: twice the maximum election timeout); or why
    /// the transfer could not start.
    pub fn transfer_leadership(
        &mut self,
        now: Duration,
        to: Option<NodeId>,
        timeout: Option<Duration>,
    ) -> TransferId {
        self.transfers.next_id += 1;
        let id = TransferId(self.transfers.next_id);
        match self.core.transfer_leadership(to) {
            Ok(target) if target == self.core.id() => {
                self.out.transfers.push((id, Ok(target)));
            }
            Ok(target) => {
                let timeout = timeout.unwrap_or(self.core.config().election_timeout_max * 2);
                self.transfers.waiting.push(Waiting {
                    id,
                    target,
                    term: self.core.status().term,
                    deadline: now + timeout,
                    timeout,
                });
            }
            Err(error) => self.out.transfers.push((id, Err(error))),
        }
        id
    }

    /// Transfer requests waiting for their outcome.
    pub fn pending_transfers(&self) -> usize {
        self.transfers.waiting.len()
    }

    /// Answers the waiting transfer requests whose outcome is known: a leader other
    /// than this node is known, or this node leads on without a transfer (abandoned).
    pub(super) fn settle_transfers(&mut self) {
        if self.transfers.waiting.is_empty() {
            return;
        }
        let status = self.core.status();
        let transferring = self.core.transfer_target().is_some();
        let out = &mut self.out.transfers;
        self.transfers.waiting.retain(|w| {
            let outcome = match status.leader {
                Some(leader) if leader != status.id => Some(Ok(leader)),
                _ if status.role == Role::Leader && (!transferring || status.term > w.term) => {
                    Some(Err(TransferError::Abandoned { target: w.target }))
                }
                _ => None,
            };
            match outcome {
                Some(result) => {
                    out.push((w.id, result));
                    false
                }
                None => true,
            }
        });
    }

    /// Answers the waiting transfer requests whose deadline has passed.
    pub(super) fn expire_transfers(&mut self, now: Duration) {
        let out = &mut self.out.transfers;
        self.transfers.waiting.retain(|w| {
            if w.deadline <= now {
                out.push((w.id, Err(TransferError::TimedOut(w.timeout))));
                false
            } else {
                true
            }
        });
    }

    /// Answers every waiting transfer request with `error` (the node is stopping).
    pub(super) fn fail_transfers(&mut self, error: TransferError) {
        for w in self.transfers.waiting.drain(..) {
            self.out.transfers.push((w.id, Err(error)));
        }
    }
}
