//! The KV client protocol: length-prefixed frames, one request and one reply each.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of UTF-8 text. A reader
//! checks the length against its bound before reading the body, so a frame over the
//! bound is refused without buffering any of it.
//!
//! | request | meaning |
//! |---|---|
//! | `status` | this node's status line (see [`kv_status`](crate::kv_status)), answered by any node |
//! | `register` | opens a client session; `ok <client id>` |
//! | `get <key> [log\|index\|lease\|follower]` | reads `key` ([`ReadPath`], default `index`); `ok <value>` or `notfound` |
//! | `cmd <client> <seq> put <key> <value>` | a write of session `client`, number `seq` |
//! | `cmd <client> <seq> delete <key>` | a delete; `ok ok` or `notfound` |
//! | `admin <request>` | operates the cluster ([`AdminRequest`]): `add-learner <id> <addr>`, `promote <id>`, `remove <id>`, `transfer [<id>]`, `members` |
//!
//! | reply | meaning |
//! |---|---|
//! | `ok <text>` | done |
//! | `dup <text>` | done earlier: this is the remembered reply to the same `<seq>` |
//! | `notfound` | no such key |
//! | `redirect <addr>` | ask the leader at `<addr>` |
//! | `unavailable <why>` | no leader, or the outcome is unknown: retry the same request |
//! | `expired <why>` | the session is gone: the last unanswered write may or may not have happened |
//! | `stale <why>` | a sequence number the session already moved past |
//! | `busy <why>` | the node is at a limit: retry later |
//! | `error <why>` | the request itself is wrong: do not retry |

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use actraft::session::{ClientId, Sequence};

use crate::kv::{validate_key, validate_value, KvCommand};
use crate::kv_admin::AdminRequest;

/// The default bound on a request or reply frame's body.
pub const MAX_FRAME: usize = 64 << 10;

/// Why a frame could not be read.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The announced length exceeds the bound; nothing of the body was read.
    #[error("a frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The body is not UTF-8.
    #[error("the frame is not UTF-8 text")]
    NotText,
    /// The connection failed or closed mid-frame.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame of at most `max` bytes. `Ok(None)` when the peer closed the
/// connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<String>, FrameError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    String::from_utf8(body)
        .map(Some)
        .map_err(|_| FrameError::NotText)
}

/// Writes one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, text: &str) -> std::io::Result<()> {
    let len = u32::try_from(text.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(4 + text.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(text.as_bytes());
    writer.write_all(&frame).await?;
    writer.flush().await
}

/// How a node serves a `get`; every path is linearizable (see the README's section on
/// reads for what each costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReadPath {
    /// Through the log: the leader appends the read, commits it on a majority (a durable
    /// write on each) and answers once it applied it.
    Log,
    /// A read index on the leader: one round of heartbeats confirms its leadership
    /// (shared by concurrent reads), then it answers from its own state.
    #[default]
    Index,
    /// The leader's lease: no round trip while a majority answered recently (the nodes
    /// must run with leases on; otherwise it costs what `index` costs).
    Lease,
    /// Any node: a follower asks the leader for a read index, waits until it applied that
    /// far, and answers from its own state.
    Follower,
}

impl ReadPath {
    /// The path's name on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadPath::Log => "log",
            ReadPath::Index => "index",
            ReadPath::Lease => "lease",
            ReadPath::Follower => "follower",
        }
    }

    /// Parses a name (`log`, `index`, `lease`, `follower`).
    pub fn parse(name: &str) -> Option<Self> {
        [
            ReadPath::Log,
            ReadPath::Index,
            ReadPath::Lease,
            ReadPath::Follower,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for ReadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The node's status.
    Status,
    /// Open a session.
    Register,
    /// Read a key.
    Get {
        /// The key.
        key: String,
        /// How.
        read: ReadPath,
    },
    /// A write of a session.
    Command {
        /// The session.
        client: ClientId,
        /// The write's sequence number.
        seq: Sequence,
        /// A put or a delete.
        command: KvCommand,
    },
    /// An operation on the cluster's membership or leadership.
    Admin(AdminRequest),
}

impl Request {
    /// The request's text.
    pub fn encode(&self) -> String {
        match self {
            Request::Status => "status".into(),
            Request::Register => "register".into(),
            Request::Get { key, read } => format!("get {key} {read}"),
            Request::Command {
                client,
                seq,
                command,
            } => format!(
                "cmd {client} {seq} {}",
                String::from_utf8_lossy(&command.encode())
            ),
            Request::Admin(admin) => format!("admin {}", admin.encode()),
        }
    }

    /// Parses a request, with a message for the client when it is wrong.
    pub fn decode(text: &str) -> Result<Self, String> {
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        match verb {
            "status" if rest.is_empty() => Ok(Request::Status),
            "register" if rest.is_empty() => Ok(Request::Register),
            "get" => {
                let (key, read) = match rest.split_once(' ') {
                    Some((key, name)) => {
                        let read = ReadPath::parse(name).ok_or_else(|| {
                            format!("get: unknown read path {name:?} (log, index, lease, follower)")
                        })?;
                        (key, read)
                    }
                    None => (rest, ReadPath::default()),
                };
                validate_key(key)?;
                Ok(Request::Get {
                    key: key.into(),
                    read,
                })
            }
            "cmd" => {
                let mut parts = rest.splitn(3, ' ');
                let mut number = |what: &str| {
                    parts
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| format!("cmd: expected a {what}"))
                };
                let client = number("client id")?;
                let seq = number("sequence number")?;
                let command = parts.next().unwrap_or("");
                let command = KvCommand::decode(command.as_bytes())
                    .ok_or_else(|| "cmd: expected put KEY VALUE or delete KEY".to_string())?;
                match &command {
                    KvCommand::Get { .. } => Err("cmd: a read needs no session".into()),
                    KvCommand::Put { value, .. } => {
                        validate_value(value)?;
                        Ok(Request::Command {
                            client,
                            seq,
                            command,
                        })
                    }
                    KvCommand::Delete { .. } => Ok(Request::Command {
                        client,
                        seq,
                        command,
                    }),
                }
            }
            "admin" => AdminRequest::decode(rest).map(Request::Admin),
            _ => Err(format!("unknown request {verb:?}")),
        }
    }
}

