//! The driver's side of snapshots: when to take one, the job handed to the shell, and
//! what follows once it is durable (§7 of the Raft paper).
//!
//! The policy is [`Config::snapshot_after_entries`](crate::Config::snapshot_after_entries)
//! and [`Config::snapshot_after_bytes`](crate::Config::snapshot_after_bytes), counted
//! over applied entries, plus explicit requests ([`Driver::request_snapshot`]). When one
//! is due and none is in progress, the driver asks the state machine for a source
//! ([`StateMachine::snapshot`]) and hands the shell a [`SnapshotJob`]. The shell writes
//! it to its [`SnapshotStore`](crate::SnapshotStore) off the node's thread and reports
//! with [`Driver::snapshot_done`]; the driver then tells the core, and hands out the
//! storage compaction the core allows in [`Output::compactions`](super::Output::compactions).
//! At most one snapshot is in progress at a time.

use crate::core::{Entry, LogId, LogIndex};
use crate::snapshot::{SnapshotChunks, SnapshotError, SnapshotMeta};
use crate::StateMachine;

use super::{Driver, Responder};

/// A snapshot for the shell to write: read every chunk of `source` into the snapshot
/// store under `meta`, commit, and report with [`Driver::snapshot_done`].
pub struct SnapshotJob {
    /// Where the snapshot sits in the log, and the membership.
    pub meta: SnapshotMeta,
    /// The state machine's frozen state, to be read on another thread.
    pub source: Box<dyn SnapshotChunks>,
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotJob")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// The driver's snapshot bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Snapshots {
    /// The snapshot being written, if any.
    in_progress: Option<LogId>,
    /// An explicit request is waiting.
    requested: bool,
    /// Entries and payload bytes applied since the last snapshot (or failed attempt).
    since_entries: u64,
    since_bytes: u64,
    /// The latest durable snapshot.
    latest: Option<SnapshotMeta>,
    /// The last entry applied.
    last_applied: LogId,
    /// Snapshots made durable, and attempts that failed, since the node started.
    taken: u64,
    failed: u64,
}

impl Snapshots {
    pub(super) fn new(latest: Option<SnapshotMeta>, last_applied: LogId) -> Self {
        Self {
            latest,
            last_applied,
            ..Self::default()
        }
    }

    /// A snapshot received from the leader replaced the applied state.
    pub(super) fn installed(&mut self, meta: SnapshotMeta) {
        self.last_applied = meta.last_included;
        self.since_entries = 0;
        self.since_bytes = 0;
        self.latest = Some(meta);
    }

    /// Counts applied entries for the policy.
    pub(super) fn applied(&mut self, entries: &[Entry]) {
        if let Some(last) = entries.last() {
            self.last_applied = last.log_id();
            self.since_entries += entries.len() as u64;
            self.since_bytes += entries.iter().map(|e| e.payload.len() as u64).sum::<u64>();
        }
    }
}

impl<M: StateMachine, R: Responder> Driver<M, R> {
    /// Asks for a snapshot of the applied state as soon as none is in progress,
    /// whatever the policy says.
    pub fn request_snapshot(&mut self) {
        self.snapshots.requested = true;
    }

    /// Tells a new driver about the snapshot its node restarted from.
    pub fn with_latest_snapshot(mut self, meta: Option<SnapshotMeta>) -> Self {
        self.snapshots.latest = meta;
        self
    }

    /// The latest durable snapshot this node knows of.
    pub fn latest_snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshots.latest.as_ref()
    }

    /// Snapshots made durable and snapshot attempts that failed since the driver started.
    pub fn snapshot_counts(&self) -> (u64, u64) {
        (self.snapshots.taken, self.snapshots.failed)
    }

    /// True while a snapshot job is out with the shell.
    pub fn snapshot_in_progress(&self) -> bool {
        self.snapshots.in_progress.is_some()
    }

    /// Reports the outcome of the [`SnapshotJob`] for `meta`. On success the core
    /// compacts its in-memory log and the driver hands out the storage compaction it
    /// allows; on failure the error is logged and the policy starts counting again.
    pub fn snapshot_done(&mut self, meta: SnapshotMeta, result: Result<(), SnapshotError>) {
        if self.snapshots.in_progress != Some(meta.last_included) {
            tracing::warn!(
                node = self.core.id(),
                ?meta,
                "completion of an unknown snapshot"
            );
            return;
        }
        self.snapshots.in_progress = None;
        match result {
            Ok(()) => {
                self.snapshots.taken += 1;
                tracing::debug!(node = self.core.id(), last = ?meta.last_included, "snapshot durable");
                if let Some(upto) = self.core.snapshot_taken(meta.last_included) {
                    self.out.compactions.push(upto);
                }
                self.snapshots.latest = Some(meta);
            }
            Err(error) => {
                self.snapshots.failed += 1;
                tracing::warn!(node = self.core.id(), %error, "snapshot failed");
            }
        }
    }

    /// True when the policy or a request calls for a snapshot now.
    fn snapshot_due(&self) -> bool {
        let s = &self.snapshots;
        if s.in_progress.is_some() {
            return false;
        }
        let newer = s
            .latest
            .as_ref()
            .is_none_or(|l| s.last_applied.index > l.last_included.index);
        if !newer {
            return false;
        }
        let cfg = self.core.config();
        s.requested
            || (cfg.snapshot_after_entries > 0 && s.since_entries >= cfg.snapshot_after_entries)
            || (cfg.snapshot_after_bytes > 0 && s.since_bytes >= cfg.snapshot_after_bytes)
    }

    /// Starts a snapshot job when one is due.
    pub(super) fn maybe_snapshot(&mut self) {
        if !self.snapshot_due() {
            return;
        }
        let last = self.snapshots.last_applied;
        self.snapshots.requested = false;
        self.snapshots.since_entries = 0;
        self.snapshots.since_bytes = 0;
        let Some(source) = self.state_machine.snapshot() else {
            tracing::debug!(node = self.core.id(), "the state machine does not snapshot");
            return;
        };
        let meta = SnapshotMeta {
            last_included: last,
            membership: self.core.membership_at(last.index).clone(),
        };
        self.snapshots.in_progress = Some(last);
        self.out.snapshots.push(SnapshotJob { meta, source });
    }
}

/// The index a restarted node's state machine must be restored to, checked against the
/// stored log's bounds: the snapshot must lie within `prefix..=last`.
pub fn check_snapshot_against_log(
    snapshot: LogIndex,
    prefix: LogIndex,
    last: LogIndex,
) -> Result<(), SnapshotError> {
    if snapshot < prefix || snapshot > last {
        return Err(SnapshotError::Corrupt(format!(
            "snapshot through {snapshot} does not meet the stored log ({prefix}..={last})"
        )));
    }
    Ok(())
}
