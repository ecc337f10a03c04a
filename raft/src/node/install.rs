//! The node's InstallSnapshot IO, off the node's thread: a leader reads the chunks it
//! sends from its snapshot store (one reader task per follower), a follower writes the
//! chunks it receives (one writer task) and reports each outcome back to the node.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};

use crate::core::{InstallSnapshotRequest, NodeId, SnapshotSend};
use crate::driver::{ChunkReader, ChunkWriter, InstallProgress};
use crate::snapshot::{SnapshotError, SnapshotMeta, SnapshotStore};
use crate::transport::Transport;

/// What became of one received chunk, for the node.
pub(crate) struct InstallReport {
    pub(crate) meta: SnapshotMeta,
    pub(crate) progress: InstallProgress,
}

impl actix::Message for InstallReport {
    type Result = ();
}

/// How many chunks may wait for each reader task (one per follower) and for the writer
/// task. The core keeps only a few chunks in flight per follower, so the queues fill only
/// when the disk stalls. When one is full, the chunk is dropped, exactly as if the
/// network had lost it: the leader resends from the follower's acknowledged offset once
/// the transfer makes no progress.
pub(crate) const CHUNK_QUEUE_BOUND: usize = 64;

/// The chunks waiting for one follower's reader task.
///
/// The leader asks for the same chunks again whenever a transfer makes no progress for
/// two heartbeats, and starts over with its newest snapshot when it takes one: while
/// the reader task waits for the node's thread (a node busy with many clients) or for
/// the disk, those requests would pile up as copies of chunks already waiting, or
/// chunks of a transfer the leader has left. So a chunk waiting already is not queued
/// again, and chunks of another snapshot than the one last asked for are dropped: the
/// queue holds only what the leader still wants, once.
#[derive(Default)]
pub(crate) struct SendQueue {
    waiting: Mutex<VecDeque<SnapshotSend>>,
    wake: Notify,
    closed: AtomicBool,
}

/// What [`SendQueue::push`] did with a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Queued for the reader.
    Added,
    /// The same chunk was waiting already: it stays queued once (with the newer term).
    Merged,
    /// The queue is full: dropped (the leader resends after a stall).
    Full,
}

impl SendQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<SnapshotSend>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `send` (see the type's docs) and wakes the reader.
    pub(crate) fn push(&self, send: SnapshotSend) -> Queued {
        let mut waiting = self.lock();
        waiting.retain(|w| w.snapshot == send.snapshot);
        if let Some(same) = waiting.iter_mut().find(|w| w.offset == send.offset) {
            *same = send;
            return Queued::Merged;
        }
        if waiting.len() >= CHUNK_QUEUE_BOUND {
            return Queued::Full;
        }
        waiting.push_back(send);
        drop(waiting);
        self.wake.notify_one();
        Queued::Added
    }

    /// Every chunk waiting, in order; `None` once the queue is closed.
    async fn take(&self) -> Option<Vec<SnapshotSend>> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            let batch: Vec<SnapshotSend> = self.lock().drain(..).collect();
            if !batch.is_empty() {
                return Some(batch);
            }
            self.wake.notified().await;
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// The chunks waiting, as (snapshot, offset).
    #[cfg(test)]
    fn waiting(&self) -> Vec<(crate::core::LogId, u64)> {
        self.lock().iter().map(|w| (w.snapshot, w.offset)).collect()
    }
}

/// The node's snapshot transfer tasks. Dropping it ends them (their queues close).
#[derive(Default)]
pub(crate) struct InstallIo {
    readers: HashMap<NodeId, Arc<SendQueue>>,
    writer: Option<mpsc::Sender<InstallSnapshotRequest>>,
}

impl Drop for InstallIo {
    fn drop(&mut self) {
        for queue in self.readers.values() {
            queue.close();
        }
    }
}

impl InstallIo {
    /// Queues chunks to read and send. Each follower's chunks are read in order by one
    /// task, which keeps its reader open between chunks (see [`SendQueue`] for what
    /// waits).
    pub(crate) fn send<T: Transport>(
        &mut self,
        id: NodeId,
        store: &Arc<dyn SnapshotStore>,
        transport: &Arc<T>,
        sends: Vec<SnapshotSend>,
    ) {
        for send in sends {
            let queue = self.readers.entry(send.to).or_insert_with(|| {
                let queue = Arc::new(SendQueue::default());
                let task = read_loop(
                    id,
                    Arc::clone(store),
                    Arc::clone(transport),
                    Arc::clone(&queue),
                );
                actix::spawn(task);
                queue
            });
            if queue.push(send) == Queued::Full {
                // Benign: the leader asks for the chunk again once the transfer stalls.
                tracing::debug!(
                    node = id,
                    peer = send.to,
                    offset = send.offset,
                    "snapshot chunk to send dropped: its reader is behind"
                );
            }
        }
    }

