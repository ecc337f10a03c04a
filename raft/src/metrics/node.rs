//! The node's side of the metrics: gauges and counters of one node, and the watched
//! [`RaftMetrics`]. The actor calls in here once per drive, per event and per write; the
//! metric handles are built once (per node, and per follower the first time it is seen),
//! so recording never allocates.

use std::collections::BTreeMap;
use std::time::Instant;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use tokio::sync::watch;

use super::{role_code, FollowerProgress, RaftMetrics};
use crate::core::{ClusterConfig, Event, NodeId, Role, Status};
use crate::driver::{CounterSnapshot, Driver, Responder};
use crate::StateMachine;

/// The gauges of one follower, on its leader.
struct FollowerGauges {
    matched: Gauge,
    lag: Gauge,
}

impl FollowerGauges {
    fn new(node: &str, follower: NodeId) -> Self {
        let labels = [("node", node.to_string()), ("peer", follower.to_string())];
        Self {
            matched: gauge!("actraft_follower_match_index", &labels),
            lag: gauge!("actraft_follower_lag", &labels),
        }
    }

    fn reset(&self) {
        self.matched.set(0.0);
        self.lag.set(0.0);
    }
}

/// The counters mirrored from the driver's [`Counters`], in [`CounterSnapshot`] order.
struct CounterHandles {
    proposals_accepted: Counter,
    proposals_busy: Counter,
    proposals_not_leader: Counter,
    proposals_lost: Counter,
    messages_received: Counter,
    messages_refused: Counter,
    inbound_dropped: Counter,
    writes: Counter,
    entries_written: Counter,
    entries_applied: Counter,
    apply_batches: Counter,
}

