//! Message counters. Every directed link (sender id, receiver id) counts its messages in
//! its own [`LinkCounters`], which only the link's sender (and the tasks carrying its
//! delayed messages) write, so the hot path never writes a cache line another node's
//! thread writes too. [`Stats`] and [`NodeStats`] sum links on demand.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use actraft::core::{Envelope, Message, NodeId};
use actraft::metrics::PeerTraffic;

/// The message kinds, in the order of [`kind_index`], named as [`Message::kind`] names
/// them.
pub(crate) const KINDS: [&str; 11] = [
    "RequestVote",
    "RequestVoteReply",
    "PreVote",
    "PreVoteReply",
    "AppendEntries",
    "AppendEntriesReply",
    "TimeoutNow",
    "ReadIndex",
    "ReadIndexReply",
    "InstallSnapshot",
    "InstallSnapshotReply",
];

/// The index of `message`'s kind in [`KINDS`].
pub(crate) fn kind_index(message: &Message) -> usize {
    match message {
        Message::RequestVote(_) => 0,
        Message::RequestVoteReply(_) => 1,
        Message::PreVote(_) => 2,
        Message::PreVoteReply(_) => 3,
        Message::AppendEntries(_) => 4,
        Message::AppendEntriesReply(_) => 5,
        Message::TimeoutNow(_) => 6,
        Message::ReadIndex(_) => 7,
        Message::ReadIndexReply(_) => 8,
        Message::InstallSnapshot(_) => 9,
        Message::InstallSnapshotReply(_) => 10,
    }
}

/// The bytes a message carries for the `actraft_transport_bytes_*` metrics: the
/// entries' payloads (this transport encodes nothing).
pub(crate) fn payload_bytes(envelope: &Envelope) -> u64 {
    match &envelope.message {
        Message::AppendEntries(request) => {
            request.entries.iter().map(|e| e.payload.len() as u64).sum()
        }
        _ => 0,
    }
}

/// Why a message was dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DropReason {
    /// Isolation or a partition cut the link.
    Cut,
    /// The drop rate picked it.
    Lost,
    /// A content filter dropped it.
    Filtered,
    /// The destination was not running (stopped, or not started yet).
    PeerDown,
    /// The destination's member list does not name the sender.
    Refused,
}

/// The counters of one directed link. Aligned so that two links' counters never share a
/// cache line.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct LinkCounters {
    sent: [AtomicU64; KINDS.len()],
    delivered: [AtomicU64; KINDS.len()],
    cut: AtomicU64,
    lost: AtomicU64,
    filtered: AtomicU64,
    peer_down: AtomicU64,
    refused: AtomicU64,
    delayed: AtomicU64,
    duplicated: AtomicU64,
    /// The sender's metrics of its traffic to the receiver.
    sender_traffic: PeerTraffic,
    /// The receiver's metrics of its traffic from the sender.
    receiver_traffic: PeerTraffic,
}

impl LinkCounters {
    /// The counters of the link from `from` to `to`.
    pub(crate) fn new(from: NodeId, to: NodeId) -> Self {
        Self {
            sent: Default::default(),
            delivered: Default::default(),
            cut: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            peer_down: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            sender_traffic: PeerTraffic::new("mem", from, to),
            receiver_traffic: PeerTraffic::new("mem", to, from),
        }
    }

    pub(crate) fn sent(&self, kind: usize, bytes: u64) {
        self.sent[kind].fetch_add(1, Ordering::Relaxed);
        self.sender_traffic.sent(1, bytes);
    }

    pub(crate) fn delivered(&self, kind: usize, bytes: u64) {
        self.delivered[kind].fetch_add(1, Ordering::Relaxed);
        self.receiver_traffic.received(1, bytes);
    }

