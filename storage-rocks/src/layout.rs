//! The on-disk layout: column families, keys, and the encoding of every stored value.
//!
//! Everything that decides how bytes look on disk lives in this one module, so a change
//! of format is a change here plus a new [`FORMAT_VERSION`].
//!
//! | column family | key | value |
//! |---|---|---|
//! | [`ENTRIES_CF`] | index, 8 bytes big-endian | term (8 bytes BE), payload tag (1 byte: 0 no-op, 1 command), command bytes |
//! | [`META_CF`] | [`MAGIC_KEY`] | [`MAGIC`] |
//! | [`META_CF`] | [`VERSION_KEY`] | format version, 4 bytes BE |
//! | [`META_CF`] | [`HARD_STATE_KEY`] | term (8 bytes BE), vote flag (1 byte), vote (8 bytes BE) |
//! | [`META_CF`] | [`PREFIX_KEY`] | term (8 bytes BE), index (8 bytes BE) of the last compacted entry |
//!
//! Big-endian index keys sort in log order under RocksDB's default bytewise comparator,
//! so a range of the log is a range of keys: reads are one forward scan, truncation and
//! compaction are one range delete each. The hard state lives in its own column family
//! so that scans of the log never step over it.

use actraft::core::{Entry, HardState, LogId, LogIndex, Payload, Term};
use bytes::Bytes;

/// Column family of the log entries.
pub const ENTRIES_CF: &str = "entries";
/// Column family of the store's identity, format version, hard state and prefix.
pub const META_CF: &str = "meta";
/// Key of the identity marker: its presence is what makes a directory an actraft store.
pub const MAGIC_KEY: &[u8] = b"magic";
/// The identity marker's value.
pub const MAGIC: &[u8] = b"actraft-log-storage";
/// Key of the format version.
pub const VERSION_KEY: &[u8] = b"format_version";
/// Key of the hard state (term and vote).
pub const HARD_STATE_KEY: &[u8] = b"hard_state";
/// Key of the compacted prefix's last id.
pub const PREFIX_KEY: &[u8] = b"prefix";
/// The format this build writes.
pub const FORMAT_VERSION: u32 = 1;
/// Every format this build reads.
pub const SUPPORTED_VERSIONS: &[u32] = &[FORMAT_VERSION];

const TAG_NOOP: u8 = 0;
const TAG_COMMAND: u8 = 1;

/// The key of the entry at `index`.
pub(crate) fn entry_key(index: LogIndex) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index an entry key names.
pub(crate) fn decode_entry_key(key: &[u8]) -> Result<LogIndex, String> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| format!("entry key of {} bytes, expected 8", key.len()))?;
    Ok(LogIndex::from_be_bytes(bytes))
}

/// Encodes an entry's value (the index is the key).
pub(crate) fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + entry.payload.len());
    out.extend_from_slice(&entry.term.to_be_bytes());
    match &entry.payload {
        Payload::Noop => out.push(TAG_NOOP),
        Payload::Command(bytes) => {
            out.push(TAG_COMMAND);
            out.extend_from_slice(bytes);
        }
    }
    out
}

/// Reads only the term of an encoded entry, without copying its payload.
pub(crate) fn decode_entry_term(value: &[u8]) -> Result<Term, String> {
    value
        .get(..8)
        .map(|b| Term::from_be_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| format!("entry value of {} bytes is too short", value.len()))
}

/// Decodes the entry stored at `index`.
pub(crate) fn decode_entry(index: LogIndex, value: &[u8]) -> Result<Entry, String> {
    let term = decode_entry_term(value)?;
    let payload = match value.get(8) {
        Some(&TAG_NOOP) if value.len() == 9 => Payload::Noop,
        Some(&TAG_COMMAND) => Payload::Command(Bytes::copy_from_slice(&value[9..])),
        other => return Err(format!("entry {index}: bad payload tag {other:?}")),
    };
    Ok(Entry {
        term,
        index,
        payload,
    })
}

/// Encodes the hard state.
pub(crate) fn encode_hard_state(hs: &HardState) -> [u8; 17] {
    let mut out = [0u8; 17];
    out[..8].copy_from_slice(&hs.current_term.to_be_bytes());
    if let Some(vote) = hs.voted_for {
        out[8] = 1;
        out[9..].copy_from_slice(&vote.to_be_bytes());
    }
    out
}

/// Decodes the hard state.
pub(crate) fn decode_hard_state(value: &[u8]) -> Result<HardState, String> {
    let bytes: &[u8; 17] = value
        .try_into()
        .map_err(|_| format!("hard state of {} bytes, expected 17", value.len()))?;
    let current_term = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let vote = u64::from_be_bytes(bytes[9..].try_into().expect("8 bytes"));
    let voted_for = match bytes[8] {
        0 => None,
        1 => Some(vote),
        flag => return Err(format!("hard state: bad vote flag {flag}")),
    };
    Ok(HardState {
        current_term,
        voted_for,
    })
}

/// Encodes a log id (the compacted prefix).
pub(crate) fn encode_log_id(id: &LogId) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&id.term.to_be_bytes());
    out[8..].copy_from_slice(&id.index.to_be_bytes());
    out
}

/// Decodes a log id.
pub(crate) fn decode_log_id(value: &[u8]) -> Result<LogId, String> {
    let bytes: &[u8; 16] = value
        .try_into()
        .map_err(|_| format!("log id of {} bytes, expected 16", value.len()))?;
    Ok(LogId::new(
        u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
        u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")),
    ))
}

/// Encodes a format version.
pub(crate) fn encode_version(version: u32) -> [u8; 4] {
    version.to_be_bytes()
}

/// Decodes a format version.
pub(crate) fn decode_version(value: &[u8]) -> Result<u32, String> {
    let bytes: [u8; 4] = value
        .try_into()
        .map_err(|_| format!("format version of {} bytes, expected 4", value.len()))?;
    Ok(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for payload in [
            Payload::Noop,
            Payload::Command(Bytes::new()),
            Payload::Command(Bytes::from_static(b"hello")),
        ] {
            let e = Entry {
                term: 7,
                index: 42,
                payload,
            };
            let value = encode_entry(&e);
            assert_eq!(decode_entry(42, &value).unwrap(), e);
            assert_eq!(decode_entry_term(&value).unwrap(), 7);
        }
        assert!(decode_entry(1, &[0; 7]).is_err());
        assert!(decode_entry(1, &[0, 0, 0, 0, 0, 0, 0, 1, 9]).is_err());
    }

    #[test]
    fn keys_sort_in_log_order() {
        let mut keys: Vec<_> = [300u64, 1, 256, 2, u64::MAX].map(entry_key).to_vec();
        keys.sort();
        let order: Vec<_> = keys.iter().map(|k| decode_entry_key(k).unwrap()).collect();
        assert_eq!(order, [1, 2, 256, 300, u64::MAX]);
    }

    #[test]
    fn meta_round_trips() {
        for hs in [
            HardState::default(),
            HardState {
                current_term: 9,
                voted_for: Some(3),
            },
        ] {
            assert_eq!(decode_hard_state(&encode_hard_state(&hs)).unwrap(), hs);
        }
        let id = LogId::new(4, 1000);
        assert_eq!(decode_log_id(&encode_log_id(&id)).unwrap(), id);
        assert_eq!(decode_version(&encode_version(3)).unwrap(), 3);
        assert!(decode_hard_state(&[0; 3]).is_err());
    }
}
