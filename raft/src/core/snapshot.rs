//! Log compaction (§7 of the Raft paper): the core's side of snapshots.
//!
//! The state machine's snapshot replaces the log up to its last included entry. The
//! driver takes snapshots (off the node's thread) and reports each durable one with
//! [`RaftCore::snapshot_taken`]; the core then drops entries from memory and tells the
//! driver how far the stored log may be compacted. It keeps a window behind the
//! snapshot point ([`Config::snapshot_keep_entries`](super::Config::snapshot_keep_entries))
//! so that followers lagging a little still catch up from the log.
//!
//! A follower that needs an entry behind the compacted prefix gets the snapshot itself
//! (InstallSnapshot, see the `install` module), so every node compacts by its own
//! policy, whatever its followers have matched: memory stays bounded even while a
//! follower is down.

use super::types::{LogId, LogIndex};
use super::RaftCore;

impl RaftCore {
    /// The last entry covered by this node's latest durable snapshot (zero without one).
    pub fn snapshot_point(&self) -> LogId {
        self.snapshot
    }

    /// The first index still held in memory is `log_prefix().index + 1` (see the
    /// `window` module: storage may hold entries before it).
    pub fn log_prefix(&self) -> LogId {
        self.log.prefix()
    }

    /// Reports that a snapshot through `last` is durable. `last` must be an applied
    /// entry of this node's log. Moves the snapshot point, drops the entries no longer
    /// needed from memory (everything up to `last.index` less
    /// [`Config::snapshot_keep_entries`](super::Config::snapshot_keep_entries); a
    /// follower that needs more gets the snapshot), and returns the index up to which
    /// the stored log may now be compacted, if it moved.
    ///
    /// A report older than the current snapshot point, or for an entry this node does
    /// not hold as applied, is ignored.
    pub fn snapshot_taken(&mut self, last: LogId) -> Option<LogIndex> {
        if last.index <= self.snapshot.index || last.index > self.applied {
            return None;
        }
        // An entry already behind the window is applied, so committed: its id cannot be
        // checked against memory, but the driver reports the id it applied.
        let known = match self.log.term_at(last.index) {
            Some(term) => term == last.term,
            None => last.index <= self.log.prefix().index,
        };
        if !known {
            tracing::warn!(
                node = self.id,
                ?last,
                "snapshot of an entry this log does not hold"
            );
            return None;
        }
        self.snapshot = last;
        let upto = self.compaction_bound(last.index);
        if upto <= self.stored_prefix {
            return None;
        }
        let upto_term = self
            .log
            .term_at(upto)
            .or((upto == last.index).then_some(last.term));
        // Memory keeps no more than storage does.
        if !self.log.compact_to(upto) {
            return None;
        }
        self.configs.compact_to(upto);
        self.stored_prefix = upto;
        self.stored_prefix_term = upto_term;
        Some(upto)
    }
}
