//! A durable actraft log on RocksDB: a node using [`RocksStorage`] comes back from a
//! killed process or a rebooted machine with its term, its vote and its log.
//!
//! ```no_run
//! use actraft_storage_rocks::{RocksOptions, RocksStorage};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = RocksStorage::open("/var/lib/my-service/raft", RocksOptions::default()).await?;
//! // NodeBuilder::new(id, members).start(storage, transport, state_machine).await?;
//! # Ok(()) }
//! ```
//!
//! # What is durable, and when
//!
//! A write (truncation, new entries and hard state, as the node asks for them together)
//! becomes one RocksDB `WriteBatch`, written to the write-ahead log and synced to disk
//! (`fdatasync`) before its future completes. A batch is all-or-nothing: after a crash
//! the store holds exactly the writes that completed, possibly followed by writes that
//! were in flight, and never part of one. A compaction is synced the same way.
//!
//! # Threads
//!
//! RocksDB's calls block, and the node's actor must never block (heartbeats stop while
//! it does), so every call runs on one storage thread per store. Each method queues a
//! request to it *when called* (not when first polled), so requests take effect in the
//! order they were made. Each write is one batch with one sync; the store does not merge
//! writes, because the node already does (group commit happens once, in the node's
//! driver: everything produced while a write syncs goes into the next write). Reads and
//! compactions are served in order too, after the writes queued before them are
//! durable.
//!
//! Dropping the last handle (clones share one store) closes the database and waits for
//! the thread, so the directory can be opened again right away. When the last handle is
//! dropped elsewhere (by a stopped node, on its own thread), a [`CloseWaiter`] tells
//! when the store is closed.
//!
//! # Layout
//!
//! Entries are keyed by their big-endian index in their own column family; the hard
//! state, the compacted prefix, a format version and an identity marker live in a
//! second one. See [`layout`] for the exact encoding. Opening refuses, with a typed
//! [`OpenError`], a store another process holds, a directory that is not an actraft
//! store, and a format version this build does not read.
//!
//! # Options
//!
//! [`RocksOptions`] holds the few settings that matter for a log, with defaults suited
//! to one: the write-ahead log is always on and synced, flushed files are compressed
//! with LZ4 (or not at all), and memtables are bounded.
#![warn(missing_docs)]

mod error;
pub mod layout;
mod open;
mod options;
pub mod snapshot_file;
mod worker;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actraft::core::{Entry, HardState, LogIndex};
use actraft::{LogState, LogStorage, LogWrite, StorageError};
use tokio::sync::oneshot;

pub use error::{Corruption, OpenError};
pub use options::{Compression, RocksOptions};
pub use snapshot_file::{FileSnapshotStore, SnapshotFileError};

use worker::{Counters, Done, Request, Worker};

/// Counters of a store's write path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Writes completed successfully (each [`LogStorage::write`] and its shorthands).
    pub writes: u64,
    /// Synced batches written (writes and compactions): one per write, so `entries /
    /// syncs` is the node's group-commit batch size.
    pub syncs: u64,
    /// Entries appended.
    pub entries: u64,
    /// Time spent writing the synced batches of writes, in nanoseconds (compactions,
    /// which `syncs` counts too, are not included).
    pub sync_nanos: u64,
}

/// The handle's side of the storage thread. Dropping it closes the store.
struct Shared {
    queue: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    closed: CloseWaiter,
    path: PathBuf,
}

/// Waits for a store to be closed: its last handle dropped, its queued requests done,
/// its database closed and its directory unlocked. Get one from
/// [`RocksStorage::close_waiter`].
///
/// Dropping a handle somewhere else (a stopped node's actor, on its own thread) closes
/// the store soon but not at once; wait on this before deleting the directory or
/// opening it again.
#[derive(Debug, Clone, Default)]
pub struct CloseWaiter {
    closed: Arc<(Mutex<bool>, Condvar)>,
}

impl CloseWaiter {
    /// True once the store is closed.
    pub fn is_closed(&self) -> bool {
        *self.closed.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until the store is closed or `timeout` passed; true when it is closed.
    /// Blocking: do not call it on an async runtime's thread (poll
    /// [`is_closed`](Self::is_closed) there).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.closed;
        let mut closed = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            closed = cvar
                .wait_timeout(closed, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    fn set_closed(&self) {
        let (lock, cvar) = &*self.closed;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
    }
}

/// Marks the store closed when the storage thread ends, even by a panic.
struct CloseOnDrop(CloseWaiter);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.set_closed();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish what is queued, then close the
        // database; waiting for it releases the directory's lock before we return.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(path = %self.path.display(), "the RocksDB storage thread panicked");
            }
        }
    }
}

/// A [`LogStorage`] on RocksDB. Cheap to clone: clones share one store, which closes
/// when the last one is dropped.
#[derive(Clone)]
pub struct RocksStorage {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RocksStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStorage")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

type Opening = oneshot::Receiver<Result<(), OpenError>>;

impl RocksStorage {
    /// Opens the store in directory `path`, creating it if the directory does not exist
    /// or is empty (unless [`RocksOptions::create_if_missing`] is off). A creation a
    /// crash or power cut interrupted (RocksDB's files without our column families, or
    /// with them but without a key) is finished. The database is opened on the store's
    /// own thread, so this never blocks the caller's.
    pub async fn open(path: impl AsRef<Path>, options: RocksOptions) -> Result<Self, OpenError> {
        let (storage, opening) = Self::spawn(path.as_ref(), options)?;
        match opening.await {
            Ok(Ok(())) => Ok(storage),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(storage.thread_died()),
        }
    }

