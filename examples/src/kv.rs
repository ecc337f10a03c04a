//! A replicated key-value store: the state machine and its command encoding.
//!
//! Commands are text: `put <key> <value>`, `get <key>`, `delete <key>`. Reads go
//! through the log too, so a read answered by the leader is linearizable.

use std::collections::BTreeMap;

use actraft::{LogIndex, StateMachine};
use bytes::Bytes;

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
    /// Encodes the command for a proposal.
    pub fn encode(&self) -> Bytes {
        match self {
            KvCommand::Put { key, value } => format!("put {key} {value}").into(),
            KvCommand::Get { key } => format!("get {key}").into(),
            KvCommand::Delete { key } => format!("delete {key}").into(),
        }
    }

    /// Decodes a command; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, ' ');
        let verb = parts.next()?;
        let key = parts.next()?.to_string();
        if key.is_empty() {
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

/// The key-value state machine. Responses: `ok` for a put or delete, the value (or
/// `(nil)`) for a get, `error: ...` for a malformed command.
#[derive(Debug, Default)]
pub struct KvMachine {
    data: BTreeMap<String, String>,
}

impl KvMachine {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StateMachine for KvMachine {
    fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
        match KvCommand::decode(command) {
            Some(KvCommand::Put { key, value }) => {
                self.data.insert(key, value);
                Bytes::from_static(b"ok")
            }
            Some(KvCommand::Get { key }) => match self.data.get(&key) {
                Some(v) => Bytes::from(v.clone()),
                None => Bytes::from_static(b"(nil)"),
            },
            Some(KvCommand::Delete { key }) => {
                self.data.remove(&key);
                Bytes::from_static(b"ok")
            }
            None => Bytes::from_static(b"error: malformed command"),
        }
    }

    fn snapshot(&mut self) -> Option<Box<dyn actraft::SnapshotChunks>> {
        let frozen = self.data.clone();
        Some(Box::new(crate::kv_snapshot::KvSnapshotSource::new(frozen)))
    }

    fn restore(
        &mut self,
        _meta: &actraft::SnapshotMeta,
        chunks: &mut dyn actraft::SnapshotChunks,
    ) -> Result<(), actraft::SnapshotError> {
        self.data = crate::kv_snapshot::KvSnapshotDecoder::decode_all(chunks)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_apply() {
        let put = KvCommand::Put {
            key: "k".into(),
            value: "a b".into(),
        };
        assert_eq!(KvCommand::decode(&put.encode()), Some(put.clone()));
        assert_eq!(KvCommand::decode(b"bogus"), None);
        let mut kv = KvMachine::new();
        assert_eq!(kv.apply(1, &put.encode()), "ok");
        assert_eq!(
            kv.apply(2, &KvCommand::Get { key: "k".into() }.encode()),
            "a b"
        );
        assert_eq!(
            kv.apply(3, &Bytes::from_static(b"get")),
            "error: malformed command"
        );
    }
}
