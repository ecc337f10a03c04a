//! The `LogStorage` trait: where a node keeps its log and hard state.

use async_trait::async_trait;
use thiserror::Error;

use crate::core::{Entry, HardState, LogId, LogIndex};

/// What a storage holds when a node (re)starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogState {
    /// The last saved term and vote.
    pub hard_state: HardState,
    /// The last id of the compacted prefix (default: nothing compacted).
    pub prefix: LogId,
    /// The id of the last stored entry (equal to `prefix` when no entry is stored).
    pub last: LogId,
}

/// One durable write, as the core asks for it: remove a conflicting suffix, append
/// entries after it, save the hard state. All parts are optional.
///
/// `reset_to`, when set, comes first: the whole stored log is dropped and restarts
/// after that id (a follower installed a snapshot from its leader).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogWrite {
    /// Remove every entry at or after this index first.
    pub truncate_from: Option<LogIndex>,
    /// Then append these, contiguous, starting right after the (possibly truncated) end.
    pub entries: Vec<Entry>,
    /// Then save this hard state.
    pub hard_state: Option<HardState>,
    /// Before everything else: remove every stored entry and make this id the
    /// compacted prefix, so that the log restarts right after it.
    pub reset_to: Option<LogId>,
}

impl LogWrite {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.truncate_from.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.reset_to.is_none()
    }

    /// Folds a later write into this one, so that applying the result equals applying
    /// `self` then `later` (group commit of writes queued behind one in flight).
    pub fn merge(&mut self, later: LogWrite) {
        if let Some(reset) = later.reset_to {
            // Everything written before is replaced.
            self.reset_to = Some(reset);
            self.truncate_from = None;
            self.entries.clear();
        }
        if let Some(t) = later.truncate_from {
            self.entries.retain(|e| e.index < t);
            // Entries already stored at or after `t` must go as well.
            self.truncate_from = Some(self.truncate_from.map_or(t, |mine| mine.min(t)));
        }
        if self.entries.is_empty() {
            self.entries = later.entries;
        } else {
            self.entries.extend(later.entries);
        }
        if later.hard_state.is_some() {
            self.hard_state = later.hard_state;
        }
    }
}

