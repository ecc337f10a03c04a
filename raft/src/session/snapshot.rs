//! Snapshots of a [`SessionStateMachine`]: the session table, then the user's snapshot.
//!
//! Format: a version byte ([`SNAPSHOT_VERSION`]), the encoded table's length (u64 BE),
//! the table ([`SessionTable::encode`]), then the wrapped machine's snapshot stream as it
//! produced it. The table is bounded by [`SessionConfig::max_sessions`], so it is encoded
//! at once when the snapshot is taken; the user's state streams after it. Restoring
//! decodes the table first and swaps it in only once the wrapped machine restored too,
//! so a failed restore changes neither.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{SessionStateMachine, SessionTable};
use crate::snapshot::{SnapshotChunks, SnapshotError, SnapshotMeta};
use crate::state_machine::{foreign_decoded_snapshot, DecodedSnapshot, SnapshotDecoder};
use crate::StateMachine;

/// Version of the session layer's snapshot framing.
pub const SNAPSHOT_VERSION: u8 = 1;

/// The session table's bytes, then the wrapped machine's chunks.
struct Framed {
    head: Option<Bytes>,
    inner: Box<dyn SnapshotChunks>,
}

impl SnapshotChunks for Framed {
    fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, SnapshotError> {
        match self.head.take() {
            Some(head) => Ok(Some(head)),
            None => self.inner.next_chunk(max_len),
        }
    }
}

/// A stream with bytes already read from it put back in front.
struct Rest<'a> {
    front: Bytes,
    chunks: &'a mut dyn SnapshotChunks,
}

impl SnapshotChunks for Rest<'_> {
    fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, SnapshotError> {
        if !self.front.is_empty() {
            return Ok(Some(std::mem::take(&mut self.front)));
        }
        self.chunks.next_chunk(max_len)
    }
}

impl Rest<'_> {
    /// Reads exactly `n` bytes.
    fn take(&mut self, n: usize, what: &str) -> Result<Bytes, SnapshotError> {
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(mut chunk) = self.next_chunk(n - out.len())? else {
                return Err(SnapshotError::Malformed(format!(
                    "session snapshot ends inside the {what}"
                )));
            };
            let want = (n - out.len()).min(chunk.len());
            out.put_slice(&chunk.split_to(want));
            self.front = chunk;
        }
        Ok(out.freeze())
    }

    /// Reads the framing and the session table, leaving the wrapped machine's stream.
    fn table(&mut self, like: &SessionTable) -> Result<SessionTable, SnapshotError> {
        let mut head = self.take(9, "header")?;
        let version = head.get_u8();
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Malformed(format!(
                "session snapshot version {version}, expected {SNAPSHOT_VERSION}"
            )));
        }
        let len = usize::try_from(head.get_u64())
            .map_err(|_| SnapshotError::Malformed("session table length overflows".into()))?;
        let bytes = self.take(len, "session table")?;
        SessionTable::decode(&bytes, like.config())
            .map_err(|e| SnapshotError::Malformed(format!("session table: {e}")))
    }
}

impl<M: StateMachine> SessionStateMachine<M> {
    pub(super) fn snapshot_framed(&mut self) -> Option<Box<dyn SnapshotChunks>> {
        let inner = self.inner.snapshot()?;
        let table = self.table.encode();
        let mut head = BytesMut::with_capacity(9 + table.len());
        head.put_u8(SNAPSHOT_VERSION);
        head.put_u64(table.len() as u64);
        head.put_slice(&table);
        Some(Box::new(Framed {
            head: Some(head.freeze()),
            inner,
        }))
    }

    pub(super) fn restore_framed(
        &mut self,
        meta: &SnapshotMeta,
        chunks: &mut dyn SnapshotChunks,
    ) -> Result<(), SnapshotError> {
        let mut rest = Rest {
            front: Bytes::new(),
            chunks,
        };
        let table = rest.table(&self.table)?;
        self.inner.restore(meta, &mut rest)?;
        self.table = table;
        Ok(())
    }

    pub(super) fn decoder_framed(&self) -> Option<SnapshotDecoder> {
        let inner = self.inner.snapshot_decoder()?;
        let like = SessionTable::new(self.table.config());
        Some(Box::new(move |meta, chunks| {
            let mut rest = Rest {
                front: Bytes::new(),
                chunks,
            };
            let table = rest.table(&like)?;
            let decoded = inner(meta, &mut rest)?;
            let both: DecodedSnapshot = Box::new((table, decoded));
            Ok(both)
        }))
    }

    pub(super) fn install_framed(
        &mut self,
        meta: &SnapshotMeta,
        decoded: DecodedSnapshot,
    ) -> Result<(), SnapshotError> {
        let (table, inner) = *decoded
            .downcast::<(SessionTable, DecodedSnapshot)>()
            .map_err(|_| foreign_decoded_snapshot())?;
        self.inner.install_decoded(meta, inner)?;
        self.table = table;
        Ok(())
    }
}
