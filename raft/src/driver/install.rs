//! The driver's side of InstallSnapshot (§7): what the shell does with the chunks the
//! core sends and receives, and what happens once a received snapshot is whole.
//!
//! - **Leader.** [`Output::snapshot_sends`](super::Output::snapshot_sends) lists the
//!   chunks to send. The shell reads each from its snapshot store off the node's thread
//!   with a [`ChunkReader`] (one per follower, so a transfer reads the snapshot once,
//!   front to back) and sends the message it returns.
//! - **Follower.** [`Output::install_chunks`](super::Output::install_chunks) lists the
//!   chunks accepted from the leader, in order. The shell writes them off the node's
//!   thread with a [`ChunkWriter`] and reports each outcome with
//!   [`Driver::install_progress`]. When the last chunk is committed, the driver
//!   restores the state machine from the stored snapshot and tells the core, which
//!   replaces its log; the leader hears of it once the log's reset is durable.
//!
//! # Restoring off the node's thread
//!
//! Chunks are read and written off the node's thread. So is the decoding of a
//! received snapshot when the state machine offers a
//! [`snapshot_decoder`](StateMachine::snapshot_decoder): the driver hands the shell a
//! [`RestoreJob`], the shell runs it on a blocking thread and reports the decoded state
//! with [`Driver::restore_done`], and only the swap
//! ([`install_decoded`](StateMachine::install_decoded)) runs on the node's thread. The
//! node keeps ticking, heartbeating and applying meanwhile; if it has applied past the
//! snapshot by the time the decoding ends (a new leader replicated the entries), the
//! decoded state is dropped. A state machine without a decoder is restored with
//! [`StateMachine::restore`] on the node's thread.

use bytes::{Bytes, BytesMut};

use crate::core::{Envelope, InstallSnapshotRequest, LogId, Message, NodeId, Ready, SnapshotSend};
use crate::snapshot::{SnapshotChunks, SnapshotError, SnapshotMeta, SnapshotStore, SnapshotWriter};
use crate::{DecodedSnapshot, SnapshotDecoder, StateMachine};

use super::{Driver, Responder};

/// What the shell reports about an incoming snapshot chunk.
pub enum InstallProgress {
    /// Chunks are written (not yet committed) up to byte `end`.
    Stored {
        /// The first byte not written yet.
        end: u64,
    },
    /// The last chunk is written and the snapshot committed to the store: a reader over
    /// it, to restore the state machine from.
    Committed(Box<dyn SnapshotChunks>),
    /// Writing failed; the transfer starts over.
    Failed(SnapshotError),
}

impl std::fmt::Debug for InstallProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstallProgress::Stored { end } => write!(f, "Stored {{ end: {end} }}"),
            InstallProgress::Committed(_) => f.write_str("Committed"),
            InstallProgress::Failed(e) => write!(f, "Failed({e})"),
        }
    }
}

impl<M: StateMachine, R: Responder> Driver<M, R> {
    /// Moves the snapshot chunks of `ready` to the output.
    pub(super) fn take_install_io(&mut self, ready: &mut Ready) {
        self.out.install_chunks.append(&mut ready.install_chunks);
        self.out.snapshot_sends.append(&mut ready.snapshot_sends);
    }

    /// Reports what became of an incoming chunk of the snapshot `meta` (see
    /// [`Output::install_chunks`](super::Output::install_chunks)). When the snapshot is
    /// committed, the state machine is restored from it (unless it already holds that
    /// state) and the core replaces its log up to the snapshot.
    pub fn install_progress(&mut self, meta: &SnapshotMeta, progress: InstallProgress) {
        let last = meta.last_included;
        match progress {
            InstallProgress::Stored { end } => self.core.snapshot_chunk_stored(last, end),
            InstallProgress::Failed(error @ SnapshotError::Stale { .. }) => {
                // The store holds a newer snapshot than this one, and refuses to go back
                // (its rule 3). Only this node put it there: its own snapshot of entries
                // it applied (so committed), or an earlier transfer that overtook this
                // one and whose restore takes the node past it. Either way nothing is
                // lost by dropping this one. Under load it is common: a follower that
                // fell behind catches up by the entries its leader had in flight when
                // the transfer began, and snapshots them, before the transfer ends. The
                // core tells the leader when the node holds what the snapshot covers.
                tracing::debug!(node = self.core.id(), %error, snapshot = ?last, "a received snapshot is older than the stored one; dropped");
                self.core.snapshot_install_failed(last);
            }
            InstallProgress::Failed(error) => {
                tracing::warn!(node = self.core.id(), %error, snapshot = ?last, "storing a received snapshot failed");
                self.core.snapshot_install_failed(last);
            }
            InstallProgress::Committed(mut reader) => {
                if self.restoring == Some(last) {
                    return; // the same snapshot is being decoded already
                }
                if self.core.snapshot_is_news(last) {
                    if let Some(decoder) = self.state_machine.snapshot_decoder() {
                        self.restoring = Some(last);
                        self.out.restores.push(RestoreJob {
                            meta: meta.clone(),
                            decoder,
                            reader,
                        });
                        return;
                    }
                    let restored = self.state_machine.restore(meta, reader.as_mut());
                    self.finish_restore(meta, restored);
                    return;
                }
                self.finish_restore(meta, Ok(()));
            }
        }
    }
}

