//! An in-memory snapshot store.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::{
    SnapshotChunks, SnapshotError, SnapshotMeta, SnapshotStore, SnapshotWriter, StoredSnapshot,
    VecChunks,
};

#[derive(Debug, Default)]
struct Stored {
    meta: SnapshotMeta,
    chunks: Vec<Bytes>,
}

/// A [`SnapshotStore`] in memory. Clones share one store, so a test can keep a clone,
/// drop a node and start another on the same store. Nothing survives the process.
#[derive(Debug, Clone, Default)]
pub struct MemSnapshotStore {
    inner: Arc<Mutex<Option<Stored>>>,
}

impl MemSnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Stored>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored snapshot's metadata, if any (what [`SnapshotStore::latest`] says,
    /// without the `Result`: this store cannot fail).
    pub fn latest_meta(&self) -> Option<SnapshotMeta> {
        self.lock().as_ref().map(|s| s.meta.clone())
    }

    /// The stored snapshot's size in bytes (0 without one).
    pub fn size(&self) -> u64 {
        self.lock()
            .as_ref()
            .map_or(0, |s| s.chunks.iter().map(|c| c.len() as u64).sum())
    }
}

impl SnapshotStore for MemSnapshotStore {
    fn latest(&self) -> Result<Option<SnapshotMeta>, SnapshotError> {
        Ok(self.lock().as_ref().map(|s| s.meta.clone()))
    }

    fn open_latest(&self) -> Result<Option<StoredSnapshot>, SnapshotError> {
        Ok(self.lock().as_ref().map(|s| {
            let chunks: Box<dyn SnapshotChunks> = Box::new(VecChunks::new(s.chunks.clone()));
            (s.meta.clone(), chunks)
        }))
    }

    fn begin(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>, SnapshotError> {
        Ok(Box::new(MemWriter {
            store: self.clone(),
            meta,
            chunks: Vec::new(),
        }))
    }
}

struct MemWriter {
    store: MemSnapshotStore,
    meta: SnapshotMeta,
    chunks: Vec<Bytes>,
}

impl SnapshotWriter for MemWriter {
    fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), SnapshotError> {
        self.chunks.push(Bytes::copy_from_slice(chunk));
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), SnapshotError> {
        let mut stored = self.store.lock();
        if let Some(old) = stored.as_ref() {
            if self.meta.last_included.index < old.meta.last_included.index {
                return Err(SnapshotError::Stale {
                    index: self.meta.last_included.index,
                    stored: old.meta.last_included.index,
                });
            }
        }
        *stored = Some(Stored {
            meta: self.meta,
            chunks: self.chunks,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::LogId;
    use crate::snapshot::{read_all, store::write_snapshot};

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_included: LogId::new(2, index),
            membership: crate::core::ClusterConfig::bootstrap([1, 2, 3]),
        }
    }

    #[test]
    fn commit_replaces_and_drop_discards() {
        let store = MemSnapshotStore::new();
        assert_eq!(store.latest().unwrap(), None);
        let mut src = VecChunks::new([Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        assert_eq!(write_snapshot(&store, meta(5), &mut src, 2).unwrap(), 4);
        // A writer dropped before commit changes nothing.
        let mut w = store.begin(meta(9)).unwrap();
        w.write_chunk(b"zz").unwrap();
        drop(w);
        let (m, mut chunks) = store.open_latest().unwrap().unwrap();
        assert_eq!(m, meta(5));
        assert_eq!(read_all(chunks.as_mut()).unwrap(), b"abcd");
    }

    #[test]
    fn older_snapshot_refused() {
        let store = MemSnapshotStore::new();
        store.begin(meta(7)).unwrap().commit().unwrap();
        let err = store.begin(meta(6)).unwrap().commit().unwrap_err();
        assert!(matches!(
            err,
            SnapshotError::Stale {
                index: 6,
                stored: 7
            }
        ));
        assert_eq!(store.latest().unwrap(), Some(meta(7)));
    }
}
