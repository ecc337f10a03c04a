//! Metrics: what a node, its transport and its storage report to operators.
//!
//! Two views of the same numbers:
//!
//! - **[`RaftMetrics`]**, a snapshot struct read with
//!   [`RaftHandle::metrics`](crate::RaftHandle::metrics) and watched with
//!   [`RaftHandle::watch_metrics`](crate::RaftHandle::watch_metrics): role, term, leader,
//!   log indexes, the leader's view of each follower, and the node's counters.
//! - **The [`metrics`] facade**: every node, transport and storage records the metrics
//!   below through the `metrics` crate's macros. Without a recorder this costs next to
//!   nothing; an application that wants them installs one (for example
//!   `metrics-exporter-prometheus`) **before** it builds its storage and transport and
//!   starts its nodes, since each component looks up its metric handles once, when it is
//!   made. [`describe`] registers the help text of every metric with the recorder.
//!
//! Every metric carries the label `node` (the node id, as a decimal string). Per-peer
//! metrics add `peer`, transport metrics add `transport` (`mem` or `quic`), storage
//! metrics add `storage` (`mem` or `rocks`). Counters end in `_total`; latencies are in
//! seconds.
//!
//! # The node (`actraft` itself)
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `actraft_role` | gauge | node | 0 follower, 1 pre-candidate, 2 candidate, 3 leader ([`role_code`]) |
//! | `actraft_is_leader` | gauge | node | 1 while the node leads, else 0 |
//! | `actraft_term` | gauge | node | current term |
//! | `actraft_leader` | gauge | node | the leader's id as this node knows it, -1 when none |
//! | `actraft_last_log_index` | gauge | node | index of the last log entry (durable or not) |
//! | `actraft_commit_index` | gauge | node | highest index known committed |
//! | `actraft_persisted_index` | gauge | node | highest index durable on this node |
//! | `actraft_applied_index` | gauge | node | highest index applied to the state machine |
//! | `actraft_follower_match_index` | gauge | node, peer | leader only: highest index known replicated on the follower (0 when not leading) |
//! | `actraft_follower_lag` | gauge | node, peer | leader only: last log index minus the follower's match index (0 when not leading) |
//! | `actraft_proposals_accepted_total` | counter | node | proposals appended to the leader's log |
//! | `actraft_proposals_busy_total` | counter | node | proposals refused with `Busy` |
//! | `actraft_proposals_not_leader_total` | counter | node | proposals refused because the node does not lead |
//! | `actraft_proposals_lost_total` | counter | node | proposals answered `LeadershipLost` or `OutcomeUnknown` |
//! | `actraft_messages_received_total` | counter | node | messages handed to the core |
//! | `actraft_messages_refused_total` | counter | node | messages the core refused (malformed, non-member) |
//! | `actraft_inbound_dropped_total` | counter | node | messages dropped because the inbound queue was full |
//! | `actraft_writes_total` | counter | node | storage writes issued |
//! | `actraft_entries_written_total` | counter | node | entries in those writes |
//! | `actraft_entries_applied_total` | counter | node | entries applied to the state machine |
//! | `actraft_apply_batches_total` | counter | node | batches of committed entries applied |
//! | `actraft_elections_started_total` | counter | node | elections started (real votes, after any pre-vote) |
//! | `actraft_pre_votes_started_total` | counter | node | pre-vote rounds started |
//! | `actraft_elections_won_total` | counter | node | elections won |
//! | `actraft_transfers_started_total` | counter | node | leadership transfers this leader started |
//! | `actraft_transfers_abandoned_total` | counter | node | leadership transfers that did not complete in time |
//! | `actraft_snapshot_index` | gauge | node | last index included in the latest durable snapshot (0: none) |
//! | `actraft_snapshots_taken_total` | counter | node | snapshots made durable |
//! | `actraft_snapshots_failed_total` | counter | node | snapshot attempts that failed |
//! | `actraft_write_batch_entries` | histogram | node | entries per storage write (group commit batch size) |
//! | `actraft_write_seconds` | histogram | node | from handing a write to the storage to its completion |
//!
//! # Transports (`actraft-transport-mem`, `actraft-transport-quic`), through [`PeerTraffic`]
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `actraft_transport_messages_sent_total` | counter | node, peer, transport | messages sent to the peer |
//! | `actraft_transport_bytes_sent_total` | counter | node, peer, transport | bytes sent to the peer |
//! | `actraft_transport_messages_received_total` | counter | node, peer, transport | messages received from the peer |
//! | `actraft_transport_bytes_received_total` | counter | node, peer, transport | bytes received from the peer |
//! | `actraft_quic_connections_total` | counter | node, direction | QUIC connections established (`outbound`: dialled, `inbound`: accepted and identified) |
//! | `actraft_quic_refused_total` | counter | node | incoming connections or streams refused (failed handshake, unknown certificate, bad hello or frame) |
//! | `actraft_quic_non_member_total` | counter | node | connections (or messages on them) refused because the peer is not a member of the current configuration |
//! | `actraft_quic_dropped_total` | counter | node, reason | messages dropped before sending (`full`: the peer's queue, `oversized`: above the frame limit) |
//!
//! QUIC counts the bytes of the encoded frames; the in-memory transport, which encodes
//! nothing, counts the bytes of the entries' payloads.
//!
//! # Storages (`actraft-storage-mem`, `actraft-storage-rocks`), through [`StorageMetrics`]
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `actraft_storage_writes_total` | counter | node, storage | writes applied |
//! | `actraft_storage_entries_appended_total` | counter | node, storage | entries appended by those writes |
//! | `actraft_storage_append_seconds` | histogram | node, storage | time to apply one write (for RocksDB: the synced batch it was part of) |
//! | `actraft_storage_fsync_seconds` | histogram | node, storage | time of one synced (durable) batch; RocksDB only |
//! | `actraft_storage_fsync_batch_writes` | histogram | node, storage | writes made durable by one synced batch; RocksDB only |
//!
//! A storage does not know which node uses it: give it the node id
//! (`MemStorage::for_node`, `RocksOptions::metrics_node`), otherwise its `node` label is
//! empty.

