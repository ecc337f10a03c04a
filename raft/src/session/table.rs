//! The replicated session table: per client, the latest sequence number applied and its
//! response; expiry by the log's clock; a bound on the number of sessions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::wire::{DecodeError, Envelope, Reader, SessionResponse, WIRE_VERSION};
use super::{ClientId, Sequence};
use crate::core::LogIndex;
use crate::StateMachine;

/// Limits of a session table. Every replica must use the same values: they decide which
/// sessions expire, and a replica with other values would answer differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// A session not used for longer than this (by the log's clock) expires.
    pub ttl: Duration,
    /// At most this many sessions. Registering one more evicts the least recently used.
    /// Memory is bounded by this times the largest response the state machine returns.
    pub max_sessions: usize,
}

impl Default for SessionConfig {
    /// One hour, 10 000 sessions.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            max_sessions: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    latest: Sequence,
    response: Bytes,
    last_active_ms: u64,
}

/// The sessions of a [`SessionStateMachine`](super::SessionStateMachine): the state the
/// replicated layer adds to the user's. Deterministic: replicas that apply the same
/// entries hold equal tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTable {
    config: SessionConfig,
    now_ms: u64,
    sessions: BTreeMap<ClientId, Session>,
    /// (last active, client): the order in which sessions expire and are evicted.
    by_activity: BTreeSet<(u64, ClientId)>,
}

impl SessionTable {
    /// An empty table.
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            now_ms: 0,
            sessions: BTreeMap::new(),
            by_activity: BTreeSet::new(),
        }
    }

    /// The limits.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// The log's clock: the largest stamp applied so far, ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// True while session `client` exists.
    pub fn contains(&self, client: ClientId) -> bool {
        self.sessions.contains_key(&client)
    }

    /// The latest sequence number session `client` applied (0 before its first command).
    pub fn latest(&self, client: ClientId) -> Option<Sequence> {
        self.sessions.get(&client).map(|s| s.latest)
    }

    /// Applies the entry at `index`: decodes the envelope, advances the clock, expires
    /// sessions, then registers, answers from the session, or applies the command to
    /// `machine`.
    pub fn apply<M: StateMachine>(
        &mut self,
        index: LogIndex,
        entry: &Bytes,
        machine: &mut M,
    ) -> SessionResponse {
        let envelope = match Envelope::decode(entry) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(index, error = %e, "entry is not a session envelope");
                return SessionResponse::Malformed {
                    reason: e.to_string(),
                };
            }
        };
        self.advance(envelope.stamp_ms());
        match envelope {
            Envelope::Register { .. } => {
                self.register(index);
                SessionResponse::Registered { client: index }
            }
            Envelope::Unsessioned { command, .. } => SessionResponse::Applied {
                response: machine.apply(index, &command),
                duplicate: false,
            },
            Envelope::Command {
                client,
                seq,
                command,
                ..
            } => self.command(index, client, seq, &command, machine),
        }
    }

    /// Moves the clock to `stamp_ms` unless it is behind, and drops the sessions that
    /// have been idle longer than the TTL.
    fn advance(&mut self, stamp_ms: u64) {
        self.now_ms = self.now_ms.max(stamp_ms);
        let ttl = u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX);
        while let Some(&(active, client)) = self.by_activity.first() {
            if self.now_ms.saturating_sub(active) <= ttl {
                break;
            }
            self.by_activity.pop_first();
            self.sessions.remove(&client);
            tracing::debug!(client, "session expired");
        }
    }

    fn register(&mut self, client: ClientId) {
        while self.sessions.len() >= self.config.max_sessions.max(1) {
            let Some((_, evicted)) = self.by_activity.pop_first() else {
                break;
            };
            self.sessions.remove(&evicted);
            tracing::debug!(client = evicted, "session evicted to make room");
        }
        let session = Session {
            latest: 0,
            response: Bytes::new(),
            last_active_ms: self.now_ms,
        };
        if let Some(old) = self.sessions.insert(client, session) {
            // An index is registered once, but stay consistent if a table was built by
            // hand.
            self.by_activity.remove(&(old.last_active_ms, client));
        }
        self.by_activity.insert((self.now_ms, client));
    }

    fn command<M: StateMachine>(
        &mut self,
        index: LogIndex,
        client: ClientId,
        seq: Sequence,
        command: &Bytes,
        machine: &mut M,
    ) -> SessionResponse {
        let now = self.now_ms;
        let Some(session) = self.sessions.get_mut(&client) else {
            return SessionResponse::SessionExpired { client };
        };
        if seq == 0 || seq < session.latest {
            return SessionResponse::Stale {
                client,
                seq,
                latest: session.latest,
            };
        }
        let response = if seq == session.latest {
            SessionResponse::Applied {
                response: session.response.clone(),
                duplicate: true,
            }
        } else {
            let response = machine.apply(index, command);
            session.latest = seq;
            session.response = response.clone();
            SessionResponse::Applied {
                response,
                duplicate: false,
            }
        };
        self.by_activity.remove(&(session.last_active_ms, client));
        session.last_active_ms = now;
        self.by_activity.insert((now, client));
        response
    }

    /// Encodes the table's state (not its [`SessionConfig`]) for a snapshot: version,
    /// clock, count, then per session its id, latest sequence number, last activity and
    /// response.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(WIRE_VERSION);
        out.put_u64(self.now_ms);
        out.put_u64(self.sessions.len() as u64);
        for (&client, s) in &self.sessions {
            out.reserve(28 + s.response.len());
            out.put_u64(client);
            out.put_u64(s.latest);
            out.put_u64(s.last_active_ms);
            out.put_u32(u32::try_from(s.response.len()).unwrap_or(u32::MAX));
            out.put_slice(&s.response[..s.response.len().min(u32::MAX as usize)]);
        }
        out.freeze()
    }

    /// Decodes a table written by [`encode`](Self::encode), with the limits `config`.
    pub fn decode(bytes: &[u8], config: SessionConfig) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version()?;
        let mut table = Self::new(config);
        table.now_ms = r.u64("clock")?;
        let count = r.u64("session count")?;
        for _ in 0..count {
            let client = r.u64("client id")?;
            let latest = r.u64("sequence number")?;
            let last_active_ms = r.u64("last activity")?;
            let len = r.u32("response length")? as usize;
            let response = Bytes::copy_from_slice(r.take(len, "response")?);
            table.by_activity.insert((last_active_ms, client));
            table.sessions.insert(
                client,
                Session {
                    latest,
                    response,
                    last_active_ms,
                },
            );
        }
        r.finish()?;
        Ok(table)
    }
}
