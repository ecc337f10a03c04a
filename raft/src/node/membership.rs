//! Membership changes through a [`RaftHandle`]: add a learner, change the voters and
//! learners, read the configuration in force.

use std::collections::BTreeSet;

use tokio::sync::oneshot;

use super::handle::{Command, RaftHandle};
use crate::core::{ClusterConfig, LogIndex, MembershipError, NodeId};
use crate::driver::MembershipChange;

impl RaftHandle {
    /// Adds `id` as a learner reachable at `address` (opaque to Raft, handed to the
    /// transports: see [`Transport::set_members`](crate::Transport::set_members)). This
    /// node must lead. The learner gets the log (or a snapshot) but does not vote.
    /// Resolves with the index of the committed configuration that holds it.
    ///
    /// Fails at once with [`MembershipError::NotLeader`], [`MembershipError::ChangeInProgress`]
    /// (one change at a time), or [`MembershipError::Invalid`] when `id` is a voter
    /// already; later with [`MembershipError::LeadershipLost`] or
    /// [`MembershipError::OutcomeUnknown`] when this node stopped leading first.
    pub async fn add_learner(
        &self,
        id: NodeId,
        address: impl Into<String>,
    ) -> Result<LogIndex, MembershipError> {
        self.send_change(MembershipChange::AddLearner {
            id,
            address: address.into(),
        })
        .await
    }

    /// Moves the cluster to the configuration of `voters` and `learners` by joint
    /// consensus (any number of additions and removals in one call), and resolves once
    /// the new configuration is committed, with its index. Members that are in neither
    /// list are removed; a removed leader steps down once the change commits. A node
    /// that becomes a voter must be a learner within
    /// [`Config::max_promotion_lag`](crate::Config::max_promotion_lag) entries of the
    /// leader, else [`MembershipError::Lagging`]. Other errors as for
    /// [`add_learner`](Self::add_learner), plus [`MembershipError::Invalid`] for a
    /// configuration without voters.
    pub async fn change_membership(
        &self,
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Result<LogIndex, MembershipError> {
        self.send_reshape(voters, learners, true).await
    }

    /// [`change_membership`](Self::change_membership) without the lag check: a new
    /// voter that is far behind (or not even running) counts for the quorum at once, so
    /// the cluster may stall until it catches up. For recovery by an operator.
    pub async fn change_membership_unchecked(
        &self,
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Result<LogIndex, MembershipError> {
        self.send_reshape(voters, learners, false).await
    }

    async fn send_reshape(
        &self,
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
        check_lag: bool,
    ) -> Result<LogIndex, MembershipError> {
        self.send_change(MembershipChange::Change {
            voters: voters.into_iter().collect::<BTreeSet<_>>(),
            learners: learners.into_iter().collect::<BTreeSet<_>>(),
            check_lag,
        })
        .await
    }

    /// The configuration in force on this node, as of its last published metrics (the
    /// last configuration in its log: it takes effect when appended, before it commits).
    pub fn membership(&self) -> ClusterConfig {
        self.metrics.borrow().membership.clone()
    }

    async fn send_change(&self, change: MembershipChange) -> Result<LogIndex, MembershipError> {
        let (done, rx) = oneshot::channel();
        self.commands
            .do_send(Command::ChangeMembership { change, done });
        rx.await.unwrap_or(Err(MembershipError::Stopped))
    }
}
