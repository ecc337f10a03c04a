//! Election latency, measured as in the Raft paper (§9.3, Figure 16).
//!
//! A cluster runs with a stable leader; the leader crashes at a uniformly random point of
//! its heartbeat interval (a random delay after a moment whose phase is unrelated to
//! the heartbeat schedule makes the crash's offset from the last heartbeat uniform);
//! latency is the time from the crash until every survivor knows the same new leader.
//! The crashed node then restarts from its storage and rejoins, and the next trial
//! crashes whoever leads.
//!
//! The floor for a configuration is what a perfect implementation would reach: the
//! expected earliest survivor timeout measured from the crash,
//! `a + (b - a)/(s + 1) - h/2` for timeouts in `[a, b)`, `s` survivors and heartbeat
//! interval `h`, plus the round trips an election needs (Pre-Vote, vote, the leader's
//! first message), which this module estimates as two replicated-commit round trips
//! measured on the same cluster (a commit's round trip includes the storage's sync, as a
//! vote's does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use actraft::core::Config;
use actraft::testkit::SplitMix64;
use actraft::{NodeId, Term};
use actraft_examples::backend::start_cluster;
use actraft_examples::cluster::{Cluster, ClusterOptions, Placement};
use bytes::Bytes;
use serde::Serialize;

use crate::stats::{LatencyHistogram, Summary};
use crate::{BenchError, StorageKind, TransportKind};

/// One election benchmark configuration.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Cluster size.
    pub nodes: usize,
    /// Election timeout range `[a, b)`.
    pub timeout: (Duration, Duration),
    /// Heartbeat interval (default: a quarter of `a`).
    pub heartbeat: Option<Duration>,
    /// How many leader crashes to measure.
    pub trials: usize,
    /// Transport.
    pub transport: TransportKind,
    /// Storage.
    pub storage: StorageKind,
    /// Seed for the crash offsets and election timeouts.
    pub seed: u64,
    /// Where disk storages keep their files (a temporary directory when `None`).
    pub data_dir: Option<PathBuf>,
}

impl ElectionConfig {
    /// `nodes` nodes, timeouts `[a, b)` ms, in-memory everything.
    pub fn new(nodes: usize, a_ms: u64, b_ms: u64, trials: usize) -> Self {
        Self {
            nodes,
            timeout: (Duration::from_millis(a_ms), Duration::from_millis(b_ms)),
            heartbeat: None,
            trials,
            transport: TransportKind::Mem,
            storage: StorageKind::Mem,
            seed: 42,
            data_dir: None,
        }
    }

    /// The protocol configuration the cluster runs with.
    pub fn raft_config(&self) -> Config {
        let (a, b) = self.timeout;
        let mut c = Config::with_election_range(a, b);
        if let Some(h) = self.heartbeat {
            c.heartbeat_interval = h;
        }
        c
    }

