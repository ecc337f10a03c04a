//! Membership changes the node was asked for, waiting for their outcome.
//!
//! The core appends the change's entry (the joint configuration, or the new stable one
//! when only learners change) and, on its own, `C_new` once the joint entry commits.
//! The driver answers the request once a stable configuration at or after the change's
//! entry is committed; with [`MembershipError::LeadershipLost`] when the entry was
//! replaced; with [`MembershipError::OutcomeUnknown`] when this node stopped leading
//! first (another leader may still complete the change).

use std::collections::BTreeSet;

use super::{Driver, Responder};
use crate::core::{ClusterConfig, LogId, MembershipError, NodeId, Role};
use crate::transport::Member;
use crate::StateMachine;

/// Names one membership change request, so its outcome can be matched
/// ([`Output::memberships`](super::Output::memberships)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MembershipId(pub u64);

/// A membership change a node is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add `id` as a learner reachable at `address` (opaque to Raft; may be empty).
    AddLearner {
        /// The new learner.
        id: NodeId,
        /// Where to reach it.
        address: String,
    },
    /// Make `voters` and `learners` the configuration (addresses of members that stay
    /// are kept). With `check_lag`, a node that becomes a voter must be within
    /// [`Config::max_promotion_lag`](crate::Config::max_promotion_lag) of the leader.
    Change {
        /// The voters of the new configuration.
        voters: BTreeSet<NodeId>,
        /// The learners of the new configuration.
        learners: BTreeSet<NodeId>,
        /// Refuse to promote a lagging learner.
        check_lag: bool,
    },
}

/// What a shell tells its transport before it sends the messages of an output whose
/// [`links`](super::Output::links) are `next`, when the transport was last told
/// `told`: every node of both lists (the address of `next` for a node in both), so
/// that messages to a node that joins (the first AppendEntries to a node just added,
/// the first reply to a leader this node's configuration does not name yet) find it
/// known, while a node that leaves stays reachable for its last messages. `None` when
/// `next` adds no node and changes no address: the transport needs nothing before the
/// messages. After them, the shell tells the transport `next` itself.
pub fn links_before_messages(told: &[Member], next: &[Member]) -> Option<Vec<Member>> {
    let mut union: std::collections::BTreeMap<NodeId, &str> =
        told.iter().map(|m| (m.id, m.address.as_str())).collect();
    let mut grows = false;
    for m in next {
        if union.insert(m.id, m.address.as_str()) != Some(m.address.as_str()) {
            grows = true;
        }
    }
    grows.then(|| {
        union
            .into_iter()
            .map(|(id, address)| Member {
                id,
                address: address.to_owned(),
            })
            .collect()
    })
}

/// The change requests waiting for their outcome.
#[derive(Debug, Default)]
pub(super) struct Memberships {
    next_id: u64,
    /// (request, the change's entry).
    waiting: Vec<(MembershipId, LogId)>,
    /// The links last handed out ([`Driver::take_links`]) and the configuration in
    /// force then (which gave their addresses).
    linked: Option<(BTreeSet<NodeId>, ClusterConfig)>,
    /// What the links were derived from when last looked at: while it holds, they are
    /// not derived again (that allocates, and the node looks after every batch).
    linked_key: Option<crate::core::LinksKey>,
}

impl<M: StateMachine, R: Responder> Driver<M, R> {
    /// The nodes this node talks to, with their addresses ([`RaftCore::link_members`]),
    /// when they changed since the last call (always on the first). [`run`](Self::run)
    /// puts them in [`Output::links`](super::Output::links); a shell calls this itself
    /// only before its first run, to tell its transport before any message.
    ///
    /// [`RaftCore::link_members`]: crate::core::RaftCore::link_members
    pub fn take_links(&mut self) -> Option<Vec<Member>> {
        let key = self.core.links_key();
        if self.memberships.linked_key == Some(key) {
            return None;
        }
        self.memberships.linked_key = Some(key);
        let ids = self.core.links();
        let config = self.core.membership();
        if let Some((linked, at)) = &self.memberships.linked {
            if *linked == ids && at == config {
                return None;
            }
        }
        self.memberships.linked = Some((ids, config.clone()));
        Some(self.core.link_members())
    }