impl CounterHandles {
    fn new(labels: &[(&'static str, String); 1]) -> Self {
        Self {
            proposals_accepted: counter!("actraft_proposals_accepted_total", labels),
            proposals_busy: counter!("actraft_proposals_busy_total", labels),
            proposals_not_leader: counter!("actraft_proposals_not_leader_total", labels),
            proposals_lost: counter!("actraft_proposals_lost_total", labels),
            messages_received: counter!("actraft_messages_received_total", labels),
            messages_refused: counter!("actraft_messages_refused_total", labels),
            inbound_dropped: counter!("actraft_inbound_dropped_total", labels),
            writes: counter!("actraft_writes_total", labels),
            entries_written: counter!("actraft_entries_written_total", labels),
            entries_applied: counter!("actraft_entries_applied_total", labels),
            apply_batches: counter!("actraft_apply_batches_total", labels),
        }
    }

    /// Adds what grew from `old` to `new`.
    fn advance(&self, old: &CounterSnapshot, new: &CounterSnapshot) {
        let pairs = [
            (
                &self.proposals_accepted,
                old.proposals_accepted,
                new.proposals_accepted,
            ),
            (&self.proposals_busy, old.proposals_busy, new.proposals_busy),
            (
                &self.proposals_not_leader,
                old.proposals_not_leader,
                new.proposals_not_leader,
            ),
            (&self.proposals_lost, old.proposals_lost, new.proposals_lost),
            (
                &self.messages_received,
                old.messages_received,
                new.messages_received,
            ),
            (
                &self.messages_refused,
                old.messages_refused,
                new.messages_refused,
            ),
            (
                &self.inbound_dropped,
                old.inbound_dropped,
                new.inbound_dropped,
            ),
            (&self.writes, old.writes, new.writes),
            (
                &self.entries_written,
                old.entries_written,
                new.entries_written,
            ),
            (
                &self.entries_applied,
                old.entries_applied,
                new.entries_applied,
            ),
            (&self.apply_batches, old.apply_batches, new.apply_batches),
        ];
        for (counter, old, new) in pairs {
            if new > old {
                counter.increment(new - old);
            }
        }
    }
}

/// The recording half: every handle of one node.
struct Recorder {
    node: String,
    role: Gauge,
    is_leader: Gauge,
    term: Gauge,
    leader: Gauge,
    last_log_index: Gauge,
    commit_index: Gauge,
    persisted_index: Gauge,
    applied_index: Gauge,
    voters: Gauge,
    learners: Gauge,
    config_joint: Gauge,
    removed: Gauge,
    followers: BTreeMap<NodeId, FollowerGauges>,
    counters: CounterHandles,
    elections_started: Counter,
    pre_votes_started: Counter,
    elections_won: Counter,
    write_batch_entries: Histogram,
    write_seconds: Histogram,
    transfers_started: Counter,
    transfers_abandoned: Counter,
    snapshot_index: Gauge,
    snapshots_taken: Counter,
    snapshots_failed: Counter,
}

impl Recorder {
    fn new(id: NodeId) -> Self {
        let node = id.to_string();
        let labels = [("node", node.clone())];
        Self {
            role: gauge!("actraft_role", &labels),
            is_leader: gauge!("actraft_is_leader", &labels),
            term: gauge!("actraft_term", &labels),
            leader: gauge!("actraft_leader", &labels),
            last_log_index: gauge!("actraft_last_log_index", &labels),
            commit_index: gauge!("actraft_commit_index", &labels),
            persisted_index: gauge!("actraft_persisted_index", &labels),
            applied_index: gauge!("actraft_applied_index", &labels),
            voters: gauge!("actraft_voters", &labels),
            learners: gauge!("actraft_learners", &labels),
            config_joint: gauge!("actraft_config_joint", &labels),
            removed: gauge!("actraft_removed", &labels),
            followers: BTreeMap::new(),
            counters: CounterHandles::new(&labels),
            elections_started: counter!("actraft_elections_started_total", &labels),
            pre_votes_started: counter!("actraft_pre_votes_started_total", &labels),
            elections_won: counter!("actraft_elections_won_total", &labels),
            write_batch_entries: histogram!("actraft_write_batch_entries", &labels),
            write_seconds: histogram!("actraft_write_seconds", &labels),
            transfers_started: counter!("actraft_transfers_started_total", &labels),
            transfers_abandoned: counter!("actraft_transfers_abandoned_total", &labels),
            snapshot_index: gauge!("actraft_snapshot_index", &labels),
            snapshots_taken: counter!("actraft_snapshots_taken_total", &labels),
            snapshots_failed: counter!("actraft_snapshots_failed_total", &labels),
            node,
        }
    }

    fn set_status(&self, status: &Status) {
        self.role.set(role_code(status.role));
        self.is_leader.set(u8::from(status.role == Role::Leader));
        self.term.set(status.term as f64);
        self.leader.set(status.leader.map_or(-1.0, |l| l as f64));
        self.last_log_index.set(status.last_log.index as f64);
        self.commit_index.set(status.commit_index as f64);
        self.persisted_index.set(status.persisted_index as f64);
        self.applied_index.set(status.applied_index as f64);
    }

    /// The configuration in force: voters and learners of either half, each counted
    /// once, whether it is joint, and whether this node is out of it (`removed`).
    fn set_membership(&self, membership: &ClusterConfig, removed: bool) {
        self.removed.set(u8::from(removed));
        self.voters.set(membership.voters().len() as f64);
        self.learners.set(membership.learners().len() as f64);
        self.config_joint.set(u8::from(membership.is_joint()));
    }

    fn set_follower(&mut self, follower: NodeId, progress: &FollowerProgress) {
        let node = &self.node;
        let gauges = self
            .followers
            .entry(follower)
            .or_insert_with(|| FollowerGauges::new(node, follower));
        gauges.matched.set(progress.matched as f64);
        gauges.lag.set(progress.lag as f64);
    }
}

/// One node's metrics: the facade's handles, and the watched [`RaftMetrics`].
pub(crate) struct NodeMetrics {
    recorder: Recorder,
    watched: watch::Sender<RaftMetrics>,
    /// The counters as last mirrored into the facade.
    exported: CounterSnapshot,
    /// Snapshots taken and failed, as last mirrored.
    exported_snapshots: (u64, u64),
    /// The membership gauges were set once (later only when the configuration changes).
    membership_exported: bool,
    /// The version of the core's configurations last compared with the watched
    /// membership: only a new version is compared again.
    membership_version: Option<u64>,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics")
            .field("node", &self.recorder.node)
            .finish_non_exhaustive()
    }
}

impl NodeMetrics {
    /// The watch channel of a node starting in `status`.
    pub(crate) fn channel(
        status: &Status,
    ) -> (watch::Sender<RaftMetrics>, watch::Receiver<RaftMetrics>) {
        watch::channel(RaftMetrics::from_status(status))
    }