    /// `a + (b - a)/(s + 1) - h/2`, in ms: the expected earliest survivor timeout
    /// measured from a crash at a uniform point of the heartbeat interval.
    pub fn timeout_floor_ms(&self) -> f64 {
        let (a, b) = self.timeout;
        let h = self.raft_config().heartbeat_interval;
        let s = (self.nodes - 1) as f64;
        ms(a) + (ms(b) - ms(a)) / (s + 1.0) - ms(h) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What an election benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct ElectionResult {
    /// Cluster size.
    pub nodes: usize,
    /// Timeout range, ms.
    pub timeout_ms: (u64, u64),
    /// Heartbeat interval, ms.
    pub heartbeat_ms: f64,
    /// Transport name.
    pub transport: String,
    /// Storage name.
    pub storage: String,
    /// Every latency, ms, in trial order (for the CDF plot).
    pub latencies_ms: Vec<f64>,
    /// Summary of the latencies.
    pub summary: Summary,
    /// Elections that needed more than one term.
    pub multi_term: usize,
    /// Median round trip of one replicated commit on this cluster, ms.
    pub commit_rtt_ms: f64,
    /// The floor: expected earliest timeout plus two commit round trips, ms.
    pub floor_ms: f64,
}

impl ElectionResult {
    /// Share of elections that needed more than one term, in percent.
    pub fn multi_term_pct(&self) -> f64 {
        100.0 * self.multi_term as f64 / self.latencies_ms.len().max(1) as f64
    }

    /// The benchmark's one-line summary.
    pub fn line(&self) -> String {
        let s = &self.summary;
        format!(
            "election: nodes={} timeout={}..{}ms transport={} storage={} trials={} mean={:.2}ms p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms multi_term={:.1}% floor={:.2}ms",
            self.nodes,
            self.timeout_ms.0,
            self.timeout_ms.1,
            self.transport,
            self.storage,
            self.latencies_ms.len(),
            s.mean,
            s.p50,
            s.p90,
            s.p99,
            s.max,
            self.multi_term_pct(),
            self.floor_ms
        )
    }
}

/// Waits until every running node but `old` knows one leader other than `old` in a term
/// above `term`. Returns (leader, its term).
async fn new_leader(
    cluster: &Cluster,
    old: NodeId,
    term: Term,
    timeout: Duration,
) -> Result<(NodeId, Term), BenchError> {
    let statuses = cluster
        .wait_for(timeout, "a new leader known to every survivor", |all| {
            let survivors: Vec<_> = all.iter().filter(|s| s.id != old).collect();
            let Some(first) = survivors.first() else {
                return false;
            };
            match first.leader {
                Some(l) if l != old && first.term > term => survivors
                    .iter()
                    .all(|s| s.leader == Some(l) && s.term == first.term),
                _ => false,
            }
        })
        .await?;
    let s = statuses.iter().find(|s| s.id != old).expect("survivors");
    Ok((s.leader.expect("checked"), s.term))
}

/// Median latency of a replicated commit through `leader`, ms.
async fn commit_rtt_ms(cluster: &Cluster, samples: usize) -> Result<f64, BenchError> {
    let mut rtts = LatencyHistogram::new();
    for i in 0..samples {
        let (leader, _) = cluster.wait_for_leader(Duration::from_secs(10)).await?;
        let handle = cluster.handle(leader).expect("leader runs");
        let start = Instant::now();
        handle.propose(Bytes::from(format!("rtt-{i}"))).await?;
        rtts.record(start.elapsed());
    }
    Ok(rtts.quantile_ms(0.5))
}

/// Runs the trials of `cfg`.
pub async fn run(cfg: &ElectionConfig) -> Result<ElectionResult, BenchError> {
    if cfg.nodes < 3 {
        return Err(BenchError::Usage(
            "an election benchmark needs 3 or more nodes".into(),
        ));
    }
    let config = cfg.raft_config();
    let h = config.heartbeat_interval;
    let options = ClusterOptions::new(cfg.nodes)
        .config(config.clone())
        .seed(cfg.seed)
        .placement(Placement::PerNode)
        .record(false);
    let mut cluster =
        start_cluster(options, cfg.storage, cfg.transport, cfg.data_dir.clone()).await?;
    let settle = cfg.timeout.1 * 40 + Duration::from_secs(2);
    cluster.wait_for_leader(settle).await?;
    let rtt = commit_rtt_ms(&cluster, 20).await?;
    let mut rng = SplitMix64::new(cfg.seed);
    let mut latencies = Vec::with_capacity(cfg.trials);
    let mut histogram = LatencyHistogram::new();
    let mut multi_term = 0;
    for _ in 0..cfg.trials {
        let (leader, term) = cluster.wait_for_leader(settle).await?;
        // Let the leader's heartbeats run, then crash it at a uniform offset.
        let offset = Duration::from_nanos(rng.below(h.as_nanos() as u64));
        tokio::time::sleep(h * 2 + offset).await;
        let crashed = Instant::now();
        cluster.kill(leader).await;
        let (new, new_term) = new_leader(&cluster, leader, term, settle).await?;
        let latency = crashed.elapsed();
        histogram.record(latency);
        latencies.push(ms(latency));
        if new_term > term + 1 {
            multi_term += 1;
        }
        let back = cluster.restart(leader).await?;
        back.wait_until(settle, |s| s.leader == Some(new) && s.term == new_term)
            .await?;
    }
    cluster.shutdown_all().await;
    let (a, b) = cfg.timeout;
    Ok(ElectionResult {
        nodes: cfg.nodes,
        timeout_ms: (a.as_millis() as u64, b.as_millis() as u64),
        heartbeat_ms: ms(h),
        transport: cfg.transport.to_string(),
        storage: cfg.storage.to_string(),
        summary: histogram.summary_ms(),
        latencies_ms: latencies,
        multi_term,
        commit_rtt_ms: rtt,
        floor_ms: cfg.timeout_floor_ms() + 2.0 * rtt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_matches_the_formula() {
        // 12..24 ms, 5 nodes (4 survivors), heartbeat 3 ms: 12 + 12/5 - 1.5 = 12.9.
        let cfg = ElectionConfig::new(5, 12, 24, 1);
        assert!((cfg.timeout_floor_ms() - 12.9).abs() < 1e-9);
    }
}
