//! The replicated key-value service run as real processes: each node serves clients
//! over TLS on TCP ([`serve_clients`]); [`KvClient`](crate::kv_client::KvClient)
//! follows the leader.
//!
//! A node listens for clients on TCP at the same address where it listens for its peers
//! on UDP (QUIC), so one address per node serves both, and a follower can redirect a
//! client to the leader's address without a second address book.
//!
//! The protocol is in [`kv_wire`](crate::kv_wire). Writes carry a client session
//! ([`actraft::session`]), so a write retried after an unknown outcome is applied once.
//! A `get` names how it is served ([`ReadPath`]): by default a read index on the leader
//! (a round of heartbeats, no write), or the leader's lease, or any node (a follower
//! read), or through the log like a write. On every path the node answers only once its
//! state machine applied everything committed before the read arrived, so no read ever
//! returns a value older than a write that completed before it started
//! (linearizability), even across leader changes. The local paths need a
//! [`KvReader`] on the node's machine ([`ServeOptions::reader`]); without one, every
//! `get` goes through the log.
//!
//! # Limits
//!
//! The client port is open to the network, so everything a client can make the node hold
//! is bounded ([`ServeOptions`]):
//! - a client must present a certificate from the cluster CA (see
//!   [`kv_tls`](crate::kv_tls)); the TLS handshake must finish within
//!   `handshake_timeout`;
//! - at most `max_connections` connections at once; one more is told `busy` and closed
//!   (up to a few at a time; beyond that it is closed at once);
//! - a request frame over `max_request` bytes is refused before its body is read, and
//!   the connection closed;
//! - requests on one connection are served one at a time (one in flight; the next frame
//!   is not read until the reply is written), so a pipelining client is held back by TCP;
//! - a connection idle for `idle_timeout` is closed.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actraft::core::NodeId;
use actraft::session::{ClientSession, Envelope, SessionResponse};
use actraft::{ClientError, RaftHandle, ReadError, ReadMode, Role};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::kv::{KvCommand, KvReader, KvResponse};
use crate::kv_wire::{read_frame, write_frame, FrameError, ReadPath, Reply, Request, MAX_FRAME};

/// Connections beyond the limit that are still told `busy` (each costs a handshake);
/// past these, extra connections are closed without a word.
const MAX_REFUSALS: usize = 16;

/// Limits and timeouts of a node's client port.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Client connections served at once.
    pub max_connections: usize,
    /// Longest request frame, in bytes.
    pub max_request: usize,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// The TLS handshake must complete within this.
    pub handshake_timeout: Duration,
    /// How long a node waits for a proposal to commit before telling the client that
    /// the outcome is unknown (retry); also how long a read waits for its barrier.
    pub commit_timeout: Duration,
    /// A view of the node's KV data, for reads served without the log
    /// ([`kv::replicated_with_reader`](crate::kv::replicated_with_reader)). Without
    /// one, every `get` goes through the log.
    pub reader: Option<KvReader>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_request: MAX_FRAME,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(5),
            commit_timeout: Duration::from_secs(5),
            reader: None,
        }
    }
}

struct Server {
    handle: RaftHandle,
    peers: BTreeMap<NodeId, SocketAddr>,
    options: ServeOptions,
    acceptor: TlsAcceptor,
}

/// Serves clients on `listener` for node `handle`, whose peers listen at `peers`, until
/// `shutdown` resolves. Then it stops accepting, lets each connection finish the
/// request it is serving (up to the commit timeout), and returns. Errors only when the
/// listener fails.
pub async fn serve_clients(
    listener: TcpListener,
    handle: RaftHandle,
    peers: BTreeMap<NodeId, SocketAddr>,
    tls: Arc<rustls::ServerConfig>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let (stopping_tx, stopping) = watch::channel(false);
    let server = Arc::new(Server {
        handle,
        peers,
        options,
        acceptor: TlsAcceptor::from(tls),
    });
    tokio::pin!(shutdown);
    let result = loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: keep serving the others.
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, "accepting a client failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => break Err(e),
            },
        };
        let server = Arc::clone(&server);
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => {
                let stopping = stopping.clone();
                actix_rt::spawn(async move {
                    server.serve(stream, remote, permit, stopping).await;
                });
            }
            Err(_) => match Arc::clone(&refusals).try_acquire_owned() {
                Ok(permit) => {
                    actix_rt::spawn(async move { server.refuse(stream, remote, permit).await });
                }
                Err(_) => {
                    tracing::debug!(%remote, "too many client connections: closed at once");
                }
            },
        }
    };
    drop(listener);
    let _ = stopping_tx.send(true);
    let grace = server.options.commit_timeout + Duration::from_secs(1);
    let all = u32::try_from(server.options.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("client connections still busy after {grace:?}; stopping anyway");
    }
    result
}

