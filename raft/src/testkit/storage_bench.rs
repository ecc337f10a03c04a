//! Storage micro-benchmarks, generic over any [`LogStorage`]: durable append throughput
//! (alone or with concurrent writers, to see group commit), range reads, suffix
//! truncation and hard-state saves. Each returns a [`Measurement`] instead of printing,
//! so benches, examples and tests can report or compare the numbers as they like.
//!
//! ```ignore
//! let m = storage_bench::append_throughput(&storage, &AppendSpec::new(16, 64)).await?;
//! println!("{:.0} entries/s", m.entries_per_sec());
//! ```
//!
//! The functions write to the storage they are given (after whatever it holds), so use
//! a fresh one for numbers you want to compare.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;

use crate::core::{Entry, HardState, LogIndex, Payload, Term};
use crate::storage::{LogStorage, LogWrite, StorageError};

/// What one benchmark did, and how long it took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measurement {
    /// Operations completed (writes, reads, truncations or saves).
    pub ops: u64,
    /// Entries written or read.
    pub entries: u64,
    /// Payload bytes written or read.
    pub bytes: u64,
    /// Time the operations took, from the first issued to the last completed.
    pub elapsed: Duration,
}

impl Measurement {
    fn rate(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.rate(self.ops)
    }

    /// Entries per second.
    pub fn entries_per_sec(&self) -> f64 {
        self.rate(self.entries)
    }

    /// Payload bytes per second.
    pub fn bytes_per_sec(&self) -> f64 {
        self.rate(self.bytes)
    }

    /// Mean time per operation (with one writer, the latency of one durable write).
    pub fn mean_op_time(&self) -> Duration {
        self.elapsed / self.ops.max(1) as u32
    }
}

/// The shape of an append benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendSpec {
    /// Entries per write.
    pub batch: usize,
    /// Payload bytes per entry.
    pub payload: usize,
    /// Concurrent writers, each issuing its own writes one after the other. A storage
    /// with group commit gets more throughput from more writers.
    pub writers: usize,
    /// Writes each writer issues.
    pub writes_per_writer: usize,
}

impl AppendSpec {
    /// One writer issuing 1000 writes of `batch` entries of `payload` bytes.
    pub fn new(batch: usize, payload: usize) -> Self {
        Self {
            batch,
            payload,
            writers: 1,
            writes_per_writer: 1000,
        }
    }

    /// Sets the number of concurrent writers.
    pub fn writers(mut self, writers: usize) -> Self {
        self.writers = writers.max(1);
        self
    }

    /// Sets the number of writes per writer.
    pub fn writes_per_writer(mut self, writes: usize) -> Self {
        self.writes_per_writer = writes;
        self
    }
}

/// Polls `fut` once with the current task's context.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match Pin::new(&mut *fut).poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// The term new entries get: no lower than anything the storage holds.
async fn next_term<S: LogStorage + ?Sized>(storage: &S) -> Result<(Term, LogIndex), StorageError> {
    let state = storage.state().await?;
    let term = state.last.term.max(state.hard_state.current_term).max(1);
    Ok((term, state.last.index))
}

fn batch_of(first: LogIndex, n: usize, term: Term, payload: &Bytes) -> Vec<Entry> {
    (first..first + n as u64)
        .map(|index| Entry {
            term,
            index,
            payload: Payload::Command(payload.clone()),
        })
        .collect()
}

/// Durable append throughput: `spec.writers` writers each append `spec.writes_per_writer`
/// batches after the storage's last entry, awaiting each before issuing the next.
///
/// Writers share one log, so each write must reach the storage in index order. A writer
/// takes its indexes and polls its new write once (as the node does, see rule 7 of
/// [`LogStorage`]) without yielding in between, so the storage sees writes in the order
/// their indexes were taken.
pub async fn append_throughput<S: LogStorage + ?Sized>(
    storage: &S,
    spec: &AppendSpec,
) -> Result<Measurement, StorageError> {
    let (term, last) = next_term(storage).await?;
    let next = AtomicU64::new(last + 1);
    let payload = Bytes::from(vec![0xA5; spec.payload]);
    let started = Instant::now();
    let writer = || async {
        for _ in 0..spec.writes_per_writer {
            let first = next.fetch_add(spec.batch as u64, Ordering::Relaxed);
            let mut write = storage.write(LogWrite {
                truncate_from: None,
                entries: batch_of(first, spec.batch, term, &payload),
                hard_state: None,
                reset_to: None,
            });
            match poll_once(&mut write).await {
                Some(result) => result?,
                None => write.await?,
            }
        }
        Ok::<_, StorageError>(())
    };
    for result in join_all((0..spec.writers.max(1)).map(|_| writer())).await {
        result?;
    }
    let ops = (spec.writers.max(1) * spec.writes_per_writer) as u64;
    let entries = ops * spec.batch as u64;
    Ok(Measurement {
        ops,
        entries,
        bytes: entries * spec.payload as u64,
        elapsed: started.elapsed(),
    })
}

/// Range read throughput: `reads` reads of `len` entries each, walking the stored log
/// from its start and wrapping around. The log must hold at least `len` entries.
pub async fn read_range<S: LogStorage + ?Sized>(
    storage: &S,
    len: u64,
    reads: usize,
) -> Result<Measurement, StorageError> {
    let state = storage.state().await?;
    let (first, last) = (state.prefix.index + 1, state.last.index);
    if len == 0 || last + 1 < first + len {
        return Err(StorageError::OutOfRange {
            from: first,
            to: first + len.max(1) - 1,
            last,
        });
    }
    let mut m = Measurement::default();
    let started = Instant::now();
    let mut from = first;
    for _ in 0..reads {
        if from + len - 1 > last {
            from = first;
        }
        let read = storage.entries(from, from + len - 1).await?;
        m.ops += 1;
        m.entries += read.len() as u64;
        m.bytes += read.iter().map(|e| e.payload.len() as u64).sum::<u64>();
        from += len;
    }
    m.elapsed = started.elapsed();
    Ok(m)
}

/// Suffix truncation: `rounds` times, appends `suffix` entries of `payload` bytes
/// (untimed), then truncates them (timed), as a follower does when a new leader's log
/// conflicts with its own.
pub async fn truncate_suffix<S: LogStorage + ?Sized>(
    storage: &S,
    suffix: usize,
    payload: usize,
    rounds: usize,
) -> Result<Measurement, StorageError> {
    let (term, last) = next_term(storage).await?;
    let payload = Bytes::from(vec![0x5A; payload]);
    let mut m = Measurement::default();
    for _ in 0..rounds {
        storage
            .append(batch_of(last + 1, suffix, term, &payload))
            .await?;
        let started = Instant::now();
        storage.truncate(last + 1).await?;
        m.elapsed += started.elapsed();
        m.ops += 1;
        m.entries += suffix as u64;
        m.bytes += (suffix * payload.len()) as u64;
    }
    Ok(m)
}

/// Hard-state saves: `count` durable saves of a growing term, one after the other (what
/// an election costs a node in storage).
pub async fn save_hard_state<S: LogStorage + ?Sized>(
    storage: &S,
    count: usize,
) -> Result<Measurement, StorageError> {
    let state = storage.state().await?;
    let started = Instant::now();
    for i in 1..=count as u64 {
        storage
            .save_hard_state(HardState {
                current_term: state.hard_state.current_term + i,
                voted_for: Some(i % 3 + 1),
            })
            .await?;
    }
    Ok(Measurement {
        ops: count as u64,
        elapsed: started.elapsed(),
        ..Measurement::default()
    })
}
