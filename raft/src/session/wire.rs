//! The explicit, versioned encoding of session envelopes, responses and tables.
//!
//! Everything is big-endian and starts with a version byte, so a later version can be
//! told apart from this one and refused with [`DecodeError::UnsupportedVersion`].

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::{ClientId, Sequence};

/// The version of every encoding in this module.
pub const WIRE_VERSION: u8 = 1;

const KIND_REGISTER: u8 = 1;
const KIND_COMMAND: u8 = 2;
const KIND_UNSESSIONED: u8 = 3;

const TAG_REGISTERED: u8 = 1;
const TAG_APPLIED: u8 = 2;
const TAG_EXPIRED: u8 = 3;
const TAG_STALE: u8 = 4;
const TAG_MALFORMED: u8 = 5;

/// Why bytes could not be decoded as an envelope, a response or a session table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// There were no bytes at all.
    #[error("empty input")]
    Empty,
    /// The version byte is not one this build understands.
    #[error("unsupported encoding version {found} (this build reads version {WIRE_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// The kind (envelope) or tag (response) byte is unknown.
    #[error("unknown {what} {found}")]
    UnknownKind {
        /// What was being decoded.
        what: &'static str,
        /// The byte found.
        found: u8,
    },
    /// The input ended before `what` was complete.
    #[error("truncated input: {what} is incomplete")]
    Truncated {
        /// The field that was cut short.
        what: &'static str,
    },
    /// Bytes were left over after a complete value.
    #[error("{extra} unexpected bytes after the end")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A text field is not UTF-8.
    #[error("{what} is not UTF-8")]
    NotUtf8 {
        /// The field.
        what: &'static str,
    },
}

/// A reader over a byte slice that fails with [`DecodeError::Truncated`].
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Checks the version byte.
    pub(crate) fn version(&mut self) -> Result<(), DecodeError> {
        let Some((&found, rest)) = self.bytes.split_first() else {
            return Err(DecodeError::Empty);
        };
        if found != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found });
        }
        self.bytes = rest;
        Ok(())
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated { what });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }
}

/// What a proposal to a [`SessionStateMachine`](super::SessionStateMachine) carries.
///
/// Every envelope holds a wall-clock stamp in milliseconds since the Unix epoch, taken
/// by whoever proposes it (normally the node that receives the client's request). The
/// replicated layer keeps the largest stamp it has seen as its clock, so time never runs
/// backwards and every replica expires the same sessions at the same log index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// Opens a session. The answer is [`SessionResponse::Registered`] with the new
    /// client id: the log index of this entry, unique in the cluster.
    Register {
        /// Proposer's wall clock, ms since the Unix epoch.
        stamp_ms: u64,
    },
    /// A command of session `client`, number `seq` (1, 2, 3, ... per client).
    Command {
        /// The session.
        client: ClientId,
        /// The command's sequence number.
        seq: Sequence,
        /// Proposer's wall clock, ms since the Unix epoch.
        stamp_ms: u64,
        /// The user's command.
        command: Bytes,
    },
    /// A command outside any session: applied every time it commits. For reads and
    /// other commands that are harmless to repeat.
    Unsessioned {
        /// Proposer's wall clock, ms since the Unix epoch.
        stamp_ms: u64,
        /// The user's command.
        command: Bytes,
    },
}

impl Envelope {
    /// The proposer's stamp.
    pub fn stamp_ms(&self) -> u64 {
        match self {
            Envelope::Register { stamp_ms }
            | Envelope::Command { stamp_ms, .. }
            | Envelope::Unsessioned { stamp_ms, .. } => *stamp_ms,
        }
    }

