//! Memory over time: a 3-node mem/mem cluster under a steady closed-loop load, taking
//! snapshots and compacting its logs by the default policy, while the process's resident
//! memory is sampled every second. A node that keeps a window of its log, not the whole
//! log, stays flat however long it runs.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actraft::core::Config;
use actraft_examples::backend::start_cluster;
use actraft_examples::cluster::{ClusterOptions, Placement};
use bytes::Bytes;
use serde::Serialize;

use crate::follow::{Leader, Outcome};
use crate::overload::rss_mb;
use crate::svg::{line_chart_values, Series};
use crate::{BenchError, StorageKind, TransportKind};

/// One memory run.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// Cluster size.
    pub members: usize,
    /// Closed-loop clients (one proposal each in flight).
    pub clients: usize,
    /// Length of the run.
    pub secs: f64,
    /// Time before `rss_mb_start` is taken.
    pub warmup_secs: f64,
    /// Bytes per command.
    pub payload: usize,
    /// Node threads.
    pub threads: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            members: 3,
            clients: 256,
            secs: 600.0,
            warmup_secs: 10.0,
            payload: 64,
            threads: 2,
        }
    }
}

/// What a memory run measured.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    /// Cluster size.
    pub members: usize,
    /// Clients.
    pub clients: usize,
    /// Length of the run, seconds.
    pub secs: f64,
    /// Entries committed (the leader's commit index at the end).
    pub entries: u64,
    /// Snapshots made durable, summed over the nodes.
    pub snapshots: u64,
    /// Resident memory after the warm-up, MiB.
    pub rss_mb_start: f64,
    /// Largest resident memory sampled after the warm-up, MiB.
    pub rss_mb_max: f64,
    /// Resident memory at the end, MiB.
    pub rss_mb_end: f64,
    /// (seconds since the start, resident MiB), one sample a second from the start.
    pub samples: Vec<(f64, f64)>,
    /// Snapshot policy: entries between snapshots.
    pub snapshot_after_entries: u64,
    /// Snapshot policy: entries kept behind a snapshot.
    pub snapshot_keep_entries: u64,
}

impl MemoryResult {
    /// The benchmark's one-line summary.
    pub fn line(&self) -> String {
        format!(
            "memory: members={} clients={} secs={:.1} entries={} snapshots={} rss_mb_start={:.1} rss_mb_max={:.1} rss_mb_end={:.1}",
            self.members,
            self.clients,
            self.secs,
            self.entries,
            self.snapshots,
            self.rss_mb_start,
            self.rss_mb_max,
            self.rss_mb_end
        )
    }

    /// The samples as CSV (`secs,rss_mb`).
    pub fn csv(&self) -> String {
        let mut out = String::from("secs,rss_mb\n");
        for (t, rss) in &self.samples {
            let _ = writeln!(out, "{t:.1},{rss:.1}");
        }
        out
    }
}

/// Runs the load for `cfg.secs`, sampling resident memory every second.
pub async fn run(cfg: &MemoryConfig) -> Result<MemoryResult, BenchError> {
    if cfg.secs <= cfg.warmup_secs {
        return Err(BenchError::Usage(format!(
            "the run ({} s) must outlast its warm-up ({} s)",
            cfg.secs, cfg.warmup_secs
        )));
    }
    let config = Config::default();
    let options = ClusterOptions::new(cfg.members)
        .placement(Placement::Threads(cfg.threads.max(1)))
        .config(config.clone())
        .record(false);
    let mut cluster = start_cluster(options, StorageKind::Mem, TransportKind::Mem, None).await?;
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    // Clients follow the leader: a loaded machine may delay heartbeats past an
    // election timeout, which must not end a ten-minute run.
    let leader = Leader::new(cluster.live(), leader);
    let stop = Arc::new(AtomicBool::new(false));
    let payload = Bytes::from(vec![7u8; cfg.payload]);
    let tasks: Vec<_> = (0..cfg.clients)
        .map(|_| {
            let (leader, stop, payload) = (leader.clone(), stop.clone(), payload.clone());
            actix_rt::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if leader.propose(payload.clone()).await? == Outcome::Busy {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Ok::<(), actraft::ClientError>(())
            })
        })
        .collect();
    let start = Instant::now();
    let mut samples = vec![(0.0, rss_mb())];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut rss_start = None;
    let mut rss_max: f64 = 0.0;
    loop {
        tick.tick().await;
        let t = start.elapsed().as_secs_f64();
        let rss = rss_mb();
        samples.push((t, rss));
        if t >= cfg.warmup_secs {
            rss_start.get_or_insert(rss);
            rss_max = rss_max.max(rss);
        }
        if t >= cfg.secs {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await
            .map_err(|e| BenchError::Usage(format!("a client task failed: {e}")))??;
    }
    let live = cluster.live();
    let entries = live
        .iter()
        .map(|h| h.status().commit_index)
        .max()
        .unwrap_or(0);
    let elections: u64 = live.iter().map(|h| h.counters().elections_won).sum();
    if elections > 1 || leader.unknown() > 0 {
        tracing::warn!(
            elections,
            unknown = leader.unknown(),
            "the leader changed during the run; the clients followed it"
        );
    }
    let snapshots = live.iter().map(|h| h.metrics().snapshots_taken).sum();
    cluster.shutdown_all().await;
    let rss_end = samples.last().map_or(0.0, |s| s.1);
    Ok(MemoryResult {
        members: cfg.members,
        clients: cfg.clients,
        secs,
        entries,
        snapshots,
        rss_mb_start: rss_start.unwrap_or(0.0),
        rss_mb_max: rss_max,
        rss_mb_end: rss_end,
        samples,
        snapshot_after_entries: config.snapshot_after_entries,
        snapshot_keep_entries: config.snapshot_keep_entries,
    })
}

