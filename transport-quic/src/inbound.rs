//! Inbound: accept connections, identify the peer from its certificate, read its
//! streams, check every frame, deliver messages to the inbox.
//!
//! Any check that fails closes that one connection with a [`CloseCode`] naming the
//! reason, logs a warning and reports a [`PeerFault`]; the node keeps serving its other
//! peers (each connection and stream has its own task).

use std::net::SocketAddr;
use std::sync::Arc;

use actraft::core::NodeId;
use quinn::{Connection, Endpoint, Incoming, RecvStream};
use tokio::task::JoinSet;

use crate::codec;
use crate::error::{CloseCode, PeerFault, QuicError};
use crate::frame::{FrameReader, ReadFrameError};
use crate::transport::Shared;
use crate::wire::{Frame, SUPPORTED_VERSIONS};

/// Accepts connections until the endpoint closes. Aborting this task aborts every
/// connection task it spawned.
pub(crate) async fn accept_loop(shared: Arc<Shared>, endpoint: Endpoint) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    connections.spawn(serve_connection(shared.clone(), incoming));
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Completes the handshake of one incoming connection, identifies the peer and reads
/// its streams until the connection ends.
async fn serve_connection(shared: Arc<Shared>, incoming: Incoming) {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(e) => {
            // rustls has already refused a missing or foreign certificate here.
            let error = QuicError::Handshake {
                remote,
                reason: e.to_string(),
            };
            shared.report(PeerFault {
                remote,
                peer: None,
                error: Arc::new(error),
            });
            return;
        }
    };
    let peer = match shared.names.identify(&connection, remote) {
        Ok(peer) => peer,
        Err(error) => {
            shared.reject(&connection, remote, None, error);
            return;
        }
    };
    if !shared.admits(peer) {
        shared.refuse_non_member(&connection, remote, peer);
        return;
    }
    tracing::debug!(node = shared.id, peer, %remote, "peer connected");
    shared.metrics.connections_inbound.increment(1);
    shared.replace_inbound(peer, &connection);
    // A member list set meanwhile may not have seen this connection: check again.
    if !shared.admits(peer) {
        shared.refuse_non_member(&connection, remote, peer);
    }
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            stream = connection.accept_uni() => match stream {
                Ok(stream) => {
                    streams.spawn(read_stream(shared.clone(), connection.clone(), remote, peer, stream));
                }
                Err(_) => break, // closed, by either side or a timeout
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    shared.forget_inbound(peer, &connection);
}

/// Reads one stream: a hello, then messages. Closes the connection on bad input.
async fn read_stream(
    shared: Arc<Shared>,
    connection: Connection,
    remote: SocketAddr,
    peer: NodeId,
    mut stream: RecvStream,
) {
    match check_stream(&shared, peer, &mut stream).await {
        Ok(()) => {}
        Err(ReadFrameError::Broken(reason)) => {
            tracing::debug!(node = shared.id, peer, %reason, "stream ended");
        }
        Err(ReadFrameError::Bad(QuicError::NotMember { .. })) => {
            shared.refuse_non_member(&connection, remote, peer);
        }
        Err(ReadFrameError::Bad(error)) => shared.reject(&connection, remote, Some(peer), error),
    }
}

