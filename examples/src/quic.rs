//! QUIC transports on loopback for in-process clusters: every node gets its own UDP
//! socket (port picked by the OS) and a certificate from a development CA generated at
//! start-up, so an in-process cluster exercises the same path as nodes on separate
//! machines: handshakes, mutual TLS, framing, reconnects.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use actraft::core::NodeId;
use actraft::Transport;
use actraft_transport_quic::{DevCa, QuicConfig, QuicTransport};

use crate::cluster::{ClusterError, TransportProvider};

/// The cluster name the in-process QUIC clusters use.
pub const CLUSTER: &str = "demo";

/// Gives each node of an in-process cluster a QUIC endpoint on 127.0.0.1.
pub struct QuicProvider {
    ca: DevCa,
    /// The initial members' addresses: every node's configured peers.
    addrs: BTreeMap<NodeId, SocketAddr>,
    /// The addresses of nodes that may join later.
    spares: BTreeMap<NodeId, SocketAddr>,
    unused: BTreeMap<NodeId, UdpSocket>,
}

impl std::fmt::Debug for QuicProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicProvider")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

/// A provider for nodes `1..=nodes`: binds their sockets now (so every address is
/// known before the first node starts) and generates the CA and certificates.
pub fn provider(nodes: usize) -> Result<QuicProvider, ClusterError> {
    provider_with_spares(nodes, 0)
}

/// [`provider`] for members `1..=nodes`, and for `spares` more nodes (`nodes + 1`
/// on) that may join the cluster later. Every node is configured with the initial
/// members' addresses only, as an application that starts a new node gives it the
/// current members: the others reach a spare at the address a membership change
/// records for it ([`addr`](QuicProvider::addr)), or at the one it connected from.
pub fn provider_with_spares(nodes: usize, spares: usize) -> Result<QuicProvider, ClusterError> {
    let backend = |message: String| ClusterError::Backend { id: 0, message };
    let ca = DevCa::new(CLUSTER).map_err(|e| backend(e.to_string()))?;
    let mut unused = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    let mut spare_addrs = BTreeMap::new();
    for id in 1..=(nodes + spares) as NodeId {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| backend(e.to_string()))?;
        let addr = socket.local_addr().map_err(|e| backend(e.to_string()))?;
        if id <= nodes as NodeId {
            addrs.insert(id, addr);
        } else {
            spare_addrs.insert(id, addr);
        }
        unused.insert(id, socket);
    }
    Ok(QuicProvider {
        ca,
        addrs,
        spares: spare_addrs,
        unused,
    })
}

impl QuicProvider {
    /// Where node `id` (a member or a spare) listens.
    pub fn addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.addrs
            .get(&id)
            .or_else(|| self.spares.get(&id))
            .copied()
    }

    fn config(&self, id: NodeId) -> Result<QuicConfig, String> {
        let tls = self.ca.issue(id).map_err(|e| e.to_string())?;
        if let Some(&listen) = self.spares.get(&id) {
            return Ok(QuicConfig::new(
                id,
                CLUSTER,
                listen,
                self.addrs.clone(),
                tls,
            ));
        }
        QuicConfig::for_member(id, CLUSTER, &self.addrs, tls)
            .ok_or_else(|| "neither a member nor a spare".into())
    }
}

impl TransportProvider for QuicProvider {
    fn transport(&mut self, id: NodeId) -> Result<Box<dyn Transport>, String> {
        let config = self.config(id)?;
        if let Some(socket) = self.unused.remove(&id) {
            let transport =
                QuicTransport::with_socket(config, socket).map_err(|e| e.to_string())?;
            return Ok(Box::new(transport));
        }
        // A restart: the previous transport released the port when it stopped. Allow a
        // moment in case one of its sends still held the socket.
        let mut tries = 0;
        loop {
            match QuicTransport::new(config.clone()) {
                Ok(transport) => return Ok(Box::new(transport)),
                Err(e) if tries >= 50 => return Err(e.to_string()),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}
