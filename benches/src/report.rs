//! The report: runs every configuration within a budget and writes `report.json`,
//! `report.md`, `election-cdf.svg`, `append.svg` and (full report) `memory.svg`.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::election::{self, ElectionConfig, ElectionResult};
use crate::overload::{self, OverloadConfig, OverloadResult};
use crate::storage::{self, StorageResult};
use crate::svg::{bar_chart, cdf, line_chart, Series};
use crate::throughput::{self, ClientPlacement, ThroughputConfig, ThroughputResult};
use crate::{BenchError, StorageKind, TransportKind};

/// One row of the Raft paper's Figure 16 (5 servers), in ms, where the paper gives it.
#[derive(Debug, Clone, Copy)]
pub struct PaperRow {
    /// The election timeout range.
    pub range: (u64, u64),
    /// Mean time without a leader.
    pub mean: Option<f64>,
    /// Median.
    pub median: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

/// The Raft paper's Figure 16 numbers for each timeout range.
pub const PAPER_FIGURE_16: [PaperRow; 4] = [
    PaperRow {
        range: (12, 24),
        mean: Some(35.0),
        median: None,
        max: Some(152.0),
    },
    PaperRow {
        range: (25, 50),
        mean: Some(48.0),
        median: None,
        max: None,
    },
    PaperRow {
        range: (50, 100),
        mean: Some(71.0),
        median: None,
        max: None,
    },
    PaperRow {
        range: (150, 300),
        mean: None,
        median: Some(171.0),
        max: Some(603.0),
    },
];

/// How much to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// A reduced set that finishes in about a minute (what CI runs).
    Quick,
    /// Every configuration, with enough trials for stable numbers (several minutes).
    Full,
}

/// A configuration that could not run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Which configuration.
    pub what: String,
    /// Why.
    pub error: String,
}

/// Everything the report measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Election latency per configuration.
    pub election: Vec<ElectionResult>,
    /// Append throughput per configuration.
    pub append: Vec<ThroughputResult>,
    /// Storage backends on the same work, and the raw RocksDB ceiling.
    pub storage: Vec<StorageResult>,
    /// Far more clients than the cluster serves: backpressure at work.
    pub overload: Vec<OverloadResult>,
    /// Reads by read path, and the read/write mix.
    pub reads: Vec<crate::reads::ReadsReport>,
    /// Resident memory over a steady load (full report only).
    pub memory: Vec<crate::memory::MemoryResult>,
    /// Followers catching up by snapshot, and restarts on a long history.
    pub catchup: Vec<crate::catchup::CatchupResult>,
    /// Configurations that failed to run.
    pub skipped: Vec<Skipped>,
}

fn election_plan(budget: Budget) -> Vec<ElectionConfig> {
    let quick = budget == Budget::Quick;
    let mut plan = Vec::new();
    let ranges = [
        (12, 24, 1000, 40),
        (25, 50, 500, 20),
        (50, 100, 300, 10),
        (150, 300, 200, 5),
    ];
    for (a, b, full, q) in ranges {
        plan.push(ElectionConfig::new(5, a, b, if quick { q } else { full }));
    }
    let backends = [
        (TransportKind::Quic, StorageKind::Mem),
        (TransportKind::Mem, StorageKind::Rocks),
        (TransportKind::Quic, StorageKind::Rocks),
    ];
    for (t, s) in backends.into_iter().filter(|(_, s)| s.is_built()) {
        for (a, b, full, q) in [(12, 24, 200, 10), (150, 300, 60, 0)] {
            let trials = if quick { q } else { full };
            if trials == 0 {
                continue;
            }
            let mut c = ElectionConfig::new(5, a, b, trials);
            c.transport = t;
            c.storage = s;
            plan.push(c);
        }
    }
    if !quick {
        for n in [3, 7] {
            plan.push(ElectionConfig::new(n, 150, 300, 100));
        }
    }
    plan
}