mod node;
mod snapshot;

use std::time::Duration;

use metrics::{counter, histogram, Counter, Histogram};

use crate::core::{NodeId, Role};

pub(crate) use node::NodeMetrics;
pub use snapshot::{FollowerProgress, RaftMetrics};

/// The value of the `actraft_role` gauge for `role`: 0 follower, 1 pre-candidate,
/// 2 candidate, 3 leader.
pub fn role_code(role: Role) -> u8 {
    match role {
        Role::Follower => 0,
        Role::PreCandidate => 1,
        Role::Candidate => 2,
        Role::Leader => 3,
    }
}

/// The `node` label's value for a node id (empty when unknown).
fn node_label(node: Option<NodeId>) -> String {
    node.map(|id| id.to_string()).unwrap_or_default()
}

/// The traffic of one node with one peer over one transport: the per-peer counters of
/// the [module table](self). Built once per (node, peer); counting then costs two
/// counter increments, with no allocation.
#[derive(Debug, Clone)]
pub struct PeerTraffic {
    messages_sent: Counter,
    bytes_sent: Counter,
    messages_received: Counter,
    bytes_received: Counter,
}

impl PeerTraffic {
    /// The counters of `node`'s traffic with `peer` over `transport` (`"mem"`, `"quic"`),
    /// registered with the recorder installed now.
    pub fn new(transport: &'static str, node: NodeId, peer: NodeId) -> Self {
        let labels = [
            ("node", node.to_string()),
            ("peer", peer.to_string()),
            ("transport", transport.to_string()),
        ];
        Self {
            messages_sent: counter!("actraft_transport_messages_sent_total", &labels),
            bytes_sent: counter!("actraft_transport_bytes_sent_total", &labels),
            messages_received: counter!("actraft_transport_messages_received_total", &labels),
            bytes_received: counter!("actraft_transport_bytes_received_total", &labels),
        }
    }

    /// Counts `messages` sent to the peer, `bytes` in all.
    pub fn sent(&self, messages: u64, bytes: u64) {
        self.messages_sent.increment(messages);
        self.bytes_sent.increment(bytes);
    }

    /// Counts `messages` received from the peer, `bytes` in all.
    pub fn received(&self, messages: u64, bytes: u64) {
        self.messages_received.increment(messages);
        self.bytes_received.increment(bytes);
    }
}

/// A storage's metrics (the storage table of the [module docs](self)). Built once per
/// storage; recording costs a few atomic operations, with no allocation.
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    writes: Counter,
    entries: Counter,
    append_seconds: Histogram,
    fsync_seconds: Histogram,
    fsync_batch_writes: Histogram,
}

impl StorageMetrics {
    /// The metrics of a `storage` (`"mem"`, `"rocks"`) used by `node` (`None`: not
    /// known, the `node` label is empty), registered with the recorder installed now.
    pub fn new(storage: &'static str, node: Option<NodeId>) -> Self {
        let labels = [("node", node_label(node)), ("storage", storage.to_string())];
        Self {
            writes: counter!("actraft_storage_writes_total", &labels),
            entries: counter!("actraft_storage_entries_appended_total", &labels),
            append_seconds: histogram!("actraft_storage_append_seconds", &labels),
            fsync_seconds: histogram!("actraft_storage_fsync_seconds", &labels),
            fsync_batch_writes: histogram!("actraft_storage_fsync_batch_writes", &labels),
        }
    }

