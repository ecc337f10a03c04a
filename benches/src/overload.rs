//! Overload: far more clients than a cluster can serve, for a long time. A node must push
//! back (`Busy`) instead of queueing without bound: memory stays flat, accepted
//! proposals keep a bounded latency, throughput stays near the saturated rate, and the
//! leader keeps its heartbeats flowing (no election after the first).
//!
//! First a baseline: `baseline_clients` closed-loop clients (one proposal each in
//! flight) saturate a fresh cluster. Then the overload: `clients` clients with `window`
//! proposals each in flight on another fresh cluster; a client refused with `Busy` backs
//! off before it tries again, as a well-behaved client would: a random wait below
//! `backoff`, doubled at each refusal in a row up to `max_backoff`, reset by a success.
//!
//! What bounds p99 of accepted proposals: a handle refuses while the proposals queued
//! for the node plus those pending in it reach `Limits::max_pending_proposals` (16 384),
//! so an accepted proposal waits behind at most that many: about 16 384 / throughput
//! plus a commit round trip (≈ 30 ms at 500 K/s). A leader change adds an election
//! timeout and the new leader's first commit; clients follow the new leader, and
//! `elections` counts the changes.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actraft::testkit::SplitMix64;
use actraft_examples::backend::start_cluster;
use actraft_examples::cluster::{ClusterOptions, Placement};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::follow::{Leader, Outcome};
use crate::{BenchError, StorageKind, TransportKind};

/// One overload configuration.
#[derive(Debug, Clone)]
pub struct OverloadConfig {
    /// Cluster size.
    pub members: usize,
    /// Clients in the overload phase.
    pub clients: usize,
    /// Proposals each overload client keeps in flight.
    pub window: usize,
    /// Length of the overload phase.
    pub secs: f64,
    /// Time before `rss_mb_start` is taken and throughput counted.
    pub warmup_secs: f64,
    /// Closed-loop clients of the baseline phase.
    pub baseline_clients: usize,
    /// Length of the baseline phase.
    pub baseline_secs: f64,
    /// Bytes per command.
    pub payload: usize,
    /// Node threads.
    pub threads: usize,
    /// The longest first wait of a client refused with `Busy` (the wait is drawn at
    /// random below it, and doubles at each refusal in a row).
    pub backoff: Duration,
    /// The bound on that doubling.
    pub max_backoff: Duration,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        Self {
            members: 3,
            clients: 4096,
            window: 8,
            secs: 60.0,
            warmup_secs: 5.0,
            baseline_clients: 256,
            baseline_secs: 10.0,
            payload: 64,
            threads: 2,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(64),
        }
    }
}

/// What an overload run measured.
#[derive(Debug, Clone, Serialize)]
pub struct OverloadResult {
    /// Cluster size.
    pub members: usize,
    /// Overload clients.
    pub clients: usize,
    /// Proposals in flight per client.
    pub window: usize,
    /// Length of the measured part of the overload phase, seconds.
    pub secs: f64,
    /// Committed proposals per second under overload (after the warm-up).
    pub ops_per_sec: f64,
    /// Proposals refused with `Busy`.
    pub busy: u64,
    /// 99th percentile latency of accepted proposals, µs.
    pub p99_us: f64,
    /// Resident memory after the warm-up, MiB.
    pub rss_mb_start: f64,
    /// Largest resident memory sampled after the warm-up, MiB.
    pub rss_mb_max: f64,
    /// Leader elections during the overload phase (the first one included).
    pub elections: u64,
    /// Closed-loop clients of the baseline.
    pub baseline_clients: usize,
    /// Committed proposals per second of the saturated baseline.
    pub baseline_ops_per_sec: f64,
}

impl OverloadResult {
    /// The benchmark's one-line summary.
    pub fn line(&self) -> String {
        format!(
            "overload: members={} clients={} secs={:.1} ops_per_sec={:.0} busy={} p99_us={:.0} rss_mb_start={:.1} rss_mb_max={:.1} elections={}",
            self.members,
            self.clients,
            self.secs,
            self.ops_per_sec,
            self.busy,
            self.p99_us,
            self.rss_mb_start,
            self.rss_mb_max,
            self.elections
        )
    }

    /// The baseline's line, printed before the result.
    pub fn baseline_line(&self) -> String {
        format!(
            "overload-baseline: members={} clients={} ops_per_sec={:.0}",
            self.members, self.baseline_clients, self.baseline_ops_per_sec
        )
    }
}

/// Resident memory of this process, MiB (0 where `/proc` is missing).
pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Counts of one phase.
struct Phase {
    committed: AtomicU64,
    busy: AtomicU64,
    stop: AtomicBool,
}