fn append_plan(budget: Budget) -> Vec<ThroughputConfig> {
    let quick = budget == Budget::Quick;
    let ops = |clients: usize, disk: bool| -> u64 {
        let base: u64 = match clients {
            1 => 5_000,
            16 => 40_000,
            _ => 200_000,
        };
        let base = if disk { base / 4 } else { base };
        if quick {
            (base / 10).max(500)
        } else {
            base
        }
    };
    let mut plan = Vec::new();
    // The consensus layer's own overhead: empty commands, every thread placement; one
    // client also on the leader's own thread (no hop between client and node).
    for clients in [1, 256] {
        for threads in [1, 2, 3] {
            let mut c = ThroughputConfig::new(3, clients, ops(clients, false) * 2, 0);
            c.threads = Some(threads);
            plan.push(c.clone());
            if clients == 1 && threads != 2 {
                c.placement = ClientPlacement::Same;
                plan.push(c);
            }
        }
    }
    let backends = [
        (TransportKind::Mem, StorageKind::Mem),
        (TransportKind::Quic, StorageKind::Mem),
        (TransportKind::Mem, StorageKind::Rocks),
        (TransportKind::Quic, StorageKind::Rocks),
    ];
    let payloads: &[usize] = if quick { &[64] } else { &[64, 4096] };
    for (t, s) in backends.into_iter().filter(|(_, s)| s.is_built()) {
        for &payload in payloads {
            for clients in [1, 16, 256] {
                let disk = s == StorageKind::Rocks;
                let mut c = ThroughputConfig::new(3, clients, ops(clients, disk), payload);
                c.transport = t;
                c.storage = s;
                plan.push(c);
            }
        }
    }
    // 5 members against the 3 above, on the same work.
    plan.push(ThroughputConfig::new(5, 256, ops(256, false), 64));
    plan
}

/// Runs the report's configurations.
pub async fn run(budget: Budget, mut progress: impl FnMut(&str)) -> Report {
    let mut report = Report::default();
    if !StorageKind::Rocks.is_built() {
        progress("RocksDB configurations left out: this build has no `rocks` feature (rebuild with `--features rocks`)");
    }
    for cfg in election_plan(budget) {
        let what = format!(
            "election nodes={} timeout={}..{}ms transport={} storage={}",
            cfg.nodes,
            cfg.timeout.0.as_millis(),
            cfg.timeout.1.as_millis(),
            cfg.transport,
            cfg.storage
        );
        match election::run(&cfg).await {
            Ok(r) => {
                progress(&r.line());
                report.election.push(r);
            }
            Err(e) => skip(&mut report, &mut progress, what, e),
        }
    }
    for cfg in append_plan(budget) {
        let what = format!(
            "throughput members={} clients={} payload={} transport={} storage={} threads={}",
            cfg.members,
            cfg.clients,
            cfg.payload,
            cfg.transport,
            cfg.storage,
            cfg.node_threads()
        );
        match throughput::run(&cfg).await {
            Ok(r) => {
                progress(&r.line());
                report.append.push(r);
            }
            Err(e) => skip(&mut report, &mut progress, what, e),
        }
    }
    let overload_cfg = if budget == Budget::Quick {
        OverloadConfig {
            secs: 4.0,
            warmup_secs: 2.0,
            baseline_secs: 2.0,
            ..OverloadConfig::default()
        }
    } else {
        OverloadConfig::default()
    };
    match overload::run(&overload_cfg).await {
        Ok(r) => {
            progress(&r.baseline_line());
            progress(&r.line());
            report.overload.push(r);
        }
        Err(e) => skip(&mut report, &mut progress, "overload".into(), e),
    }
    if budget == Budget::Full {
        // CI runs the memory binary on its own, briefly; the full report runs it longer.
        let cfg = crate::memory::MemoryConfig {
            secs: 120.0,
            ..Default::default()
        };
        match crate::memory::run(&cfg).await {
            Ok(r) => {
                progress(&r.line());
                report.memory.push(r);
            }
            Err(e) => skip(&mut report, &mut progress, "memory".into(), e),
        }
    }
    for cfg in crate::catchup::plan(budget == Budget::Quick) {
        let what = cfg.describe();
        match crate::catchup::run(&cfg).await {
            Ok(r) => {
                progress(&r.line());
                report.catchup.push(r);
            }
            Err(e) => skip(&mut report, &mut progress, what, e),
        }
    }
    for cfg in crate::reads::plan(budget == Budget::Quick) {
        let what = format!(
            "reads clients={} transport={} storage={}",
            cfg.clients, cfg.transport, cfg.storage
        );
        match crate::reads::run(&cfg).await {
            Ok(r) => {
                progress(&r.lines());
                report.reads.push(r);
            }
            Err(e) => skip(&mut report, &mut progress, what, e),
        }
    }
    match storage::run_all(budget == Budget::Quick).await {
        Ok(results) => {
            for r in &results {
                progress(&r.line());
            }
            report.storage = results;
        }
        Err(e) => skip(&mut report, &mut progress, "storage backends".into(), e),
    }
    report
}

