//! Snapshots of the key-value map: the model for a service's own snapshot hooks.
//!
//! `KvMachine::snapshot` freezes the map (a [`KvMap`] copies only its shard pointers;
//! later writes copy the shards they touch) and hands it to a [`KvSnapshotSource`],
//! which encodes it lazily, chunk by chunk, on the thread that writes the snapshot. The
//! node's thread does no work in proportion to the map's size. `KvMachine::restore`
//! decodes the chunks into a fresh map with a [`KvSnapshotDecoder`] (straight into a
//! [`KvMap`]) and swaps it in only when the whole snapshot decoded.
//!
//! Encoding: a sequence of records, each `key_len: u32 BE, key, value_len: u32 BE,
//! value`, shard by shard (in key order within a shard). Records may straddle chunk
//! boundaries.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use crate::kv_map::KvMap;

use actraft::{SnapshotChunks, SnapshotError};
use bytes::{BufMut, Bytes, BytesMut};

/// Encodes a frozen copy of the map into chunks.
pub struct KvSnapshotSource {
    /// The frozen shards, read in place (shared with the node until it writes to them).
    shards: Vec<Arc<BTreeMap<String, String>>>,
    /// The shard being encoded.
    shard: usize,
    /// The last key encoded from that shard.
    after: Option<String>,
}

impl KvSnapshotSource {
    /// A source over this (frozen) map.
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Self {
            shards: vec![Arc::new(map)],
            shard: 0,
            after: None,
        }
    }

    /// A source over a frozen [`KvMap`].
    pub fn from_map(map: KvMap) -> Self {
        Self {
            shards: map.into_shards(),
            shard: 0,
            after: None,
        }
    }
}

impl SnapshotChunks for KvSnapshotSource {
    fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, SnapshotError> {
        let mut buf = BytesMut::new();
        let max_len = max_len.max(1);
        // A record longer than `max_len` goes whole into its own chunk.
        while buf.len() < max_len {
            let Some(shard) = self.shards.get(self.shard) else {
                break;
            };
            let records: Box<dyn Iterator<Item = (&String, &String)>> = match &self.after {
                None => Box::new(shard.iter()),
                Some(after) => {
                    Box::new(shard.range::<str, _>((Excluded(after.as_str()), Unbounded)))
                }
            };
            let mut last = None;
            let mut finished = true;
            for (key, value) in records {
                if buf.len() >= max_len {
                    finished = false;
                    break;
                }
                buf.put_u32(key.len() as u32);
                buf.put_slice(key.as_bytes());
                buf.put_u32(value.len() as u32);
                buf.put_slice(value.as_bytes());
                last = Some(key);
            }
            if finished {
                self.shard += 1;
                self.after = None;
            } else if let Some(key) = last {
                self.after = Some(key.clone());
            }
        }
        Ok((!buf.is_empty()).then(|| buf.freeze()))
    }
}

/// Decodes snapshot chunks into a map.
#[derive(Default)]
pub struct KvSnapshotDecoder {
    pending: Vec<u8>,
    map: KvMap,
}

impl KvSnapshotDecoder {
    /// Feeds the next chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), SnapshotError> {
        self.pending.extend_from_slice(chunk);
        let mut at = 0;
        while let Some((key, value, next)) = record(&self.pending, at)? {
            self.map.insert(key, value);
            at = next;
        }
        self.pending.drain(..at);
        Ok(())
    }

    /// The decoded map; an error when the stream ended inside a record.
    pub fn finish(self) -> Result<KvMap, SnapshotError> {
        if !self.pending.is_empty() {
            return Err(SnapshotError::Malformed(format!(
                "{} trailing bytes after the last record",
                self.pending.len()
            )));
        }
        Ok(self.map)
    }

    /// Decodes a whole stream.
    pub fn decode_all(chunks: &mut dyn SnapshotChunks) -> Result<KvMap, SnapshotError> {
        let mut decoder = Self::default();
        while let Some(chunk) = chunks.next_chunk(64 * 1024)? {
            decoder.push(&chunk)?;
        }
        decoder.finish()
    }
}

/// The record at `at`, if complete: key, value and the offset after it.
fn record(buf: &[u8], at: usize) -> Result<Option<(String, String, usize)>, SnapshotError> {
    let Some((key, at)) = field(buf, at)? else {
        return Ok(None);
    };
    let Some((value, at)) = field(buf, at)? else {
        return Ok(None);
    };
    Ok(Some((key, value, at)))
}

fn field(buf: &[u8], at: usize) -> Result<Option<(String, usize)>, SnapshotError> {
    let Some(len) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
    let Some(text) = buf.get(at + 4..at + 4 + len) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(text)
        .map_err(|e| SnapshotError::Malformed(format!("a key or value is not UTF-8: {e}")))?;
    Ok(Some((text.to_string(), at + 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvCommand, KvMachine};
    use actraft::{LogId, SnapshotMeta, StateMachine};

    fn put(kv: &mut KvMachine, i: u64, key: &str, value: &str) {
        let cmd = KvCommand::Put {
            key: key.into(),
            value: value.into(),
        };
        assert_eq!(kv.apply(i, &cmd.encode()), "ok");
    }

    fn get(kv: &mut KvMachine, key: &str) -> Bytes {
        kv.apply(0, &KvCommand::Get { key: key.into() }.encode())
    }

    #[test]
    fn snapshot_round_trips_across_small_chunks_and_is_frozen() {
        let mut kv = KvMachine::new();
        for i in 0..100 {
            put(&mut kv, i + 1, &format!("key{i}"), &format!("value {i}"));
        }
        let mut source = kv.snapshot().expect("the KV store snapshots");
        // Applies after the capture do not show in the snapshot.
        put(&mut kv, 101, "key0", "changed");
        let mut chunks = Vec::new();
        while let Some(chunk) = source.next_chunk(7).unwrap() {
            chunks.push(chunk);
        }
        assert!(chunks.len() > 10, "small chunks: {}", chunks.len());
        // Re-split at odd boundaries to cross records.
        let all: Vec<u8> = chunks.concat();
        let odd = all.chunks(5).map(Bytes::copy_from_slice);
        let mut restored = KvMachine::new();
        put(&mut restored, 1, "stale", "gone");
        let meta = SnapshotMeta {
            last_included: LogId::new(1, 100),
            membership: actraft::ClusterConfig::bootstrap([1]),
        };
        restored
            .restore(&meta, &mut actraft::snapshot::VecChunks::new(odd))
            .unwrap();
        assert_eq!(get(&mut restored, "key0"), "value value 0");
        assert_eq!(get(&mut restored, "key99"), "value value 99");
        assert_eq!(get(&mut restored, "stale"), "not-found");
    }

    #[test]
    fn truncated_snapshot_refused_and_state_kept() {
        let mut kv = KvMachine::new();
        put(&mut kv, 1, "a", "1");
        let bytes = actraft::snapshot::read_all(kv.snapshot().unwrap().as_mut()).unwrap();
        let torn = Bytes::copy_from_slice(&bytes[..bytes.len() - 1]);
        let mut target = KvMachine::new();
        put(&mut target, 1, "b", "2");
        let err = target
            .restore(
                &SnapshotMeta::default(),
                &mut actraft::snapshot::VecChunks::new([torn]),
            )
            .unwrap_err();
        assert!(matches!(err, SnapshotError::Malformed(_)), "{err}");
        assert_eq!(get(&mut target, "b"), "value 2");
    }
}
