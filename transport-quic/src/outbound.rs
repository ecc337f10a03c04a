//! Outbound: one connection per peer, dialled from the node's endpoint and redialled
//! with backoff, carrying two streams fed by two bounded queues.
//!
//! The urgent stream carries votes, replies and heartbeats; the bulk stream carries
//! AppendEntries with entries. Each queue is drained by its own writer task, so a large
//! AppendEntries being written never holds back a heartbeat, and the urgent stream also
//! has the higher QUIC priority, so its bytes go first when both have data. Order is
//! kept within each stream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actraft::core::{Envelope, NodeId};
use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use crate::error::{CloseCode, QuicError};
use crate::frame::{write_frame, FrameBatch};
use crate::transport::Shared;
use crate::wire::Frame;

/// Most messages one write takes from a queue.
const BATCH_MESSAGES: usize = 256;
/// Most bytes one write takes from a queue (a single larger message is still sent).
const BATCH_BYTES: usize = 1 << 20;

/// Which of a peer's two queues and streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Votes, replies, heartbeats: small and latency-critical.
    Urgent,
    /// AppendEntries carrying entries.
    Bulk,
}

impl Class {
    pub(crate) fn of(envelope: &Envelope) -> Self {
        if envelope.message.is_urgent() {
            Class::Urgent
        } else {
            Class::Bulk
        }
    }

    fn priority(self) -> i32 {
        match self {
            Class::Urgent => 1,
            Class::Bulk => 0,
        }
    }
}

/// The path to one peer: its address, its current connection, the dial backoff.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) peer: NodeId,
    pub(crate) addr: SocketAddr,
    min_delay: Duration,
    current: Mutex<Option<(Connection, Instant)>>,
    dialing: tokio::sync::Mutex<Backoff>,
}

#[derive(Debug)]
struct Backoff {
    delay: Duration,
    not_before: Option<tokio::time::Instant>,
    failures: u32,
}

impl Link {
    pub(crate) fn new(peer: NodeId, addr: SocketAddr, min_delay: Duration) -> Self {
        Self {
            peer,
            addr,
            min_delay,
            current: Mutex::new(None),
            dialing: tokio::sync::Mutex::new(Backoff {
                delay: min_delay,
                not_before: None,
                failures: 0,
            }),
        }
    }

    fn live(&self) -> Option<Connection> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|(c, _)| c.close_reason().is_none())
            .map(|(c, _)| c.clone())
    }

    /// Closes the current connection, so the writers dial again at once: the peer
    /// restarted and this connection leads to its previous incarnation.
    pub(crate) fn reset(&self, code: CloseCode, reason: &str) {
        if let Ok(mut backoff) = self.dialing.try_lock() {
            backoff.delay = self.min_delay;
            backoff.not_before = None;
        }
        let taken = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((connection, _)) = taken {
            connection.close(code.var_int(), reason.as_bytes());
        }
    }

    /// The live connection to the peer, dialling (after the backoff delay) until there is
    /// one. Only one writer dials at a time; the other waits and reuses the result.
    async fn connected(&self, shared: &Shared, endpoint: &Endpoint) -> Connection {
        loop {
            if let Some(c) = self.live() {
                return c;
            }
            let mut backoff = self.dialing.lock().await;
            if let Some(c) = self.live() {
                return c;
            }
            let previous = self
                .current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some((_, since)) = previous {
                // A connection that served for a while earns an immediate redial; one
                // that broke at once (the peer closes it on sight) keeps backing off.
                if since.elapsed() >= shared.config.reconnect_max {
                    backoff.delay = shared.config.reconnect_min;
                    backoff.not_before = None;
                }
            }
            if let Some(at) = backoff.not_before {
                tokio::time::sleep_until(at).await;
            }
            let result = self.dial(shared, endpoint).await;
            backoff.not_before = Some(tokio::time::Instant::now() + backoff.delay);
            backoff.delay = (backoff.delay * 2).min(shared.config.reconnect_max);
            match result {
                Ok(connection) => {
                    if backoff.failures > 0 {
                        tracing::info!(node = shared.id, peer = self.peer, "reconnected");
                    }
                    backoff.failures = 0;
                    shared.stats.connects.inc();
                    shared.metrics.connections_outbound.increment(1);
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((connection.clone(), Instant::now()));
                    return connection;
                }
                Err(error) => {
                    backoff.failures += 1;
                    if backoff.failures == 1 || backoff.failures.is_power_of_two() {
                        tracing::warn!(
                            node = shared.id,
                            peer = self.peer,
                            addr = %self.addr,
                            failures = backoff.failures,
                            %error,
                            "cannot reach peer; messages to it are dropped until it is back"
                        );
                    } else {
                        tracing::debug!(node = shared.id, peer = self.peer, %error, "dial failed");
                    }
                }
            }
        }
    }

    async fn dial(&self, shared: &Shared, endpoint: &Endpoint) -> Result<Connection, QuicError> {
        let server_name = shared.names.server_name(self.peer);
        let connecting = endpoint
            .connect_with(shared.client_config.clone(), self.addr, &server_name)
            .map_err(|e| QuicError::Connect {
                peer: self.peer,
                addr: self.addr,
                reason: e.to_string(),
            })?;
        let handshake = |reason: String| QuicError::Handshake {
            remote: self.addr,
            reason,
        };
        match tokio::time::timeout(shared.config.connect_timeout, connecting).await {
            Err(_) => Err(handshake(format!(
                "no answer within {:?}",
                shared.config.connect_timeout
            ))),
            Ok(Err(e)) => Err(handshake(e.to_string())),
            Ok(Ok(connection)) => Ok(connection),
        }
    }
}