async fn check_stream(
    shared: &Shared,
    peer: NodeId,
    stream: &mut RecvStream,
) -> Result<(), ReadFrameError> {
    let max = shared.config.max_frame_size;
    let bad = ReadFrameError::Bad;
    let mut frames = FrameReader::new(max);
    let Some(first) = frames.next(stream).await? else {
        return Ok(());
    };
    // The version first: a peer of another version may lay out the rest of its hello
    // differently, and must be told it speaks the wrong version, not garbage.
    if let Some(version) = codec::hello_version(&first) {
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(bad(QuicError::Version {
                supported: SUPPORTED_VERSIONS,
                got: version,
            }));
        }
    }
    let hello = match codec::decode(&first).map_err(|e| bad(e.into()))? {
        Frame::Hello(hello) => hello,
        Frame::Message(_) => return Err(bad(QuicError::Protocol("a message before the hello"))),
    };
    if hello.cluster != shared.config.cluster {
        return Err(bad(QuicError::ClusterMismatch {
            expected: shared.config.cluster.clone(),
            got: hello.cluster,
        }));
    }
    if hello.from != peer {
        return Err(bad(QuicError::SenderMismatch {
            certified: peer,
            claimed: hello.from,
        }));
    }
    shared.saw_instance(peer, hello.instance);
    let traffic = shared.metrics.traffic(peer);
    while let Some(bytes) = frames.next(stream).await? {
        if let Some(traffic) = &traffic {
            traffic.received(1, bytes.len() as u64);
        }
        let envelope = match codec::decode_received(&bytes).map_err(|e| bad(e.into()))? {
            Frame::Message(envelope) => envelope,
            Frame::Hello(_) => return Err(bad(QuicError::Protocol("a second hello"))),
        };
        if envelope.from != peer {
            return Err(bad(QuicError::SenderMismatch {
                certified: peer,
                claimed: envelope.from,
            }));
        }
        if envelope.to != shared.id {
            return Err(bad(QuicError::WrongRecipient {
                local: shared.id,
                to: envelope.to,
            }));
        }
        // The member list may have changed since the connection was taken.
        if !shared.admits(peer) {
            return Err(bad(QuicError::NotMember { peer }));
        }
        shared.deliver(envelope.into());
    }
    Ok(())
}

impl Shared {
    /// Closes `connection` because of `error`, logs it and reports it.
    pub(crate) fn reject(
        &self,
        connection: &Connection,
        remote: SocketAddr,
        peer: Option<NodeId>,
        error: QuicError,
    ) {
        let code = error.close_code();
        let mut reason = error.to_string();
        reason.truncate(200);
        connection.close(code.var_int(), reason.as_bytes());
        self.report(PeerFault {
            remote,
            peer,
            error: Arc::new(error),
        });
    }

    /// Closes `connection` from `peer`, which is not a member of the current
    /// configuration: counts it, logs it (at `warn` the first time for this peer until it
    /// is a member again, then at `debug`) and hands it to the fault subscribers.
    pub(crate) fn refuse_non_member(
        &self,
        connection: &Connection,
        remote: SocketAddr,
        peer: NodeId,
    ) {
        let error = QuicError::NotMember { peer };
        let reason = error.to_string();
        connection.close(error.close_code().var_int(), reason.as_bytes());
        self.stats.non_member.inc();
        self.metrics.non_member.increment(1);
        let first = self
            .non_members_logged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer);
        if first {
            tracing::warn!(node = self.id, peer, %remote, "refused a node that is not a member of the current configuration");
        } else {
            tracing::debug!(node = self.id, peer, %remote, "refused a non-member");
        }
        let _ = self.faults.send(PeerFault {
            remote,
            peer: Some(peer),
            error: Arc::new(error),
        });
    }

    /// Logs a fault and hands it to the subscribers.
    pub(crate) fn report(&self, fault: PeerFault) {
        self.stats.faults.inc();
        self.metrics.refused.increment(1);
        tracing::warn!(
            node = self.id,
            peer = ?fault.peer,
            remote = %fault.remote,
            error = %fault.error,
            "refused a connection"
        );
        let _ = self.faults.send(fault);
    }

    /// Records `connection` as the one inbound connection from `peer`, closing the one
    /// it replaces.
    fn replace_inbound(&self, peer: NodeId, connection: &Connection) {
        let old = self
            .inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, connection.clone());
        if let Some(old) = old {
            if old.stable_id() != connection.stable_id() {
                old.close(
                    CloseCode::Replaced.var_int(),
                    b"replaced by a newer connection",
                );
            }
        }
    }

    fn forget_inbound(&self, peer: NodeId, connection: &Connection) {
        let mut inbound = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
        if inbound.get(&peer).map(Connection::stable_id) == Some(connection.stable_id()) {
            inbound.remove(&peer);
        }
    }

    /// Notes the incarnation `peer` announced; a new one means the peer restarted, so
    /// the connection to its old incarnation is dropped and redialled at once.
    fn saw_instance(&self, peer: NodeId, instance: u64) {
        let previous = self
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, instance);
        if previous.is_some_and(|p| p != instance) {
            tracing::info!(node = self.id, peer, "peer restarted; reconnecting to it");
            if let Some(link) = self.link(peer) {
                link.reset(CloseCode::PeerRestarted, "peer restarted");
            }
        }
    }
}
