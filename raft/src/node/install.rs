//! The node's InstallSnapshot IO, off the node's thread: a leader reads the chunks it
//! sends from its snapshot store (one reader task per follower), a follower writes the
//! chunks it receives (one writer task) and reports each outcome back to the node.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

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
/// when the disk stalls. When one is full, the chunk is dropped and logged, exactly as if
/// the network had lost it: the leader resends from the follower's acknowledged offset
/// once the transfer makes no progress.
pub(crate) const CHUNK_QUEUE_BOUND: usize = 64;

/// The node's snapshot transfer tasks. Dropping it ends them (their queues close).
#[derive(Default)]
pub(crate) struct InstallIo {
    readers: HashMap<NodeId, mpsc::Sender<SnapshotSend>>,
    writer: Option<mpsc::Sender<InstallSnapshotRequest>>,
}

impl InstallIo {
    /// Queues chunks to read and send. Each follower's chunks are read in order by one
    /// task, which keeps its reader open between chunks. Beyond [`CHUNK_QUEUE_BOUND`]
    /// waiting chunks, a chunk is dropped (the leader resends it).
    pub(crate) fn send<T: Transport>(
        &mut self,
        id: NodeId,
        store: &Arc<dyn SnapshotStore>,
        transport: &Arc<T>,
        sends: Vec<SnapshotSend>,
    ) {
        for send in sends {
            let tx = self.readers.entry(send.to).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(CHUNK_QUEUE_BOUND);
                actix::spawn(read_loop(id, Arc::clone(store), Arc::clone(transport), rx));
                tx
            });
            if let Err(error) = tx.try_send(send) {
                tracing::warn!(node = id, %error, "snapshot chunk to send dropped: its reader is behind");
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
    mut rx: mpsc::Receiver<SnapshotSend>,
) {
    let mut reader = ChunkReader::new();
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.push(first);
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let store = Arc::clone(&store);
        let sends = std::mem::take(&mut batch);
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
            (reader, out, sends)
        })
        .await;
        let (back, envelopes, sends) = match joined {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(node = id, error = %thread_failed(e), "snapshot reader stopped");
                return;
            }
        };
        reader = back;
        batch = sends;
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
