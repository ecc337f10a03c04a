//! Cluster configurations and membership change by joint consensus (§6 of the Raft
//! paper), with non-voting learners.
//!
//! # Model
//!
//! A [`Membership`] is one configuration: its voters, its learners (members that get the
//! log and snapshots but never vote, never campaign and never count for a quorum) and an
//! opaque address per member. A [`ClusterConfig`] is what a node obeys: one stable
//! membership, or the joint configuration `C_old,new` of a change in progress, in which
//! every decision (commit, election, CheckQuorum, read confirmation) needs a majority of
//! the voters of *both* halves.
//!
//! # Rules
//!
//! - A configuration lives in the log as a [`Payload::Membership`](super::Payload)
//!   entry, and takes effect on every node as soon as the entry is *appended* (not when
//!   it commits); if the entry is truncated, the node goes back to the configuration
//!   before it. The configuration at a snapshot's last entry is in the snapshot's
//!   metadata, so a restarted node recovers it from its snapshot plus the membership
//!   entries in its log after it.
//! - One change at a time: the leader takes a new change only when the configuration in
//!   force is stable and committed.
//! - A change of voters goes `C_old` → `C_old,new` → `C_new`: once the joint entry
//!   commits, the leader appends `C_new`; once `C_new` commits the change is done. A
//!   leader that is not a voter of `C_new` keeps leading (without counting itself) until
//!   `C_new` commits, then steps down. A change of learners only (same voters) needs no
//!   joint phase: it is one stable entry.
//! - A node that is not a voter of its configuration never campaigns. A node that is
//!   not in its configuration at all has been removed (or has not been added yet, when
//!   its configuration has no voters: a joining node); it still takes the log from a
//!   leader, so it can be added again.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::types::{LogIndex, NodeId, Term};

/// One cluster configuration: voters, learners and the members' addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    voters: BTreeSet<NodeId>,
    learners: BTreeSet<NodeId>,
    addresses: BTreeMap<NodeId, String>,
}

impl Membership {
    /// A configuration of `voters` and `learners`. A node listed in both is a voter.
    pub fn new(
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Self {
        let voters: BTreeSet<NodeId> = voters.into_iter().collect();
        let learners = learners
            .into_iter()
            .filter(|id| !voters.contains(id))
            .collect();
        Self {
            voters,
            learners,
            addresses: BTreeMap::new(),
        }
    }

    /// Records `address` for member `id` (an empty address removes it). Addresses of
    /// nodes that are not members are dropped.
    pub fn with_address(mut self, id: NodeId, address: impl Into<String>) -> Self {
        self.set_address(id, address.into());
        self
    }

    fn set_address(&mut self, id: NodeId, address: String) {
        if address.is_empty() || !self.contains(id) {
            self.addresses.remove(&id);
        } else {
            self.addresses.insert(id, address);
        }
    }

    /// The voting members.
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    /// The non-voting members.
    pub fn learners(&self) -> &BTreeSet<NodeId> {
        &self.learners
    }

    /// The address the configuration records for `id`, if any.
    pub fn address(&self, id: NodeId) -> Option<&str> {
        self.addresses.get(&id).map(String::as_str)
    }

    /// Every recorded address, by member.
    pub fn addresses(&self) -> &BTreeMap<NodeId, String> {
        &self.addresses
    }

    /// True when `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Every member, voters and learners.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(&self.learners).copied()
    }

