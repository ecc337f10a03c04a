//! The core's in-memory view of the log: every entry after the compacted prefix, whether
//! or not it is durable yet.

use super::types::{Entry, LogId, LogIndex, Payload, Term};

/// The log as the core sees it. Entries are contiguous from `prefix.index + 1`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RaftLog {
    /// Last id of the compacted prefix: entries up to it are gone from memory and are
    /// known to be committed.
    prefix: LogId,
    /// `slots[head..]` are the entries after the prefix. `slots[..head]` were compacted:
    /// their payloads are already released, and their slots are reclaimed in one move
    /// once they are as many as the live entries, so compacting one entry at a time (the
    /// window trims after every apply) moves at most one live entry per compacted one,
    /// instead of the whole window each time, and the slots stay within twice the live
    /// entries.
    slots: Vec<Entry>,
    head: usize,
    /// Sum of the entries' size hints.
    bytes: usize,
}

impl RaftLog {
    /// A log holding `entries`, which must follow `prefix` contiguously.
    pub(crate) fn new(prefix: LogId, entries: Vec<Entry>) -> Self {
        debug_assert!(entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.index == prefix.index + 1 + i as u64));
        let bytes = entries.iter().map(Entry::size_hint).sum();
        Self {
            prefix,
            slots: entries,
            head: 0,
            bytes,
        }
    }

    /// The entries after the prefix.
    fn entries(&self) -> &[Entry] {
        &self.slots[self.head..]
    }

    /// Entries held in memory.
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Sum of the size hints of the entries held in memory.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The lowest index up to which the log must be compacted so that what remains holds
    /// at most `max_entries` entries and `max_bytes` bytes (the prefix when it already
    /// does; at least one entry always remains).
    pub(crate) fn trim_point(&self, max_entries: usize, max_bytes: usize) -> LogIndex {
        let mut drop = self.entries().len().saturating_sub(max_entries.max(1));
        let mut bytes = self.bytes
            - self.entries()[..drop]
                .iter()
                .map(Entry::size_hint)
                .sum::<usize>();
        while bytes > max_bytes && drop + 1 < self.entries().len() {
            bytes -= self.entries()[drop].size_hint();
            drop += 1;
        }
        self.prefix.index + drop as u64
    }

    pub(crate) fn prefix(&self) -> LogId {
        self.prefix
    }

    pub(crate) fn last_id(&self) -> LogId {
        self.entries().last().map_or(self.prefix, Entry::log_id)
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.prefix.index + self.entries().len() as u64
    }

    /// The term of the entry at `index`, `None` when the index is past the end or inside
    /// the compacted prefix (other than its last position).
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.prefix.index {
            return Some(self.prefix.term);
        }
        self.get(index).map(|e| e.term)
    }

    pub(crate) fn get(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.prefix.index {
            return None;
        }
        self.entries().get((index - self.prefix.index - 1) as usize)
    }

    /// Clones entries `from..=to`, stopping early at `max_count` entries or once
    /// `max_bytes` is exceeded (one entry is always taken when the range is not empty).
    pub(crate) fn slice(
        &self,
        from: LogIndex,
        to: LogIndex,
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<Entry> {
        if from <= self.prefix.index || from > to {
            return Vec::new();
        }
        let start = (from - self.prefix.index - 1) as usize;
        let end = ((to - self.prefix.index) as usize).min(self.entries().len());
        let range = self.entries().get(start..end).unwrap_or(&[]);
        // Count first, then clone into a vector of the right size: an AppendEntries of
        // a few hundred entries would otherwise grow (and move) its vector eight times.
        let mut bytes = 0usize;
        let mut count = 0usize;
        for e in range {
            let size = e.size_hint();
            if count > 0 && (count >= max_count || bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            count += 1;
        }
        range[..count].to_vec()
    }

    /// Entries `from..=to` by reference.
    pub(crate) fn range(&self, from: LogIndex, to: LogIndex) -> &[Entry] {
        if from > to || from <= self.prefix.index {
            return &[];
        }
        let start = (from - self.prefix.index - 1) as usize;
        let end = ((to - self.prefix.index) as usize).min(self.entries().len());
        self.entries().get(start..end).unwrap_or(&[])
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.bytes += entry.size_hint();
        self.slots.push(entry);
    }

    /// Removes every entry at or after `index`.
    pub(crate) fn truncate_from(&mut self, index: LogIndex) {
        debug_assert!(index > self.prefix.index);
        let keep = index.saturating_sub(self.prefix.index + 1) as usize;
        if keep < self.entries().len() {
            self.bytes -= self.entries()[keep..]
                .iter()
                .map(Entry::size_hint)
                .sum::<usize>();
            self.slots.truncate(self.head + keep);
        }
    }

    /// Drops every entry up to and including `upto` from memory; they become the
    /// compacted prefix. Returns true when the prefix now reaches `upto` (already
    /// compacted counts); false, changing nothing, when `upto` is past the end.
    pub(crate) fn compact_to(&mut self, upto: LogIndex) -> bool {
        if upto <= self.prefix.index {
            return true;
        }
        let Some(term) = self.term_at(upto) else {
            return false;
        };
        let end = self.head + (upto - self.prefix.index) as usize;
        for e in &mut self.slots[self.head..end] {
            self.bytes -= e.size_hint();
            // Release the payload now; the slot goes with the next reclaim.
            e.payload = Payload::Noop;
        }
        self.head = end;
        // Reclaim once the dead slots are as many as the live entries: each compacted
        // entry pays for moving at most one live one (at a million entries a second the
        // move is most of what compaction costs), and the slots stay within twice the
        // live entries (the dead ones hold no payload).
        if self.head >= self.slots.len() - self.head {
            self.slots.drain(..self.head);
            self.head = 0;
        }
        self.prefix = LogId::new(term, upto);
        true
    }

    /// Replaces the whole log: the prefix becomes `prefix`, followed by `entries`.
    pub(crate) fn reset(&mut self, prefix: LogId, entries: Vec<Entry>) {
        *self = Self::new(prefix, entries);
    }

    /// The first index of the run of `term` that contains `index` (walking back).
    pub(crate) fn first_index_of_term_run(&self, index: LogIndex, term: Term) -> LogIndex {
        let mut i = index;
        while i > self.prefix.index + 1 && self.term_at(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// The last index holding an entry of `term`, if the log holds any.
    pub(crate) fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        // Terms are non-decreasing along the log: binary search for the last entry with
        // a term <= `term`, then check it.
        let pos = self.entries().partition_point(|e| e.term <= term);
        if pos == 0 {
            return (self.prefix.term == term && self.prefix.index > 0)
                .then_some(self.prefix.index);
        }
        let e = &self.entries()[pos - 1];
        (e.term == term).then_some(e.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry {
                term: t,
                index: i as u64 + 1,
                payload: Payload::Noop,
            })
            .collect();
        RaftLog::new(LogId::default(), entries)
    }

    #[test]
    fn terms_and_runs() {
        let log = log_of(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.last_id(), LogId::new(4, 6));
        assert_eq!(log.term_at(0), Some(0));
        assert_eq!(log.term_at(7), None);
        assert_eq!(log.first_index_of_term_run(5, 2), 3);
        assert_eq!(log.last_index_of_term(2), Some(5));
        assert_eq!(log.last_index_of_term(3), None);
        assert_eq!(log.slice(2, 6, 2, usize::MAX).len(), 2);
    }

    #[test]
    fn truncate_and_prefix() {
        let mut log = log_of(&[1, 1, 2, 2]);
        log.truncate_from(3);
        assert_eq!(log.last_id(), LogId::new(1, 2));
        let log = RaftLog::new(LogId::new(1, 1), log.range(2, 2).to_vec());
        assert_eq!(log.prefix(), LogId::new(1, 1));
        assert_eq!(log.term_at(1), Some(1));
        assert_eq!(log.term_at(2), Some(1));
        assert!(log.get(1).is_none());
        assert_eq!(log.range(2, 2).len(), 1);
    }

    #[test]
    fn the_byte_count_follows_every_change_and_trim_point_honours_both_bounds() {
        let recount = |log: &RaftLog| log.entries().iter().map(Entry::size_hint).sum::<usize>();
        let mut log = log_of(&[1, 1, 2, 2, 2, 4]);
        let each = log.get(1).unwrap().size_hint();
        assert_eq!(log.bytes(), 6 * each);
        assert_eq!(
            log.trim_point(10, usize::MAX),
            0,
            "within bounds: nothing to drop"
        );
        assert_eq!(log.trim_point(4, usize::MAX), 2, "six entries, keep four");
        assert_eq!(log.trim_point(10, 3 * each), 3, "keep three entries' bytes");
        assert_eq!(log.trim_point(10, 0), 5, "one entry always remains");
        log.truncate_from(5);
        assert_eq!(log.bytes(), recount(&log));
        assert!(log.compact_to(2));
        assert_eq!(log.bytes(), recount(&log));
        log.push(Entry {
            term: 4,
            index: 5,
            payload: Payload::Command(bytes::Bytes::from_static(b"abc")),
        });
        assert_eq!(log.bytes(), recount(&log));
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn compact_to_moves_the_prefix() {
        let mut log = log_of(&[1, 1, 2, 2]);
        assert!(!log.compact_to(5), "past the end");
        assert!(log.compact_to(3));
        assert_eq!(log.prefix(), LogId::new(2, 3));
        assert_eq!(log.last_id(), LogId::new(2, 4));
        assert_eq!(log.term_at(3), Some(2));
        assert!(log.get(3).is_none());
        assert!(log.compact_to(2), "behind the prefix: nothing to do");
        assert_eq!(log.prefix(), LogId::new(2, 3));
        assert!(log.compact_to(4));
        assert_eq!(log.last_index(), 4);
        assert!(log.range(1, 4).is_empty());
    }

    #[test]
    fn a_sliding_window_reclaims_its_slots_and_keeps_every_entry_in_place() {
        // Append one, compact one, as the window does after every apply: the compacted
        // slots stay fewer than the live entries, and every lookup still finds the right
        // entry.
        let command = |i: u64| Payload::Command(bytes::Bytes::from(i.to_le_bytes().to_vec()));
        let mut log = RaftLog::default();
        for i in 1..=8 {
            log.push(Entry {
                term: 1,
                index: i,
                payload: command(i),
            });
        }
        for i in 9..=1000u64 {
            log.push(Entry {
                term: 1 + i / 100,
                index: i,
                payload: command(i),
            });
            assert!(log.compact_to(i - 8));
            assert_eq!(log.len(), 8);
            assert_eq!(log.prefix(), LogId::new(1 + (i - 8) / 100, i - 8));
            assert!(log.slots.len() < 2 * log.len(), "slots {}", log.slots.len());
            assert!(log.slots[..log.head]
                .iter()
                .all(|e| e.payload == Payload::Noop));
            assert_eq!(
                log.bytes(),
                8 * (24 + 8),
                "only the live entries are counted"
            );
            let range = log.range(i - 7, i);
            assert_eq!(range.len(), 8);
            assert!(range
                .iter()
                .zip(i - 7..)
                .all(|(e, j)| e.index == j && e.payload == command(j)));
            assert_eq!(log.get(i).map(|e| e.index), Some(i));
            assert_eq!(log.last_index_of_term(1 + i / 100), Some(i));
        }
        log.truncate_from(998);
        assert_eq!(log.last_index(), 997);
        assert_eq!(log.range(993, 997).len(), 5);
        assert_eq!(log.bytes(), 5 * (24 + 8));
    }
}
