//! The KV client: finds the leader, keeps a session, and retries a write whose outcome
//! is unknown with the same sequence number, so it is applied exactly once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actraft::session::{ClientId, ClientSession, Sequence};
use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::kv::{validate_key, validate_value, KvCommand};
use crate::kv_admin::AdminRequest;
use crate::kv_wire::{read_frame, write_frame, FrameError, ReadPath, Reply, Request, MAX_FRAME};

/// Timeouts of a [`KvClient`].
#[derive(Debug, Clone)]
pub struct KvClientOptions {
    /// A request (with every retry) gives up after this.
    pub timeout: Duration,
    /// Connecting to one node (TCP and TLS) gives up after this, and the client tries
    /// the next: a paused node costs this much, not the whole timeout.
    pub connect_timeout: Duration,
    /// How long to wait for one node's reply once the request is sent (a node waits up
    /// to its commit timeout, 5 s by default, before answering "unavailable").
    pub reply_timeout: Duration,
}

impl Default for KvClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(1),
            reply_timeout: Duration::from_secs(6),
        }
    }
}

/// Why a client request failed.
#[derive(Debug, Error)]
pub enum KvClientError {
    /// The input is not a valid request; nothing was sent.
    #[error("invalid input: {0}")]
    Invalid(&'static str),
    /// No node knew a leader until the deadline.
    #[error("no leader known: does the cluster have a majority? (gave up after {timeout:?}; last problem: {last})")]
    NoLeader {
        /// The deadline.
        timeout: Duration,
        /// The last thing that went wrong.
        last: String,
    },
    /// A leader was reached but no answer came before the deadline: the outcome of a
    /// write is unknown.
    #[error("no answer within {timeout:?}, the outcome is unknown (is a majority of the cluster up?); last problem: {last}")]
    Timeout {
        /// The deadline.
        timeout: Duration,
        /// The last thing that went wrong.
        last: String,
    },
    /// The session expired: the write was not applied now, but an earlier attempt of it
    /// may have been. Read back to find out.
    #[error("{0}")]
    Expired(String),
    /// The sequence number is behind the session's.
    #[error("{0}")]
    Stale(String),
    /// The TLS connection was refused (by the node: no or a foreign client certificate;
    /// or by the client: the node's certificate is not from the cluster's CA).
    #[error("TLS refused: {0} (are the certificates from this cluster's CA?)")]
    Tls(String),
    /// A node refused the request itself.
    #[error("the service refused the request: {0}")]
    Refused(String),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// False for a delete of an absent key.
    pub found: bool,
    /// True when the node answered from the session: an earlier attempt of this write
    /// was applied, and this retry was not applied again.
    pub duplicate: bool,
}

/// A client of the service: tries the nodes it knows (remembering the leader it found),
/// follows redirects, and retries while there is no leader, until a deadline. Writes go
/// through a session registered on first use: one write at a time per client (a second
/// concurrent write waits for the first).
pub struct KvClient {
    nodes: Vec<String>,
    connector: TlsConnector,
    options: KvClientOptions,
    leader: Mutex<Option<String>>,
    session: tokio::sync::Mutex<Option<ClientSession>>,
}

impl std::fmt::Debug for KvClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvClient")
            .field("nodes", &self.nodes)
            .field("options", &self.options)
            .field("leader", &self.known_leader())
            .finish_non_exhaustive()
    }
}

/// What went wrong with one attempt.
enum Attempt {
    /// Could not reach the node: nothing was sent.
    Unreachable(String),
    /// Sent, then no reply: the outcome is unknown.
    Lost(String),
    /// TLS refused: retrying will not help.
    Refused(String),
}

fn is_tls_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
}

impl KvClient {
    /// A client for a cluster whose nodes listen at `nodes` (`host:port`; any subset
    /// works, as long as one of them is up), with the TLS configuration from
    /// [`kv_tls::client_config`](crate::kv_tls::client_config).
    pub fn new(
        nodes: Vec<String>,
        tls: Arc<rustls::ClientConfig>,
        options: KvClientOptions,
    ) -> Self {
        Self {
            nodes,
            connector: TlsConnector::from(tls),
            options,
            leader: Mutex::new(None),
            session: tokio::sync::Mutex::new(None),
        }
    }

