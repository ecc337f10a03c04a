//! The transport's metrics (see `actraft::metrics` for the list): per-peer traffic,
//! connections, refusals and drops. The handles are built with the transport, a peer's
//! traffic handles when it becomes a peer.

use std::collections::BTreeMap;
use std::sync::RwLock;

use actraft::core::NodeId;
use actraft::metrics::PeerTraffic;
use metrics::{counter, Counter};

/// Every metric handle of one QUIC transport.
#[derive(Debug)]
pub(crate) struct QuicMetrics {
    id: NodeId,
    traffic: RwLock<BTreeMap<NodeId, PeerTraffic>>,
    pub(crate) connections_outbound: Counter,
    pub(crate) connections_inbound: Counter,
    pub(crate) refused: Counter,
    pub(crate) non_member: Counter,
    pub(crate) dropped_full: Counter,
    pub(crate) dropped_oversized: Counter,
}

impl QuicMetrics {
    /// The handles of node `id`'s transport, registered with the recorder installed now.
    pub(crate) fn new(id: NodeId) -> Self {
        let node = id.to_string();
        let with = |key: &'static str, value: &'static str| {
            [("node", node.clone()), (key, value.to_string())]
        };
        let labels = [("node", node.clone())];
        Self {
            id,
            traffic: RwLock::new(BTreeMap::new()),
            connections_outbound: counter!(
                "actraft_quic_connections_total",
                &with("direction", "outbound")
            ),
            connections_inbound: counter!(
                "actraft_quic_connections_total",
                &with("direction", "inbound")
            ),
            refused: counter!("actraft_quic_refused_total", &labels),
            non_member: counter!("actraft_quic_non_member_total", &labels),
            dropped_full: counter!("actraft_quic_dropped_total", &with("reason", "full")),
            dropped_oversized: counter!("actraft_quic_dropped_total", &with("reason", "oversized")),
        }
    }

    /// Starts counting the traffic with `peer` (a peer now; kept if it already was).
    pub(crate) fn add_peer(&self, peer: NodeId) {
        self.traffic
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(peer)
            .or_insert_with(|| PeerTraffic::new("quic", self.id, peer));
    }

    /// Drops the traffic handles of `peer`, which is no longer a peer.
    pub(crate) fn remove_peer(&self, peer: NodeId) {
        self.traffic
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&peer);
    }

    /// The traffic counters of `peer` (`None` for a node that is not a peer).
    pub(crate) fn traffic(&self, peer: NodeId) -> Option<PeerTraffic> {
        self.traffic
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned()
    }
}