impl<M: StateMachine, R: Responder> Driver<M, R> {
    /// Reports the outcome of a [`RestoreJob`] from
    /// [`Output::restores`](super::Output::restores): the decoded state is swapped into
    /// the state machine (unless the node applied past the snapshot meanwhile) and the
    /// core replaces its log up to the snapshot; on an error the transfer starts over.
    pub fn restore_done(
        &mut self,
        meta: &SnapshotMeta,
        result: Result<DecodedSnapshot, SnapshotError>,
    ) {
        let last = meta.last_included;
        if self.restoring == Some(last) {
            self.restoring = None;
        }
        let decoded = match result {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::error!(node = self.core.id(), %error, snapshot = ?last, "decoding a received snapshot failed");
                self.core.snapshot_install_failed(last);
                return;
            }
        };
        if self.core.snapshot_is_news(last) {
            let installed = self.state_machine.install_decoded(meta, decoded);
            self.finish_restore(meta, installed);
        } else {
            self.finish_restore(meta, Ok(()));
        }
    }

    /// After the state machine was restored from `meta` (or needed not be: `Ok` with
    /// nothing done when the snapshot was no news), the core replaces its log up to the
    /// snapshot; on an error the transfer starts over.
    fn finish_restore(&mut self, meta: &SnapshotMeta, restored: Result<(), SnapshotError>) {
        let last = meta.last_included;
        if let Err(error) = restored {
            tracing::error!(node = self.core.id(), %error, snapshot = ?last, "restoring a received snapshot failed");
            self.core.snapshot_install_failed(last);
            return;
        }
        if self.core.snapshot_is_news(last) {
            self.snapshots.installed(meta.clone());
        }
        self.core.snapshot_restored(meta);
        let applied = self.core.status().applied_index;
        self.reads.applied(applied, &mut self.out.read_replies);
    }

    /// Reports the entries of a [`LogRead`](crate::core::LogRead) from
    /// [`Output::log_reads`](super::Output::log_reads): what storage returned, or the
    /// error (a read of compacted entries sends the follower the snapshot instead).
    pub fn log_read_done(
        &mut self,
        read: crate::core::LogRead,
        result: Result<Vec<crate::core::Entry>, crate::StorageError>,
    ) {
        super::counters::Counters::add(&self.counters.log_reads, 1);
        let entries = match result {
            Ok(entries) => Some(entries),
            Err(error) => {
                tracing::debug!(node = self.core.id(), %error, ?read, "reading stored entries for a follower failed");
                None
            }
        };
        self.core.log_read_done(read, entries);
    }
}

/// A received, committed snapshot to decode off the node's thread: run
/// `(decoder)(&meta, reader)` on a blocking thread and report the result with
/// [`Driver::restore_done`].
pub struct RestoreJob {
    /// The snapshot.
    pub meta: SnapshotMeta,
    /// The state machine's decoder.
    pub decoder: SnapshotDecoder,
    /// The stored snapshot's chunks.
    pub reader: Box<dyn SnapshotChunks>,
}

impl RestoreJob {
    /// Runs the decoder (call it on a thread other than the node's).
    pub fn run(mut self) -> (SnapshotMeta, Result<DecodedSnapshot, SnapshotError>) {
        let result = (self.decoder)(&self.meta, self.reader.as_mut());
        (self.meta, result)
    }
}

