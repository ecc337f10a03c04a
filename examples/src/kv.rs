//! A replicated key-value store: the state machine and its command encoding.
//!
//! Commands are text: `put <key> <value>`, `get <key>`, `delete <key>`. A `get` can go
//! through the log (a replicated write per read), or be answered from a replica's own
//! state through a [`KvReader`] once a read barrier
//! ([`RaftHandle::read_index`](actraft::RaftHandle::read_index)) resolved.
//!
//! The service runs the machine inside a [`SessionStateMachine`] ([`replicated`]), so
//! every write is applied exactly once however often a client retries it.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use actraft::session::{SessionConfig, SessionStateMachine};
use actraft::{LogIndex, StateMachine};
use bytes::Bytes;

use crate::kv_map::KvMap;

/// A key-value command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvCommand {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: String,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

impl KvCommand {
    /// The key the command is about.
    pub fn key(&self) -> &str {
        match self {
            KvCommand::Put { key, .. } | KvCommand::Get { key } | KvCommand::Delete { key } => key,
        }
    }

    /// Encodes the command for a proposal.
    pub fn encode(&self) -> Bytes {
        match self {
            KvCommand::Put { key, value } => format!("put {key} {value}").into(),
            KvCommand::Get { key } => format!("get {key}").into(),
            KvCommand::Delete { key } => format!("delete {key}").into(),
        }
    }

    /// Decodes a command; `None` for anything malformed (including an empty key or a
    /// key with white space).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, ' ');
        let verb = parts.next()?;
        let key = parts.next()?.to_string();
        if validate_key(&key).is_err() {
            return None;
        }
        match (verb, parts.next()) {
            ("put", Some(value)) => Some(KvCommand::Put {
                key,
                value: value.to_string(),
            }),
            ("get", None) => Some(KvCommand::Get { key }),
            ("delete", None) => Some(KvCommand::Delete { key }),
            _ => None,
        }
    }
}

/// Checks a key: not empty, no white space or control characters.
pub fn validate_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("the key is empty")
    } else if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("the key contains white space or control characters")
    } else {
        Ok(())
    }
}

/// Checks a value: no line breaks or other control characters (it may contain spaces).
pub fn validate_value(value: &str) -> Result<(), &'static str> {
    if value.chars().any(char::is_control) {
        Err("the value contains control characters")
    } else {
        Ok(())
    }
}

/// What the machine answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvResponse {
    /// A put, or a delete of a key that existed.
    Done,
    /// A get found this value.
    Value(String),
    /// A get or delete found no such key.
    NotFound,
    /// The command could not be decoded; nothing changed.
    Malformed,
}

impl KvResponse {
    /// Encodes the response: `ok`, `value <v>`, `not-found`, `malformed`.
    pub fn encode(&self) -> Bytes {
        match self {
            KvResponse::Done => Bytes::from_static(b"ok"),
            KvResponse::Value(v) => format!("value {v}").into(),
            KvResponse::NotFound => Bytes::from_static(b"not-found"),
            KvResponse::Malformed => Bytes::from_static(b"malformed"),
        }
    }

    /// Decodes a response; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match std::str::from_utf8(bytes).ok()? {
            "ok" => Some(KvResponse::Done),
            "not-found" => Some(KvResponse::NotFound),
            "malformed" => Some(KvResponse::Malformed),
            text => text
                .strip_prefix("value ")
                .map(|v| KvResponse::Value(v.to_string())),
        }
    }
}

type Data = Arc<RwLock<KvMap>>;

/// The key-value state machine.
///
/// Its data sits behind a lock shared with every [`KvReader`] taken from it, so the
/// service can read the replica's state while the node owns the machine.
#[derive(Debug, Default)]
pub struct KvMachine {
    data: Data,
}

/// A read-only view of a [`KvMachine`]'s data, for local reads.
///
/// It shows the replica's state as applied so far: linearizable only after a read
/// barrier ([`RaftHandle::read_index`](actraft::RaftHandle::read_index)) resolved on the
/// node that runs the machine (the state only moves forward, so reading later is fine).
#[derive(Debug, Clone, Default)]
pub struct KvReader {
    data: Data,
}

impl KvReader {
    /// The value of `key`, as this replica holds it now.
    pub fn value(&self, key: &str) -> Option<String> {
        read(&self.data).get(key).cloned()
    }
}

fn read(data: &Data) -> RwLockReadGuard<'_, KvMap> {
    data.read().unwrap_or_else(|e| e.into_inner())
}

fn write(data: &Data) -> RwLockWriteGuard<'_, KvMap> {
    data.write().unwrap_or_else(|e| e.into_inner())
}

impl KvMachine {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, as this replica holds it.
    pub fn value(&self, key: &str) -> Option<String> {
        read(&self.data).get(key).cloned()
    }

    /// A view of this machine's data that follows it as it applies.
    pub fn reader(&self) -> KvReader {
        KvReader {
            data: Arc::clone(&self.data),
        }
    }
}

