//! [`RaftMetrics`]: a node's state at one moment, as one value.

use std::collections::BTreeMap;

use crate::core::{LogId, LogIndex, NodeId, Role, Status, Term};
use crate::driver::CounterSnapshot;

/// A node's state at one moment: who it is, what it plays, how far its log, commit and
/// state machine are, how far each follower is (on the leader), and its counters.
///
/// Read it with [`RaftHandle::metrics`](crate::RaftHandle::metrics); watch it with
/// [`RaftHandle::watch_metrics`](crate::RaftHandle::watch_metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RaftMetrics {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub current_term: Term,
    /// Whom it voted for in the current term.
    pub voted_for: Option<NodeId>,
    /// The leader it knows of in the current term.
    pub current_leader: Option<NodeId>,
    /// Index of its last log entry (durable or not).
    pub last_log_index: LogIndex,
    /// Term of its last log entry.
    pub last_log_term: Term,
    /// Highest index it knows committed.
    pub commit_index: LogIndex,
    /// Highest index durable in its storage.
    pub persisted_index: LogIndex,
    /// Highest index applied to its state machine.
    pub applied_index: LogIndex,
    /// On the leader: each follower's replication progress. Empty on other roles.
    pub replication: BTreeMap<NodeId, FollowerProgress>,
    /// The latest durable snapshot of the node's state machine (the last entry it
    /// includes), if any.
    pub snapshot: Option<LogId>,
    /// Snapshots this node made durable since it started (installs from a leader not
    /// counted). Like the counters, it does not wake watchers on its own.
    pub snapshots_taken: u64,
    /// The node's counters. [`RaftHandle::metrics`](crate::RaftHandle::metrics) reads
    /// them fresh; in a value from the watch they are as of the last change of the
    /// other fields (counters alone do not wake watchers).
    pub counters: CounterSnapshot,
    /// The configuration in force on the node (the last one in its log).
    pub membership: crate::core::ClusterConfig,
}

/// The leader's view of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FollowerProgress {
    /// Highest index known to be replicated (and durable) on the follower.
    pub matched: LogIndex,
    /// Next index the leader sends it.
    pub next: LogIndex,
    /// How many entries it is behind: the leader's last log index minus `matched`.
    pub lag: u64,
}

impl FollowerProgress {
    /// The progress of a follower matching up to `matched`, to be sent `next`, when the
    /// leader's log ends at `last`.
    pub(crate) fn new(matched: LogIndex, next: LogIndex, last: LogIndex) -> Self {
        Self {
            matched,
            next,
            lag: last.saturating_sub(matched),
        }
    }
}

impl RaftMetrics {
    /// The metrics of a node in `status`, with no replication progress and zero counters.
    pub(crate) fn from_status(status: &Status) -> Self {
        let mut metrics = Self {
            id: status.id,
            role: status.role,
            current_term: 0,
            voted_for: None,
            current_leader: None,
            last_log_index: 0,
            last_log_term: 0,
            commit_index: 0,
            persisted_index: 0,
            applied_index: 0,
            replication: BTreeMap::new(),
            snapshot: None,
            snapshots_taken: 0,
            counters: CounterSnapshot::default(),
            membership: crate::core::ClusterConfig::default(),
        };
        metrics.set_status(status);
        metrics
    }

    /// Copies `status` in; true when anything changed.
    pub(crate) fn set_status(&mut self, status: &Status) -> bool {
        let before = (
            self.role,
            self.current_term,
            self.voted_for,
            self.current_leader,
            self.last_log_index,
            self.last_log_term,
            self.commit_index,
            self.persisted_index,
            self.applied_index,
        );
        self.id = status.id;
        self.role = status.role;
        self.current_term = status.term;
        self.voted_for = status.voted_for;
        self.current_leader = status.leader;
        self.last_log_index = status.last_log.index;
        self.last_log_term = status.last_log.term;
        self.commit_index = status.commit_index;
        self.persisted_index = status.persisted_index;
        self.applied_index = status.applied_index;
        before
            != (
                self.role,
                self.current_term,
                self.voted_for,
                self.current_leader,
                self.last_log_index,
                self.last_log_term,
                self.commit_index,
                self.persisted_index,
                self.applied_index,
            )
    }

    /// The largest follower lag (0 when not leading or alone).
    pub fn max_lag(&self) -> u64 {
        self.replication.values().map(|p| p.lag).max().unwrap_or(0)
    }
}
