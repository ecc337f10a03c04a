//! Read throughput by read path: K clients reading back to back from a 3-node cluster,
//! through the log, by a read index on the leader, on the leader's lease, or on the
//! followers; and a read/write mix showing what reads cost the writes.
//!
//! A read through the log proposes a small `get` command and waits for it to be applied
//! (a replicated, durable write). The other paths wait for the read barrier
//! ([`RaftHandle::read_index`]) and then copy a 64-byte value out of a shared map, as a
//! service reading its own state does. The nodes run with leases on
//! ([`Config::lease_reads`](actraft::Config::lease_reads)), which only changes what the
//! `lease` path costs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actraft::{ClientError, Config, RaftHandle, ReadMode};
use actraft_examples::backend::start_cluster;
use actraft_examples::cluster::{Cluster, ClusterOptions};
use bytes::Bytes;
use futures_util::future::join_all;
use serde::Serialize;

use crate::stats::{LatencyHistogram, SharedHistogram};
use crate::{BenchError, StorageKind, TransportKind};

/// Bytes per value read (and per write in the mix).
pub const VALUE_BYTES: usize = 64;
/// Keys in the map the local paths read from.
const KEYS: usize = 1024;

/// How the clients read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A `get` proposed through the log.
    Log,
    /// [`ReadMode::Index`] on the leader.
    Index,
    /// [`ReadMode::Lease`] on the leader.
    Lease,
    /// [`ReadMode::Follower`], every read on a follower (clients spread over them).
    Follower,
}

impl Mode {
    /// Every mode, in the order the benchmark prints them.
    pub const ALL: [Mode; 4] = [Mode::Log, Mode::Index, Mode::Lease, Mode::Follower];

    /// The mode's name in result lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Log => "log",
            Mode::Index => "index",
            Mode::Lease => "lease",
            Mode::Follower => "follower",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reads configuration.
#[derive(Debug, Clone)]
pub struct ReadsConfig {
    /// Cluster size.
    pub members: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// How long each mode is measured.
    pub duration: Duration,
    /// The modes measured.
    pub modes: Vec<Mode>,
    /// Also measure the 90/10 read/write mix.
    pub mix: bool,
    /// Rounds of the mix: each measures the writers alone, then among the readers, for
    /// `duration` each; the result has the medians (a noisy machine drifts between two
    /// back-to-back measurements, alternating them several times evens that out).
    pub mix_rounds: usize,
    /// Transport.
    pub transport: TransportKind,
    /// Storage.
    pub storage: StorageKind,
    /// Where disk storages keep their files (a temporary directory when `None`).
    pub data_dir: Option<PathBuf>,
}

impl ReadsConfig {
    /// Every mode and the mix, `clients` clients, `duration` each, 3 nodes in memory.
    pub fn new(clients: usize, duration: Duration) -> Self {
        Self {
            members: 3,
            clients,
            duration,
            modes: Mode::ALL.to_vec(),
            mix: true,
            mix_rounds: 3,
            transport: TransportKind::Mem,
            storage: StorageKind::Mem,
            data_dir: None,
        }
    }
}

/// What one mode measured.
#[derive(Debug, Clone, Serialize)]
pub struct ReadsResult {
    /// Cluster size.
    pub members: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Transport name.
    pub transport: String,
    /// Storage name.
    pub storage: String,
    /// The read path.
    pub mode: Mode,
    /// Reads completed.
    pub ops: u64,
    /// Reads per second.
    pub ops_per_sec: f64,
    /// Median read latency, µs.
    pub p50_us: f64,
    /// 99th percentile read latency, µs.
    pub p99_us: f64,
}

impl ReadsResult {
    /// The result line.
    pub fn line(&self) -> String {
        format!(
            "reads: members={} clients={} transport={} storage={} mode={} ops_per_sec={:.0} p50_us={:.0} p99_us={:.0}",
            self.members,
            self.clients,
            self.transport,
            self.storage,
            self.mode,
            self.ops_per_sec,
            self.p50_us,
            self.p99_us
        )
    }
}

/// What the read/write mix measured: `writers` clients writing 64-byte values
/// back to back while the others read by read index, against the same writers alone,
/// the two measured in turn for `rounds` rounds. Rates are the medians of the rounds;
/// the share and the latencies are over every round.
#[derive(Debug, Clone, Serialize)]
pub struct MixResult {
    /// Cluster size.
    pub members: usize,
    /// Concurrent clients (readers and writers).
    pub clients: usize,
    /// Of those, clients that write.
    pub writers: usize,
    /// Transport name.
    pub transport: String,
    /// Storage name.
    pub storage: String,
    /// The share of completed operations that were reads.
    pub read_share: f64,
    /// Reads per second in the mix.
    pub read_ops_per_sec: f64,
    /// Writes per second in the mix.
    pub write_ops_per_sec: f64,
    /// Writes per second of the same writers with no readers.
    pub write_ops_per_sec_alone: f64,
    /// Median write latency in the mix, µs.
    pub write_p50_us: f64,
    /// 99th percentile write latency in the mix, µs.
    pub write_p99_us: f64,
    /// Rounds measured (writers alone, then the mix, in each).
    pub rounds: usize,
}

impl MixResult {
    /// The share of the writers' throughput the reads took, in percent.
    pub fn write_cost_pct(&self) -> f64 {
        if self.write_ops_per_sec_alone > 0.0 {
            100.0 * (1.0 - self.write_ops_per_sec / self.write_ops_per_sec_alone)
        } else {
            0.0
        }
    }