    /// Encodes the envelope: version, kind, stamp, then the kind's fields, the command
    /// last (its length is the rest of the entry).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(32);
        out.put_u8(WIRE_VERSION);
        match self {
            Envelope::Register { stamp_ms } => {
                out.put_u8(KIND_REGISTER);
                out.put_u64(*stamp_ms);
            }
            Envelope::Command {
                client,
                seq,
                stamp_ms,
                command,
            } => {
                out.reserve(command.len() + 16);
                out.put_u8(KIND_COMMAND);
                out.put_u64(*stamp_ms);
                out.put_u64(*client);
                out.put_u64(*seq);
                out.put_slice(command);
            }
            Envelope::Unsessioned { stamp_ms, command } => {
                out.reserve(command.len());
                out.put_u8(KIND_UNSESSIONED);
                out.put_u64(*stamp_ms);
                out.put_slice(command);
            }
        }
        out.freeze()
    }

    /// Decodes an envelope. The command shares `bytes`' buffer.
    pub fn decode(bytes: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version()?;
        let kind = r.u8("envelope kind")?;
        let stamp_ms = r.u64("stamp")?;
        let rest_from = |r: &Reader<'_>| bytes.len() - r.bytes.len();
        match kind {
            KIND_REGISTER => {
                r.finish()?;
                Ok(Envelope::Register { stamp_ms })
            }
            KIND_COMMAND => {
                let client = r.u64("client id")?;
                let seq = r.u64("sequence number")?;
                Ok(Envelope::Command {
                    client,
                    seq,
                    stamp_ms,
                    command: bytes.slice(rest_from(&r)..),
                })
            }
            KIND_UNSESSIONED => Ok(Envelope::Unsessioned {
                stamp_ms,
                command: bytes.slice(rest_from(&r)..),
            }),
            found => Err(DecodeError::UnknownKind {
                what: "envelope kind",
                found,
            }),
        }
    }
}

/// What the replicated layer answers to an [`Envelope`], encoded as the entry's
/// response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionResponse {
    /// A session was opened with this id.
    Registered {
        /// The new session's id.
        client: ClientId,
    },
    /// The command's response. `duplicate` is true when the command had already been
    /// applied and this is the response remembered from then.
    Applied {
        /// The user's state machine's response.
        response: Bytes,
        /// Answered from the session, not applied again.
        duplicate: bool,
    },
    /// The session does not exist (any more): it expired, was evicted to make room, or
    /// was never registered. The command was not applied. The client cannot know whether
    /// an earlier unanswered command of this session was applied: it must read back, then
    /// register a new session.
    SessionExpired {
        /// The session.
        client: ClientId,
    },
    /// The sequence number is below the session's latest one: the client already moved
    /// on from this command, and its response is no longer kept. Not applied.
    Stale {
        /// The session.
        client: ClientId,
        /// The sequence number received.
        seq: Sequence,
        /// The session's latest sequence number.
        latest: Sequence,
    },
    /// The entry was not an envelope this layer understands; nothing was applied.
    Malformed {
        /// The decode error, as text.
        reason: String,
    },
}

impl SessionResponse {
    /// Encodes the response: version, tag, fields.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(32);
        out.put_u8(WIRE_VERSION);
        match self {
            SessionResponse::Registered { client } => {
                out.put_u8(TAG_REGISTERED);
                out.put_u64(*client);
            }
            SessionResponse::Applied {
                response,
                duplicate,
            } => {
                out.reserve(response.len() + 1);
                out.put_u8(TAG_APPLIED);
                out.put_u8(u8::from(*duplicate));
                out.put_slice(response);
            }
            SessionResponse::SessionExpired { client } => {
                out.put_u8(TAG_EXPIRED);
                out.put_u64(*client);
            }
            SessionResponse::Stale {
                client,
                seq,
                latest,
            } => {
                out.put_u8(TAG_STALE);
                out.put_u64(*client);
                out.put_u64(*seq);
                out.put_u64(*latest);
            }
            SessionResponse::Malformed { reason } => {
                out.put_u8(TAG_MALFORMED);
                out.put_slice(reason.as_bytes());
            }
        }
        out.freeze()
    }

    /// Decodes a response (what [`RaftHandle::propose`](crate::RaftHandle::propose)
    /// returns for an envelope).
    pub fn decode(bytes: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version()?;
        let response = match r.u8("response tag")? {
            TAG_REGISTERED => SessionResponse::Registered {
                client: r.u64("client id")?,
            },
            TAG_APPLIED => {
                let duplicate = r.u8("duplicate flag")? != 0;
                let at = bytes.len() - r.bytes.len();
                r.rest();
                SessionResponse::Applied {
                    response: bytes.slice(at..),
                    duplicate,
                }
            }
            TAG_EXPIRED => SessionResponse::SessionExpired {
                client: r.u64("client id")?,
            },
            TAG_STALE => SessionResponse::Stale {
                client: r.u64("client id")?,
                seq: r.u64("sequence number")?,
                latest: r.u64("latest sequence number")?,
            },
            TAG_MALFORMED => SessionResponse::Malformed {
                reason: std::str::from_utf8(r.rest())
                    .map_err(|_| DecodeError::NotUtf8 { what: "reason" })?
                    .to_string(),
            },
            found => {
                return Err(DecodeError::UnknownKind {
                    what: "response tag",
                    found,
                })
            }
        };
        r.finish()?;
        Ok(response)
    }
}