impl StateMachine for KvMachine {
    fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
        let response = match KvCommand::decode(command) {
            Some(KvCommand::Put { key, value }) => {
                write(&self.data).insert(key, value);
                KvResponse::Done
            }
            Some(KvCommand::Get { key }) => match read(&self.data).get(&key) {
                Some(v) => KvResponse::Value(v.clone()),
                None => KvResponse::NotFound,
            },
            Some(KvCommand::Delete { key }) => match write(&self.data).remove(&key) {
                Some(_) => KvResponse::Done,
                None => KvResponse::NotFound,
            },
            None => KvResponse::Malformed,
        };
        response.encode()
    }

    fn snapshot(&mut self) -> Option<Box<dyn actraft::SnapshotChunks>> {
        // Copies shard pointers only: the node's thread is not held up by a large map.
        let frozen = read(&self.data).frozen();
        Some(Box::new(crate::kv_snapshot::KvSnapshotSource::from_map(
            frozen,
        )))
    }

    fn restore(
        &mut self,
        _meta: &actraft::SnapshotMeta,
        chunks: &mut dyn actraft::SnapshotChunks,
    ) -> Result<(), actraft::SnapshotError> {
        *write(&self.data) = crate::kv_snapshot::KvSnapshotDecoder::decode_all(chunks)?;
        Ok(())
    }

    /// Decoding builds a fresh map on the node's blocking pool; the node thread only
    /// swaps it in ([`install_decoded`](StateMachine::install_decoded)).
    fn snapshot_decoder(&self) -> Option<actraft::SnapshotDecoder> {
        Some(Box::new(|_meta, chunks| {
            let map = crate::kv_snapshot::KvSnapshotDecoder::decode_all(chunks)?;
            let decoded: actraft::DecodedSnapshot = Box::new(map);
            Ok(decoded)
        }))
    }

    fn install_decoded(
        &mut self,
        _meta: &actraft::SnapshotMeta,
        decoded: actraft::DecodedSnapshot,
    ) -> Result<(), actraft::SnapshotError> {
        let map = decoded
            .downcast::<KvMap>()
            .map_err(|_| actraft::SnapshotError::Malformed("not a KV map".into()))?;
        *write(&self.data) = *map;
        Ok(())
    }
}

/// The machine a KV node runs: [`KvMachine`] with client sessions.
pub fn replicated(config: SessionConfig) -> SessionStateMachine<KvMachine> {
    SessionStateMachine::new(KvMachine::new(), config)
}

/// [`replicated`], with a [`KvReader`] on its data for local reads.
pub fn replicated_with_reader(config: SessionConfig) -> (SessionStateMachine<KvMachine>, KvReader) {
    let kv = KvMachine::new();
    let reader = kv.reader();
    (SessionStateMachine::new(kv, config), reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot restores by either path: on the node's thread, or decoded elsewhere and
    /// swapped in; a foreign decoded state is refused and changes nothing.
    #[test]
    fn snapshots_restore_by_either_path() {
        let mut a = KvMachine::new();
        for i in 0..500 {
            let put = KvCommand::Put {
                key: format!("k{i}"),
                value: format!("v{i}"),
            };
            a.apply(i + 1, &put.encode());
        }
        let meta = actraft::SnapshotMeta {
            last_included: actraft::core::LogId::new(1, 500),
            membership: actraft::ClusterConfig::bootstrap([1]),
        };
        let bytes = actraft::snapshot::read_all(a.snapshot().unwrap().as_mut()).unwrap();
        let chunks = || actraft::snapshot::VecChunks::new([Bytes::from(bytes.clone())]);

        let mut b = KvMachine::new();
        b.restore(&meta, &mut chunks()).unwrap();
        let mut c = KvMachine::new();
        let decode = c.snapshot_decoder().unwrap();
        let decoded = decode(&meta, &mut chunks()).unwrap();
        c.install_decoded(&meta, decoded).unwrap();
        for m in [&b, &c] {
            assert_eq!(m.value("k0").as_deref(), Some("v0"));
            assert_eq!(m.value("k499").as_deref(), Some("v499"));
        }
        let foreign: actraft::DecodedSnapshot = Box::new(7u32);
        assert!(c.install_decoded(&meta, foreign).is_err());
        assert_eq!(c.value("k7").as_deref(), Some("v7"));
    }

    #[test]
    fn commands_round_trip_and_apply() {
        let put = KvCommand::Put {
            key: "k".into(),
            value: "a b".into(),
        };
        assert_eq!(KvCommand::decode(&put.encode()), Some(put.clone()));
        assert_eq!(KvCommand::decode(b"bogus"), None);
        assert_eq!(KvCommand::decode(b"get "), None, "an empty key");
        let mut kv = KvMachine::new();
        assert_eq!(kv.apply(1, &put.encode()), "ok");
        let get = KvCommand::Get { key: "k".into() }.encode();
        assert_eq!(kv.apply(2, &get), "value a b");
        assert_eq!(
            KvResponse::decode(&kv.apply(2, &get)),
            Some(KvResponse::Value("a b".into()))
        );
        assert_eq!(kv.apply(3, &Bytes::from_static(b"get")), "malformed");
        let delete = KvCommand::Delete { key: "k".into() }.encode();
        assert_eq!(kv.apply(4, &delete), "ok");
        assert_eq!(kv.apply(5, &delete), "not-found");
        assert_eq!(kv.apply(6, &get), "not-found");
    }

    #[test]
    fn keys_and_values_are_checked() {
        assert!(validate_key("").is_err());
        assert!(validate_key("a b").is_err());
        assert!(validate_key("ok").is_ok());
        assert!(validate_value("two words").is_ok());
        assert!(validate_value("line\nbreak").is_err());
    }
}
