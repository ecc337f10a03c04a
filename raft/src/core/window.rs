//! The log window: the core keeps in memory only the tail of the log it works on, and a
//! leader reads older entries a lagging follower needs from storage, asynchronously.
//!
//! Three points divide a node's log:
//!
//! ```text
//!   compacted (snapshot)  |  stored only  |  in memory (the window)
//! ........................^...............^............................^
//!                stored prefix      memory prefix                   last
//! ```
//!
//! - The **stored prefix** is where the stored log starts: entries up to it were
//!   compacted after a snapshot. A follower that needs one of them gets the snapshot.
//! - The **memory prefix** is where the core's in-memory log starts. Entries behind it
//!   are applied, durable, and so committed and identical on every node that holds them.
//!   The core drops applied, durable entries from memory once the window holds more than
//!   [`Config::log_window_entries`](super::Config::log_window_entries) entries or
//!   [`Config::log_window_bytes`](super::Config::log_window_bytes) payload bytes; entries
//!   not yet applied or not yet durable always stay (they are what the node works on).
//! - A follower whose next entry lies between the two is sent entries read from storage:
//!   the core asks for them in [`Ready::log_reads`](super::Ready::log_reads), one read
//!   per follower at a time, and the shell reads them off the node's thread and reports
//!   with [`RaftCore::log_read_done`]. Nothing blocks meanwhile.

use super::progress::Mode;
use super::types::{Entry, LogId, LogIndex, NodeId, Role, Term};
use super::RaftCore;

/// Entries a leader needs from its stored log to catch a follower up (see the module
/// docs): read `from..=to` from storage and report with [`RaftCore::log_read_done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRead {
    /// The follower the entries are for.
    pub peer: NodeId,
    /// The leader's term when it asked: a report from another term is ignored.
    pub term: Term,
    /// The first index to read. Without `prev`, the entry there is the AppendEntries'
    /// `prev_log` and the ones after it are the entries sent; with `prev` (the follower
    /// needs everything after the stored prefix), all of them are sent.
    pub from: LogIndex,
    /// The last index to read (inclusive).
    pub to: LogIndex,
    /// The entry before `from`, when storage no longer holds it (the stored prefix).
    pub prev: Option<LogId>,
}

impl RaftCore {
    /// Where the stored log starts: entries up to this index were compacted.
    pub fn stored_prefix(&self) -> LogIndex {
        self.stored_prefix
    }

    /// The id of the stored prefix (the last compacted entry), when its term is known:
    /// recorded when storage compacted there, or the snapshot's own last entry.
    pub(super) fn stored_prefix_id(&self) -> Option<LogId> {
        match self.stored_prefix_term {
            Some(term) => Some(LogId::new(term, self.stored_prefix)),
            None => (self.snapshot.index == self.stored_prefix).then_some(self.snapshot),
        }
    }

    /// Drops applied, durable entries from memory while the window is over its bounds.
    pub(super) fn trim_window(&mut self) {
        let max_entries = self.config.log_window_entries;
        let max_bytes = self.config.log_window_bytes;
        if self.log.len() <= max_entries && self.log.bytes() <= max_bytes {
            return;
        }
        let floor = self.applied.min(self.persisted);
        let upto = self.log.trim_point(max_entries, max_bytes).min(floor);
        if upto > self.log.prefix().index && self.log.compact_to(upto) {
            tracing::trace!(node = self.id, upto, "log window trimmed");
        }
    }

    /// Asks the shell for the stored entries after `prev_index` that `peer` needs (they
    /// are behind the window). Returns false when a read for `peer` is already out.
    pub(super) fn start_log_read(&mut self, peer: NodeId, prev_index: LogIndex) -> bool {
        let Some(p) = self.progress.get_mut(&peer) else {
            return false;
        };
        if p.reading {
            return false;
        }
        p.reading = true;
        let last_in_storage = self.log.prefix().index;
        let to = last_in_storage.min(prev_index + self.config.max_append_entries as u64);
        // The stored prefix itself is not stored: its term is known here instead.
        let prev = (prev_index == self.stored_prefix)
            .then(|| self.stored_prefix_id())
            .flatten();
        let from = if prev.is_some() {
            prev_index + 1
        } else {
            prev_index
        };
        self.log_reads.push(LogRead {
            peer,
            term: self.term(),
            from,
            to,
            prev,
        });
        true
    }

    /// Reports the entries of `read`, as storage returned them (`None` when storage could
    /// not return them, e.g. compacted meanwhile). A leader of the same term sends them
    /// to the follower if it still needs them; a follower whose entries were compacted
    /// gets the snapshot instead. Stale reports are ignored.
    pub fn log_read_done(&mut self, read: LogRead, entries: Option<Vec<Entry>>) {
        if self.role != Role::Leader || self.term() != read.term {
            return;
        }
        let Some(p) = self.progress.get_mut(&read.peer) else {
            return;
        };
        p.reading = false;
        let prev_index = read.prev.map_or(read.from, |prev| prev.index);
        if p.sending.is_some() || p.next != prev_index + 1 || !p.can_send(usize::MAX, usize::MAX) {
            // The follower moved on meanwhile: continue from where it is now.
            self.send_pipelined(read.peer);
            return;
        }
        let usable = entries.filter(|e| {
            e.first().map(Entry::log_id).map(|id| id.index) == Some(read.from)
                && e.iter()
                    .enumerate()
                    .all(|(i, x)| x.index == read.from + i as u64)
        });
        let Some(mut entries) = usable else {
            tracing::debug!(
                node = self.id,
                peer = read.peer,
                ?read,
                "stored entries unavailable; sending the snapshot"
            );
            self.start_snapshot_send(read.peer);
            return;
        };
        let prev = match read.prev {
            Some(prev) => prev,
            None => entries.remove(0).log_id(),
        };
        let mut bytes = 0usize;
        let mut keep = 0usize;
        for e in &entries {
            let size = e.size_hint();
            if keep > 0 && bytes + size > self.config.max_append_bytes {
                break;
            }
            bytes += size;
            keep += 1;
        }
        entries.truncate(keep);
        self.send_entries(read.peer, prev, entries);
        if self
            .progress
            .get(&read.peer)
            .is_some_and(|p| p.mode == Mode::Replicate)
        {
            self.send_pipelined(read.peer);
        }
    }

    /// The id just before the window: its term is known, so an AppendEntries from there
    /// needs no read.
    pub(super) fn window_start(&self) -> LogId {
        self.log.prefix()
    }
}