    /// [`open`](Self::open) for code outside an async runtime (tools, tests, a writer
    /// process): blocks until the store is open.
    ///
    /// # Panics
    ///
    /// When called from inside an async runtime; use [`open`](Self::open) there.
    pub fn open_blocking(path: impl AsRef<Path>, options: RocksOptions) -> Result<Self, OpenError> {
        let (storage, opening) = Self::spawn(path.as_ref(), options)?;
        match opening.blocking_recv() {
            Ok(Ok(())) => Ok(storage),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(storage.thread_died()),
        }
    }

    fn spawn(path: &Path, options: RocksOptions) -> Result<(Self, Opening), OpenError> {
        let (queue, requests) = mpsc::channel();
        let (opened, opening) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let closed = CloseWaiter::default();
        let metrics = actraft::metrics::StorageMetrics::new("rocks", options.metrics_node);
        let thread = {
            let (dir, counters) = (path.to_owned(), Arc::clone(&counters));
            let on_exit = CloseOnDrop(closed.clone());
            std::thread::Builder::new()
                .name("actraft-rocks".into())
                .spawn(move || {
                    // Dropped last, once the database is closed.
                    let _on_exit = on_exit;
                    match open::open(&dir, &options) {
                        Ok(db) => {
                            let worker = Worker::new(db, dir, counters, metrics);
                            let _ = opened.send(Ok(()));
                            worker.run(requests);
                        }
                        Err(e) => {
                            let _ = opened.send(Err(e));
                        }
                    }
                })
                .map_err(|e| OpenError::Io {
                    path: path.to_owned(),
                    message: format!("cannot start the storage thread: {e}"),
                })?
        };
        let shared = Shared {
            queue: Some(queue),
            thread: Some(thread),
            counters,
            closed,
            path: path.to_owned(),
        };
        let storage = Self {
            shared: Arc::new(shared),
        };
        Ok((storage, opening))
    }

    fn thread_died(&self) -> OpenError {
        OpenError::Io {
            path: self.shared.path.clone(),
            message: "the storage thread stopped while opening".into(),
        }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// A waiter that tells when this store has been closed (after every handle is
    /// dropped).
    pub fn close_waiter(&self) -> CloseWaiter {
        self.shared.closed.clone()
    }

    /// Counters of the write path so far.
    pub fn stats(&self) -> StorageStats {
        let c = &self.shared.counters;
        StorageStats {
            writes: c.writes.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            sync_nanos: c.sync_nanos.load(Ordering::Relaxed),
        }
    }

    /// Queues a request now and returns a future of its result: the queue order is the
    /// order of the calls, whenever the futures are first polled.
    fn submit<T: Send + 'static>(
        &self,
        request: impl FnOnce(Done<T>) -> Request,
    ) -> StorageFuture<'static, T> {
        let (done, result) = oneshot::channel();
        let queued = self
            .shared
            .queue
            .as_ref()
            .is_some_and(|q| q.send(request(done)).is_ok());
        Box::pin(async move {
            if !queued {
                return Err(stopped());
            }
            result.await.unwrap_or_else(|_| Err(stopped()))
        })
    }

    fn write_now(&self, write: LogWrite) -> StorageFuture<'static, ()> {
        self.submit(|done| Request::Write { write, done })
    }
}

fn stopped() -> StorageError {
    StorageError::Io("the RocksDB storage thread has stopped".into())
}

/// The boxed future every [`LogStorage`] method returns (the shape `async_trait` gives
/// them), written out so the request is queued when the method is called.
type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

impl LogStorage for RocksStorage {
    fn state<'s, 'f>(&'s self) -> StorageFuture<'f, LogState>
    where
        's: 'f,
        Self: 'f,
    {
        self.submit(|done| Request::State { done })
    }

    fn entries<'s, 'f>(&'s self, from: LogIndex, to: LogIndex) -> StorageFuture<'f, Vec<Entry>>
    where
        's: 'f,
        Self: 'f,
    {
        self.submit(|done| Request::Entries { from, to, done })
    }

    fn write<'s, 'f>(&'s self, write: LogWrite) -> StorageFuture<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        self.write_now(write)
    }

    fn append<'s, 'f>(&'s self, entries: Vec<Entry>) -> StorageFuture<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        let truncate_from = entries.first().map(|e| e.index);
        self.write_now(LogWrite {
            truncate_from,
            entries,
            ..LogWrite::default()
        })
    }

    fn truncate<'s, 'f>(&'s self, from: LogIndex) -> StorageFuture<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        self.write_now(LogWrite {
            truncate_from: Some(from),
            ..LogWrite::default()
        })
    }

    fn save_hard_state<'s, 'f>(&'s self, hard_state: HardState) -> StorageFuture<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        self.write_now(LogWrite {
            hard_state: Some(hard_state),
            ..LogWrite::default()
        })
    }

    fn compact<'s, 'f>(&'s self, upto: LogIndex) -> StorageFuture<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        self.submit(|done| Request::Compact { upto, done })
    }
}
