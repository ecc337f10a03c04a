//! Client sessions: exactly-once commands for a replicated service.
//!
//! # The problem
//!
//! A client sends a command to the leader; the leader replicates it, and then the
//! answer is lost: the leader crashed, was cut off, or the wait timed out. The outcome
//! is unknown, so the client retries, and the command may now be applied twice. For a
//! `put` that is not harmless: if another client wrote the key in between, the retry
//! brings the old value back after the newer one. Raft alone cannot tell a retry from a
//! new command; the replicated layer has to remember what it applied, per client (Ongaro's
//! thesis, §6.3).
//!
//! # What this module gives
//!
//! Wrap your [`StateMachine`] in a [`SessionStateMachine`] and propose [`Envelope`]s
//! instead of bare commands:
//!
//! 1. A client first registers a session ([`Envelope::Register`]); the answer
//!    ([`SessionResponse::Registered`]) is its client id, the log index of that entry.
//! 2. Each command then carries the client id and a sequence number: 1, 2, 3, ...
//!    ([`ClientSession`] keeps it).
//! 3. The replicated layer remembers, per session, the latest sequence number applied
//!    and its response. A command with that same number is answered with the remembered
//!    response ([`SessionResponse::Applied`] with `duplicate: true`) and not applied again;
//!    a lower number is refused ([`SessionResponse::Stale`]).
//!
//! **The guarantee:** a command of a live session is applied at most once, and, if the
//! client keeps retrying until it gets an answer, exactly once; every retry gets the
//! response of the one application.
//!
//! **What the client must do:**
//! - retry a command whose outcome is unknown (timeout, lost connection, leader change)
//!   with the **same** sequence number, to any node, until it gets an answer;
//! - use a **new** (higher) sequence number only after the previous command was
//!   answered: one command in flight per session (use several sessions for concurrency);
//! - on [`SessionResponse::SessionExpired`], treat the last unanswered command as
//!   unknown (it may or may not have been applied: read back to find out) and register a
//!   new session. The layer never silently re-applies a command of a session it no longer
//!   knows.
//!
//! # Expiry and bounds, decided by the log
//!
//! Every replica must make the same decisions at the same log index, so nothing here
//! reads a clock. Instead, whoever proposes an envelope stamps its wall-clock time into
//! it ([`wall_clock_ms`]), and the table's clock is the largest stamp applied so far, so
//! it never runs backwards. A session idle for longer than [`SessionConfig::ttl`] by that
//! clock expires when the entry that moves the clock past its deadline is applied: at the
//! same index on every replica. The number of sessions is bounded by
//! [`SessionConfig::max_sessions`]: registering one more evicts the least recently used.
//! Stamps should come from the nodes (the leader stamps what it proposes), whose clocks
//! are assumed roughly synchronised; a stamp far in the future expires every session
//! idle longer than the TTL before that time, once.
//!
//! # Snapshots and durable state machines
//!
//! The session table is replicated state, as much as the user's. [`SessionTable::encode`]
//! and [`SessionTable::decode`] give it a versioned byte form, so a snapshot includes it
//! next to the user's state. A state machine rebuilt from the log rebuilds the same table
//! on its own; one that keeps its state durably (reports a non-zero
//! [`applied_index`](StateMachine::applied_index)) must keep the table durably with it
//! and restore it with [`SessionStateMachine::with_table`].

mod snapshot;
mod table;
mod wire;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use thiserror::Error;

use crate::core::LogIndex;
use crate::StateMachine;

pub use snapshot::SNAPSHOT_VERSION;
pub use table::{SessionConfig, SessionTable};
pub use wire::{DecodeError, Envelope, SessionResponse, WIRE_VERSION};

/// A session's id: the log index of the entry that registered it.
pub type ClientId = u64;

/// A command's number within its session: 1 for the first command, then increasing.
pub type Sequence = u64;

/// Wraps a [`StateMachine`] with client sessions. Entries must be [`Envelope`]s;
/// responses are encoded [`SessionResponse`]s.
#[derive(Debug)]
pub struct SessionStateMachine<M> {
    inner: M,
    table: SessionTable,
}

impl<M: StateMachine> SessionStateMachine<M> {
    /// Wraps `inner`, with no sessions yet.
    pub fn new(inner: M, config: SessionConfig) -> Self {
        Self::with_table(inner, SessionTable::new(config))
    }

    /// Wraps `inner` with a table restored from durable state or a snapshot.
    pub fn with_table(inner: M, table: SessionTable) -> Self {
        Self { inner, table }
    }

    /// The user's state machine.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The session table.
    pub fn sessions(&self) -> &SessionTable {
        &self.table
    }

    /// The user's state machine and the session table.
    pub fn into_parts(self) -> (M, SessionTable) {
        (self.inner, self.table)
    }
}