/// Why a storage operation failed.
///
/// Two families, told apart by [`StorageError::is_fatal`]:
///
/// - **recoverable** ([`OutOfRange`](StorageError::OutOfRange),
///   [`Compacted`](StorageError::Compacted), [`InvalidWrite`](StorageError::InvalidWrite)):
///   the caller asked for something the storage does not hold, or for a write that would
///   break the log's shape; the storage refused it and nothing changed;
/// - **fatal** ([`Io`](StorageError::Io), [`Corrupt`](StorageError::Corrupt)): the
///   storage can no longer promise durability or return what it stored, so the node
///   using it stops rather than acknowledge what may be lost.
///
/// New variants may be added; [`is_fatal`](StorageError::is_fatal) classifies them all.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Recoverable. A read asked for entries past the end of the log.
    #[error("entries {from}..={to} requested, but the log ends at {last}")]
    OutOfRange {
        /// First index asked for.
        from: LogIndex,
        /// Last index asked for.
        to: LogIndex,
        /// Last index stored.
        last: LogIndex,
    },
    /// Recoverable. A read asked for entries that were compacted away.
    #[error("entry {index} was compacted (the log now starts after {prefix})")]
    Compacted {
        /// The index asked for.
        index: LogIndex,
        /// The last compacted index.
        prefix: LogIndex,
    },
    /// Recoverable. A write would leave a hole in the log or reach into the compacted
    /// prefix; nothing of it was written.
    #[error("invalid write: {0}")]
    InvalidWrite(#[from] InvalidWrite),
    /// Fatal. The underlying device or database failed; the backend's own error is the
    /// source.
    #[error("storage IO failed: {0}")]
    Io(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Fatal. Stored data could not be decoded, or the stored log has a hole; the
    /// backend's own error (what was wrong, and where) is the source.
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a [`LogWrite`] was refused (see [`StorageError::InvalidWrite`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidWrite {
    /// The truncation point lies inside the compacted prefix, whose entries are gone.
    #[error("truncate from {from} reaches into the compacted prefix ending at {prefix}")]
    TruncateIntoPrefix {
        /// The requested truncation point.
        from: LogIndex,
        /// The last compacted index.
        prefix: LogIndex,
    },
    /// The first entry is not where the log can take it: past its end (a hole) or
    /// inside the compacted prefix.
    #[error("entries start at {first}, the log accepts {}..={next}", prefix + 1)]
    Misplaced {
        /// The first entry's index.
        first: LogIndex,
        /// The last compacted index.
        prefix: LogIndex,
        /// The index right after the last stored entry.
        next: LogIndex,
    },
    /// The entries' indexes do not follow each other.
    #[error("entries are not contiguous: {before} is followed by {after}")]
    NotContiguous {
        /// An entry's index.
        before: LogIndex,
        /// The index of the entry after it.
        after: LogIndex,
    },
}

impl StorageError {
    /// True when the node cannot go on with this storage.
    pub fn is_fatal(&self) -> bool {
        matches!(self, StorageError::Io(_) | StorageError::Corrupt(_))
    }
}

/// Durable storage for one node's log and hard state.
///
/// # Correctness rules
///
/// An implementation must keep all of these; the `testkit` conformance suite
/// (`actraft::testkit::storage::run_suite`) checks them:
///
/// 1. **Durable on return.** When the future of [`write`](LogStorage::write) (or of any
///    other mutating method) completes with `Ok`, everything it wrote survives a crash
///    of the process and, for a disk storage, of the machine. Raft's safety depends on
///    it: a node acknowledges entries and grants votes only after this.
/// 2. **In order.** Writes take effect in the order their futures were first polled (the
///    node polls each one as soon as it creates it, and handles completions in order
///    itself), and a write's parts take effect in the order truncate, append, hard state.
///    The node keeps a few writes in flight at once, so that a disk storage always has
///    the next write queued while one syncs.
/// 3. **Atomic where it can.** A storage that can make one write all-or-nothing
///    (RocksDB's `WriteBatch`) should. One that cannot must at least never leave a hole
///    in the log: after a crash, the log is a prefix of what was written.
/// 4. **Contiguous.** Entries are stored at the index they carry, with no holes;
///    appending at an index at or below the last stored one replaces from there on.
/// 5. **Reads see writes.** A read that starts after a write completed sees it.
/// 6. **Errors.** Reads outside the stored range return [`StorageError::OutOfRange`] or
///    [`StorageError::Compacted`] and change nothing. IO failures return
///    [`StorageError::Io`]; the node then stops rather than risk acknowledging what is
///    not durable.
/// 7. **One batching layer.** The node merges writes itself: while up to
///    [`Limits::max_writes_in_flight`](crate::Limits::max_writes_in_flight) writes are
///    in flight, everything the core produces goes into one pending write, handed out
///    when a slot frees. A storage makes each write durable as it comes, in order, one
///    write at a time, and does not merge writes (a second layer of grouping would only
///    add waiting: the node's next write already holds everything that queued up).
/// 8. **Never blocks the caller's thread.** The node runs on an actix arbiter, and its
///    heartbeats stop while its thread is blocked. A storage whose work can block (disk
///    IO, fsync) must do it on another thread and complete the future from there. A
///    storage that never blocks (memory) should complete at once: the node polls each
///    future once inline and only hands it to the runtime when it is not ready, so an
///    inline storage costs no thread hop.
#[async_trait]
pub trait LogStorage: Send + Sync + 'static {
    /// Reads the hard state and the bounds of the stored log.
    async fn state(&self) -> Result<LogState, StorageError>;

    /// Reads entries `from..=to`.
    async fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError>;

    /// Makes one write durable: truncate, then append, then save the hard state.
    async fn write(&self, write: LogWrite) -> Result<(), StorageError>;

    /// Appends entries (replacing any stored at or after the first one's index).
    async fn append(&self, entries: Vec<Entry>) -> Result<(), StorageError> {
        let truncate_from = entries.first().map(|e| e.index);
        self.write(LogWrite {
            truncate_from,
            entries,
            ..LogWrite::default()
        })
        .await
    }

    /// Removes every entry at or after `from` (a conflicting suffix).
    async fn truncate(&self, from: LogIndex) -> Result<(), StorageError> {
        self.write(LogWrite {
            truncate_from: Some(from),
            ..LogWrite::default()
        })
        .await
    }

    /// Saves the term and vote.
    async fn save_hard_state(&self, hard_state: HardState) -> Result<(), StorageError> {
        self.write(LogWrite {
            hard_state: Some(hard_state),
            ..LogWrite::default()
        })
        .await
    }

    /// Removes every entry up to and including `upto`, which must be committed and
    /// applied. Compacting past the last entry is an [`StorageError::OutOfRange`].
    async fn compact(&self, upto: LogIndex) -> Result<(), StorageError>;
}

/// A boxed storage is a storage, so nodes can pick one at run time.
#[async_trait]
impl<S: LogStorage + ?Sized> LogStorage for Box<S> {
    async fn state(&self) -> Result<LogState, StorageError> {
        (**self).state().await
    }

    async fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError> {
        (**self).entries(from, to).await
    }

    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        (**self).write(write).await
    }

    async fn append(&self, entries: Vec<Entry>) -> Result<(), StorageError> {
        (**self).append(entries).await
    }

    async fn truncate(&self, from: LogIndex) -> Result<(), StorageError> {
        (**self).truncate(from).await
    }

    async fn save_hard_state(&self, hard_state: HardState) -> Result<(), StorageError> {
        (**self).save_hard_state(hard_state).await
    }

    async fn compact(&self, upto: LogIndex) -> Result<(), StorageError> {
        (**self).compact(upto).await
    }
}