impl std::fmt::Debug for RestoreJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreJob")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Reads the chunks a leader sends from its snapshot store, front to back. Keep one per
/// follower: consecutive chunks continue where the last one stopped; a chunk behind it
/// (a resend) or of another snapshot reopens the store.
#[derive(Default)]
pub struct ChunkReader {
    open: Option<OpenSnapshot>,
}

struct OpenSnapshot {
    meta: SnapshotMeta,
    source: Box<dyn SnapshotChunks>,
    /// Offset of the first byte of `buf`.
    pos: u64,
    buf: BytesMut,
    eof: bool,
}

impl OpenSnapshot {
    fn fill(&mut self, want: usize) -> Result<(), SnapshotError> {
        while self.buf.len() < want && !self.eof {
            match self.source.next_chunk(want - self.buf.len())? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => self.eof = true,
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for ChunkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader")
            .field(
                "snapshot",
                &self.open.as_ref().map(|o| o.meta.last_included),
            )
            .field("pos", &self.open.as_ref().map(|o| o.pos))
            .finish()
    }
}

impl ChunkReader {
    /// A reader with nothing open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the chunk `send` names from `store` and returns the message carrying it,
    /// from node `from`. `None` when the store no longer holds that snapshot or the
    /// chunk starts past its end (nothing to send). Blocks: call it off the node's
    /// thread.
    pub fn read(
        &mut self,
        store: &dyn SnapshotStore,
        from: NodeId,
        send: &SnapshotSend,
    ) -> Result<Option<Envelope>, SnapshotError> {
        let usable = self
            .open
            .as_ref()
            .is_some_and(|o| o.meta.last_included == send.snapshot && o.pos <= send.offset);
        if !usable {
            self.open = None;
            let Some((meta, source)) = store.open_latest()? else {
                return Ok(None);
            };
            if meta.last_included != send.snapshot {
                return Ok(None);
            }
            self.open = Some(OpenSnapshot {
                meta,
                source,
                pos: 0,
                buf: BytesMut::new(),
                eof: false,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        while open.pos < send.offset {
            open.fill(64 * 1024)?;
            if open.buf.is_empty() {
                return Ok(None); // past the end
            }
            let skip = (send.offset - open.pos).min(open.buf.len() as u64) as usize;
            let _ = open.buf.split_to(skip);
            open.pos += skip as u64;
        }
        // One byte more than the chunk tells whether it is the last.
        open.fill(send.len.saturating_add(1))?;
        let take = send.len.min(open.buf.len());
        if take == 0 && send.offset > 0 {
            return Ok(None);
        }
        let data: Bytes = open.buf.split_to(take).freeze();
        open.pos += take as u64;
        let done = open.eof && open.buf.is_empty();
        Ok(Some(Envelope {
            from,
            to: send.to,
            message: Message::InstallSnapshot(Box::new(InstallSnapshotRequest {
                term: send.term,
                meta: open.meta.clone(),
                offset: send.offset,
                data,
                done,
            })),
        }))
    }
}

/// Writes the chunks a follower receives into its snapshot store, in order. A chunk at
/// offset 0 starts a new snapshot (abandoning one in progress); the last one commits it.
#[derive(Default)]
pub struct ChunkWriter {
    current: Option<(LogId, Box<dyn SnapshotWriter>, u64)>,
}

impl std::fmt::Debug for ChunkWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkWriter")
            .field("current", &self.current.as_ref().map(|c| (c.0, c.2)))
            .finish()
    }
}

impl ChunkWriter {
    /// A writer with nothing in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `chunk` into `store` and says how far the snapshot got. Blocks: call it
    /// off the node's thread.
    pub fn write(
        &mut self,
        store: &dyn SnapshotStore,
        chunk: &InstallSnapshotRequest,
    ) -> InstallProgress {
        match self.try_write(store, chunk) {
            Ok(progress) => progress,
            Err(error) => {
                self.current = None;
                InstallProgress::Failed(error)
            }
        }
    }