/// Runs `clients × window` proposal loops against the leader of a fresh cluster for
/// `secs`, calling `sample` once a second. Returns the counts, the latency histogram
/// of accepted proposals after `warmup`, and the cluster's elections.
async fn phase(
    cfg: &OverloadConfig,
    clients: usize,
    window: usize,
    secs: f64,
    warmup: f64,
    mut sample: impl FnMut(f64),
) -> Result<(u64, f64, u64, Histogram<u64>, u64), BenchError> {
    let options = ClusterOptions::new(cfg.members)
        .placement(Placement::Threads(cfg.threads.max(1)))
        .record(false);
    let mut cluster = start_cluster(options, StorageKind::Mem, TransportKind::Mem, None).await?;
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    // Clients follow the leader; leader changes are counted (`elections`), not fatal.
    let leader = Leader::new(cluster.live(), leader);
    let shared = Arc::new(Phase {
        committed: AtomicU64::new(0),
        busy: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let hist = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
    ));
    let measuring = Rc::new(std::cell::Cell::new(false));
    let payload = Bytes::from(vec![7u8; cfg.payload]);
    let (backoff, max_backoff) = (cfg.backoff, cfg.max_backoff.max(cfg.backoff));
    // Every loop runs on this (the clients') thread, so they share the histogram freely.
    let tasks: Vec<_> = (0..clients * window)
        .map(|task| {
            let (leader, shared, payload) = (leader.clone(), shared.clone(), payload.clone());
            let (hist, measuring) = (hist.clone(), measuring.clone());
            actix_rt::spawn(async move {
                let mut rng = SplitMix64::new(task as u64);
                let mut limit = backoff;
                while !shared.stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match leader.propose(payload.clone()).await {
                        Ok(Outcome::Applied) => {
                            limit = backoff;
                            shared.committed.fetch_add(1, Ordering::Relaxed);
                            if measuring.get() {
                                let us = t.elapsed().as_micros().max(1) as u64;
                                let _ = hist.borrow_mut().record(us.min(600_000_000));
                            }
                        }
                        Ok(Outcome::Busy) => {
                            shared.busy.fetch_add(1, Ordering::Relaxed);
                            let us = limit.as_micros().max(1) as u64;
                            tokio::time::sleep(Duration::from_micros(1 + rng.below(us))).await;
                            limit = (limit * 2).min(max_backoff);
                        }
                        Ok(Outcome::Unknown | Outcome::Retry) => {}
                        Err(e) => return Err(BenchError::Client(e)),
                    }
                }
                Ok(())
            })
        })
        .collect();
    let start = Instant::now();
    let mut counted_from = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let elapsed = start.elapsed().as_secs_f64();
        if counted_from.is_none() && elapsed >= warmup {
            counted_from = Some((Instant::now(), shared.committed.load(Ordering::Relaxed)));
            measuring.set(true);
        }
        if counted_from.is_some() {
            sample(elapsed);
        }
        if elapsed >= secs {
            break;
        }
    }
    let (from, base) = counted_from.expect("the phase outlasts its warm-up");
    let measured = from.elapsed().as_secs_f64();
    let committed = shared.committed.load(Ordering::Relaxed) - base;
    shared.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await
            .map_err(|e| BenchError::Usage(format!("a client task failed: {e}")))??;
    }
    let elections = cluster
        .live()
        .iter()
        .map(|h| h.counters().elections_won)
        .sum();
    cluster.shutdown_all().await;
    let hist = hist.borrow().clone();
    Ok((
        committed,
        measured,
        shared.busy.load(Ordering::Relaxed),
        hist,
        elections,
    ))
}

/// Runs the baseline, then the overload.
pub async fn run(cfg: &OverloadConfig) -> Result<OverloadResult, BenchError> {
    if cfg.secs <= cfg.warmup_secs || cfg.baseline_secs <= 1.0 {
        return Err(BenchError::Usage(
            "the overload must outlast its warm-up, and the baseline one second".into(),
        ));
    }
    let (base_ops, base_secs, _, _, _) =
        phase(cfg, cfg.baseline_clients, 1, cfg.baseline_secs, 1.0, |_| {}).await?;
    let mut rss_start = None;
    let mut rss_max: f64 = 0.0;
    let (ops, secs, busy, hist, elections) = phase(
        cfg,
        cfg.clients,
        cfg.window,
        cfg.secs,
        cfg.warmup_secs,
        |_| {
            let rss = rss_mb();
            rss_start.get_or_insert(rss);
            rss_max = rss_max.max(rss);
        },
    )
    .await?;
    Ok(OverloadResult {
        members: cfg.members,
        clients: cfg.clients,
        window: cfg.window,
        secs,
        ops_per_sec: ops as f64 / secs,
        busy,
        p99_us: hist.value_at_quantile(0.99) as f64,
        rss_mb_start: rss_start.unwrap_or(0.0),
        rss_mb_max: rss_max,
        elections,
        baseline_clients: cfg.baseline_clients,
        baseline_ops_per_sec: base_ops as f64 / base_secs,
    })
}
