//! The `SnapshotStore` trait: where a node keeps its latest snapshot.

use super::{SnapshotChunks, SnapshotError, SnapshotMeta};

/// A stored snapshot as a store hands it out: its metadata and a reader over its bytes.
pub type StoredSnapshot = (SnapshotMeta, Box<dyn SnapshotChunks>);

/// Durable storage for one node's latest snapshot.
///
/// # Correctness rules
///
/// 1. **One snapshot, replaced atomically.** The store holds at most one snapshot.
///    [`SnapshotWriter::commit`] replaces it as one step: after a crash at any point
///    the store holds either the old snapshot or the new one, whole, never a mix or a
///    torn file. A writer dropped without `commit` leaves the old snapshot untouched.
/// 2. **Durable on commit.** When `commit` returns `Ok`, the new snapshot survives a
///    crash of the process and, for a disk store, of the machine (data synced, the
///    rename synced in its directory). Only then may the node compact its log up to
///    the snapshot's last index.
/// 3. **Never backwards.** `commit` refuses, with [`SnapshotError::Stale`], a snapshot
///    whose last included index is below the stored one's: the log before the stored
///    snapshot may already be gone.
/// 4. **Checked on read.** A disk store verifies a checksum and refuses a corrupt or
///    short snapshot with [`SnapshotError::Corrupt`]; it never hands out bytes it
///    cannot vouch for.
/// 5. **Blocking calls, off the node's thread.** Every method may block on the device.
///    The node calls them from a worker thread, never from its own.
pub trait SnapshotStore: std::fmt::Debug + Send + Sync + 'static {
    /// The metadata of the stored snapshot, if any.
    fn latest(&self) -> Result<Option<SnapshotMeta>, SnapshotError>;

    /// The stored snapshot: its metadata and a reader over its bytes.
    fn open_latest(&self) -> Result<Option<StoredSnapshot>, SnapshotError>;

    /// Starts writing a new snapshot with this metadata.
    fn begin(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>, SnapshotError>;
}

/// A snapshot being written. Dropping it without [`commit`](Self::commit) discards it.
pub trait SnapshotWriter: Send {
    /// Appends the next chunk of the snapshot's bytes.
    fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), SnapshotError>;

    /// Makes the snapshot durable and the store's latest (rules 1 to 3).
    fn commit(self: Box<Self>) -> Result<(), SnapshotError>;
}

/// Writes everything `source` yields into `store` as a snapshot with `meta`, and
/// commits it. Returns the number of bytes written. Blocks: run it off the node's
/// thread.
pub fn write_snapshot(
    store: &dyn SnapshotStore,
    meta: SnapshotMeta,
    source: &mut dyn SnapshotChunks,
    chunk_len: usize,
) -> Result<u64, SnapshotError> {
    let mut writer = store.begin(meta)?;
    let mut total = 0u64;
    while let Some(chunk) = source.next_chunk(chunk_len)? {
        writer.write_chunk(&chunk)?;
        total += chunk.len() as u64;
    }
    writer.commit()?;
    Ok(total)
}
