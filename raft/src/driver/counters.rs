//! Counters a node keeps about its own work, readable from any thread.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one node. The driver bumps them with relaxed atomics; read a
/// consistent-enough copy with [`Counters::snapshot`].
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) proposals_accepted: AtomicU64,
    pub(crate) proposals_busy: AtomicU64,
    pub(crate) proposals_not_leader: AtomicU64,
    pub(crate) proposals_lost: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) messages_refused: AtomicU64,
    pub(crate) inbound_dropped: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) entries_written: AtomicU64,
    pub(crate) entries_applied: AtomicU64,
    pub(crate) apply_batches: AtomicU64,
    pub(crate) elections_started: AtomicU64,
    pub(crate) elections_won: AtomicU64,
    pub(crate) log_reads: AtomicU64,
}

/// A copy of a node's [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterSnapshot {
    /// Proposals appended to the leader's log.
    pub proposals_accepted: u64,
    /// Proposals refused with `Busy` (a full queue, a full reply table, or the
    /// uncommitted bound).
    pub proposals_busy: u64,
    /// Proposals refused because this node was not the leader.
    pub proposals_not_leader: u64,
    /// Proposals answered `LeadershipLost` or `OutcomeUnknown`.
    pub proposals_lost: u64,
    /// Messages handed to the core.
    pub messages_received: u64,
    /// Messages the core refused as malformed or from a non-member.
    pub messages_refused: u64,
    /// Messages dropped because the node's inbound queue was full.
    pub inbound_dropped: u64,
    /// Storage writes issued.
    pub writes: u64,
    /// Entries in those writes.
    pub entries_written: u64,
    /// Entries applied to the state machine.
    pub entries_applied: u64,
    /// Batches of committed entries applied.
    pub apply_batches: u64,
    /// Elections (and pre-votes) this node started.
    pub elections_started: u64,
    /// Elections this node won.
    pub elections_won: u64,
    /// Reads of stored entries behind the in-memory log window, for lagging followers.
    pub log_reads: u64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            proposals_accepted: r(&self.proposals_accepted),
            proposals_busy: r(&self.proposals_busy),
            proposals_not_leader: r(&self.proposals_not_leader),
            proposals_lost: r(&self.proposals_lost),
            messages_received: r(&self.messages_received),
            messages_refused: r(&self.messages_refused),
            inbound_dropped: r(&self.inbound_dropped),
            writes: r(&self.writes),
            entries_written: r(&self.entries_written),
            entries_applied: r(&self.entries_applied),
            apply_batches: r(&self.apply_batches),
            elections_started: r(&self.elections_started),
            elections_won: r(&self.elections_won),
            log_reads: r(&self.log_reads),
        }
    }
}