    /// Asks this node, which must lead, for a membership change. The outcome comes out
    /// in [`Output::memberships`](super::Output::memberships) under the returned id: the
    /// index of the committed configuration that completes the change, or why not.
    pub fn change_membership(&mut self, change: MembershipChange) -> MembershipId {
        self.memberships.next_id += 1;
        let id = MembershipId(self.memberships.next_id);
        match self.start_change(change) {
            Ok(entry) => self.memberships.waiting.push((id, entry)),
            Err(error) => self.out.memberships.push((id, Err(error))),
        }
        id
    }

    fn start_change(&mut self, change: MembershipChange) -> Result<LogId, MembershipError> {
        if self.core.role() != Role::Leader {
            return Err(MembershipError::NotLeader {
                leader: self.core.status().leader,
            });
        }
        let current = self.core.membership().target().clone();
        let (target, check_lag) = match change {
            MembershipChange::AddLearner { id, address } => {
                if current.voters().contains(&id) {
                    return Err(MembershipError::Invalid(format!(
                        "node {id} is a voter already"
                    )));
                }
                let learners = current.learners().iter().copied().chain([id]);
                let target = current
                    .reshaped(current.voters().iter().copied(), learners)
                    .with_address(id, address);
                (target, false)
            }
            MembershipChange::Change {
                voters,
                learners,
                check_lag,
            } => (current.reshaped(voters, learners), check_lag),
        };
        self.core.propose_membership(target, check_lag)
    }

    /// Change requests waiting for their outcome.
    pub fn pending_memberships(&self) -> usize {
        self.memberships.waiting.len()
    }

    /// Answers the waiting change requests whose outcome is known.
    pub(super) fn settle_memberships(&mut self) {
        if self.memberships.waiting.is_empty() {
            return;
        }
        let status = self.core.status();
        let config_index = self.core.membership_index();
        let stable = !self.core.membership().is_joint();
        let prefix = self.core.log_prefix().index;
        let core = &self.core;
        let out = &mut self.out.memberships;
        self.memberships.waiting.retain(|&(id, entry)| {
            let outcome = if entry.index > prefix && core.log_term(entry.index) != Some(entry.term)
            {
                Some(Err(MembershipError::LeadershipLost {
                    index: entry.index,
                    term: entry.term,
                }))
            } else if stable && config_index >= entry.index && status.commit_index >= config_index {
                Some(Ok(config_index))
            } else if status.role != Role::Leader {
                Some(Err(MembershipError::OutcomeUnknown {
                    index: entry.index,
                    term: entry.term,
                }))
            } else {
                None
            };
            match outcome {
                Some(result) => {
                    out.push((id, result));
                    false
                }
                None => true,
            }
        });
    }

    /// Answers every waiting change request with `error` (the node is stopping).
    pub(super) fn fail_memberships(&mut self, error: MembershipError) {
        for (id, _) in self.memberships.waiting.drain(..) {
            self.out.memberships.push((id, Err(error.clone())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(members: &[(NodeId, &str)]) -> Vec<Member> {
        members
            .iter()
            .map(|&(id, address)| Member {
                id,
                address: address.to_owned(),
            })
            .collect()
    }

    #[test]
    fn links_grow_before_the_messages_and_shrink_after() {
        let told = list(&[(2, "b"), (3, "c")]);
        // A node joins: both lists before the messages.
        assert_eq!(
            links_before_messages(&told, &list(&[(2, "b"), (4, "")])),
            Some(list(&[(2, "b"), (3, "c"), (4, "")]))
        );
        // An address changes: the new one at once.
        assert_eq!(
            links_before_messages(&told, &list(&[(2, "b2"), (3, "c")])),
            Some(list(&[(2, "b2"), (3, "c")]))
        );
        // Only a node leaving, or nothing new: nothing before the messages.
        assert_eq!(links_before_messages(&told, &list(&[(2, "b")])), None);
        assert_eq!(links_before_messages(&told, &told), None);
        assert_eq!(links_before_messages(&told, &[]), None);
    }
}