fn skip(report: &mut Report, progress: &mut impl FnMut(&str), what: String, e: BenchError) {
    progress(&format!("skipped {what}: {e}"));
    report.skipped.push(Skipped {
        what,
        error: e.to_string(),
    });
}

fn paper_cell(range: (u64, u64)) -> String {
    PAPER_FIGURE_16
        .iter()
        .find(|p| p.range == range)
        .map(|p| {
            let mut parts = Vec::new();
            if let Some(m) = p.mean {
                parts.push(format!("mean {m:.0}"));
            }
            if let Some(m) = p.median {
                parts.push(format!("median {m:.0}"));
            }
            if let Some(m) = p.max {
                parts.push(format!("max {m:.0}"));
            }
            parts.join(", ")
        })
        .unwrap_or_else(|| "—".into())
}

/// Renders the Markdown tables.
pub fn markdown(report: &Report) -> String {
    let mut md = String::from("# actraft benchmark report\n\n");
    md.push_str("## Election latency (leader crash to a new leader known by every survivor)\n\n");
    md.push_str("Measured as in the Raft paper, §9.3: the leader crashes at a uniformly random point of its heartbeat interval. The floor is the expected earliest survivor timeout after the crash, a + (b − a)/(s + 1) − h/2, plus two replicated-commit round trips on the same cluster.\n\n");
    md.push_str("| nodes | timeout (ms) | transport | storage | trials | mean | p50 | p90 | p99 | max | >1 term | floor | mean / floor | paper (Fig. 16, ms) |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in &report.election {
        let s = &r.summary;
        let _ = writeln!(
            md,
            "| {} | {}–{} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1}% | {:.2} | {:.2} | {} |",
            r.nodes,
            r.timeout_ms.0,
            r.timeout_ms.1,
            r.transport,
            r.storage,
            r.latencies_ms.len(),
            s.mean,
            s.p50,
            s.p90,
            s.p99,
            s.max,
            r.multi_term_pct(),
            r.floor_ms,
            s.mean / r.floor_ms,
            if r.nodes == 5 {
                paper_cell(r.timeout_ms)
            } else {
                "— (the paper used 5)".into()
            }
        );
    }
    md.push_str(
        "\n## Append throughput (entries committed and applied on the leader per second)\n\n",
    );
    md.push_str("On RocksDB, two columns give the entries per synced batch on the leader and the raw RocksDB ceiling: the same entries written straight to RocksDB in synced batches of that size, on the same machine; then the shared-disk ceiling, one writer's rate when as many writers as there are members write such batches at once to the same disk, which is what the nodes of a one-machine cluster do (each syncs every batch, and a disk serves one flush at a time). On QUIC, the last column gives the replication payload moved to all followers against the raw QUIC ceiling: the same bytes pushed through one QUIC stream on loopback in 64 KiB writes, measured in the same run; the fan-out ceiling pushes them from one sender thread through one stream to each of as many receivers as there are followers, as a leader does. The round trip is the median time for a 64-byte message to go over raw QUIC on loopback and come back, one side on each thread: a commit over QUIC waits at least one, so with one client it is the floor under p50, and with 16 it is most of what one round of replication takes.\n\n");
    md.push_str("| members | clients | payload (B) | transport | storage | node threads | ops | ops/s | p50 (µs) | p99 (µs) | entries/sync | vs raw RocksDB | vs raw QUIC |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in &report.append {
        let (per_sync, vs_raw) = match (r.leader_entries_per_sync, r.raw_rocksdb_entries_per_sec) {
            (Some(b), Some(raw)) => {
                let mut cell = format!("{:.0}% of {:.0}/s", 100.0 * r.ops_per_sec / raw, raw);
                if let Some(shared) = r.shared_disk_entries_per_sec.filter(|&s| s > 0.0) {
                    let _ = write!(
                        cell,
                        "; shared disk {:.0}% of {:.0}/s",
                        100.0 * r.ops_per_sec / shared,
                        shared
                    );
                }
                (format!("{b:.1}"), cell)
            }
            _ => ("—".into(), "—".into()),
        };
        let vs_quic = match (r.mb_per_sec, r.ceiling_mb_per_sec) {
            (Some(mb), Some(c)) if c > 0.0 => {
                let mut cell = format!("{mb:.0} of {c:.0} MB/s ({:.0}%)", 100.0 * mb / c);
                if let Some(f) = r.fan_out_ceiling_mb_per_sec.filter(|&f| f > 0.0) {
                    let _ = write!(cell, "; fan-out {f:.0} MB/s ({:.0}%)", 100.0 * mb / f);
                }
                if let Some(rtt) = r.ceiling_rtt_us {
                    let _ = write!(cell, "; round trip {rtt:.0} µs");
                }
                cell
            }
            _ => "—".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
            r.members,
            r.clients,
            r.payload,
            r.transport,
            r.storage,
            match r.placement {
                ClientPlacement::Same => format!("{} (clients on the leader's)", r.threads),
                ClientPlacement::Other => r.threads.to_string(),
            },
            r.ops,
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            per_sync,
            vs_raw,
            vs_quic
        );
    }
    durable_breakdown(&mut md, &report.append);
    if !report.overload.is_empty() {
        md.push_str("\n## Overload (3 nodes, mem/mem, 64 B commands)\n\n");
        md.push_str("Far more proposals in flight than the node's bounds (16 384 queued, 16 384 waiting for an answer, 16 384 uncommitted entries): the node answers `Busy` and the clients back off 1 ms. The baseline is the saturated rate with 256 closed-loop clients on a fresh cluster. Memory is this process's resident set after the warm-up and its maximum after.\n\n");
        md.push_str("| clients × in flight | secs | ops/s | baseline ops/s | ratio | busy | p99 (µs) | RSS start (MB) | RSS max (MB) | elections |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &report.overload {
            let _ = writeln!(
                md,
                "| {} × {} | {:.0} | {:.0} | {:.0} | {:.2} | {} | {:.0} | {:.1} | {:.1} | {} |",
                r.clients,
                r.window,
                r.secs,
                r.ops_per_sec,
                r.baseline_ops_per_sec,
                r.ops_per_sec / r.baseline_ops_per_sec.max(1.0),
                r.busy,
                r.p99_us,
                r.rss_mb_start,
                r.rss_mb_max,
                r.elections
            );
        }
    }
    md.push_str(&crate::memory::markdown(&report.memory));
    md.push_str(&crate::catchup::markdown(&report.catchup));
    md.push_str(&crate::reads::markdown(&report.reads));
    if !report.storage.is_empty() {
        md.push_str("\n## Storage backends on the same work\n\n");
        md.push_str("`rocksdb-raw` is the ceiling: the same entries written straight to RocksDB in synced batches. actraft's storages make each write durable on its own (the node groups its writes), so several writers on one store do not share syncs.\n\n");
        md.push_str("| storage | operation | batch (entries) | payload (B) | writers | ops/s | entries/s | MB/s |\n");
        md.push_str("|---|---|---|---|---|---|---|---|\n");
        for r in &report.storage {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} |",
                r.storage,
                r.operation,
                r.batch,
                r.payload,
                r.writers,
                r.ops_per_sec,
                r.entries_per_sec,
                r.entries_per_sec * r.payload as f64 / 1e6
            );
        }
    }
    if !report.skipped.is_empty() {
        md.push_str("\n## Not measured\n\n");
        for s in &report.skipped {
            let _ = writeln!(md, "- {}: {}", s.what, s.error);
        }
    }
    md
}

