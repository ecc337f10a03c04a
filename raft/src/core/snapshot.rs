//! Log compaction (§7 of the Raft paper): the core's side of snapshots.
//!
//! The state machine's snapshot replaces the log up to its last included entry. The
//! driver takes snapshots (off the node's thread) and reports each durable one with
//! [`RaftCore::snapshot_taken`]; the core then drops entries from memory and tells the
//! driver how far the stored log may be compacted. It keeps a window behind the
//! snapshot point ([`Config::snapshot_keep_entries`](super::Config::snapshot_keep_entries))
//! so that followers lagging a little still catch up from the log.
//!
//! # Limits of this version
//!
//! InstallSnapshot is not implemented yet: a follower that needs an entry behind a
//! leader's compacted prefix cannot be caught up. To keep followers reachable the
//! leader never compacts past what every follower has matched; a follower compacts
//! behind its own snapshot point, which is safe (every entry it drops is committed) but
//! may leave it unable to serve a lagging peer should it become leader. Compaction is
//! therefore off by default ([`Config::snapshot_after_entries`](super::Config::snapshot_after_entries)
//! is 0).

use super::types::{LogId, LogIndex, Role};
use super::RaftCore;

impl RaftCore {
    /// The last entry covered by this node's latest durable snapshot (zero without one).
    pub fn snapshot_point(&self) -> LogId {
        self.snapshot
    }

    /// The first index still held in memory is `log_prefix().index + 1`.
    pub fn log_prefix(&self) -> LogId {
        self.log.prefix()
    }

    /// Reports that a snapshot through `last` is durable. `last` must be an applied
    /// entry of this node's log. Moves the snapshot point, drops the entries no longer
    /// needed from memory (everything up to `last.index` less
    /// [`Config::snapshot_keep_entries`](super::Config::snapshot_keep_entries), and on a
    /// leader never past what every follower has matched), and returns the index up to
    /// which the stored log may now be compacted, if it moved.
    ///
    /// A report older than the current snapshot point, or for an entry this node does
    /// not hold as applied, is ignored.
    pub fn snapshot_taken(&mut self, last: LogId) -> Option<LogIndex> {
        if last.index <= self.snapshot.index || last.index > self.applied {
            return None;
        }
        if self.log.term_at(last.index) != Some(last.term) {
            tracing::warn!(
                node = self.id,
                ?last,
                "snapshot of an entry this log does not hold"
            );
            return None;
        }
        self.snapshot = last;
        let mut upto = last.index.saturating_sub(self.config.snapshot_keep_entries);
        if self.role == Role::Leader {
            let slowest = self.progress.values().map(|p| p.matched).min();
            upto = upto.min(slowest.unwrap_or(upto));
        }
        if upto <= self.log.prefix().index {
            return None;
        }
        self.log.compact_to(upto).then_some(upto)
    }
}