/// Sends a last reply and closes the connection cleanly (TLS close-notify, then FIN).
async fn close(mut tls: TlsStream<TcpStream>, reply: Reply) {
    let _ = write_frame(&mut tls, &reply.encode()).await;
    let _ = tls.shutdown().await;
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error().is_some_and(|c| c == 23 || c == 24) // ENFILE, EMFILE
}

impl Server {
    async fn serve(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        _permit: OwnedSemaphorePermit,
        mut stopping: watch::Receiver<bool>,
    ) {
        let accept =
            tokio::time::timeout(self.options.handshake_timeout, self.acceptor.accept(stream));
        let mut tls = match accept.await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::info!(%remote, error = %e, "client refused: TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(%remote, "client refused: no TLS handshake in time");
                return;
            }
        };
        loop {
            let next = tokio::time::timeout(
                self.options.idle_timeout,
                read_frame(&mut tls, self.options.max_request),
            );
            let frame = tokio::select! {
                frame = next => Some(frame),
                _ = stopping.wait_for(|s| *s) => None,
            };
            let Some(frame) = frame else {
                let bye = Reply::Unavailable("the node is shutting down".into());
                return close(tls, bye).await;
            };
            let request = match frame {
                Ok(Ok(Some(request))) => request,
                Ok(Ok(None)) => return,
                Err(_) => {
                    let idle = Reply::Error(format!(
                        "no request for {:?}: closing the connection",
                        self.options.idle_timeout
                    ));
                    return close(tls, idle).await;
                }
                Ok(Err(FrameError::Io(e))) => {
                    tracing::debug!(%remote, error = %e, "client connection ended");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "client request refused");
                    return close(tls, Reply::Error(e.to_string())).await;
                }
            };
            let reply = self.answer(&request).await;
            if let Err(e) = write_frame(&mut tls, &reply.encode()).await {
                tracing::debug!(%remote, error = %e, "could not reply to a client");
                return;
            }
        }
    }

    async fn refuse(&self, stream: TcpStream, remote: SocketAddr, _permit: OwnedSemaphorePermit) {
        tracing::info!(%remote, limit = self.options.max_connections, "client refused: too many connections");
        let accept =
            tokio::time::timeout(self.options.handshake_timeout, self.acceptor.accept(stream));
        if let Ok(Ok(tls)) = accept.await {
            let busy = Reply::Busy(format!(
                "too many client connections (limit {}): retry later",
                self.options.max_connections
            ));
            close(tls, busy).await;
        }
    }

    /// Sends the client to `leader`: at the address the cluster's configuration records
    /// for it (nodes added at run time), else the one this node was started with.
    fn redirect(&self, leader: Option<NodeId>) -> Reply {
        let Some(leader) = leader else {
            return Reply::Unavailable("no leader known".into());
        };
        let config = self.handle.membership();
        let recorded = config.target().address(leader).filter(|a| !a.is_empty());
        match recorded
            .map(str::to_string)
            .or_else(|| self.peers.get(&leader).map(SocketAddr::to_string))
        {
            Some(addr) => Reply::Redirect(addr),
            None => Reply::Unavailable(format!("no address known for leader {leader}")),
        }
    }

    /// A `get` answered from this node's state once a read barrier in `mode` resolved.
    async fn read_locally(&self, key: &str, mode: ReadMode, reader: &KvReader) -> Reply {
        match self
            .handle
            .read_index_timeout(mode, self.options.commit_timeout)
            .await
        {
            // Everything committed before the read is applied: the local state answers.
            Ok(_) => match reader.value(key) {
                Some(value) => Reply::Ok(value),
                None => Reply::NotFound,
            },
            Err(
                ClientError::Read(ReadError::NotLeader { leader })
                | ClientError::NotLeader { leader },
            ) => self.redirect(leader),
            Err(ClientError::Stopped) => {
                Reply::Unavailable("the node is stopping: try another".into())
            }
            // Not confirmed in time, no leader known, busy: nothing was read; retry.
            Err(e) => Reply::Unavailable(format!("read not served: {e}")),
        }
    }

    /// The reply to one request.
    async fn answer(&self, request: &str) -> Reply {
        let request = match Request::decode(request) {
            Ok(request) => request,
            Err(why) => return Reply::Error(why),
        };
        let status = self.handle.status();
        if request == Request::Status {
            let metrics = self.handle.metrics();
            return Reply::Ok(crate::kv_status::NodeStatus::of(&metrics).line());
        }
        if let (Request::Get { key, read }, Some(reader)) = (&request, &self.options.reader) {
            let mode = match read {
                ReadPath::Log => None,
                ReadPath::Index => Some(ReadMode::Index),
                ReadPath::Lease => Some(ReadMode::Lease),
                ReadPath::Follower => Some(ReadMode::Follower),
            };
            if let Some(mode) = mode {
                return self.read_locally(key, mode, reader).await;
            }
        }
        if status.role != Role::Leader {
            return self.redirect(status.leader);
        }
        let request = match request {
            Request::Admin(admin) => {
                return crate::kv_admin::answer(&self.handle, admin, |l| self.redirect(l)).await
            }
            request => request,
        };
        // The leader stamps its clock into what it proposes: the session layer's time.
        let stamp_ms = actraft::session::wall_clock_ms();
        let envelope = match request {
            Request::Status | Request::Admin(_) => unreachable!("answered above"),
            Request::Register => ClientSession::register(),
            Request::Get { key, .. } => Envelope::Unsessioned {
                stamp_ms,
                command: KvCommand::Get { key }.encode(),
            },
            Request::Command {
                client,
                seq,
                command,
            } => Envelope::Command {
                client,
                seq,
                stamp_ms,
                command: command.encode(),
            },
        };
        let timeout = self.options.commit_timeout;
        let propose = self.handle.propose_timeout(envelope.encode(), timeout);
        // A leader that loses its majority steps down: answer then, not at the timeout.
        let deposed = self.handle.wait_until(timeout, |s| s.role != Role::Leader);
        let result = tokio::select! {
            result = propose => result,
            Ok(_) = deposed => {
                return Reply::Unavailable("outcome unknown: this node stopped leading".into())
            }
        };
        let response = match result {
            Ok(response) => response,
            Err(ClientError::NotLeader { leader }) => return self.redirect(leader),
            Err(ClientError::Stopped) => {
                return Reply::Unavailable("the node is stopping: try another".into())
            }
            // Leadership lost, timed out, busy: the outcome is unknown, so the client
            // retries the same request; its session makes that safe.
            Err(e) => return Reply::Unavailable(format!("outcome unknown: {e}")),
        };
        match SessionResponse::decode(&response) {
            Ok(SessionResponse::Registered { client }) => Reply::Ok(client.to_string()),
            Ok(SessionResponse::Applied {
                response,
                duplicate,
            }) => match KvResponse::decode(&response) {
                Some(KvResponse::Done) if duplicate => Reply::Duplicate("ok".into()),
                Some(KvResponse::Done) => Reply::Ok("ok".into()),
                Some(KvResponse::Value(v)) => Reply::Ok(v),
                Some(KvResponse::NotFound) => Reply::NotFound,
                Some(KvResponse::Malformed) | None => {
                    Reply::Error("the store could not read the command".into())
                }
            },
            Ok(SessionResponse::SessionExpired { client }) => Reply::Expired(format!(
                "session {client} expired or was evicted; its last unanswered write may or may not have been applied"
            )),
            Ok(SessionResponse::Stale {
                client,
                seq,
                latest,
            }) => Reply::Stale(format!(
                "sequence number {seq} of session {client} is stale: the session is at {latest}"
            )),
            Ok(SessionResponse::Malformed { reason }) => Reply::Error(reason),
            Err(e) => Reply::Error(format!("undecodable response: {e}")),
        }
    }
}