/// The latency CDF per timeout range (5 nodes, in memory), like Figure 16.
pub fn election_svg(report: &Report) -> String {
    let series: Vec<Series> = report
        .election
        .iter()
        .filter(|r| r.nodes == 5)
        .map(|r| Series {
            name: format!(
                "{}–{} ms {}/{}",
                r.timeout_ms.0, r.timeout_ms.1, r.transport, r.storage
            ),
            points: cdf(&r.latencies_ms),
        })
        .collect();
    line_chart(
        "Time without a leader after a leader crash (CDF)",
        "time without leader (ms, log scale)",
        "cumulative fraction of trials",
        &series,
        true,
    )
}

/// Throughput per transport × storage × clients.
pub fn append_svg(report: &Report) -> String {
    let bars: Vec<(String, f64)> = report
        .append
        .iter()
        .filter(|r| r.payload == 64 && r.members == 3)
        .map(|r| {
            (
                format!("{}/{} c={}", r.transport, r.storage, r.clients),
                r.ops_per_sec,
            )
        })
        .collect();
    bar_chart(
        "Append throughput, 3 members, 64 B commands",
        "entries/s",
        &bars,
    )
}

/// Writes the report's files into `dir` (`memory.svg` and `memory.csv` when the memory run was part of it).
pub fn write(report: &Report, dir: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)?;
    std::fs::write(dir.join("report.md"), markdown(report))?;
    std::fs::write(dir.join("election-cdf.svg"), election_svg(report))?;
    std::fs::write(dir.join("append.svg"), append_svg(report))?;
    if !report.memory.is_empty() {
        std::fs::write(dir.join("memory.svg"), crate::memory::svg(&report.memory))?;
        std::fs::write(dir.join("memory.csv"), report.memory[0].csv())?;
    }
    Ok(())
}

/// Where the time of one durable commit goes, on the RocksDB rows: the mean commit beside
/// the mean synced write on the leader and on a follower.
fn durable_breakdown(md: &mut String, rows: &[ThroughputResult]) {
    let rows: Vec<_> = rows
        .iter()
        .filter_map(|r| Some((r, r.leader_sync_us?, r.follower_sync_us?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    md.push_str("\n### One durable commit on RocksDB: where the time goes\n\n");
    md.push_str("The leader sends its entries while its own write syncs, so a commit needs the slower of the leader's sync and a follower's round trip with its sync, not their sum. `rest` is the mean commit minus the slower sync: queueing in the node and the storage thread, the network round trip, applying and answering.\n\n");
    md.push_str("| clients | payload (B) | transport | mean commit (µs) | leader sync (µs) | follower sync (µs) | leader + follower (µs) | rest (µs) |\n");
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    for (r, leader, follower) in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            r.clients,
            r.payload,
            r.transport,
            r.mean_us,
            leader,
            follower,
            leader + follower,
            (r.mean_us - leader.max(follower)).max(0.0)
        );
    }
}