/// Drains one queue of one peer into that peer's stream of the same class, forever:
/// (re)connects, opens the stream, says hello, writes frames. Ends when the queue's
/// sender is dropped (the peer was closed) and everything queued is written: it then
/// finishes the stream and waits for the peer to acknowledge it. An aborted task (the
/// transport stopped) ends at once.
pub(crate) async fn run_writer(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    link: Arc<Link>,
    class: Class,
    mut queue: mpsc::Receiver<Envelope>,
) {
    let hello = Frame::Hello(shared.hello());
    let max = shared.config.max_frame_size;
    let traffic = shared.metrics.traffic(link.peer);
    let mut batch = FrameBatch::default();
    let mut chunks = Vec::new();
    loop {
        let connection = link.connected(&shared, &endpoint).await;
        let mut stream = match connection.open_uni().await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(node = shared.id, peer = link.peer, %error, "cannot open stream");
                connection.close(CloseCode::Internal.var_int(), b"cannot open stream");
                continue;
            }
        };
        let _ = stream.set_priority(class.priority());
        if let Err(error) = write_frame(&mut stream, &hello, max).await {
            tracing::debug!(
                node = shared.id,
                peer = link.peer,
                %error,
                "cannot say hello"
            );
            connection.close(CloseCode::Internal.var_int(), b"stream failed");
            continue;
        }
        loop {
            let envelope = tokio::select! {
                biased;
                next = queue.recv() => match next {
                    Some(envelope) => envelope,
                    None => {
                        // The peer was closed: let what was written reach it.
                        if stream.finish().is_ok() {
                            let _ = stream.stopped().await;
                        }
                        return;
                    }
                },
                _ = connection.closed() => break,
            };
            // Take whatever else is already queued, and write it all at once: one wake-up
            // and one vectored write for a burst instead of one per message.
            let mut count = 0usize;
            let mut next = Some(envelope);
            while let Some(envelope) = next.take() {
                let kind = envelope.message.kind();
                match batch.push(&Frame::Message(envelope.into()), max) {
                    Ok(_) => count += 1,
                    Err(error) => {
                        shared.stats.dropped_oversized.inc();
                        shared.metrics.dropped_oversized.increment(1);
                        tracing::warn!(node = shared.id, peer = link.peer, kind, %error, "message not sent");
                    }
                }
                if count < BATCH_MESSAGES && batch.len() < BATCH_BYTES {
                    next = queue.try_recv().ok();
                }
            }
            let bytes = batch.len();
            batch.take(&mut chunks);
            let written = stream.write_all_chunks(&mut chunks).await;
            chunks.clear();
            match written {
                Ok(()) => {
                    shared.stats.sent.add(count as u64);
                    if let Some(traffic) = &traffic {
                        traffic.sent(count as u64, bytes as u64);
                    }
                }
                Err(error) => {
                    tracing::debug!(node = shared.id, peer = link.peer, %error, "stream broke");
                    connection.close(CloseCode::Internal.var_int(), b"stream failed");
                    break;
                }
            }
        }
    }
}