    /// The result line.
    pub fn line(&self) -> String {
        format!(
            "reads_mix: members={} clients={} writers={} transport={} storage={} mode=index read_share={:.2} read_ops_per_sec={:.0} write_ops_per_sec={:.0} write_ops_per_sec_alone={:.0} write_cost_pct={:.1} write_p50_us={:.0} write_p99_us={:.0} rounds={}",
            self.members,
            self.clients,
            self.writers,
            self.transport,
            self.storage,
            self.read_share,
            self.read_ops_per_sec,
            self.write_ops_per_sec,
            self.write_ops_per_sec_alone,
            self.write_cost_pct(),
            self.write_p50_us,
            self.write_p99_us,
            self.rounds
        )
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ReadsReport {
    /// One result per mode.
    pub modes: Vec<ReadsResult>,
    /// The mix, when measured.
    pub mix: Option<MixResult>,
}

impl ReadsReport {
    /// Every result line, one per mode then the mix.
    pub fn lines(&self) -> String {
        let mut lines: Vec<String> = self.modes.iter().map(ReadsResult::line).collect();
        lines.extend(self.mix.iter().map(MixResult::line));
        lines.join("\n")
    }
}

/// The report's reads configurations: mem/mem, QUIC and RocksDB (when built), at 1 and
/// 256 clients; `quick` measures each mode for half a second instead of two.
pub fn plan(quick: bool) -> Vec<ReadsConfig> {
    let duration = Duration::from_millis(if quick { 500 } else { 2000 });
    let backends = [
        (TransportKind::Mem, StorageKind::Mem),
        (TransportKind::Quic, StorageKind::Mem),
        (TransportKind::Mem, StorageKind::Rocks),
    ];
    let mut plan = Vec::new();
    for (t, s) in backends.into_iter().filter(|(_, s)| s.is_built()) {
        for clients in [1, 256] {
            let mut c = ReadsConfig::new(clients, duration);
            c.transport = t;
            c.storage = s;
            plan.push(c);
        }
    }
    plan
}

/// The report's reads tables (Markdown): reads per second by path, and the mix.
pub fn markdown(reports: &[ReadsReport]) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    if reports.is_empty() {
        return md;
    }
    md.push_str("\n## Reads (3 members, 64 B values)\n\n");
    md.push_str("Reads per second by path: `log` appends every read (a replicated, durable write), `index` confirms leadership with one heartbeat round shared by concurrent reads, `lease` answers on the leader's lease without a round trip, `follower` has a follower ask the leader for a read index and answer from its own state. Every path is linearizable.\n\n");
    md.push_str("| clients | transport | storage | log ops/s | index ops/s | lease ops/s | follower ops/s | index / log | lease / log | p50 log / index / lease / follower (µs) |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        let Some(first) = r.modes.first() else {
            continue;
        };
        let of = |m: Mode| r.modes.iter().find(|x| x.mode == m);
        let rate = |m: Mode| of(m).map_or("—".to_string(), |x| format!("{:.0}", x.ops_per_sec));
        let ratio = |m: Mode| match (of(m), of(Mode::Log)) {
            (Some(x), Some(log)) if log.ops_per_sec > 0.0 => {
                format!("{:.1}×", x.ops_per_sec / log.ops_per_sec)
            }
            _ => "—".into(),
        };
        let p50 = Mode::ALL
            .iter()
            .map(|&m| of(m).map_or("—".to_string(), |x| format!("{:.0}", x.p50_us)))
            .collect::<Vec<_>>()
            .join(" / ");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            first.clients,
            first.transport,
            first.storage,
            rate(Mode::Log),
            rate(Mode::Index),
            rate(Mode::Lease),
            rate(Mode::Follower),
            ratio(Mode::Index),
            ratio(Mode::Lease),
            p50
        );
    }
    let mixes: Vec<&MixResult> = reports.iter().filter_map(|r| r.mix.as_ref()).collect();
    if !mixes.is_empty() {
        md.push_str("\nRead/write mix: a tenth of the clients write 64 B values while the others read by read index, paced to nine reads per completed write (a 90/10 mix of operations), against the same writers alone; the two are measured in turn and the rates are medians of the rounds.\n\n");
        md.push_str("| clients | writers | transport | storage | read share | reads/s | writes/s | writes/s alone | write throughput lost |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for m in mixes {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.1}% |",
                m.clients,
                m.writers,
                m.transport,
                m.storage,
                m.read_share,
                m.read_ops_per_sec,
                m.write_ops_per_sec,
                m.write_ops_per_sec_alone,
                m.write_cost_pct()
            );
        }
    }
    md
}