    pub(crate) fn delayed(&self) {
        self.delayed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicated(&self) {
        self.duplicated.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        let counter = match reason {
            DropReason::Cut => &self.cut,
            DropReason::Lost => &self.lost,
            DropReason::Filtered => &self.filtered,
            DropReason::PeerDown => &self.peer_down,
            DropReason::Refused => &self.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds these counters to `stats`. Outcomes are read before sends and copies, so
    /// that a snapshot taken while messages flow never shows more outcomes than
    /// messages.
    pub(crate) fn add_to(&self, stats: &mut Stats) {
        let load = |c: &AtomicU64| c.load(Ordering::Acquire);
        stats.dropped_cut += load(&self.cut);
        stats.dropped_lost += load(&self.lost);
        stats.dropped_filter += load(&self.filtered);
        stats.dropped_peer_down += load(&self.peer_down);
        stats.dropped_refused += load(&self.refused);
        for (i, kind) in KINDS.iter().enumerate() {
            let delivered = load(&self.delivered[i]);
            stats.delivered += delivered;
            *stats.delivered_by_kind.entry(kind).or_default() += delivered;
        }
        stats.delayed += load(&self.delayed);
        stats.duplicated += load(&self.duplicated);
        for (i, kind) in KINDS.iter().enumerate() {
            let sent = load(&self.sent[i]);
            stats.sent += sent;
            *stats.sent_by_kind.entry(kind).or_default() += sent;
        }
        stats.dropped = stats.dropped_cut
            + stats.dropped_lost
            + stats.dropped_filter
            + stats.dropped_peer_down
            + stats.dropped_refused;
    }
}

/// A snapshot of what was sent through a [`MemRouter`](crate::MemRouter) since it was
/// created: by the whole router ([`MemRouter::stats`](crate::MemRouter::stats)), on one
/// directed link ([`MemRouter::link_stats`](crate::MemRouter::link_stats)), or to and
/// from one node ([`MemRouter::node_stats`](crate::MemRouter::node_stats)).
///
/// Every accepted send counts once in `sent`, and a copy made by a
/// [`FilterAction::Duplicate`](crate::FilterAction::Duplicate) once in `duplicated`;
/// once its fate is decided, each message or copy counts once in `delivered` or in
/// `dropped`. A delayed message in between is [in flight](Stats::in_flight). A send
/// refused with an error counts nowhere. The counters are read one by one: a snapshot
/// taken while messages flow is only approximately consistent. To count what happened
/// during one phase of a test, subtract the snapshot taken before it ([`Stats::since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages accepted by `send`.
    pub sent: u64,
    /// Messages (and copies) handed to the destination's inbox (which accepted them).
    pub delivered: u64,
    /// Messages (and copies) dropped, for any reason: the sum of the five `dropped_*`
    /// counters.
    pub dropped: u64,
    /// Dropped because isolation or a partition separated sender and receiver (when
    /// sent, or when a delayed message came due).
    pub dropped_cut: u64,
    /// Dropped by a drop rate (router-wide or per link).
    pub dropped_lost: u64,
    /// Dropped by a content filter ([`MemRouter::add_filter`](crate::MemRouter::add_filter)).
    pub dropped_filter: u64,
    /// Dropped because the destination was not running: stopped, not started yet, or
    /// its inbox refused the message.
    pub dropped_peer_down: u64,
    /// Replies and reads refused by the destination because the sender is not in its
    /// member list ([`Transport::set_members`](actraft::Transport::set_members)).
    pub dropped_refused: u64,
    /// Messages (and copies) held back by a delay before their fate was decided: a
    /// router-wide, per-link or filter delay.
    pub delayed: u64,
    /// Extra copies made by [`FilterAction::Duplicate`](crate::FilterAction::Duplicate).
    pub duplicated: u64,
    /// `sent`, by [`Message::kind`] (every kind present, zero included).
    pub sent_by_kind: BTreeMap<&'static str, u64>,
    /// `delivered`, by [`Message::kind`] (every kind present, zero included).
    pub delivered_by_kind: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// An empty snapshot listing every kind with a zero count.
    pub(crate) fn zero() -> Self {
        let kinds: BTreeMap<&'static str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
        Self {
            sent_by_kind: kinds.clone(),
            delivered_by_kind: kinds,
            ..Self::default()
        }
    }

    /// Messages (and copies) whose fate is not decided yet (delayed, on their way).
    pub fn in_flight(&self) -> u64 {
        (self.sent + self.duplicated).saturating_sub(self.delivered + self.dropped)
    }

    /// How many messages of `kind` (as [`Message::kind`] names it, e.g.
    /// `"AppendEntries"`) were delivered; 0 for a name that is not a kind.
    pub fn delivered_of(&self, kind: &str) -> u64 {
        self.delivered_by_kind.get(kind).copied().unwrap_or(0)
    }

    /// How many messages of `kind` were sent; 0 for a name that is not a kind.
    pub fn sent_of(&self, kind: &str) -> u64 {
        self.sent_by_kind.get(kind).copied().unwrap_or(0)
    }

    /// What happened between the snapshot `earlier` and this one.
    pub fn since(&self, earlier: &Stats) -> Stats {
        let diff = |now: &BTreeMap<&'static str, u64>, then: &BTreeMap<&'static str, u64>| {
            now.iter()
                .map(|(k, v)| (*k, v.saturating_sub(then.get(k).copied().unwrap_or(0))))
                .collect()
        };
        Stats {
            sent: self.sent.saturating_sub(earlier.sent),
            delivered: self.delivered.saturating_sub(earlier.delivered),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            dropped_cut: self.dropped_cut.saturating_sub(earlier.dropped_cut),
            dropped_lost: self.dropped_lost.saturating_sub(earlier.dropped_lost),
            dropped_filter: self.dropped_filter.saturating_sub(earlier.dropped_filter),
            dropped_peer_down: self
                .dropped_peer_down
                .saturating_sub(earlier.dropped_peer_down),
            dropped_refused: self.dropped_refused.saturating_sub(earlier.dropped_refused),
            delayed: self.delayed.saturating_sub(earlier.delayed),
            duplicated: self.duplicated.saturating_sub(earlier.duplicated),
            sent_by_kind: diff(&self.sent_by_kind, &earlier.sent_by_kind),
            delivered_by_kind: diff(&self.delivered_by_kind, &earlier.delivered_by_kind),
        }
    }
}

/// The traffic of one node, both ways: what it sent ([`outbound`](Self::outbound)) and
/// what was sent to it ([`inbound`](Self::inbound)), with the fate of each message. A
/// message a node sends to itself counts in both.
///
/// Summed over every node, `outbound` gives the router's totals, and so does `inbound`.
/// A message cut by a partition counts in its sender's `outbound.dropped_cut` and in
/// its receiver's `inbound.dropped_cut`: "node 1 sent 40 replies nobody got" and "node
/// 1 heard nothing of the 40 replies sent to it" are both one call away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// The messages the node sent (every transport it had, across restarts).
    pub outbound: Stats,
    /// The messages addressed to the node, from every sender.
    pub inbound: Stats,
}

impl NodeStats {
    /// An empty snapshot listing every kind with a zero count.
    pub(crate) fn zero() -> Self {
        Self {
            outbound: Stats::zero(),
            inbound: Stats::zero(),
        }
    }

    /// What happened between the snapshot `earlier` and this one.
    pub fn since(&self, earlier: &NodeStats) -> NodeStats {
        NodeStats {
            outbound: self.outbound.since(&earlier.outbound),
            inbound: self.inbound.since(&earlier.inbound),
        }
    }
}