impl<M: StateMachine> StateMachine for SessionStateMachine<M> {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        self.table.apply(index, command, &mut self.inner).encode()
    }

    fn applied_index(&self) -> LogIndex {
        self.inner.applied_index()
    }

    /// The session table, then the wrapped machine's snapshot (`None` when it has none).
    fn snapshot(&mut self) -> Option<Box<dyn crate::SnapshotChunks>> {
        self.snapshot_framed()
    }

    fn restore(
        &mut self,
        meta: &crate::SnapshotMeta,
        chunks: &mut dyn crate::SnapshotChunks,
    ) -> Result<(), crate::SnapshotError> {
        self.restore_framed(meta, chunks)
    }

    fn snapshot_decoder(&self) -> Option<crate::SnapshotDecoder> {
        self.decoder_framed()
    }

    fn install_decoded(
        &mut self,
        meta: &crate::SnapshotMeta,
        decoded: crate::DecodedSnapshot,
    ) -> Result<(), crate::SnapshotError> {
        self.install_framed(meta, decoded)
    }
}

/// Why a session command got no response from the user's state machine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    /// The session expired or was evicted; see [`SessionResponse::SessionExpired`].
    #[error(
        "session {client} expired: the last unanswered command may or may not have been applied"
    )]
    Expired {
        /// The session.
        client: ClientId,
    },
    /// See [`SessionResponse::Stale`].
    #[error("sequence number {seq} of session {client} is stale (latest is {latest})")]
    Stale {
        /// The session.
        client: ClientId,
        /// The sequence number sent.
        seq: Sequence,
        /// The latest one applied.
        latest: Sequence,
    },
    /// The replicated layer could not read the envelope.
    #[error("the service could not read the command: {reason}")]
    Malformed {
        /// Why.
        reason: String,
    },
    /// The response itself could not be decoded.
    #[error("undecodable session response: {0}")]
    Decode(#[from] DecodeError),
    /// A registration answer came where a command's was expected, or the reverse.
    #[error("unexpected session response {0:?}")]
    Unexpected(Box<SessionResponse>),
}

impl SessionResponse {
    /// The user's response to a command (fresh or remembered), or why there is none.
    pub fn into_result(self) -> Result<Bytes, SessionError> {
        match self {
            SessionResponse::Applied { response, .. } => Ok(response),
            SessionResponse::SessionExpired { client } => Err(SessionError::Expired { client }),
            SessionResponse::Stale {
                client,
                seq,
                latest,
            } => Err(SessionError::Stale {
                client,
                seq,
                latest,
            }),
            SessionResponse::Malformed { reason } => Err(SessionError::Malformed { reason }),
            other @ SessionResponse::Registered { .. } => {
                Err(SessionError::Unexpected(Box::new(other)))
            }
        }
    }

    /// The id of a newly registered session.
    pub fn into_client_id(self) -> Result<ClientId, SessionError> {
        match self {
            SessionResponse::Registered { client } => Ok(client),
            other => Err(SessionError::Unexpected(Box::new(other))),
        }
    }
}

/// The client's side of a session: its id and the sequence numbers it hands out.
///
/// Call [`next_command`](Self::next_command) once per new command and keep the
/// [`SessionCommand`] until that command is answered; every retry sends the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSession {
    client: ClientId,
    last: Sequence,
}

impl ClientSession {
    /// The envelope that registers a new session, stamped now.
    pub fn register() -> Envelope {
        Envelope::Register {
            stamp_ms: wall_clock_ms(),
        }
    }

    /// A session with id `client` (from [`SessionResponse::Registered`]), before its
    /// first command.
    pub fn new(client: ClientId) -> Self {
        Self::resume(client, 0)
    }

    /// A session whose latest used sequence number is `last`.
    pub fn resume(client: ClientId, last: Sequence) -> Self {
        Self { client, last }
    }

    /// The session's id.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The latest sequence number handed out.
    pub fn last_sequence(&self) -> Sequence {
        self.last
    }

    /// A new command with the next sequence number. Only call it once the previous
    /// command was answered.
    pub fn next_command(&mut self, command: impl Into<Bytes>) -> SessionCommand {
        self.last += 1;
        SessionCommand {
            client: self.client,
            seq: self.last,
            command: command.into(),
        }
    }
}

/// One command of a session, with its sequence number fixed: send it, and re-send it
/// unchanged until it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCommand {
    /// The session.
    pub client: ClientId,
    /// The command's sequence number.
    pub seq: Sequence,
    /// The user's command.
    pub command: Bytes,
}

impl SessionCommand {
    /// The envelope to propose, stamped with `stamp_ms`.
    pub fn envelope(&self, stamp_ms: u64) -> Envelope {
        Envelope::Command {
            client: self.client,
            seq: self.seq,
            stamp_ms,
            command: self.command.clone(),
        }
    }

    /// The encoded envelope, stamped now: what to propose for each attempt.
    pub fn encode_now(&self) -> Bytes {
        self.envelope(wall_clock_ms()).encode()
    }
}

/// Milliseconds since the Unix epoch by this machine's clock (0 if the clock is before
/// 1970): the stamp for an envelope.
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