type Values = Arc<RwLock<BTreeMap<u64, Bytes>>>;

/// One client's work.
#[derive(Clone, Copy)]
enum Work {
    Read(Mode),
    Write,
}

struct Clients {
    values: Values,
    payload: Bytes,
    /// In the mix: reads are paced to [`READS_PER_WRITE`] per completed write.
    pace: Option<Pace>,
    /// Every node, so that a client whose node lost its leadership follows the leader.
    nodes: Vec<RaftHandle>,
    /// Operations that failed because leadership moved (retried, not counted).
    redirected: AtomicU64,
}

/// Reads allowed per completed write in the mix: a 90/10 mix of operations.
const READS_PER_WRITE: u64 = 9;

/// Paces the mix's readers to the writers: every completed write lets
/// `READS_PER_WRITE` reads start (plus one per reader at the start), so the mix is 90/10
/// by operations however fast either kind is alone. A semaphore hands each allowance to
/// one waiting reader: a write wakes only the readers it lets go, not every reader (a
/// wake-up for each of hundreds of readers per write would spend the CPU the nodes need
/// and charge it to the reads).
struct Pace {
    allowed: tokio::sync::Semaphore,
}

impl Pace {
    fn new(slack: usize) -> Self {
        Self {
            allowed: tokio::sync::Semaphore::new(slack),
        }
    }

    /// Waits until a read may start; false when `until` came first.
    async fn before_read(&self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.allowed.acquire()).await {
            Ok(Ok(permit)) => {
                permit.forget();
                true
            }
            _ => false,
        }
    }

    fn wrote(&self) {
        self.allowed.add_permits(READS_PER_WRITE as usize);
    }
}

