//! The transport's metrics (see `actraft::metrics` for the list): per-peer traffic,
//! connections, refusals and drops. The handles are built once, with the transport.

use std::collections::BTreeMap;

use actraft::core::NodeId;
use actraft::metrics::PeerTraffic;
use metrics::{counter, Counter};

/// Every metric handle of one QUIC transport.
#[derive(Debug)]
pub(crate) struct QuicMetrics {
    traffic: BTreeMap<NodeId, PeerTraffic>,
    pub(crate) connections_outbound: Counter,
    pub(crate) connections_inbound: Counter,
    pub(crate) refused: Counter,
    pub(crate) dropped_full: Counter,
    pub(crate) dropped_oversized: Counter,
}

impl QuicMetrics {
    /// The handles of node `id`'s transport to `peers`, registered with the recorder
    /// installed now.
    pub(crate) fn new(id: NodeId, peers: impl Iterator<Item = NodeId>) -> Self {
        let node = id.to_string();
        let with = |key: &'static str, value: &'static str| {
            [("node", node.clone()), (key, value.to_string())]
        };
        let labels = [("node", node.clone())];
        Self {
            traffic: peers
                .map(|peer| (peer, PeerTraffic::new("quic", id, peer)))
                .collect(),
            connections_outbound: counter!(
                "actraft_quic_connections_total",
                &with("direction", "outbound")
            ),
            connections_inbound: counter!(
                "actraft_quic_connections_total",
                &with("direction", "inbound")
            ),
            refused: counter!("actraft_quic_refused_total", &labels),
            dropped_full: counter!("actraft_quic_dropped_total", &with("reason", "full")),
            dropped_oversized: counter!("actraft_quic_dropped_total", &with("reason", "oversized")),
        }
    }

    /// The traffic counters of `peer` (`None` for a peer not in the configuration).
    pub(crate) fn traffic(&self, peer: NodeId) -> Option<&PeerTraffic> {
        self.traffic.get(&peer)
    }
}
