//! Leadership transfer (thesis §3.10): the leader stops taking proposals, brings the
//! target's log up to date, and sends it TimeoutNow; the target campaigns at once,
//! skipping Pre-Vote, and its RequestVote carries a flag that lets voters grant it
//! within the CheckQuorum leader lease. If the target has not won within an election
//! timeout, the leader abandons the transfer and takes proposals again.

use std::time::Duration;

use thiserror::Error;

use super::message::{Message, TimeoutNow};
use super::output::Event;
use super::types::{NodeId, Role, Term};
use super::Malformed;
use super::RaftCore;

/// Why a leadership transfer could not start or did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TransferError {
    /// Only the leader can hand over leadership; `leader` is the one this node knows of.
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The target is not a member of the cluster.
    #[error("node {target} is not a member of the cluster")]
    UnknownTarget {
        /// The node asked for.
        target: NodeId,
    },
    /// The cluster has no other voter to hand leadership to.
    #[error("no other member to hand leadership to")]
    NoCandidate,
    /// A transfer to another node is already in progress.
    #[error("a transfer to node {target} is already in progress")]
    InProgress {
        /// Its target.
        target: NodeId,
    },
    /// The target did not win within an election timeout; the leader leads on.
    #[error("the transfer to node {target} was abandoned: it did not win in time")]
    Abandoned {
        /// The target.
        target: NodeId,
    },
    /// No new leader was known within the wait's bound.
    #[error("no new leader was known within {0:?}")]
    TimedOut(Duration),
    /// The node stopped before the transfer completed.
    #[error("the node has stopped")]
    Stopped,
}

/// A transfer in progress, on the leader.
#[derive(Debug, Clone, Copy)]
pub(super) struct Transfer {
    pub(super) target: NodeId,
    /// When the transfer is abandoned if this node still leads.
    pub(super) deadline: Duration,
    pub(super) timeout_sent: bool,
}

impl RaftCore {
    /// Hands leadership to `to`, or with `None` to the most up-to-date follower heard
    /// from recently. Returns the target. From now until the transfer completes (this
    /// node learns of a higher term) or is abandoned (after the maximum election
    /// timeout, reported as [`Event::TransferAbandoned`]), proposals are refused with
    /// [`ProposeError::TransferInProgress`](super::ProposeError::TransferInProgress).
    ///
    /// Asking for this node itself succeeds at once and changes nothing. Asking again
    /// for the transfer in progress (or for `None`) returns its target.
    pub fn transfer_leadership(&mut self, to: Option<NodeId>) -> Result<NodeId, TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(target) = to {
            if target == self.id {
                return Ok(self.id);
            }
            if !self.configs.current().is_voter(target) {
                return Err(TransferError::UnknownTarget { target });
            }
        }
        if let Some(t) = self.transfer {
            return match to {
                Some(target) if target != t.target => {
                    Err(TransferError::InProgress { target: t.target })
                }
                _ => Ok(t.target),
            };
        }
        let target = match to {
            Some(t) => t,
            None => self
                .best_transfer_target()
                .ok_or(TransferError::NoCandidate)?,
        };
        tracing::info!(
            node = self.id,
            term = self.term(),
            target,
            "transferring leadership"
        );
        self.transfer = Some(Transfer {
            target,
            deadline: self.now + self.config.election_timeout_max,
            timeout_sent: false,
        });
        self.events.push(Event::TransferStarted {
            target,
            term: self.term(),
        });
        self.advance_transfer(target, false);
        Ok(target)
    }

    /// The node leadership is being handed to, while this leader transfers it.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|t| t.target)
    }

    /// When the transfer in progress is abandoned (`Duration::MAX` when there is none).
    pub(super) fn transfer_deadline(&self) -> Duration {
        self.transfer.map_or(Duration::MAX, |t| t.deadline)
    }

    /// Abandons the transfer once its deadline has passed.
    pub(super) fn check_transfer_deadline(&mut self) {
        let Some(t) = self.transfer else {
            return;
        };
        if self.now >= t.deadline {
            tracing::info!(
                node = self.id,
                term = self.term(),
                target = t.target,
                "leadership transfer abandoned"
            );
            self.transfer = None;
            self.events.push(Event::TransferAbandoned {
                target: t.target,
                term: self.term(),
            });
        }
    }

    /// Moves the transfer on after news from `peer`: once the target holds the whole
    /// log, it gets TimeoutNow (again, with `resend`, in case the first was lost);
    /// before that, it gets the entries it lacks.
    pub(super) fn advance_transfer(&mut self, peer: NodeId, resend: bool) {
        let Some(t) = self.transfer else {
            return;
        };
        if t.target != peer || (t.timeout_sent && !resend) {
            return;
        }
        let last = self.log.last_id();
        let Some(p) = self.progress.get(&peer) else {
            return;
        };
        if p.matched < last.index {
            if p.next <= last.index {
                self.pending_broadcast = true;
            }
            return;
        }
        if let Some(t) = self.transfer.as_mut() {
            t.timeout_sent = true;
        }
        tracing::debug!(node = self.id, target = peer, "sending TimeoutNow");
        let term = self.term();
        self.lease_forfeited = term;
        self.send(
            peer,
            Message::TimeoutNow(TimeoutNow {
                term,
                last_log: last,
            }),
        );
    }

    /// The follower to hand leadership to when none is named: one heard from within
    /// the minimum election timeout if any, the furthest matched among those, the
    /// lowest id among equals.
    fn best_transfer_target(&self) -> Option<NodeId> {
        let window = self.config.election_timeout_min;
        let config = self.configs.current();
        self.progress
            .iter()
            .filter(|(&id, _)| config.is_voter(id))
            .max_by_key(|(&id, p)| {
                let alive = self.now.saturating_sub(p.last_heard) < window;
                (alive, p.matched, std::cmp::Reverse(id))
            })
            .map(|(&id, _)| id)
    }

    /// The leader asks this node to campaign now. A follower of that leader whose log
    /// holds the leader's last entry starts an election at once, without Pre-Vote, and
    /// flags its RequestVote so that voters within the leader lease grant it.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId, req: TimeoutNow) {
        if self.role != Role::Follower || self.leader != Some(from) || !self.can_campaign() {
            return;
        }
        if !self
            .log
            .last_id()
            .is_at_least_as_up_to_date_as(&req.last_log)
        {
            tracing::debug!(
                node = self.id,
                "TimeoutNow ignored: log behind the leader's"
            );
            return;
        }
        tracing::info!(
            node = self.id,
            term = self.term(),
            leader = from,
            "leadership handed over, campaigning"
        );
        self.transfer_campaign = true;
        self.start_election();
        self.transfer_campaign = false;
    }

    /// A TimeoutNow must come from the leader of its term.
    pub(super) fn check_timeout_now(&self, from: NodeId, term: Term) -> Option<Malformed> {
        if term != self.term() {
            return None;
        }
        if self.role == Role::Leader {
            return Some(Malformed::SecondLeader { term });
        }
        match self.leader {
            Some(leader) if leader != from => Some(Malformed::TimeoutNowNotFromLeader { term }),
            _ => None,
        }
    }
}
