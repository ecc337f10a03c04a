//! Protocol configuration and its validation.

use std::time::Duration;

use thiserror::Error;

/// Timing and flow-control settings of one node. Build one with [`Config::default`] and
/// adjust fields, then [`Config::validate`] (the core validates on construction too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Lower bound of the randomized election timeout (§5.2). Default 150 ms.
    pub election_timeout_min: Duration,
    /// Exclusive upper bound of the randomized election timeout. Default 300 ms.
    pub election_timeout_max: Duration,
    /// How often a leader sends heartbeats. Must be at most half of
    /// `election_timeout_min`, so that one lost heartbeat does not start an election.
    /// Default 50 ms.
    pub heartbeat_interval: Duration,
    /// Ask "could I win?" before raising the term (Pre-Vote), so that a node that was cut
    /// off cannot disrupt a stable leader when it returns. Default on.
    pub pre_vote: bool,
    /// A leader that has not heard from a majority within the minimum election timeout
    /// steps down, and a follower that heard from a live leader within the minimum
    /// election timeout (less half a heartbeat interval) refuses to vote for anyone else.
    /// Default on.
    pub check_quorum: bool,
    /// Most entries carried by one AppendEntries. Default 1024.
    pub max_append_entries: usize,
    /// Most payload bytes carried by one AppendEntries (a single larger entry is still
    /// sent, alone). Default 1 MiB.
    pub max_append_bytes: usize,
    /// Most AppendEntries in flight to one follower before the leader waits for a reply.
    /// Default 64.
    pub max_inflight_appends: usize,
    /// Most payload bytes in flight to one follower. Default 16 MiB.
    pub max_inflight_bytes: usize,
    /// Most entries a leader holds appended but not committed; beyond it, proposals are
    /// refused with `Busy` until commits catch up (backpressure when clients outrun the
    /// cluster). Default 16 384.
    pub max_uncommitted_entries: usize,
    /// Most payload bytes a leader holds appended but not committed; beyond it,
    /// proposals are refused with `Busy`. Default 64 MiB.
    pub max_uncommitted_bytes: usize,
    /// Most committed entries handed to the driver for applying before it reports them
    /// applied; the driver applies in batches of this size and lets ticks and messages
    /// through between them, so a long catch-up never stalls heartbeats. Default 1024.
    pub max_apply_batch: usize,
    /// Take a snapshot once this many entries were applied since the last one (§7);
    /// 0 turns the entry trigger off. Needs a snapshot store and a state machine that
    /// snapshots. Default 65 536.
    pub snapshot_after_entries: u64,
    /// Take a snapshot once this many payload bytes were applied since the last one;
    /// 0 turns the byte trigger off. Default 64 MiB.
    pub snapshot_after_bytes: u64,
    /// Entries kept in memory and in storage behind the latest snapshot, so that a
    /// follower lagging by less catches up from the log. Default 1024.
    pub snapshot_keep_entries: u64,
    /// Serve [`ReadMode::Lease`](super::ReadMode::Lease) reads, and the read index
    /// followers ask for ([`ReadMode::Follower`](super::ReadMode::Follower)), without a
    /// round of heartbeats while the leader's lease holds (see the `read_index` module
    /// docs for the clock assumption). Needs `check_quorum`; without it lease reads take a round.
    /// With it, a node that just started refuses votes for `election_timeout_min`.
    /// Default off.
    pub lease_reads: bool,
    /// How much slower than the leader's any node's clock may run over one lease window
    /// (`election_timeout_min − heartbeat_interval / 2`); the lease is shortened by it.
    /// Must be below that window when `lease_reads` is on. Default 15 ms.
    pub clock_drift_margin: Duration,
    /// Most snapshot bytes carried by one InstallSnapshot (every chunk but the last has
    /// exactly this size). Keep it well below the transport's message limit.
    /// Default 1 MiB.
    pub max_snapshot_chunk_bytes: usize,
    /// Most snapshot chunks a leader has unacknowledged to one follower. Default 4.
    pub max_inflight_snapshot_chunks: usize,
    /// Most entries the core keeps in memory once they are applied and durable (the log
    /// window). Entries not yet applied or durable always stay; older ones are dropped
    /// from memory beyond this bound, and a follower that needs them is sent them read
    /// from storage, off the node's thread. Default 8 192.
    pub log_window_entries: usize,
    /// Most payload bytes of applied, durable entries the core keeps in memory (see
    /// `log_window_entries`). Default 32 MiB.
    pub log_window_bytes: usize,
    /// How many entries behind the leader's last entry a learner may be and still be
    /// made a voter by a checked membership change (a node further behind would leave
    /// the new configuration without a working majority while it catches up).
    /// Default 1024.
    pub max_promotion_lag: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(300),
            heartbeat_interval: Duration::from_millis(50),
            pre_vote: true,
            check_quorum: true,
            max_append_entries: 1024,
            max_append_bytes: 1 << 20,
            max_inflight_appends: 64,
            max_inflight_bytes: 16 << 20,
            max_uncommitted_entries: 16 * 1024,
            max_uncommitted_bytes: 64 << 20,
            max_apply_batch: 1024,
            snapshot_after_entries: 64 * 1024,
            snapshot_after_bytes: 64 << 20,
            snapshot_keep_entries: 1024,
            lease_reads: false,
            clock_drift_margin: Duration::from_millis(15),
            max_snapshot_chunk_bytes: 1 << 20,
            max_inflight_snapshot_chunks: 4,
            log_window_entries: 8 * 1024,
            log_window_bytes: 32 << 20,
            max_promotion_lag: 1024,
        }
    }
}