    /// Registers the metrics of the node in `status` with the recorder installed now;
    /// publishes to `watched`.
    pub(crate) fn new(status: &Status, watched: watch::Sender<RaftMetrics>) -> Self {
        let recorder = Recorder::new(status.id);
        recorder.set_status(status);
        Self {
            recorder,
            watched,
            exported: CounterSnapshot::default(),
            exported_snapshots: (0, 0),
            membership_exported: false,
            membership_version: None,
        }
    }

    /// Publishes the node's state after a drive: gauges, per-follower progress, the
    /// counters that grew, and the watched snapshot (woken only when something other
    /// than the counters changed).
    pub(crate) fn publish<M: StateMachine, R: Responder>(
        &mut self,
        driver: &Driver<M, R>,
        status: &Status,
    ) {
        let replication = driver.core().replication();
        let counters = driver.counters().snapshot();
        self.recorder.counters.advance(&self.exported, &counters);
        self.exported = counters;
        let (taken, failed) = driver.snapshot_counts();
        let (taken_before, failed_before) = self.exported_snapshots;
        self.recorder
            .snapshots_taken
            .increment(taken.saturating_sub(taken_before));
        self.recorder
            .snapshots_failed
            .increment(failed.saturating_sub(failed_before));
        self.exported_snapshots = (taken, failed);
        let snapshot = driver.latest_snapshot().map(|m| m.last_included);
        let membership = driver.core().membership();
        if !self.membership_exported {
            self.membership_exported = true;
            self.recorder.set_membership(membership, status.removed);
        }
        let version = driver.core().configs_version();
        let membership_moved = self.membership_version != Some(version);
        self.membership_version = Some(version);
        let recorder = &mut self.recorder;
        let watched = &self.watched;
        watched.send_if_modified(|metrics| {
            let mut changed = metrics.set_status(status);
            if changed {
                recorder.set_status(status);
            }
            if metrics.snapshot != snapshot {
                metrics.snapshot = snapshot;
                recorder
                    .snapshot_index
                    .set(snapshot.map_or(0.0, |id| id.index as f64));
                changed = true;
            }
            let last = status.last_log.index;
            let mut seen = 0;
            for (follower, matched, next) in replication {
                seen += 1;
                let progress = FollowerProgress::new(matched, next, last);
                match metrics.replication.get_mut(&follower) {
                    Some(p) if *p == progress => continue,
                    Some(p) => *p = progress,
                    None => {
                        metrics.replication.insert(follower, progress);
                    }
                }
                recorder.set_follower(follower, &progress);
                changed = true;
            }
            if seen < metrics.replication.len() {
                // Followers no longer tracked (this node stopped leading).
                metrics.replication.clear();
                for gauges in recorder.followers.values() {
                    gauges.reset();
                }
                changed = true;
            }
            if membership_moved && metrics.membership != *membership {
                metrics.membership = membership.clone();
                recorder.set_membership(membership, status.removed);
                changed = true;
            }
            metrics.counters = counters;
            metrics.snapshots_taken = taken;
            changed && crate::node::announce(watched)
        });
    }

    /// Counts elections and leadership transfers from the core's events.
    pub(crate) fn event(&self, event: &Event) {
        match event {
            Event::ElectionStarted { pre_vote: true, .. } => {
                self.recorder.pre_votes_started.increment(1)
            }
            Event::ElectionStarted {
                pre_vote: false, ..
            } => self.recorder.elections_started.increment(1),
            Event::RoleChanged {
                role: Role::Leader, ..
            } => self.recorder.elections_won.increment(1),
            Event::TransferStarted { .. } => self.recorder.transfers_started.increment(1),
            Event::TransferAbandoned { .. } => self.recorder.transfers_abandoned.increment(1),
            _ => {}
        }
    }

    /// A write of `entries` entries goes to the storage now; pass the result to
    /// [`write_done`](Self::write_done) when it completes.
    pub(crate) fn write_started(&self, entries: usize) -> Instant {
        self.recorder.write_batch_entries.record(entries as f64);
        Instant::now()
    }

    /// The write started at `started` completed.
    pub(crate) fn write_done(&self, started: Instant) {
        self.recorder
            .write_seconds
            .record(started.elapsed().as_secs_f64());
    }

    /// The counters' latest values together with the last published snapshot.
    pub(crate) fn read(
        watched: &watch::Receiver<RaftMetrics>,
        counters: &crate::driver::Counters,
    ) -> RaftMetrics {
        let mut metrics = watched.borrow().clone();
        metrics.counters = counters.snapshot();
        metrics
    }
}