/// A node's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done.
    Ok(String),
    /// Done earlier; the remembered reply.
    Duplicate(String),
    /// No such key.
    NotFound,
    /// Ask the leader there.
    Redirect(String),
    /// No leader, or unknown outcome: retry the same request.
    Unavailable(String),
    /// The session is gone.
    Expired(String),
    /// A sequence number the session moved past.
    Stale(String),
    /// The node is at a limit.
    Busy(String),
    /// The request is wrong.
    Error(String),
}

impl Reply {
    /// The reply's text.
    pub fn encode(&self) -> String {
        let (kind, text) = match self {
            Reply::Ok(t) => ("ok", t),
            Reply::Duplicate(t) => ("dup", t),
            Reply::NotFound => return "notfound".into(),
            Reply::Redirect(t) => ("redirect", t),
            Reply::Unavailable(t) => ("unavailable", t),
            Reply::Expired(t) => ("expired", t),
            Reply::Stale(t) => ("stale", t),
            Reply::Busy(t) => ("busy", t),
            Reply::Error(t) => ("error", t),
        };
        format!("{kind} {text}")
    }

    /// Parses a reply; `None` for anything unknown.
    pub fn decode(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_once(' ').unwrap_or((text, ""));
        let rest = rest.to_string();
        Some(match kind {
            "ok" => Reply::Ok(rest),
            "dup" => Reply::Duplicate(rest),
            "notfound" => Reply::NotFound,
            "redirect" => Reply::Redirect(rest),
            "unavailable" => Reply::Unavailable(rest),
            "expired" => Reply::Expired(rest),
            "stale" => Reply::Stale(rest),
            "busy" => Reply::Busy(rest),
            "error" => Reply::Error(rest),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        let requests = [
            Request::Status,
            Request::Register,
            Request::Get {
                key: "k".into(),
                read: ReadPath::Log,
            },
            Request::Get {
                key: "k".into(),
                read: ReadPath::Follower,
            },
            Request::Command {
                client: 4,
                seq: 2,
                command: KvCommand::Put {
                    key: "k".into(),
                    value: "two words".into(),
                },
            },
            Request::Command {
                client: 4,
                seq: 3,
                command: KvCommand::Delete { key: "k".into() },
            },
            Request::Admin(AdminRequest::Transfer { to: Some(3) }),
        ];
        for r in requests {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
        assert!(Request::decode("get ").unwrap_err().contains("empty"));
        assert_eq!(
            Request::decode("get k"),
            Ok(Request::Get {
                key: "k".into(),
                read: ReadPath::Index
            }),
            "a get names no path: a read index"
        );
        assert!(Request::decode("get k stale")
            .unwrap_err()
            .contains("unknown read path"));
        assert!(Request::decode("get k lease extra").is_err());
        assert!(Request::decode("cmd 1 x put k v").is_err());
        assert!(Request::decode("cmd 1 2 get k").is_err());
        for r in [
            Reply::Ok("v w".into()),
            Reply::NotFound,
            Reply::Busy("x".into()),
        ] {
            assert_eq!(Reply::decode(&r.encode()), Some(r));
        }
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_its_body_is_read() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        // Announce 1 GiB; send none of it.
        a.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
        let err = read_frame(&mut b, MAX_FRAME).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len, .. } if len == 1 << 30));
        write_frame(&mut a, "status").await.unwrap();
        assert_eq!(
            read_frame(&mut b, MAX_FRAME).await.unwrap().as_deref(),
            Some("status")
        );
        drop(a);
        assert!(read_frame(&mut b, MAX_FRAME).await.unwrap().is_none());
    }
}