/// Why a [`Config`] was refused (fatal for the node being built with it).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The election timeout range is empty or starts at zero.
    #[error("election timeout range {min:?}..{max:?} is empty: need 0 < min < max")]
    EmptyElectionRange {
        /// The configured minimum.
        min: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// The heartbeat interval is zero or not well below the minimum election timeout.
    #[error(
        "heartbeat interval {heartbeat:?} must be non-zero and at most half of the minimum election timeout {min:?}"
    )]
    HeartbeatTooSlow {
        /// The configured heartbeat interval.
        heartbeat: Duration,
        /// The configured minimum election timeout.
        min: Duration,
    },
    /// The clock-drift margin leaves no lease.
    #[error("clock drift margin {margin:?} must be below the lease window {window:?}")]
    DriftMarginTooLarge {
        /// The configured margin.
        margin: Duration,
        /// `election_timeout_min − heartbeat_interval / 2`.
        window: Duration,
    },
    /// A count or byte limit is zero.
    #[error("limit `{name}` must be positive")]
    ZeroLimit {
        /// Name of the field.
        name: &'static str,
    },
}

impl Config {
    /// Checks the invariants listed on each field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (min, max) = (self.election_timeout_min, self.election_timeout_max);
        if min.is_zero() || min >= max {
            return Err(ConfigError::EmptyElectionRange { min, max });
        }
        let hb = self.heartbeat_interval;
        if hb.is_zero() || hb * 2 > min {
            return Err(ConfigError::HeartbeatTooSlow { heartbeat: hb, min });
        }
        let window = min - hb / 2;
        if self.lease_reads && self.clock_drift_margin >= window {
            return Err(ConfigError::DriftMarginTooLarge {
                margin: self.clock_drift_margin,
                window,
            });
        }
        for (name, v) in [
            ("max_append_entries", self.max_append_entries),
            ("max_append_bytes", self.max_append_bytes),
            ("max_inflight_appends", self.max_inflight_appends),
            ("max_inflight_bytes", self.max_inflight_bytes),
            ("max_uncommitted_entries", self.max_uncommitted_entries),
            ("max_uncommitted_bytes", self.max_uncommitted_bytes),
            ("max_apply_batch", self.max_apply_batch),
            ("max_snapshot_chunk_bytes", self.max_snapshot_chunk_bytes),
            (
                "max_inflight_snapshot_chunks",
                self.max_inflight_snapshot_chunks,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroLimit { name });
            }
        }
        Ok(())
    }

    /// A configuration with the given election range and a heartbeat of a quarter of
    /// its minimum, other fields at their defaults: the usual way to scale a cluster's
    /// timing to its network (a LAN, a WAN, or an in-process cluster with short
    /// timeouts) while keeping the heartbeat well inside the election timeout.
    pub fn with_election_range(min: Duration, max: Duration) -> Self {
        Self {
            election_timeout_min: min,
            election_timeout_max: max,
            heartbeat_interval: min / 4,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn rejects_bad_ranges_and_limits() {
        let mut c = Config {
            election_timeout_max: Duration::from_millis(150),
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::EmptyElectionRange { .. })
        ));
        c = Config {
            heartbeat_interval: Duration::from_millis(100),
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::HeartbeatTooSlow { .. })
        ));
        c = Config {
            max_inflight_appends: 0,
            ..Config::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroLimit {
                name: "max_inflight_appends"
            })
        );
    }
}
