//! The storage thread: it owns the database and serves every request in the order it
//! was issued, one synced batch per write. It does not merge writes: the node already
//! merges everything produced while a write is in flight into its next one (the rule on
//! `LogStorage`), and a second layer of grouping would only add latency.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use actraft::core::{Entry, LogId, LogIndex, Term};
use actraft::metrics::StorageMetrics;
use actraft::{InvalidWrite, LogState, LogWrite, StorageError};
use rocksdb::{ReadOptions, WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

use crate::error::{io, Corruption};
use crate::layout::{self, entry_key, ENTRIES_CF, META_CF};
use crate::open::Opened;

/// Where a request's result goes.
pub(crate) type Done<T> = oneshot::Sender<Result<T, StorageError>>;

/// One operation for the storage thread.
pub(crate) enum Request {
    /// A [`LogWrite`] to make durable.
    Write { write: LogWrite, done: Done<()> },
    /// Remove the log up to and including `upto`.
    Compact { upto: LogIndex, done: Done<()> },
    /// Read the bounds and hard state.
    State { done: Done<LogState> },
    /// Read entries `from..=to`.
    Entries {
        from: LogIndex,
        to: LogIndex,
        done: Done<Vec<Entry>>,
    },
}

/// Counters of the write path, shared with the handles.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) writes: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) entries: AtomicU64,
    pub(crate) sync_nanos: AtomicU64,
}

/// Writes taken from the queue together, folded into one [`LogWrite`].
struct Group {
    /// What the log and hard state will be once the group is durable.
    state: LogState,
    /// Every valid write of the group, merged.
    merged: LogWrite,
    /// Each write's result, in issue order; refused writes already carry their error.
    done: Vec<(Done<()>, Result<(), StorageError>)>,
    /// Entries of the group, for the counters.
    entries: u64,
}

impl Group {
    fn new(state: LogState) -> Self {
        Self {
            state,
            merged: LogWrite::default(),
            done: Vec::new(),
            entries: 0,
        }
    }
}

/// The thread's state: the database and the bounds of what it durably holds.
pub(crate) struct Worker {
    db: DB,
    path: PathBuf,
    /// The durable state: what every completed write left.
    state: LogState,
    sync: WriteOptions,
    counters: Arc<Counters>,
    metrics: StorageMetrics,
    /// Set after a failed write: RocksDB may have stopped accepting writes, and the
    /// node must not be told later writes are durable.
    failed: Option<String>,
}

impl Worker {
    pub(crate) fn new(
        opened: Opened,
        path: PathBuf,
        counters: Arc<Counters>,
        metrics: StorageMetrics,
    ) -> Self {
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        Self {
            db: opened.db,
            path,
            state: opened.state,
            sync,
            counters,
            metrics,
            failed: None,
        }
    }

    /// Serves requests until every handle is gone, then closes the database.
    pub(crate) fn run(mut self, queue: Receiver<Request>) {
        while let Ok(request) = queue.recv() {
            match request {
                Request::Write { write, done } => {
                    let mut group = Group::new(self.state.clone());
                    self.add(&mut group, write, done);
                    self.commit(group);
                }
                // Reads and compactions see every write issued before them.
                other => self.serve(other),
            }
        }
        tracing::debug!(path = %self.path.display(), "closing RocksDB log storage");
    }

    fn failed_error(&self) -> Option<StorageError> {
        self.failed.as_ref().map(|reason| {
            StorageError::Io(
                format!("an earlier write failed ({reason}); the store is read-only").into(),
            )
        })
    }

    /// The term of the entry at `index` in the log as `group` leaves it (`index` must be
    /// between the prefix and the last entry).
    fn term_at(&self, group: &Group, index: LogIndex) -> Result<Term, StorageError> {
        if index == group.state.prefix.index {
            return Ok(group.state.prefix.term);
        }
        if let Some(first) = group.merged.entries.first() {
            if index >= first.index {
                let pos = (index - first.index) as usize;
                return group
                    .merged
                    .entries
                    .get(pos)
                    .map(|e| e.term)
                    .ok_or_else(|| Corruption::Missing { index }.into());
            }
        }
        self.stored_term(index)
    }

