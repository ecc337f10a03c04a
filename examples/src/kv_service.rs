//! The replicated key-value service run as real processes: each node serves clients
//! over a line protocol on TCP, and a client that follows the leader.
//!
//! A node listens for clients on TCP at the same address where it listens for its peers
//! on UDP (QUIC), so one address per node serves both, and a follower can redirect a
//! client to the leader's address without a second address book.
//!
//! The protocol, one request and one response per line:
//!
//! | request | response |
//! |---|---|
//! | `put <key> <value>` | `ok ok` |
//! | `get <key>` | `ok <value>` or `ok (nil)` |
//! | `delete <key>` | `ok ok` |
//! | `status` | `ok id=1 role=leader term=3 leader=1 commit=45 applied=45` |
//!
//! Any request may instead get `redirect <addr>` (ask the leader there), `unavailable
//! <why>` (no leader now, or the outcome is unknown: retry), or `error <why>`.
//!
//! Reads go through the log like writes: the leader answers a `get` only once the read
//! is committed and applied, so no read ever returns a value older than a write that
//! completed before it started (linearizability), even across leader changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use actraft::core::NodeId;
use actraft::{ClientError, RaftHandle, Role};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::kv::KvCommand;

/// How long a node waits for a proposal to commit before telling the client to retry.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request line a node accepts.
const MAX_LINE: usize = 64 << 10;

/// Serves clients on `listener` for node `handle`, whose peers listen at `peers`.
/// Returns when the listener fails.
pub async fn serve_clients(
    listener: TcpListener,
    handle: RaftHandle,
    peers: BTreeMap<NodeId, SocketAddr>,
) -> std::io::Result<()> {
    loop {
        let (stream, remote) = listener.accept().await?;
        let (handle, peers) = (handle.clone(), peers.clone());
        actix_rt::spawn(async move {
            if let Err(error) = serve_client(stream, &handle, &peers).await {
                tracing::debug!(%remote, %error, "client connection ended");
            }
        });
    }
}

async fn serve_client(
    stream: TcpStream,
    handle: &RaftHandle,
    peers: &BTreeMap<NodeId, SocketAddr>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            write.write_all(b"error request too long\n").await?;
            return Ok(());
        }
        let response = answer(line.trim_end_matches(['\r', '\n']), handle, peers).await;
        write.write_all(response.as_bytes()).await?;
        write.write_all(b"\n").await?;
    }
}

/// The response line (without newline) to one request line.
async fn answer(
    request: &str,
    handle: &RaftHandle,
    peers: &BTreeMap<NodeId, SocketAddr>,
) -> String {
    let redirect = |leader: Option<NodeId>| match leader.and_then(|l| peers.get(&l)) {
        Some(addr) => format!("redirect {addr}"),
        None => "unavailable no leader known".to_string(),
    };
    if request == "status" {
        let s = handle.status();
        let leader = s.leader.map_or("none".to_string(), |l| l.to_string());
        return format!(
            "ok id={} role={} term={} leader={leader} commit={} applied={}",
            s.id, s.role, s.term, s.commit_index, s.applied_index
        );
    }
    let Some(command) = KvCommand::decode(request.as_bytes()) else {
        return "error malformed request".into();
    };
    let status = handle.status();
    if status.role != Role::Leader {
        return redirect(status.leader);
    }
    match handle
        .propose_timeout(command.encode(), COMMIT_TIMEOUT)
        .await
    {
        Ok(response) => format!("ok {}", String::from_utf8_lossy(&response)),
        Err(ClientError::NotLeader { leader }) => redirect(leader),
        Err(ClientError::Stopped) => "error the node has stopped".into(),
        Err(e) => format!("unavailable {e}"),
    }
}

/// Why a client request failed for good.
#[derive(Debug, Error)]
pub enum KvClientError {
    /// No node answered with a result before the deadline.
    #[error("no answer within {timeout:?}; last problem: {last}")]
    Timeout {
        /// The deadline.
        timeout: Duration,
        /// The last thing that went wrong.
        last: String,
    },
    /// A node refused the request itself.
    #[error("the service refused the request: {0}")]
    Refused(String),
}

/// A client of the service: tries the nodes it knows, follows redirects to the leader,
/// and retries while there is none, until a deadline.
#[derive(Debug, Clone)]
pub struct KvClient {
    nodes: Vec<SocketAddr>,
    timeout: Duration,
}

impl KvClient {
    /// A client for a cluster whose nodes listen at `nodes` (any subset works, as long
    /// as one of them is up), giving up on a request after `timeout`.
    pub fn new(nodes: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self { nodes, timeout }
    }

    /// Sets `key` to `value`. A retried put may be applied twice, which is harmless
    /// for a put.
    pub async fn put(&self, key: &str, value: &str) -> Result<String, KvClientError> {
        self.request(&format!("put {key} {value}")).await
    }

    /// Reads `key` through the log: `(nil)` when absent.
    pub async fn get(&self, key: &str) -> Result<String, KvClientError> {
        self.request(&format!("get {key}")).await
    }

    /// Node `addr`'s status line, without any redirect.
    pub async fn status(&self, addr: SocketAddr) -> Result<String, String> {
        exchange(addr, "status").await.and_then(|r| {
            r.strip_prefix("ok ")
                .map(str::to_string)
                .ok_or_else(|| format!("unexpected answer {r:?}"))
        })
    }

    /// Sends one request line, following redirects and retrying until the deadline.
    pub async fn request(&self, line: &str) -> Result<String, KvClientError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut next = 0usize;
        let mut target: Option<SocketAddr> = None;
        let mut last = String::from("no node tried");
        while tokio::time::Instant::now() < deadline {
            let addr = match target.take() {
                Some(addr) => addr,
                None => {
                    let addr = self.nodes[next % self.nodes.len()];
                    next += 1;
                    addr
                }
            };
            match exchange(addr, line).await {
                Ok(response) => {
                    let (kind, rest) = response.split_once(' ').unwrap_or((&response, ""));
                    match kind {
                        "ok" => return Ok(rest.to_string()),
                        "redirect" => match rest.parse() {
                            Ok(leader) => {
                                target = Some(leader);
                                continue;
                            }
                            Err(_) => last = format!("bad redirect {rest:?}"),
                        },
                        // No leader known there, or the outcome is unknown: try the
                        // next node (any node that knows the leader redirects).
                        "unavailable" => last = format!("{addr}: {rest}"),
                        "error" => return Err(KvClientError::Refused(rest.to_string())),
                        _ => last = format!("{addr}: unexpected answer {response:?}"),
                    }
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(KvClientError::Timeout {
            timeout: self.timeout,
            last,
        })
    }
}

/// One request and its response over a fresh connection.
async fn exchange(addr: SocketAddr, line: &str) -> Result<String, String> {
    let io = async {
        let stream = TcpStream::connect(addr).await?;
        let (read, mut write) = stream.into_split();
        write.write_all(line.as_bytes()).await?;
        write.write_all(b"\n").await?;
        let mut response = String::new();
        BufReader::new(read).read_line(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    // A commit can take up to COMMIT_TIMEOUT; allow a little more for the answer.
    match tokio::time::timeout(COMMIT_TIMEOUT + Duration::from_secs(1), io).await {
        Err(_) => Err("timed out".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(response)) if response.is_empty() => Err("connection closed".into()),
        Ok(Ok(response)) => Ok(response.trim_end().to_string()),
    }
}