    fn try_write(
        &mut self,
        store: &dyn SnapshotStore,
        chunk: &InstallSnapshotRequest,
    ) -> Result<InstallProgress, SnapshotError> {
        let id = chunk.meta.last_included;
        if chunk.offset == 0 {
            self.current = Some((id, store.begin(chunk.meta.clone())?, 0));
        }
        let Some((current, writer, written)) = self.current.as_mut() else {
            return Err(SnapshotError::Malformed(format!(
                "chunk at {} of snapshot {id:?} with no transfer in progress",
                chunk.offset
            )));
        };
        if *current != id || *written != chunk.offset {
            return Err(SnapshotError::Malformed(format!(
                "chunk at {} of snapshot {id:?} does not follow byte {written} of {current:?}",
                chunk.offset
            )));
        }
        writer.write_chunk(&chunk.data)?;
        *written += chunk.data.len() as u64;
        let end = *written;
        if !chunk.done {
            return Ok(InstallProgress::Stored { end });
        }
        let (_, writer, _) = self.current.take().expect("checked above");
        writer.commit()?;
        match store.open_latest()? {
            Some((meta, reader)) if meta.last_included == id => {
                Ok(InstallProgress::Committed(reader))
            }
            _ => Err(SnapshotError::Corrupt(format!(
                "snapshot {id:?} was committed but the store does not hold it"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{read_all, MemSnapshotStore, VecChunks};

    fn store_with(bytes: &[u8], last: LogId) -> MemSnapshotStore {
        let store = MemSnapshotStore::new();
        let meta = SnapshotMeta {
            last_included: last,
            membership: crate::core::ClusterConfig::bootstrap([1, 2]),
        };
        // Source chunks of odd sizes: the reader re-cuts them.
        let pieces: Vec<Bytes> = bytes.chunks(7).map(Bytes::copy_from_slice).collect();
        crate::snapshot::write_snapshot(&store, meta, &mut VecChunks::new(pieces), 5).unwrap();
        store
    }

    fn send(offset: u64, len: usize, snapshot: LogId) -> SnapshotSend {
        SnapshotSend {
            to: 2,
            term: 3,
            snapshot,
            offset,
            len,
        }
    }

    fn chunk_of(env: Option<Envelope>) -> InstallSnapshotRequest {
        match env.expect("a chunk").message {
            Message::InstallSnapshot(req) => *req,
            other => panic!("not a chunk: {other:?}"),
        }
    }

    #[test]
    fn reader_cuts_exact_chunks_and_flags_the_last() {
        let bytes: Vec<u8> = (0..50u8).collect();
        let last = LogId::new(2, 9);
        let store = store_with(&bytes, last);
        let mut reader = ChunkReader::new();
        let mut got = Vec::new();
        for k in 0..5 {
            let c = chunk_of(reader.read(&store, 1, &send(k * 10, 10, last)).unwrap());
            assert_eq!(c.offset, k * 10);
            assert_eq!(c.data.len(), 10);
            assert_eq!(c.done, k == 4, "chunk {k}");
            got.extend_from_slice(&c.data);
        }
        assert_eq!(got, bytes);
        assert!(reader
            .read(&store, 1, &send(50, 10, last))
            .unwrap()
            .is_none());
        // A resend behind the reader's position reopens the store.
        let c = chunk_of(reader.read(&store, 1, &send(20, 10, last)).unwrap());
        assert_eq!(&c.data[..], &bytes[20..30]);
        // Another snapshot than the store's: nothing to send.
        let other = LogId::new(2, 8);
        assert!(reader
            .read(&store, 1, &send(0, 10, other))
            .unwrap()
            .is_none());
    }

    #[test]
    fn writer_commits_in_order_and_refuses_gaps() {
        let bytes: Vec<u8> = (0..25u8).collect();
        let last = LogId::new(2, 9);
        let source = store_with(&bytes, last);
        let target = MemSnapshotStore::new();
        let mut reader = ChunkReader::new();
        let mut writer = ChunkWriter::new();
        let first = chunk_of(reader.read(&source, 1, &send(0, 10, last)).unwrap());
        let second = chunk_of(reader.read(&source, 1, &send(10, 10, last)).unwrap());
        let third = chunk_of(reader.read(&source, 1, &send(20, 10, last)).unwrap());
        assert!(matches!(
            writer.write(&target, &second),
            InstallProgress::Failed(_)
        ));
        assert!(matches!(
            writer.write(&target, &first),
            InstallProgress::Stored { end: 10 }
        ));
        assert!(matches!(
            writer.write(&target, &second),
            InstallProgress::Stored { end: 20 }
        ));
        assert_eq!(
            target.latest_meta(),
            None,
            "nothing committed before the end"
        );
        match writer.write(&target, &third) {
            InstallProgress::Committed(mut reader) => {
                assert_eq!(read_all(reader.as_mut()).unwrap(), bytes);
            }
            other => panic!("expected a commit, got {other:?}"),
        }
        assert_eq!(target.latest_meta().map(|m| m.last_included), Some(last));
    }
}