    /// The term of the durable entry at `index`.
    fn stored_term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let cf = self.family(ENTRIES_CF);
        let value = self
            .db
            .get_pinned_cf(&cf, entry_key(index))
            .map_err(io)?
            .ok_or(Corruption::Missing { index })?;
        Ok(layout::decode_entry_term(&value)?)
    }

    /// Checks `write` against the log as `group` leaves it, and folds it in.
    fn add(&mut self, group: &mut Group, write: LogWrite, done: Done<()>) {
        let result = match self.failed_error() {
            Some(e) => Err(e),
            None => self.plan(group, write).map(|(write, state)| {
                group.entries += write.entries.len() as u64;
                group.merged.merge(write);
                group.state = state;
            }),
        };
        group.done.push((done, result));
    }

    /// Validates `write` as the trait's rules ask, and returns it in a normal form (a
    /// truncation only where entries are actually removed) with the state it leaves.
    fn plan(&self, group: &Group, write: LogWrite) -> Result<(LogWrite, LogState), StorageError> {
        let mut state = group.state.clone();
        let mut truncate_from = None;
        if let Some(reset) = write.reset_to {
            state.prefix = reset;
            state.last = reset;
        }
        if let Some(from) = write.truncate_from {
            if from <= state.prefix.index {
                return Err(InvalidWrite::TruncateIntoPrefix {
                    from,
                    prefix: state.prefix.index,
                }
                .into());
            }
            if from <= state.last.index {
                truncate_from = Some(from);
                state.last = LogId::new(self.term_at(group, from - 1)?, from - 1);
            }
        }
        if let (Some(first), Some(last)) = (write.entries.first(), write.entries.last()) {
            let next = state.last.index + 1;
            if first.index <= state.prefix.index || first.index > next {
                return Err(InvalidWrite::Misplaced {
                    first: first.index,
                    prefix: state.prefix.index,
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
            if first.index < next {
                // Appending over stored entries replaces them.
                truncate_from =
                    Some(truncate_from.map_or(first.index, |t: u64| t.min(first.index)));
            }
            state.last = last.log_id();
        }
        if let Some(hard_state) = write.hard_state {
            state.hard_state = hard_state;
        }
        let write = LogWrite {
            truncate_from,
            entries: write.entries,
            hard_state: write.hard_state,
            reset_to: write.reset_to,
        };
        Ok((write, state))
    }

    /// Makes the group durable in one synced batch, then completes its writes in order.
    fn commit(&mut self, group: Group) {
        if group.done.is_empty() {
            return;
        }
        let started = Instant::now();
        let result = if group.merged.is_empty() {
            Ok(())
        } else {
            self.write_batch(&group.merged)
        };
        let elapsed = started.elapsed();
        match &result {
            Ok(()) => {
                self.state = group.state;
                if !group.merged.is_empty() {
                    self.counters.syncs.fetch_add(1, Ordering::Relaxed);
                    self.counters.sync_nanos.fetch_add(
                        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    self.metrics.synced(group.done.len(), elapsed);
                }
                // One synced batch per group: each write took the batch's time.
                self.metrics
                    .appended(group.done.len(), group.entries, elapsed);
                self.counters
                    .writes
                    .fetch_add(group.done.len() as u64, Ordering::Relaxed);
                self.counters
                    .entries
                    .fetch_add(group.entries, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "RocksDB write failed");
                self.failed = Some(e.to_string());
            }
        }
        for (done, own) in group.done {
            let outcome = match (&result, own) {
                (Err(e), Ok(())) => Err(StorageError::Io(e.to_string().into())),
                (_, own) => own,
            };
            let _ = done.send(outcome);
        }
    }

    /// A column family the store was opened with.
    fn family(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("opened with this column family")
    }

    fn write_batch(&self, write: &LogWrite) -> Result<(), StorageError> {
        let entries = self.family(ENTRIES_CF);
        let meta = self.family(META_CF);
        let mut batch = WriteBatch::default();
        if let Some(reset) = write.reset_to {
            batch.delete_range_cf(&entries, entry_key(0), entry_key(LogIndex::MAX));
            batch.put_cf(&meta, layout::PREFIX_KEY, layout::encode_log_id(&reset));
        }
        if let Some(from) = write.truncate_from.filter(|_| write.reset_to.is_none()) {
            if from <= self.state.last.index {
                batch.delete_range_cf(
                    &entries,
                    entry_key(from),
                    entry_key(self.state.last.index + 1),
                );
            }
        }
        for entry in &write.entries {
            batch.put_cf(
                &entries,
                entry_key(entry.index),
                layout::encode_entry(entry),
            );
        }
        if let Some(hard_state) = &write.hard_state {
            batch.put_cf(
                &meta,
                layout::HARD_STATE_KEY,
                layout::encode_hard_state(hard_state),
            );
        }
        self.db.write_opt(batch, &self.sync).map_err(io)
    }

    /// Serves a read or a compaction, after every write before it is durable.
    fn serve(&mut self, request: Request) {
        match request {
            Request::Write { .. } => unreachable!("writes are grouped"),
            Request::Compact { upto, done } => {
                let _ = done.send(self.compact(upto));
            }
            Request::State { done } => {
                let _ = done.send(Ok(self.state.clone()));
            }
            Request::Entries { from, to, done } => {
                let _ = done.send(self.entries(from, to));
            }
        }
    }

    fn compact(&mut self, upto: LogIndex) -> Result<(), StorageError> {
        if let Some(e) = self.failed_error() {
            return Err(e);
        }
        let last = self.state.last.index;
        if upto > last {
            return Err(StorageError::OutOfRange {
                from: upto,
                to: upto,
                last,
            });
        }
        if upto <= self.state.prefix.index {
            return Ok(());
        }
        let prefix = LogId::new(self.stored_term(upto)?, upto);
        let entries = self.family(ENTRIES_CF);
        let meta = self.family(META_CF);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(&entries, entry_key(0), entry_key(upto + 1));
        batch.put_cf(&meta, layout::PREFIX_KEY, layout::encode_log_id(&prefix));
        if let Err(e) = self.db.write_opt(batch, &self.sync).map_err(io) {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        // A range delete only hides the entries; compacting the range drops the files
        // it covers, so the disk space comes back now rather than whenever RocksDB
        // would have compacted there (this thread is the storage's, not the node's).
        // The write-ahead log files holding those entries go once no column family
        // needs them: flush the small metadata family too, whose recent writes (hard
        // state, prefix) would otherwise keep every log file since its last flush.
        self.db
            .compact_range_cf(&entries, None::<&[u8]>, Some(&entry_key(upto + 1)[..]));
        if let Err(e) = self.db.flush_cf(&meta) {
            tracing::warn!(error = %e, "flushing the metadata after a compaction failed");
        }
        self.state.prefix = prefix;
        Ok(())
    }

    fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>, StorageError> {
        let LogState { prefix, last, .. } = self.state;
        if from <= prefix.index {
            return Err(StorageError::Compacted {
                index: from,
                prefix: prefix.index,
            });
        }
        if to > last.index || from > to {
            return Err(StorageError::OutOfRange {
                from,
                to,
                last: last.index,
            });
        }
        let cf = self.family(ENTRIES_CF);
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(entry_key(to + 1));
        let mut it = self.db.raw_iterator_cf_opt(&cf, options);
        it.seek(entry_key(from));
        let mut out = Vec::with_capacity((to - from + 1) as usize);
        let mut expected = from;
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            let index = layout::decode_entry_key(key)?;
            if index != expected {
                return Err(Corruption::Missing { index: expected }.into());
            }
            out.push(layout::decode_entry(index, value)?);
            expected += 1;
            it.next();
        }
        it.status().map_err(io)?;
        if expected != to + 1 {
            return Err(Corruption::Missing { index: expected }.into());
        }
        Ok(out)
    }
}
