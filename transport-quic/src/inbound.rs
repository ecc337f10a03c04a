//! Inbound: accept connections, identify the peer from its certificate, read its
//! streams, check every frame, deliver messages to the inbox.
//!
//! Any check that fails closes that one connection with a [`CloseCode`] naming the
//! reason, logs a warning and reports a [`PeerFault`]; the node keeps serving its other
//! peers (each connection and stream has its own task). A node that is not a member is
//! no such failure: its requests are delivered and its replies dropped (counted and
//! reported as [`QuicError::NotMember`]), each on its own, on a connection that stays.

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
    // A node the CA certified is taken even when it is not a member: its requests may
    // come from a leader or candidate this node's configuration does not name yet,
    // which the node judges itself; its replies are refused message by message.
    tracing::debug!(node = shared.id, peer, %remote, member = shared.admits(peer), "peer connected");
    shared.metrics.connections_inbound.increment(1);
    shared.replace_inbound(peer, &connection);
    shared.learn_address(peer, remote);
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
    match check_stream(&shared, remote, peer, &mut stream).await {
        Ok(()) => {}
        Err(ReadFrameError::Broken(reason)) => {
            tracing::debug!(node = shared.id, peer, %reason, "stream ended");
        }
        Err(ReadFrameError::Bad(error)) => shared.reject(&connection, remote, Some(peer), error),
    }
}

async fn check_stream(
    shared: &Shared,
    remote: SocketAddr,
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
        let envelope: actraft::core::Envelope = envelope.into();
        // Judged by the member list in force now: a non-member's requests go to the
        // node, its replies and reads do not.
        if !envelope.message.accepted_from_non_members() && !shared.admits(peer) {
            shared.refuse_non_member(remote, peer, envelope.message.kind());
            continue;
        }
        shared.deliver(envelope);
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

    /// Drops a reply or read (`kind`) from `peer`, which is not a member of the current
    /// configuration: counts it, logs it (at `warn` the first time for this peer until it
    /// is a member again, then at `debug`) and hands it to the fault subscribers. The
    /// connection stays: it may carry the peer's requests, which the node judges.
    pub(crate) fn refuse_non_member(&self, remote: SocketAddr, peer: NodeId, kind: &str) {
        let error = QuicError::NotMember { peer };
        self.stats.non_member.inc();
        self.metrics.non_member.increment(1);
        let first = self
            .non_members_logged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer);
        if first {
            tracing::warn!(node = self.id, peer, %remote, kind, "refused a reply from a node that is not a member of the current configuration");
        } else {
            tracing::debug!(node = self.id, peer, %remote, kind, "refused a non-member's reply");
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

    /// Notes where `peer` connected from: its listening address, since a node dials
    /// from the one endpoint it accepts on. Used for a listed node for which neither the
    /// configuration nor the application gives an address (a leader this node's
    /// configuration does not name yet). One address per node, the latest.
    fn learn_address(&self, peer: NodeId, remote: SocketAddr) {
        let previous = self
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, remote);
        if previous != Some(remote) {
            tracing::debug!(node = self.id, peer, %remote, "address learned from a connection");
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
