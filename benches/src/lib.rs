//! Benchmarks for actraft, measured the way the Raft paper measures them.
//!
//! - [`election`]: election latency after a leader crash (§9.3, Figure 16), next to the
//!   floor the configuration allows;
//! - [`throughput`]: committed-and-applied entries per second with K concurrent clients;
//! - [`overload`]: far more clients than the cluster can serve: memory, throughput and
//!   latency under backpressure;
//! - [`memory`]: resident memory over a long steady load, with snapshots and compaction;
//! - [`catchup`]: a follower far behind catching up by snapshot, and a node restarting
//!   on a long history;
//! - [`reads`]: reads per second by read path (log, read index, lease, follower) and a
//!   read/write mix;
//! - [`storage`]: any `LogStorage` on the same work;
//! - [`report`]: runs everything and writes `report.json`, `report.md` and SVG plots.
#![warn(missing_docs)]

pub mod catchup;
pub mod ceiling;
pub mod cli;
pub mod election;
pub mod follow;
pub mod memory;
pub mod overload;
pub mod reads;
pub mod report;
pub mod stats;
pub mod storage;
pub mod svg;
pub mod throughput;

use std::time::Duration;

pub use actraft_examples::backend::{StorageKind, TransportKind};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The cluster failed.
    #[error(transparent)]
    Cluster(#[from] actraft_examples::cluster::ClusterError),
    /// A client request failed.
    #[error(transparent)]
    Client(#[from] actraft::ClientError),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    /// Measuring a raw ceiling (QUIC on loopback) failed.
    #[error("measuring a raw ceiling: {0}")]
    Ceiling(String),
}

/// Parses `12..24` (milliseconds) into a range.
pub fn parse_range_ms(s: &str) -> Result<(Duration, Duration), BenchError> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| BenchError::Usage(format!("expected MIN..MAX in ms, got {s:?}")))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| BenchError::Usage(format!("not a number of ms: {v:?}")))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a == 0 || a >= b {
        return Err(BenchError::Usage(format!("empty range {a}..{b}")));
    }
    Ok((Duration::from_millis(a), Duration::from_millis(b)))
}

/// Installs a quiet tracing subscriber (`RUST_LOG` overrides).
pub fn init_tracing() {
    actraft_examples::init_tracing();
}