    /// The same configuration with `voters` and `learners` as members, keeping the
    /// addresses of the members that stay.
    pub fn reshaped(
        &self,
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Self {
        let mut next = Membership::new(voters, learners);
        for (&id, address) in &self.addresses {
            next.set_address(id, address.clone());
        }
        next
    }

    /// Does a majority of the voters satisfy `pred`? Never true without voters.
    fn majority(&self, pred: &impl Fn(NodeId) -> bool) -> bool {
        let yes = self.voters.iter().filter(|&&v| pred(v)).count();
        !self.voters.is_empty() && yes > self.voters.len() / 2
    }

    /// Has a majority of the voters refused (so none can agree any more)?
    fn majority_impossible(&self, refused: &impl Fn(NodeId) -> bool) -> bool {
        let no = self.voters.iter().filter(|&&v| refused(v)).count();
        self.voters.is_empty() || no >= self.voters.len() - self.voters.len() / 2
    }

    /// The highest index a majority of the voters hold (0 without voters).
    fn majority_index(&self, matched: &impl Fn(NodeId) -> LogIndex) -> LogIndex {
        // A leader asks on every acknowledgement: up to 9 voters, no allocation.
        const ON_STACK: usize = 9;
        let n = self.voters.len();
        if n == 0 {
            return 0;
        }
        let mut stack = [0; ON_STACK];
        let mut heap = Vec::new();
        let m: &mut [LogIndex] = if n <= ON_STACK {
            for (slot, &v) in stack.iter_mut().zip(&self.voters) {
                *slot = matched(v);
            }
            &mut stack[..n]
        } else {
            heap.extend(self.voters.iter().map(|&v| matched(v)));
            &mut heap
        };
        m.sort_unstable_by(|a, b| b.cmp(a));
        m[n / 2]
    }
}

/// The configuration a node obeys: stable, or joint during a change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClusterConfig {
    /// One configuration.
    Stable(Membership),
    /// The joint configuration `C_old,new`: decisions need majorities of both halves.
    Joint {
        /// The configuration the change started from.
        old: Membership,
        /// The configuration the change goes to.
        new: Membership,
    },
}

impl Default for ClusterConfig {
    /// The empty configuration of a node waiting to be added.
    fn default() -> Self {
        ClusterConfig::Stable(Membership::default())
    }
}

impl ClusterConfig {
    /// A stable configuration of `voters` (the bootstrap configuration of a new cluster).
    pub fn bootstrap(voters: impl IntoIterator<Item = NodeId>) -> Self {
        ClusterConfig::Stable(Membership::new(voters, []))
    }

    /// True during a change (`C_old,new`).
    pub fn is_joint(&self) -> bool {
        matches!(self, ClusterConfig::Joint { .. })
    }

    /// The configuration in force, or the one a change goes to.
    pub fn target(&self) -> &Membership {
        match self {
            ClusterConfig::Stable(m) => m,
            ClusterConfig::Joint { new, .. } => new,
        }
    }

    /// The configuration a change started from (`None` when stable).
    pub fn old(&self) -> Option<&Membership> {
        match self {
            ClusterConfig::Stable(_) => None,
            ClusterConfig::Joint { old, .. } => Some(old),
        }
    }

    /// The halves that must each agree: one when stable, two when joint.
    pub fn halves(&self) -> impl Iterator<Item = &Membership> {
        match self {
            ClusterConfig::Stable(m) => [Some(m), None],
            ClusterConfig::Joint { old, new } => [Some(old), Some(new)],
        }
        .into_iter()
        .flatten()
    }