    /// The node that answered last, if any: tried first next time.
    pub fn known_leader(&self) -> Option<String> {
        self.leader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The remembered leader failed: start over from the list next time.
    fn forget_leader(&self, addr: &str) {
        let mut remembered = self.leader.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.as_deref() == Some(addr) {
            *remembered = None;
        }
    }

    /// Sets `key` to `value`, exactly once.
    pub async fn put(&self, key: &str, value: &str) -> Result<Written, KvClientError> {
        validate_key(key).map_err(KvClientError::Invalid)?;
        validate_value(value).map_err(KvClientError::Invalid)?;
        self.write(KvCommand::Put {
            key: key.into(),
            value: value.into(),
        })
        .await
    }

    /// Removes `key`, exactly once. `found` tells whether it existed.
    pub async fn delete(&self, key: &str) -> Result<Written, KvClientError> {
        validate_key(key).map_err(KvClientError::Invalid)?;
        self.write(KvCommand::Delete { key: key.into() }).await
    }

    /// Reads `key` with a read index on the leader: `None` when absent.
    pub async fn get(&self, key: &str) -> Result<Option<String>, KvClientError> {
        self.get_with(key, ReadPath::Index).await
    }

    /// Reads `key` by the path `read`: `None` when absent.
    pub async fn get_with(
        &self,
        key: &str,
        read: ReadPath,
    ) -> Result<Option<String>, KvClientError> {
        validate_key(key).map_err(KvClientError::Invalid)?;
        let deadline = Instant::now() + self.options.timeout;
        let request = Request::Get {
            key: key.into(),
            read,
        };
        match self.send(&request, deadline).await?.0 {
            Reply::Ok(value) => Ok(Some(value)),
            Reply::NotFound => Ok(None),
            other => Err(unexpected(other)),
        }
    }

    /// Opens a new session and returns its id.
    pub async fn register(&self) -> Result<ClientId, KvClientError> {
        let deadline = Instant::now() + self.options.timeout;
        self.register_by(deadline).await
    }

    async fn register_by(&self, deadline: Instant) -> Result<ClientId, KvClientError> {
        match self.send(&Request::Register, deadline).await?.0 {
            Reply::Ok(id) => id
                .parse()
                .map_err(|_| KvClientError::Refused(format!("bad session id {id:?}"))),
            other => Err(unexpected(other)),
        }
    }

    /// A write of this client's session, registering one first if needed. A retry after
    /// an unknown outcome reuses the sequence number; if the very first attempt finds
    /// the session gone, nothing of this write can have been applied, so the client
    /// registers a new session and goes on.
    async fn write(&self, command: KvCommand) -> Result<Written, KvClientError> {
        let deadline = Instant::now() + self.options.timeout;
        let mut session = self.session.lock().await;
        let mut fresh_session = false;
        loop {
            if session.is_none() {
                fresh_session = true;
                *session = Some(ClientSession::new(self.register_by(deadline).await?));
            }
            let current = session.as_mut().expect("set above");
            let pending = current.next_command(command.encode());
            let request = Request::Command {
                client: pending.client,
                seq: pending.seq,
                command: command.clone(),
            };
            let (reply, sent_before) = self.send(&request, deadline).await?;
            match reply {
                // Only when no attempt of this write reached a leader before was it
                // certainly not applied: then a new session is safe (once).
                Reply::Expired(why) if !sent_before && !fresh_session => {
                    tracing::debug!(%why, "session gone before the write was sent; registering anew");
                    *session = None;
                    fresh_session = true;
                }
                Reply::Expired(_) => {
                    *session = None;
                    return written(reply, sent_before);
                }
                reply => return written(reply, sent_before),
            }
        }
    }

    /// Sends write `command` as number `seq` of session `client`, retrying with the same
    /// number until it is answered or `deadline` passes. For callers that keep their own
    /// session (scripts, tests).
    pub async fn write_as(
        &self,
        client: ClientId,
        seq: Sequence,
        command: KvCommand,
        deadline: Instant,
    ) -> Result<Written, KvClientError> {
        let request = Request::Command {
            client,
            seq,
            command,
        };
        let (reply, sent_before) = self.send(&request, deadline).await?;
        written(reply, sent_before)
    }

    /// Sends an operation on the cluster to its leader and returns the leader's answer.
    /// Retries (on another node, or while the leader says "not yet", e.g. a learner still
    /// catching up) until the client's timeout: every admin request is idempotent.
    pub async fn admin(&self, request: AdminRequest) -> Result<String, KvClientError> {
        let deadline = Instant::now() + self.options.timeout;
        match self.send(&Request::Admin(request), deadline).await?.0 {
            Reply::Ok(text) => Ok(text),
            other => Err(unexpected(other)),
        }
    }

    /// Node `addr`'s status line, without any redirect.
    pub async fn status(&self, addr: &str) -> Result<String, String> {
        match self.attempt(addr, &Request::Status).await {
            Ok(Reply::Ok(status)) => Ok(status),
            Ok(other) => Err(format!("unexpected answer {:?}", other.encode())),
            Err(Attempt::Unreachable(e) | Attempt::Lost(e) | Attempt::Refused(e)) => Err(e),
        }
    }

    /// Sends `request` until a node gives a decisive reply (not a redirect, not
    /// "unavailable", not "busy") or `deadline` passes. Also returns whether an earlier
    /// attempt was sent to a leader without an answer (its outcome unknown).
    async fn send(
        &self,
        request: &Request,
        deadline: Instant,
    ) -> Result<(Reply, bool), KvClientError> {
        let mut order = self
            .known_leader()
            .into_iter()
            .chain(self.nodes.iter().cloned().cycle());
        let mut target: Option<String> = None;
        let mut last = String::from("no node tried");
        let mut no_leader = true;
        let mut sent_before = false;
        let mut failures_in_row = 0usize;
        while Instant::now() < deadline {
            let Some(addr) = target.take().or_else(|| order.next()) else {
                break;
            };
            let answer = tokio::time::timeout_at(deadline, self.attempt(&addr, request)).await;
            let Ok(answer) = answer else {
                // The attempt in flight says nothing new about the leader: keep what
                // the earlier ones said.
                last = format!("{addr}: no reply before the deadline ({last})");
                break;
            };
            match answer {
                Ok(Reply::Redirect(leader)) => {
                    target = Some(leader);
                    continue;
                }
                Ok(Reply::Unavailable(why)) => {
                    no_leader = why.starts_with("no leader");
                    sent_before |= why.starts_with("outcome unknown");
                    last = format!("{addr}: {why}");
                }
                Ok(Reply::Busy(why)) => last = format!("{addr}: busy: {why}"),
                Ok(Reply::Error(why)) => return Err(KvClientError::Refused(why)),
                Ok(reply) => {
                    *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
                    return Ok((reply, sent_before));
                }
                Err(Attempt::Refused(e)) => return Err(KvClientError::Tls(e)),
                Err(Attempt::Unreachable(e)) => last = e,
                Err(Attempt::Lost(e)) => {
                    sent_before = true;
                    no_leader = false;
                    last = e;
                }
            }
            self.forget_leader(&addr);
            failures_in_row += 1;
            if failures_in_row.is_multiple_of(self.nodes.len().max(1)) {
                // A whole round without an answer: give an election time to finish.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let timeout = self.options.timeout;
        Err(if no_leader {
            KvClientError::NoLeader { timeout, last }
        } else {
            KvClientError::Timeout { timeout, last }
        })
    }

    /// One request and its reply over a fresh connection to `addr`.
    async fn attempt(&self, addr: &str, request: &Request) -> Result<Reply, Attempt> {
        let connect = async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            // The node is checked by its certificate (see kv_tls), not by this name.
            let name = ServerName::try_from("kv-node").expect("a valid DNS name");
            self.connector.connect(name, tcp).await
        };
        let mut tls = match tokio::time::timeout(self.options.connect_timeout, connect).await {
            Err(_) => {
                return Err(Attempt::Unreachable(format!(
                    "{addr}: no connection within {:?}",
                    self.options.connect_timeout
                )))
            }
            Ok(Err(e)) if is_tls_error(&e) => return Err(Attempt::Refused(format!("{addr}: {e}"))),
            Ok(Err(e)) => return Err(Attempt::Unreachable(format!("{addr}: {e}"))),
            Ok(Ok(tls)) => tls,
        };
        let exchange = async {
            write_frame(&mut tls, &request.encode()).await?;
            read_frame(&mut tls, MAX_FRAME).await
        };
        match tokio::time::timeout(self.options.reply_timeout, exchange).await {
            Err(_) => Err(Attempt::Lost(format!(
                "{addr}: no reply within {:?}",
                self.options.reply_timeout
            ))),
            // With TLS 1.3 a refused client certificate shows up here, as an alert.
            Ok(Err(FrameError::Io(e))) if is_tls_error(&e) => {
                Err(Attempt::Refused(format!("{addr}: {e}")))
            }
            Ok(Err(e)) => Err(Attempt::Lost(format!("{addr}: {e}"))),
            Ok(Ok(None)) => Err(Attempt::Lost(format!("{addr}: connection closed"))),
            Ok(Ok(Some(text))) => Reply::decode(&text)
                .ok_or_else(|| Attempt::Lost(format!("{addr}: unexpected reply {text:?}"))),
        }
    }
}

/// The outcome of a write from its reply.
fn written(reply: Reply, sent_before: bool) -> Result<Written, KvClientError> {
    match reply {
        Reply::Ok(_) => Ok(Written {
            found: true,
            duplicate: false,
        }),
        Reply::Duplicate(_) => Ok(Written {
            found: true,
            duplicate: true,
        }),
        Reply::NotFound => Ok(Written {
            found: false,
            duplicate: false,
        }),
        Reply::Expired(why) if sent_before => Err(KvClientError::Expired(format!(
            "{why}; an earlier attempt of this write reached the cluster and may have been applied"
        ))),
        other => Err(unexpected(other)),
    }
}

fn unexpected(reply: Reply) -> KvClientError {
    match reply {
        Reply::Error(why) => KvClientError::Refused(why),
        Reply::Expired(why) => KvClientError::Expired(why),
        Reply::Stale(why) => KvClientError::Stale(why),
        other => KvClientError::Refused(format!("unexpected reply {:?}", other.encode())),
    }
}