/// Resident memory over time, one line per run.
pub fn svg(results: &[MemoryResult]) -> String {
    let series: Vec<Series> = results
        .iter()
        .map(|r| Series {
            name: format!("{} members, {} clients", r.members, r.clients),
            points: r.samples.clone(),
        })
        .collect();
    line_chart_values(
        "Resident memory under steady load (mem/mem, 64 B commands, default snapshot policy)",
        "time (s)",
        "resident memory (MiB)",
        &series,
    )
}

/// The report's memory section.
pub fn markdown(results: &[MemoryResult]) -> String {
    let mut md = String::new();
    if results.is_empty() {
        return md;
    }
    md.push_str("\n## Memory over time (mem/mem, closed-loop clients, 64 B commands)\n\n");
    md.push_str("Each node snapshots by the default policy and compacts its log, keeping a window behind the snapshot for slow followers. Resident memory of the whole process (three nodes and the clients) is sampled every second (`memory.svg`, `memory.csv`); the start is taken after 10 s. Target: max ≤ 1.1 × start. With glibc's allocator each thread that allocates (node threads, snapshot writers) gets its own arena, whose high-water mark adds some MB in the first minutes; run with `MALLOC_ARENA_MAX=2` to tell those apart from memory the nodes hold.\n\n");
    md.push_str("| members | clients | secs | entries | snapshots | policy (every / keep) | RSS start (MB) | RSS max (MB) | RSS end (MB) | max / start |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {} | {} / {} | {:.1} | {:.1} | {:.1} | {:.2} |",
            r.members,
            r.clients,
            r.secs,
            r.entries,
            r.snapshots,
            r.snapshot_after_entries,
            r.snapshot_keep_entries,
            r.rss_mb_start,
            r.rss_mb_max,
            r.rss_mb_end,
            r.rss_mb_max / r.rss_mb_start.max(1e-9)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_csv_and_plot_show_the_samples() {
        let r = MemoryResult {
            members: 3,
            clients: 256,
            secs: 15.02,
            entries: 1234,
            snapshots: 5,
            rss_mb_start: 30.0,
            rss_mb_max: 31.26,
            rss_mb_end: 30.5,
            samples: vec![(0.0, 6.5), (1.0, 30.0), (2.0, 31.26)],
            snapshot_after_entries: 65536,
            snapshot_keep_entries: 1024,
        };
        assert_eq!(
            r.line(),
            "memory: members=3 clients=256 secs=15.0 entries=1234 snapshots=5 rss_mb_start=30.0 rss_mb_max=31.3 rss_mb_end=30.5"
        );
        assert_eq!(r.csv(), "secs,rss_mb\n0.0,6.5\n1.0,30.0\n2.0,31.3\n");
        let svg = svg(std::slice::from_ref(&r));
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
        assert!(markdown(&[r])
            .contains("| 3 | 256 | 15 | 1234 | 5 | 65536 / 1024 | 30.0 | 31.3 | 30.5 | 1.04 |"));
    }
}
