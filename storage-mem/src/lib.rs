//! In-memory log storage for actraft.
//!
//! [`MemStorage`] keeps the log and hard state in memory behind a mutex. Every operation
//! completes at once, so the node runs it inline, without a thread hop. It is cheap to
//! clone and every clone shares one log: keep a clone, stop (or kill) the node, and start
//! a new node on the clone to simulate a crash and a restart from what was persisted.
//!
//! Nothing survives the process: use it for tests, simulations, benchmarks, and services
//! that can afford to lose a node's state (the node then rejoins as an empty follower).
#![warn(missing_docs)]

use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Instant;

use actraft::core::{Entry, HardState, LogId, LogIndex, NodeId};
use actraft::metrics::StorageMetrics;
use actraft::{InvalidWrite, LogState, LogStorage, LogWrite, StorageError};
use async_trait::async_trait;

/// The in-memory snapshot store to pair with [`MemStorage`] (clones share one store,
/// like the log, so a test can restart a node on both).
pub use actraft::snapshot::MemSnapshotStore;

#[derive(Debug, Default)]
struct Inner {
    hard_state: HardState,
    prefix: LogId,
    entries: Vec<Entry>,
    writes: u64,
}

impl Inner {
    fn last(&self) -> LogId {
        self.entries.last().map_or(self.prefix, Entry::log_id)
    }

    fn apply(&mut self, write: LogWrite) -> Result<(), StorageError> {
        let mut write = write;
        if let Some(reset) = write.reset_to {
            // Validate the rest against the log as the reset leaves it, then apply.
            let mut after = Inner {
                hard_state: self.hard_state,
                prefix: reset,
                entries: Vec::new(),
                writes: self.writes,
            };
            write.reset_to = None;
            after.apply(write)?;
            // Keep the old vector's capacity: a follower that installs a snapshot goes
            // on appending as much as before, and a fresh vector would grow again by
            // doubling, each step a copy and a freed block the allocator may keep.
            let mut entries = std::mem::take(&mut self.entries);
            entries.clear();
            entries.append(&mut after.entries);
            after.entries = entries;
            *self = after;
            return Ok(());
        }
        if let Some(from) = write.truncate_from {
            if from <= self.prefix.index {
                return Err(InvalidWrite::TruncateIntoPrefix {
                    from,
                    prefix: self.prefix.index,
                }
                .into());
            }
            let keep = (from - self.prefix.index - 1) as usize;
            self.entries.truncate(keep);
        }
        if let Some(first) = write.entries.first() {
            let next = self.last().index + 1;
            if first.index <= self.prefix.index || first.index > next {
                return Err(InvalidWrite::Misplaced {
                    first: first.index,
                    prefix: self.prefix.index,
                    next,
                }
                .into());
            }
            if let Some(w) = write
                .entries
                .windows(2)
                .find(|w| w[1].index != w[0].index + 1)
            {
                return Err(InvalidWrite::NotContiguous {
                    before: w[0].index,
                    after: w[1].index,
                }
                .into());
            }
            self.entries
                .truncate((first.index - self.prefix.index - 1) as usize);
            self.entries.extend(write.entries);
        }
        if let Some(hard_state) = write.hard_state {
            self.hard_state = hard_state;
        }
        self.writes += 1;
        Ok(())
    }
}

/// An in-memory [`LogStorage`]. Clones share the same log (and its metrics).
#[derive(Debug, Clone)]
pub struct MemStorage {
    inner: Arc<Mutex<Inner>>,
    metrics: StorageMetrics,
}

impl Default for MemStorage {
    fn default() -> Self {
        Self::with_metrics(None)
    }
}

impl MemStorage {
    /// An empty log with a zero hard state. Its metrics have an empty `node` label
    /// (see [`for_node`](Self::for_node)).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log for node `id`: its metrics (`actraft_storage_*`, see
    /// `actraft::metrics`) are labelled with the node id.
    pub fn for_node(id: NodeId) -> Self {
        Self::with_metrics(Some(id))
    }

    fn with_metrics(node: Option<NodeId>) -> Self {
        Self {
            inner: Arc::default(),
            metrics: StorageMetrics::new("mem", node),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the log half-written: every
        // mutation validates first and then changes the vectors in one step.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of every stored entry (for tests and examples).
    pub fn snapshot(&self) -> (HardState, Vec<Entry>) {
        let inner = self.lock();
        (inner.hard_state, inner.entries.clone())
    }

    /// How many writes this storage has made durable (a measure of group commit).
    pub fn write_count(&self) -> u64 {
        self.lock().writes
    }
}

#[async_trait]
impl LogStorage for MemStorage {
    async fn state(&self) -> Result<LogState, StorageError> {
        let inner = self.lock();
        Ok(LogState {
            hard_state: inner.hard_state,
            prefix: inner.prefix,
            last: inner.last(),
        })
    }

    async fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        if from <= inner.prefix.index {
            return Err(StorageError::Compacted {
                index: from,
                prefix: inner.prefix.index,
            });
        }
        let last = inner.last().index;
        if to > last || from > to {
            return Err(StorageError::OutOfRange { from, to, last });
        }
        let start = (from - inner.prefix.index - 1) as usize;
        let end = (to - inner.prefix.index) as usize;
        Ok(inner.entries[start..end].to_vec())
    }

    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        let started = Instant::now();
        let entries = write.entries.len() as u64;
        let result = self.lock().apply(write);
        if result.is_ok() {
            self.metrics.appended(1, entries, started.elapsed());
        }
        result
    }

    async fn compact(&self, upto: LogIndex) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let last = inner.last();
        if upto > last.index {
            return Err(StorageError::OutOfRange {
                from: upto,
                to: upto,
                last: last.index,
            });
        }
        if upto <= inner.prefix.index {
            return Ok(());
        }
        let n = (upto - inner.prefix.index) as usize;
        let term = inner.entries[n - 1].term;
        inner.entries.drain(..n);
        inner.prefix = LogId::new(term, upto);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use actraft::core::Payload;

    use super::*;

    fn entries(term: u64, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        (from..=to)
            .map(|index| Entry {
                term,
                index,
                payload: Payload::Noop,
            })
            .collect()
    }

    #[test]
    fn reset_keeps_the_capacity_and_only_the_new_entries() {
        let mut inner = Inner::default();
        inner
            .apply(LogWrite {
                entries: entries(1, 1, 1000),
                ..LogWrite::default()
            })
            .unwrap();
        let capacity = inner.entries.capacity();
        inner
            .apply(LogWrite {
                reset_to: Some(LogId::new(2, 5000)),
                entries: entries(2, 5001, 5002),
                ..LogWrite::default()
            })
            .unwrap();
        assert_eq!(inner.prefix, LogId::new(2, 5000));
        assert_eq!(inner.entries, entries(2, 5001, 5002));
        assert!(inner.entries.capacity() >= capacity, "the vector was kept");
        // A refused reset changes nothing.
        let err = inner.apply(LogWrite {
            reset_to: Some(LogId::new(3, 9000)),
            entries: entries(3, 9005, 9005),
            ..LogWrite::default()
        });
        assert!(err.is_err());
        assert_eq!(inner.prefix, LogId::new(2, 5000));
        assert_eq!(inner.entries, entries(2, 5001, 5002));
    }
}