impl Clients {
    /// Runs `work` on `node` back to back until `until`, recording the latencies in
    /// `samples`.
    async fn client(
        &self,
        node: RaftHandle,
        work: Work,
        until: Instant,
        seed: u64,
        samples: Arc<Samples>,
    ) -> Result<(), BenchError> {
        let latencies = match work {
            Work::Write => &samples.writes,
            Work::Read(_) => &samples.reads,
        };
        let mut node = node;
        let mut key = seed;
        while Instant::now() < until {
            key = key.wrapping_mul(6364136223846793005).wrapping_add(1);
            if let (Some(pace), Work::Read(_)) = (&self.pace, &work) {
                if !pace.before_read(until).await {
                    break;
                }
            }
            let t = Instant::now();
            let done = match work {
                Work::Write => node.propose(self.payload.clone()).await.map(|_| ()),
                Work::Read(Mode::Log) => node
                    .propose(Bytes::from(format!("get k{}", key % KEYS as u64)))
                    .await
                    .map(|_| ()),
                Work::Read(mode) => {
                    let read_mode = match mode {
                        Mode::Lease => ReadMode::Lease,
                        Mode::Follower => ReadMode::Follower,
                        _ => ReadMode::Index,
                    };
                    node.read_index(read_mode).await.map(|_| {
                        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
                        let value = values.get(&(key % KEYS as u64)).cloned();
                        std::hint::black_box(value);
                    })
                }
            };
            match done {
                Ok(()) => {
                    latencies.record(t.elapsed());
                    if let (Some(pace), Work::Write) = (&self.pace, &work) {
                        pace.wrote();
                    }
                }
                // Too many requests waiting: back off briefly, not counted.
                Err(ClientError::Busy) => tokio::task::yield_now().await,
                // Leadership moved (a noisy machine can cost the leader its lease): go on
                // with the node that leads now; the failed operation is not counted.
                Err(e) if crate::follow::leadership_moved(&e) => {
                    self.redirected.fetch_add(1, Ordering::Relaxed);
                    if !matches!(work, Work::Read(Mode::Follower)) {
                        node = crate::follow::leader_now(&self.nodes, &node, until).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// The latencies of one measurement: one histogram for the writers and one for the
/// readers, each shared by all clients.
#[derive(Default)]
struct Samples {
    writes: SharedHistogram,
    reads: SharedHistogram,
}

async fn measure(
    clients: &Arc<Clients>,
    jobs: Vec<(RaftHandle, Work)>,
    duration: Duration,
) -> Result<(Measured, f64), BenchError> {
    let samples = Arc::new(Samples::default());
    let start = Instant::now();
    let until = start + duration;
    let tasks: Vec<_> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, (node, work))| {
            let (clients, samples) = (Arc::clone(clients), Arc::clone(&samples));
            actix_rt::spawn(
                async move { clients.client(node, work, until, i as u64, samples).await },
            )
        })
        .collect();
    for r in join_all(tasks).await {
        r.map_err(|e| BenchError::Usage(format!("a client task failed: {e}")))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let measured = Measured {
        writes: samples.writes.take(),
        reads: samples.reads.take(),
    };
    Ok((measured, secs))
}

/// The writers' and the readers' latencies of one measurement.
struct Measured {
    writes: LatencyHistogram,
    reads: LatencyHistogram,
}

/// The median of `xs` (the mean of the middle two for an even count; 0 for none).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The node that leads now and the others (waiting for an election if none leads: a
/// loaded machine can cost a leader its lease between two measurements).
async fn leader_and_followers(
    cluster: &Cluster,
) -> Result<(RaftHandle, Vec<RaftHandle>), BenchError> {
    const WAIT: Duration = Duration::from_secs(20);
    let live = cluster.live();
    let leader = crate::follow::wait_for_leader(&live, Instant::now() + WAIT)
        .await
        .ok_or(ClientError::Timeout(WAIT))?;
    let followers = live.into_iter().filter(|h| h.id() != leader.id()).collect();
    Ok((leader, followers))
}

/// Runs the configured modes (and the mix) on one cluster.
pub async fn run(cfg: &ReadsConfig) -> Result<ReadsReport, BenchError> {
    let config = Config {
        lease_reads: true,
        ..Config::default()
    };
    let options = ClusterOptions::new(cfg.members)
        .config(config)
        .record(false);
    let mut cluster =
        start_cluster(options, cfg.storage, cfg.transport, cfg.data_dir.clone()).await?;
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let payload = Bytes::from(vec![7u8; VALUE_BYTES]);
    let values: Values = Arc::new(RwLock::new(
        (0..KEYS as u64).map(|k| (k, payload.clone())).collect(),
    ));
    let clients = Arc::new(Clients {
        values: Arc::clone(&values),
        payload: payload.clone(),
        pace: None,
        nodes: cluster.live(),
        redirected: AtomicU64::new(0),
    });
    // Warm up: allocations, connections, the lease (going on with a new leader if
    // leadership moves meanwhile).
    let mut warmed = 0;
    while warmed < 100 {
        let (leader, _) = leader_and_followers(&cluster).await?;
        let step = async {
            leader.propose(clients.payload.clone()).await?;
            leader.read_index(ReadMode::Index).await
        };
        match step.await {
            Ok(_) => warmed += 1,
            Err(e) if crate::follow::leadership_moved(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let warm_up = Duration::from_millis(200).min(cfg.duration);

    let mut modes = Vec::new();
    for &mode in &cfg.modes {
        let (leader, followers) = leader_and_followers(&cluster).await?;
        let jobs: Vec<(RaftHandle, Work)> = (0..cfg.clients)
            .map(|i| {
                let node = match mode {
                    Mode::Follower if !followers.is_empty() => {
                        followers[i % followers.len()].clone()
                    }
                    _ => leader.clone(),
                };
                (node, Work::Read(mode))
            })
            .collect();
        measure(&clients, jobs.clone(), warm_up).await?;
        let (measured, secs) = measure(&clients, jobs, cfg.duration).await?;
        let mut all = measured.reads;
        all.add(&measured.writes);
        modes.push(ReadsResult {
            members: cfg.members,
            clients: cfg.clients,
            transport: cfg.transport.to_string(),
            storage: cfg.storage.to_string(),
            mode,
            ops: all.len(),
            ops_per_sec: all.len() as f64 / secs,
            p50_us: all.quantile_us(0.5),
            p99_us: all.quantile_us(0.99),
        });
    }

    let mix = if cfg.mix {
        let writers = (cfg.clients / 10).max(1);
        let readers = cfg.clients.saturating_sub(writers).max(1);
        let (mut alone_rates, mut write_rates, mut read_rates) =
            (Vec::new(), Vec::new(), Vec::new());
        let (mut writes, mut reads) = (LatencyHistogram::new(), LatencyHistogram::new());
        for _ in 0..cfg.mix_rounds.max(1) {
            let (leader, _) = leader_and_followers(&cluster).await?;
            let write_jobs: Vec<(RaftHandle, Work)> = (0..writers)
                .map(|_| (leader.clone(), Work::Write))
                .collect();
            let mut jobs = write_jobs.clone();
            jobs.extend((0..readers).map(|_| (leader.clone(), Work::Read(Mode::Index))));
            let (alone, alone_secs) = measure(&clients, write_jobs.clone(), cfg.duration).await?;
            alone_rates.push(alone.writes.len() as f64 / alone_secs);
            let paced = Arc::new(Clients {
                values: Arc::clone(&values),
                payload: payload.clone(),
                pace: Some(Pace::new(readers)),
                nodes: cluster.live(),
                redirected: AtomicU64::new(0),
            });
            let (measured, secs) = measure(&paced, jobs, cfg.duration).await?;
            clients
                .redirected
                .fetch_add(paced.redirected.load(Ordering::Relaxed), Ordering::Relaxed);
            let (w, r) = (measured.writes, measured.reads);
            write_rates.push(w.len() as f64 / secs);
            read_rates.push(r.len() as f64 / secs);
            writes.add(&w);
            reads.add(&r);
        }
        let total = (writes.len() + reads.len()).max(1) as f64;
        Some(MixResult {
            members: cfg.members,
            clients: writers + readers,
            writers,
            transport: cfg.transport.to_string(),
            storage: cfg.storage.to_string(),
            read_share: reads.len() as f64 / total,
            read_ops_per_sec: median(read_rates),
            write_ops_per_sec: median(write_rates),
            write_ops_per_sec_alone: median(alone_rates),
            write_p50_us: writes.quantile_us(0.5),
            write_p99_us: writes.quantile_us(0.99),
            rounds: cfg.mix_rounds.max(1),
        })
    } else {
        None
    };
    let redirected = clients.redirected.load(Ordering::Relaxed);
    if redirected > 0 {
        tracing::warn!(
            redirected,
            "operations failed over to a new leader during the run (not counted)"
        );
    }
    cluster.shutdown_all().await;
    Ok(ReadsReport { modes, mix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_documented_shape() {
        let r = ReadsResult {
            members: 3,
            clients: 1,
            transport: "mem".into(),
            storage: "mem".into(),
            mode: Mode::Lease,
            ops: 10,
            ops_per_sec: 1234.4,
            p50_us: 12.0,
            p99_us: 40.0,
        };
        assert_eq!(
            r.line(),
            "reads: members=3 clients=1 transport=mem storage=mem mode=lease ops_per_sec=1234 p50_us=12 p99_us=40"
        );
        let m = MixResult {
            members: 3,
            clients: 10,
            writers: 1,
            transport: "mem".into(),
            storage: "rocks".into(),
            read_share: 0.9,
            read_ops_per_sec: 900.0,
            write_ops_per_sec: 80.0,
            write_ops_per_sec_alone: 100.0,
            write_p50_us: 1.0,
            write_p99_us: 2.0,
            rounds: 3,
        };
        assert!(m.line().ends_with("write_p50_us=1 write_p99_us=2 rounds=3"));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
        assert!((m.write_cost_pct() - 20.0).abs() < 1e-9);
        assert!(m
            .line()
            .starts_with("reads_mix: members=3 clients=10 writers=1"));
        assert!(m
            .line()
            .contains("write_ops_per_sec=80 write_ops_per_sec_alone=100"));
        let log = ReadsResult {
            mode: Mode::Log,
            ops_per_sec: 100.0,
            ..r.clone()
        };
        let table = markdown(&[ReadsReport {
            modes: vec![log, r],
            mix: Some(m),
        }]);
        assert!(
            table.contains("| 1 | mem | mem | 100 | — | 1234 | — | — | 12.3× |"),
            "{table}"
        );
        assert!(
            table.contains("| 10 | 1 | mem | rocks | 0.90 | 900 | 80 | 100 | 20.0% |"),
            "{table}"
        );
    }

    #[actix_rt::test]
    async fn a_short_run_measures_every_mode() {
        let mut cfg = ReadsConfig::new(4, Duration::from_millis(100));
        cfg.mix = true;
        cfg.mix_rounds = 2;
        let report = run(&cfg).await.unwrap();
        assert_eq!(report.modes.len(), 4);
        for r in &report.modes {
            assert!(r.ops > 0, "{}", r.line());
        }
        let mix = report.mix.as_ref().unwrap();
        assert!(mix.read_ops_per_sec > 0.0 && mix.write_ops_per_sec > 0.0);
        assert_eq!(report.lines().lines().count(), 5);
    }
}