    /// Queues received chunks to write, in order; every outcome comes back to `report`.
    /// Beyond [`CHUNK_QUEUE_BOUND`] waiting chunks, a chunk is dropped (the leader resends
    /// it from this node's acknowledged offset).
    pub(crate) fn receive(
        &mut self,
        store: &Arc<dyn SnapshotStore>,
        report: &actix::Recipient<InstallReport>,
        chunks: Vec<InstallSnapshotRequest>,
    ) {
        let tx = self.writer.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(CHUNK_QUEUE_BOUND);
            actix::spawn(write_loop(Arc::clone(store), report.clone(), rx));
            tx
        });
        for chunk in chunks {
            if let Err(error) = tx.try_send(chunk) {
                tracing::warn!(%error, "received snapshot chunk dropped: the writer is behind");
            }
        }
    }
}

fn thread_failed(e: tokio::task::JoinError) -> SnapshotError {
    SnapshotError::Io(std::io::Error::other(format!(
        "the snapshot thread failed: {e}"
    )))
}

async fn read_loop<T: Transport>(
    id: NodeId,
    store: Arc<dyn SnapshotStore>,
    transport: Arc<T>,
    queue: Arc<SendQueue>,
) {
    let mut reader = ChunkReader::new();
    while let Some(sends) = queue.take().await {
        let store = Arc::clone(&store);
        let joined = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for send in &sends {
                match reader.read(store.as_ref(), id, send) {
                    Ok(Some(envelope)) => out.push(envelope),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(node = id, peer = send.to, %error, "reading a snapshot chunk failed");
                        reader = ChunkReader::new();
                        break;
                    }
                }
            }
            (reader, out)
        })
        .await;
        let (back, envelopes) = match joined {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(node = id, error = %thread_failed(e), "snapshot reader stopped");
                return;
            }
        };
        reader = back;
        for envelope in envelopes {
            if let Err(error) = transport.send(envelope) {
                tracing::debug!(%error, "snapshot chunk send failed");
            }
        }
    }
}

async fn write_loop(
    store: Arc<dyn SnapshotStore>,
    report: actix::Recipient<InstallReport>,
    mut rx: mpsc::Receiver<InstallSnapshotRequest>,
) {
    let mut writer = ChunkWriter::new();
    while let Some(chunk) = rx.recv().await {
        let store = Arc::clone(&store);
        let joined = tokio::task::spawn_blocking(move || {
            let progress = writer.write(store.as_ref(), &chunk);
            (writer, chunk.meta, progress)
        })
        .await;
        let (back, meta, progress) = match joined {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %thread_failed(e), "snapshot writer stopped");
                return;
            }
        };
        writer = back;
        if !report.connected() {
            return; // the node stopped
        }
        report.do_send(InstallReport { meta, progress });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::LogId;

    fn send(snapshot: LogId, offset: u64, term: u64) -> SnapshotSend {
        SnapshotSend {
            to: 2,
            term,
            snapshot,
            offset,
            len: 10,
        }
    }

    /// A reader task kept waiting while the leader asks for the same chunks again and
    /// again (a stall every two heartbeats) ends up with each chunk waiting once, none
    /// dropped; a new snapshot replaces the chunks of the old one.
    #[test]
    fn resends_wait_once_and_a_new_snapshot_replaces_the_old_one() {
        let queue = SendQueue::default();
        let (old, new) = (LogId::new(1, 100), LogId::new(2, 300));
        for term in 1..=(4 * CHUNK_QUEUE_BOUND as u64) {
            for offset in [0, 10, 20, 30] {
                assert_ne!(queue.push(send(old, offset, term)), Queued::Full);
            }
        }
        assert_eq!(
            queue.waiting(),
            vec![(old, 0), (old, 10), (old, 20), (old, 30)]
        );
        assert_eq!(queue.lock()[0].term, 4 * CHUNK_QUEUE_BOUND as u64);
        assert_eq!(queue.push(send(new, 0, 9)), Queued::Added);
        assert_eq!(queue.waiting(), vec![(new, 0)]);
        for offset in 1..CHUNK_QUEUE_BOUND as u64 {
            assert_eq!(queue.push(send(new, offset * 10, 9)), Queued::Added);
        }
        assert_eq!(queue.push(send(new, 10_000, 9)), Queued::Full);
    }
}