    /// The voters of either half.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.halves()
            .flat_map(|m| m.voters.iter().copied())
            .collect()
    }

    /// The learners of either half that are no voter of the other.
    pub fn learners(&self) -> BTreeSet<NodeId> {
        let voters = self.voters();
        self.halves()
            .flat_map(|m| m.learners.iter().copied())
            .filter(|id| !voters.contains(id))
            .collect()
    }

    /// Every member of either half, voters and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.halves().flat_map(Membership::ids).collect()
    }

    /// True when `id` votes in either half.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.halves().any(|m| m.voters.contains(&id))
    }

    /// True when `id` is a member (voter or learner) of either half.
    pub fn contains(&self, id: NodeId) -> bool {
        self.halves().any(|m| m.contains(id))
    }

    /// The address recorded for `id` (the newer half first).
    pub fn address(&self, id: NodeId) -> Option<&str> {
        self.target()
            .address(id)
            .or_else(|| self.old().and_then(|m| m.address(id)))
    }

    /// Every member but `except`, with its address (empty when none is recorded): what
    /// a node tells its transport.
    pub fn peers_with_addresses(&self, except: NodeId) -> Vec<crate::transport::Member> {
        self.members()
            .into_iter()
            .filter(|&id| id != except)
            .map(|id| crate::transport::Member {
                id,
                address: self.address(id).unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// Does every half have a majority of voters satisfying `pred`?
    pub(crate) fn has_quorum(&self, pred: impl Fn(NodeId) -> bool) -> bool {
        self.halves().all(|m| m.majority(&pred))
    }

    /// Has some half a majority of voters for which `refused` holds (so no quorum can
    /// be reached any more)?
    pub(crate) fn quorum_impossible(&self, refused: impl Fn(NodeId) -> bool) -> bool {
        self.halves().any(|m| m.majority_impossible(&refused))
    }

    /// The highest index held by a majority of every half.
    pub(crate) fn quorum_index(&self, matched: impl Fn(NodeId) -> LogIndex) -> LogIndex {
        self.halves()
            .map(|m| m.majority_index(&matched))
            .min()
            .unwrap_or(0)
    }
}

/// Why a membership change was refused or did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// Only the leader changes the membership; `leader` is the one this node knows of.
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// A change is in progress (the configuration in force is joint or not yet
    /// committed). Retry once it completes.
    #[error("a membership change is in progress")]
    ChangeInProgress,
    /// The learner `id` would become a voter but is `behind` entries behind the leader
    /// (more than [`Config::max_promotion_lag`](super::Config::max_promotion_lag)).
    #[error("node {id} is {behind} entries behind the leader")]
    Lagging {
        /// The lagging node.
        id: NodeId,
        /// How far behind the leader's last entry it is.
        behind: u64,
    },
    /// The requested configuration is not acceptable (no voters, for example).
    #[error("invalid membership: {0}")]
    Invalid(String),
    /// The leader is handing leadership to `target` and takes no change.
    #[error("leadership is being transferred to node {target}")]
    TransferInProgress {
        /// The node leadership is being handed to.
        target: NodeId,
    },
    /// The leader's uncommitted tail is full; retry later.
    #[error("busy: too many entries waiting to commit")]
    Busy,
    /// The change's entry was replaced by another leader's: it never took effect.
    #[error("the change at index {index} (term {term}) was replaced by another leader")]
    LeadershipLost {
        /// The index of the change's entry.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// This node stopped leading before the change completed: another leader may still
    /// complete it. Read the membership again to learn the outcome.
    #[error("leadership lost before the change at index {index} completed; outcome unknown")]
    OutcomeUnknown {
        /// The index of the change's entry.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// The node stopped.
    #[error("the node stopped")]
    Stopped,
}

/// The configurations held in a node's log: the one at the log's start (from the
/// snapshot or the bootstrap) and one per membership entry after it, in index order. The
/// last one is in force.
#[derive(Debug, Clone)]
pub(crate) struct Configs {
    /// (index of the entry that set it, configuration); never empty. The first has the
    /// index of the log's start (or 0).
    list: Vec<(LogIndex, ClusterConfig)>,
    /// Counts the changes to `list`: equal versions, equal lists.
    version: u64,
    /// The node whose log this is.
    me: NodeId,
    /// Its standing in the configuration in force, derived again on every change.
    standing: Standing,
}

/// A node's standing in the configuration in force: what every status reports, kept
/// with the configurations so that a status costs no set lookups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Standing {
    /// A voter of either half.
    pub(crate) voter: bool,
    /// The configuration is joint.
    pub(crate) joint: bool,
    /// The configuration has voters and leaves this node out.
    pub(crate) removed: bool,
}

impl Standing {
    fn of(me: NodeId, c: &ClusterConfig) -> Self {
        Self {
            voter: c.is_voter(me),
            joint: c.is_joint(),
            removed: c.halves().any(|m| !m.voters().is_empty()) && !c.contains(me),
        }
    }
}

impl Configs {
    /// The configurations of node `me`'s log, starting with `base` at `base_index`.
    pub(crate) fn new(me: NodeId, base_index: LogIndex, base: ClusterConfig) -> Self {
        Self {
            standing: Standing::of(me, &base),
            list: vec![(base_index, base)],
            version: 0,
            me,
        }
    }

    /// This node's standing in the configuration in force.
    pub(crate) fn standing(&self) -> Standing {
        self.standing
    }

    /// Records a change of `list`.
    fn changed(&mut self) {
        self.version += 1;
        self.standing = Standing::of(self.me, self.current());
    }

    /// Grows with every change of the configurations held, so that whoever derives
    /// something from them (the links) knows cheaply when to derive it again.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// The configuration in force.
    pub(crate) fn current(&self) -> &ClusterConfig {
        &self.list.last().expect("never empty").1
    }

    /// The index of the entry that set the configuration in force.
    pub(crate) fn current_index(&self) -> LogIndex {
        self.list.last().expect("never empty").0
    }

    /// The configuration in force at `index`.
    pub(crate) fn at(&self, index: LogIndex) -> &ClusterConfig {
        self.list
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or(&self.list[0].1, |(_, c)| c)
    }

    /// The configuration in force at `index` and every later one.
    pub(crate) fn since(&self, index: LogIndex) -> impl Iterator<Item = &ClusterConfig> {
        std::iter::once(self.at(index)).chain(
            self.list
                .iter()
                .filter(move |(i, _)| *i > index)
                .map(|(_, c)| c),
        )
    }

    /// The address recorded for `id`: by the configuration in force if `id` is one of
    /// its members, else by the newest configuration that lists `id`.
    pub(crate) fn address(&self, id: NodeId) -> Option<&str> {
        let current = self.current();
        if current.contains(id) {
            return current.address(id);
        }
        self.list
            .iter()
            .rev()
            .map(|(_, c)| c)
            .find(|c| c.contains(id))
            .and_then(|c| c.address(id))
    }

    /// A membership entry at `index` was appended.
    pub(crate) fn push(&mut self, index: LogIndex, config: ClusterConfig) {
        self.truncate_from(index);
        self.list.push((index, config));
        self.changed();
    }

    /// Entries from `index` on were removed; returns true if the configuration in force
    /// changed.
    pub(crate) fn truncate_from(&mut self, index: LogIndex) -> bool {
        let before = self.list.len();
        while self.list.len() > 1 && self.list.last().is_some_and(|(i, _)| *i >= index) {
            self.list.pop();
        }
        let changed = self.list.len() != before;
        if changed {
            self.changed();
        }
        changed
    }

    /// The log before `index` (included) is compacted: only the configuration in force
    /// there is still needed from it.
    pub(crate) fn compact_to(&mut self, index: LogIndex) {
        let keep_from = self
            .list
            .iter()
            .rposition(|(i, _)| *i <= index)
            .unwrap_or(0);
        if keep_from > 0 {
            self.list.drain(..keep_from);
            self.changed();
        }
    }

    /// The log was replaced by a snapshot through `index` whose configuration is `base`.
    pub(crate) fn reset(&mut self, index: LogIndex, base: ClusterConfig) {
        self.list.retain(|(i, _)| *i > index);
        self.list.insert(0, (index, base));
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joint(old: &[NodeId], new: &[NodeId]) -> ClusterConfig {
        ClusterConfig::Joint {
            old: Membership::new(old.iter().copied(), []),
            new: Membership::new(new.iter().copied(), []),
        }
    }

    #[test]
    fn quorum_index_is_what_a_majority_holds_for_small_and_large_clusters() {
        for n in 1..=13u64 {
            let c = ClusterConfig::Stable(Membership::new(1..=n, []));
            // Voter v holds up to 10 v: the majority's lowest is voter n - n/2.
            let expected = (n - n / 2) * 10;
            assert_eq!(c.quorum_index(|id| id * 10), expected, "{n} voters");
            // Order does not matter.
            assert_eq!(
                c.quorum_index(|id| (n + 1 - id) * 10),
                expected,
                "{n} voters"
            );
        }
    }

    #[test]
    fn joint_quorum_needs_both_halves() {
        let c = joint(&[1, 2, 3], &[3, 4, 5]);
        assert!(!c.has_quorum(|id| [1, 2].contains(&id)), "old only");
        assert!(!c.has_quorum(|id| [4, 5].contains(&id)), "new only");
        assert!(c.has_quorum(|id| [1, 3, 4].contains(&id)));
        assert!(c.quorum_impossible(|id| [4, 5].contains(&id)));
        assert!(!c.quorum_impossible(|id| [1, 4].contains(&id)));
        let idx = c.quorum_index(|id| match id {
            1 | 2 => 10,
            3 => 7,
            _ => 5,
        });
        assert_eq!(idx, 5, "the new half holds only 5 on a majority");
    }

    #[test]
    fn stable_majorities_and_empty() {
        let c = ClusterConfig::bootstrap([1, 2, 3, 4]);
        assert!(!c.has_quorum(|id| id <= 2), "2 of 4 is no majority");
        assert!(c.has_quorum(|id| id <= 3));
        assert!(c.quorum_impossible(|id| id <= 2), "2 of 4 refusing blocks");
        assert_eq!(c.quorum_index(|id| id * 10), 20);
        let empty = ClusterConfig::default();
        assert!(!empty.has_quorum(|_| true));
        assert_eq!(empty.quorum_index(|_| 9), 0);
    }

    #[test]
    fn learners_are_not_voters_and_addresses_follow_members() {
        let m = Membership::new([1, 2], [2, 3])
            .with_address(3, "c:1")
            .with_address(9, "nobody");
        assert_eq!(m.learners(), &BTreeSet::from([3]));
        assert_eq!(m.address(3), Some("c:1"));
        assert_eq!(m.address(9), None);
        let next = m.reshaped([1, 2, 3], []);
        assert_eq!(next.address(3), Some("c:1"));
        let c = ClusterConfig::Stable(next);
        let peers = c.peers_with_addresses(1);
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[1].address, "c:1");
    }

    #[test]
    fn standing_follows_every_change_of_the_configuration_in_force() {
        let stable = |voter, removed| Standing {
            voter,
            joint: false,
            removed,
        };
        let mut cs = Configs::new(3, 0, ClusterConfig::bootstrap([1, 2, 3]));
        assert_eq!(cs.standing(), stable(true, false));
        cs.push(5, joint(&[1, 2, 3], &[1, 2, 4]));
        assert_eq!(
            cs.standing(),
            Standing {
                voter: true,
                joint: true,
                removed: false
            }
        );
        cs.push(8, ClusterConfig::bootstrap([1, 2, 4]));
        assert_eq!(cs.standing(), stable(false, true));
        assert!(cs.truncate_from(8));
        assert!(cs.standing().joint);
        cs.reset(9, ClusterConfig::Stable(Membership::new([1, 2], [3])));
        assert_eq!(cs.standing(), stable(false, false), "a learner");
        cs.push(10, ClusterConfig::bootstrap([1, 2, 3]));
        cs.compact_to(10);
        assert_eq!(cs.standing(), stable(true, false));
        // A node waiting to be added knows no voters: not removed.
        let waiting = Configs::new(4, 0, ClusterConfig::default());
        assert_eq!(waiting.standing(), stable(false, false));
    }

    #[test]
    fn configs_follow_appends_truncations_and_compaction() {
        let mut cs = Configs::new(1, 0, ClusterConfig::bootstrap([1, 2, 3]));
        cs.push(5, joint(&[1, 2, 3], &[1, 2, 4]));
        cs.push(8, ClusterConfig::bootstrap([1, 2, 4]));
        assert_eq!(cs.current_index(), 8);
        assert!(cs.at(6).is_joint());
        assert!(cs.truncate_from(7));
        assert!(cs.current().is_joint());
        cs.compact_to(6);
        assert_eq!(cs.at(0), cs.current(), "the base is the joint config now");
        assert!(!cs.truncate_from(9));
        cs.reset(20, ClusterConfig::bootstrap([7]));
        assert_eq!(cs.current(), &ClusterConfig::bootstrap([7]));
    }
}
