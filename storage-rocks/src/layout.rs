//! The on-disk layout: column families, keys, and the encoding of every stored value.
//!
//! Everything that decides how bytes look on disk lives in this one module, so a change
//! of format is a change here plus a new [`FORMAT_VERSION`].
//!
//! | column family | key | value |
//! |---|---|---|
//! | [`ENTRIES_CF`] | index, 8 bytes big-endian | term (8 bytes BE), payload tag (1 byte: 0 no-op, 1 command, 2 configuration), command bytes or [configuration](encode_config) |
//! | [`META_CF`] | [`MAGIC_KEY`] | [`MAGIC`] |
//! | [`META_CF`] | [`VERSION_KEY`] | format version, 4 bytes BE |
//! | [`META_CF`] | [`HARD_STATE_KEY`] | term (8 bytes BE), vote flag (1 byte), vote (8 bytes BE) |
//! | [`META_CF`] | [`PREFIX_KEY`] | term (8 bytes BE), index (8 bytes BE) of the last compacted entry |
//!
//! Big-endian index keys sort in log order under RocksDB's default bytewise comparator,
//! so a range of the log is a range of keys: reads are one forward scan, truncation and
//! compaction are one range delete each. The hard state lives in its own column family
//! so that scans of the log never step over it.

use actraft::core::{ClusterConfig, Entry, HardState, LogId, LogIndex, Membership, Payload, Term};
use bytes::Bytes;

use crate::error::Corruption;

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
/// A membership entry. Added within format 1: stores without membership entries are
/// unchanged, and a build that predates the tag refuses such an entry with
/// [`Corruption::BadPayloadTag`] rather than misread it.
const TAG_MEMBERSHIP: u8 = 2;

const CONFIG_STABLE: u8 = 0;
const CONFIG_JOINT: u8 = 1;

/// The key of the entry at `index`.
pub(crate) fn entry_key(index: LogIndex) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index an entry key names.
pub(crate) fn decode_entry_key(key: &[u8]) -> Result<LogIndex, Corruption> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| Corruption::BadLength {
        what: "entry key",
        len: key.len(),
    })?;
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
        Payload::Membership(config) => {
            out.push(TAG_MEMBERSHIP);
            encode_config(config, &mut out);
        }
    }
    out
}

/// Encodes a cluster configuration: a kind byte (0 stable, 1 joint) and then one
/// membership (stable) or two (old, new). A membership is its voters (count u32 BE, ids
/// u64 BE), its learners (the same) and its addresses (count u32 BE, then per address:
/// id u64 BE, length u32 BE, UTF-8 bytes), each list in ascending id order.
pub fn encode_config(config: &ClusterConfig, out: &mut Vec<u8>) {
    match config {
        ClusterConfig::Stable(m) => {
            out.push(CONFIG_STABLE);
            encode_membership(m, out);
        }
        ClusterConfig::Joint { old, new } => {
            out.push(CONFIG_JOINT);
            encode_membership(old, out);
            encode_membership(new, out);
        }
    }
}

fn encode_membership(m: &Membership, out: &mut Vec<u8>) {
    for set in [m.voters(), m.learners()] {
        out.extend_from_slice(&(set.len() as u32).to_be_bytes());
        for id in set {
            out.extend_from_slice(&id.to_be_bytes());
        }
    }
    out.extend_from_slice(&(m.addresses().len() as u32).to_be_bytes());
    for (id, address) in m.addresses() {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(address.len() as u32).to_be_bytes());
        out.extend_from_slice(address.as_bytes());
    }
}

/// Decodes a configuration written by [`encode_config`]; `None` when the bytes are not
/// exactly one well-formed configuration.
pub fn decode_config(bytes: &[u8]) -> Option<ClusterConfig> {
    let mut r = Reader { bytes, at: 0 };
    let config = match r.u8()? {
        CONFIG_STABLE => ClusterConfig::Stable(decode_membership(&mut r)?),
        CONFIG_JOINT => ClusterConfig::Joint {
            old: decode_membership(&mut r)?,
            new: decode_membership(&mut r)?,
        },
        _ => return None,
    };
    (r.at == bytes.len()).then_some(config)
}