    /// `writes` writes applied together in `elapsed` (each counts `elapsed` in the
    /// latency histogram), appending `entries` entries in all.
    pub fn appended(&self, writes: usize, entries: u64, elapsed: Duration) {
        self.writes.increment(writes as u64);
        self.entries.increment(entries);
        self.append_seconds
            .record_many(elapsed.as_secs_f64(), writes);
    }

    /// One synced batch made `writes` writes durable in `elapsed`.
    pub fn synced(&self, writes: usize, elapsed: Duration) {
        self.fsync_seconds.record(elapsed.as_secs_f64());
        self.fsync_batch_writes.record(writes as f64);
    }
}

/// Registers the help text (and unit) of every metric in the [module tables](self) with
/// the installed recorder. Call it once, after installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "actraft_role",
        "Role: 0 follower, 1 pre-candidate, 2 candidate, 3 leader"
    );
    describe_gauge!("actraft_is_leader", "1 while the node leads, else 0");
    describe_gauge!("actraft_term", "Current term");
    describe_gauge!("actraft_leader", "The known leader's id, -1 when none");
    describe_gauge!("actraft_last_log_index", "Index of the last log entry");
    describe_gauge!("actraft_commit_index", "Highest index known committed");
    describe_gauge!(
        "actraft_persisted_index",
        "Highest index durable on this node"
    );
    describe_gauge!("actraft_applied_index", "Highest index applied");
    describe_gauge!(
        "actraft_snapshot_index",
        "Last index in the latest durable snapshot, 0 when none"
    );
    describe_gauge!(
        "actraft_follower_match_index",
        "Leader only: highest index known replicated on the follower"
    );
    describe_gauge!(
        "actraft_follower_lag",
        "Leader only: entries the follower is behind the leader's last index"
    );
    for (name, help) in [
        (
            "actraft_proposals_accepted_total",
            "Proposals appended to the leader's log",
        ),
        (
            "actraft_proposals_busy_total",
            "Proposals refused with Busy",
        ),
        (
            "actraft_proposals_not_leader_total",
            "Proposals refused because the node does not lead",
        ),
        (
            "actraft_proposals_lost_total",
            "Proposals answered LeadershipLost or OutcomeUnknown",
        ),
        (
            "actraft_messages_received_total",
            "Messages handed to the core",
        ),
        (
            "actraft_messages_refused_total",
            "Messages the core refused",
        ),
        (
            "actraft_inbound_dropped_total",
            "Messages dropped on a full inbound queue",
        ),
        ("actraft_writes_total", "Storage writes issued"),
        ("actraft_entries_written_total", "Entries in storage writes"),
        ("actraft_entries_applied_total", "Entries applied"),
        ("actraft_apply_batches_total", "Batches of entries applied"),
        ("actraft_elections_started_total", "Elections started"),
        ("actraft_pre_votes_started_total", "Pre-vote rounds started"),
        ("actraft_elections_won_total", "Elections won"),
        (
            "actraft_transfers_started_total",
            "Leadership transfers started",
        ),
        (
            "actraft_transfers_abandoned_total",
            "Leadership transfers abandoned",
        ),
        ("actraft_snapshots_taken_total", "Snapshots made durable"),
        (
            "actraft_snapshots_failed_total",
            "Snapshot attempts that failed",
        ),
        (
            "actraft_transport_messages_sent_total",
            "Messages sent to the peer",
        ),
        (
            "actraft_transport_messages_received_total",
            "Messages received from the peer",
        ),
        (
            "actraft_quic_connections_total",
            "QUIC connections established",
        ),
        (
            "actraft_quic_refused_total",
            "QUIC connections or streams refused",
        ),
        (
            "actraft_quic_non_member_total",
            "QUIC connections refused because the peer is not a member",
        ),
        (
            "actraft_quic_dropped_total",
            "Messages dropped before sending",
        ),
        ("actraft_storage_writes_total", "Storage writes applied"),
        (
            "actraft_storage_entries_appended_total",
            "Entries appended by the storage",
        ),
    ] {
        describe_counter!(name, help);
    }
    describe_counter!(
        "actraft_transport_bytes_sent_total",
        Unit::Bytes,
        "Bytes sent to the peer"
    );
    describe_counter!(
        "actraft_transport_bytes_received_total",
        Unit::Bytes,
        "Bytes received from the peer"
    );
    describe_histogram!(
        "actraft_write_batch_entries",
        Unit::Count,
        "Entries per storage write"
    );
    describe_histogram!(
        "actraft_write_seconds",
        Unit::Seconds,
        "Time from handing a write to the storage to its completion"
    );
    describe_histogram!(
        "actraft_storage_append_seconds",
        Unit::Seconds,
        "Time to apply one write"
    );
    describe_histogram!(
        "actraft_storage_fsync_seconds",
        Unit::Seconds,
        "Time of one synced batch"
    );
    describe_histogram!(
        "actraft_storage_fsync_batch_writes",
        Unit::Count,
        "Writes made durable by one synced batch"
    );
}