fn decode_membership(r: &mut Reader<'_>) -> Option<Membership> {
    let voters = r.ids()?;
    let learners = r.ids()?;
    let mut m = Membership::new(voters, learners);
    for _ in 0..r.u32()? {
        let id = r.u64()?;
        let len = r.u32()? as usize;
        let address = std::str::from_utf8(r.take(len)?).ok()?;
        if !m.contains(id) || address.is_empty() {
            return None;
        }
        m = m.with_address(id, address);
    }
    Some(m)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn ids(&mut self) -> Option<Vec<u64>> {
        let n = self.u32()? as usize;
        // Each id takes 8 bytes: a corrupt count fails here, before allocating.
        if n > (self.bytes.len() - self.at) / 8 {
            return None;
        }
        (0..n).map(|_| self.u64()).collect()
    }
}

/// Reads only the term of an encoded entry, without copying its payload.
pub(crate) fn decode_entry_term(value: &[u8]) -> Result<Term, Corruption> {
    value
        .get(..8)
        .map(|b| Term::from_be_bytes(b.try_into().expect("8 bytes")))
        .ok_or(Corruption::BadLength {
            what: "entry value",
            len: value.len(),
        })
}

/// Decodes the entry stored at `index`.
pub(crate) fn decode_entry(index: LogIndex, value: &[u8]) -> Result<Entry, Corruption> {
    let term = decode_entry_term(value)?;
    let payload = match value.get(8) {
        Some(&TAG_NOOP) if value.len() == 9 => Payload::Noop,
        Some(&TAG_COMMAND) => Payload::Command(Bytes::copy_from_slice(&value[9..])),
        Some(&TAG_MEMBERSHIP) => match decode_config(&value[9..]) {
            Some(config) => Payload::Membership(Box::new(config)),
            None => {
                return Err(Corruption::BadPayloadTag {
                    index,
                    tag: Some(TAG_MEMBERSHIP),
                })
            }
        },
        other => {
            return Err(Corruption::BadPayloadTag {
                index,
                tag: other.copied(),
            })
        }
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
pub(crate) fn decode_hard_state(value: &[u8]) -> Result<HardState, Corruption> {
    let bytes: &[u8; 17] = value.try_into().map_err(|_| Corruption::BadLength {
        what: "hard state",
        len: value.len(),
    })?;
    let current_term = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let vote = u64::from_be_bytes(bytes[9..].try_into().expect("8 bytes"));
    let voted_for = match bytes[8] {
        0 => None,
        1 => Some(vote),
        flag => return Err(Corruption::BadVoteFlag { flag }),
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
pub(crate) fn decode_log_id(value: &[u8]) -> Result<LogId, Corruption> {
    let bytes: &[u8; 16] = value.try_into().map_err(|_| Corruption::BadLength {
        what: "log id",
        len: value.len(),
    })?;
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
pub(crate) fn decode_version(value: &[u8]) -> Result<u32, Corruption> {
    let bytes: [u8; 4] = value.try_into().map_err(|_| Corruption::BadLength {
        what: "format version",
        len: value.len(),
    })?;
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
            Payload::Membership(Box::new(ClusterConfig::bootstrap([1, 2, 3]))),
            Payload::Membership(Box::new(ClusterConfig::Joint {
                old: Membership::new([1, 2, 3], [4]).with_address(4, "d:7000"),
                new: Membership::new([2, 3, 4], []).with_address(4, "d:7000"),
            })),
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
        // A membership entry cut short, or with trailing bytes, is refused.
        let mut value = encode_entry(&Entry {
            term: 1,
            index: 1,
            payload: Payload::Membership(Box::new(ClusterConfig::bootstrap([1]))),
        });
        assert!(decode_entry(1, &value[..value.len() - 1]).is_err());
        value.push(0);
        assert!(decode_entry(1, &value).is_err());
        assert!(
            decode_config(&[0, 0xff, 0xff, 0xff, 0xff]).is_none(),
            "huge count"
        );
    }

    #[test]
    fn membership_entry_golden_bytes() {
        let e = Entry {
            term: 2,
            index: 9,
            payload: Payload::Membership(Box::new(ClusterConfig::Stable(
                Membership::new([1], [2]).with_address(2, "b"),
            ))),
        };
        let hex: String = encode_entry(&e)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            concat!(
                "0000000000000002",
                "02",
                "00",
                "00000001",
                "0000000000000001",
                "00000001",
                "0000000000000002",
                "00000001",
                "0000000000000002",
                "00000001",
                "62"
            )
        );
    }

    /// The exact bytes of every stored value in format version 1. A change here fails
    /// this test: stores already on disk hold these bytes, so a new layout is a new
    /// [`FORMAT_VERSION`] (with its own golden values here), and the old one stays in
    /// [`SUPPORTED_VERSIONS`] for as long as this build must read it.
    #[test]
    fn format_v1_golden_bytes() {
        fn hex(bytes: &[u8]) -> String {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
        assert_eq!(
            FORMAT_VERSION, 1,
            "a new format needs its own golden values"
        );
        let noop = Entry {
            term: 0x0102,
            index: 7,
            payload: Payload::Noop,
        };
        let command = Entry {
            term: 5,
            index: 8,
            payload: Payload::Command(Bytes::from_static(b"set x")),
        };
        let golden: [(&str, Vec<u8>, &str); 9] = [
            ("entry key", entry_key(0x0a0b).to_vec(), "0000000000000a0b"),
            ("no-op entry", encode_entry(&noop), "000000000000010200"),
            (
                "command entry",
                encode_entry(&command),
                "0000000000000005017365742078",
            ),
            (
                "empty command",
                encode_entry(&Entry {
                    payload: Payload::Command(Bytes::new()),
                    ..command.clone()
                }),
                "000000000000000501",
            ),
            (
                "hard state with a vote",
                encode_hard_state(&HardState {
                    current_term: 9,
                    voted_for: Some(3),
                })
                .to_vec(),
                "0000000000000009010000000000000003",
            ),
            (
                "hard state without a vote",
                encode_hard_state(&HardState {
                    current_term: 9,
                    voted_for: None,
                })
                .to_vec(),
                "0000000000000009000000000000000000",
            ),
            (
                "prefix",
                encode_log_id(&LogId::new(4, 1000)).to_vec(),
                "000000000000000400000000000003e8",
            ),
            ("format version", encode_version(1).to_vec(), "00000001"),
            (
                "magic",
                MAGIC.to_vec(),
                "616374726166742d6c6f672d73746f72616765",
            ),
        ];
        for (what, bytes, expected) in golden {
            assert_eq!(hex(&bytes), expected, "{what}: the on-disk format changed");
        }
        // And the golden bytes read back.
        assert_eq!(decode_entry(7, &encode_entry(&noop)).unwrap(), noop);
        assert_eq!(decode_entry(8, &encode_entry(&command)).unwrap(), command);
        assert_eq!(
            [ENTRIES_CF, META_CF],
            ["entries", "meta"],
            "column family names are part of the format"
        );
        assert_eq!(
            [MAGIC_KEY, VERSION_KEY, HARD_STATE_KEY, PREFIX_KEY],
            [&b"magic"[..], b"format_version", b"hard_state", b"prefix"],
            "meta keys are part of the format"
        );
    }

    #[test]
    fn bad_values_are_typed_corruption() {
        assert_eq!(
            decode_entry(1, &[0; 7]),
            Err(Corruption::BadLength {
                what: "entry value",
                len: 7
            })
        );
        assert_eq!(
            decode_entry(3, &[0, 0, 0, 0, 0, 0, 0, 1, 9]),
            Err(Corruption::BadPayloadTag {
                index: 3,
                tag: Some(9)
            })
        );
        assert_eq!(
            decode_entry(3, &[0, 0, 0, 0, 0, 0, 0, 1]),
            Err(Corruption::BadPayloadTag {
                index: 3,
                tag: None
            })
        );
        let mut hs = encode_hard_state(&HardState::default());
        hs[8] = 2;
        assert_eq!(
            decode_hard_state(&hs),
            Err(Corruption::BadVoteFlag { flag: 2 })
        );
        assert!(matches!(
            decode_log_id(&[0; 15]),
            Err(Corruption::BadLength { what: "log id", .. })
        ));
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
