//! What the tests of `kv serve` processes under faults share: the clients that write and
//! read while the faults go on, and the nemesis that kills, pauses and partitions the
//! nodes.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actraft::testkit::linearizability::History;
use actraft::testkit::SplitMix64 as Rng;
use actraft_examples::kv_client::{KvClient, KvClientError, KvClientOptions};
use actraft_examples::kv_process::{self, free_port, KvProcess, NetnsLan};
use actraft_examples::kv_wire::ReadPath;

/// Keys the clients write and read.
pub const KEYS: usize = 4;

/// How long a partition that leaves the other nodes connected and a majority may go
/// without a read index answered: an election timeout or two for CheckQuorum to depose a
/// leader nobody hears and for the others to elect, a QUIC reconnection, the client's
/// retries.
pub const SERVE_BOUND: Duration = Duration::from_secs(10);

/// Concurrent clients.
pub const CLIENTS: usize = 5;

/// What every node serves with besides its addresses: lease reads on, and snapshots
/// every few hundred entries, so that restarts and new members install them.
pub const SERVE_ARGS: [&str; 5] = [
    "--lease-reads",
    "--snapshot-after-entries",
    "300",
    "--snapshot-keep-entries",
    "50",
];

/// Where nodes `ids` listen: in their namespaces with `lan`, else on free loopback ports.
pub fn addresses(ids: &[u64], lan: Option<&NetnsLan>) -> BTreeMap<u64, String> {
    ids.iter()
        .map(|&id| match lan {
            Some(lan) => (id, lan.addr(id, 7000)),
            None => (id, format!("127.0.0.1:{}", free_port())),
        })
        .collect()
}

/// Node `id` of the nodes at `addrs` (its peers are the others), in its namespace with
/// `lan`, serving with [`SERVE_ARGS`] and `more`. Not started yet.
pub fn process(
    id: u64,
    addrs: &BTreeMap<u64, String>,
    dir: &Path,
    lan: Option<&NetnsLan>,
    more: &[&str],
) -> KvProcess {
    let args: Vec<&str> = SERVE_ARGS.iter().chain(more).copied().collect();
    let node = KvProcess::at(id, addrs, dir, &dir.join("certs"), &args);
    match lan {
        Some(lan) => node.prefixed(lan.prefix(id)),
        None => node,
    }
}

/// A random span of `from..to` milliseconds.
pub fn millis(rng: &mut Rng, from: u64, to: u64) -> Duration {
    Duration::from_millis(from + rng.below(to - from))
}

/// One of `ids` other than `id`, at random.
pub fn other_than(ids: &[u64], id: u64, rng: &mut Rng) -> u64 {
    let at = ids.iter().position(|&i| i == id).expect("a node");
    ids[(at + 1 + rng.below(ids.len() as u64 - 1) as usize) % ids.len()]
}

/// The variable `name` as a number, or `default` when it is not set.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

/// A client of the nodes at `addrs`, giving up on a request after `timeout`.
pub fn client(certs: &Path, addrs: &BTreeMap<u64, String>, timeout: Duration) -> KvClient {
    let options = KvClientOptions {
        timeout,
        connect_timeout: Duration::from_millis(300),
        reply_timeout: Duration::from_secs(2),
    };
    kv_process::client(certs, addrs.values().cloned().collect(), options)
}

/// What the clients saw, for the summary line.
#[derive(Default)]
struct Tally {
    /// Answered operations.
    ok: Cell<u64>,
    /// Writes of unknown outcome.
    unknown: Cell<u64>,
    /// Reads that failed.
    failed: Cell<u64>,
}

/// The clients and what they record, running until [`finish`](Self::finish).
pub struct Clients {
    history: History<String, String>,
    stop: Rc<Cell<bool>>,
    tally: Rc<Tally>,
    tasks: Vec<actix_rt::task::JoinHandle<()>>,
}

impl Clients {
    /// Starts [`CLIENTS`] clients of the nodes at `addrs`, with the certificates in
    /// `dir/certs`, making the choices of `seed`.
    pub fn start(dir: &Path, addrs: &BTreeMap<u64, String>, seed: u64) -> Self {
        let history: History<String, String> = History::new();
        let stop = Rc::new(Cell::new(false));
        let tally = Rc::new(Tally::default());
        let tasks = (0..CLIENTS)
            .map(|n| {
                actix_rt::spawn(run_client(
                    n,
                    client(&dir.join("certs"), addrs, Duration::from_secs(4)),
                    history.client(),
                    Rc::clone(&stop),
                    Rc::clone(&tally),
                    seed,
                ))
            })
            .collect();
        Self {
            history,
            stop,
            tally,
            tasks,
        }
    }

    /// Stops the clients; then, with every node running, the cluster must take a write
    /// and answer a read of every key, and the whole history must be linearizable.
    /// Returns the counts for the summary line.
    ///
    /// # Panics
    ///
    /// When the cluster takes no write or read, or the history is not linearizable.
    pub async fn finish(
        self,
        dir: &Path,
        addrs: &BTreeMap<u64, String>,
        nodes: &BTreeMap<u64, KvProcess>,
        seed: u64,
    ) -> String {
        self.stop.set(true);
        for task in self.tasks {
            task.await.unwrap();
        }
        let kv = client(&dir.join("certs"), addrs, Duration::from_secs(30));
        let final_put = self.history.write("k0".to_string(), "final".to_string());
        match kv.put("k0", "final").await {
            Ok(_) => final_put.ok(),
            Err(e) => panic!(
                "the cluster took no write after the faults: {e}\n{}",
                logs(nodes)
            ),
        }
        for k in 0..KEYS {
            let key = format!("k{k}");
            let pending = self.history.read(key.clone());
            let value = kv
                .get(&key)
                .await
                .unwrap_or_else(|e| panic!("read {key} after the faults: {e}\n{}", logs(nodes)));
            pending.returned(value);
        }
        let report = self
            .history
            .check()
            .unwrap_or_else(|e| panic!("seed {seed}: the history is not linearizable: {e}"));
        assert!(
            self.tally.ok.get() >= 20,
            "the clients made progress between faults: {} operations answered\n{}",
            self.tally.ok.get(),
            logs(nodes)
        );
        format!(
            "ok={} unknown={} failed={} checked={} states={}",
            self.tally.ok.get(),
            self.tally.unknown.get(),
            self.tally.failed.get(),
            report.operations,
            report.states
        )
    }
}

/// One client: random puts of unique values and reads by a random path, until `stop`.
async fn run_client(
    n: usize,
    kv: KvClient,
    history: History<String, String>,
    stop: Rc<Cell<bool>>,
    tally: Rc<Tally>,
    seed: u64,
) {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n as u64 + 1));
    let mut written = 0u64;
    while !stop.get() {
        let key = format!("k{}", rng.below(KEYS as u64));
        if rng.below(2) == 0 {
            written += 1;
            let value = format!("c{n}-{written}");
            let pending = history.write(key.clone(), value.clone());
            match kv.put(&key, &value).await {
                Ok(_) => {
                    pending.ok();
                    tally.ok.set(tally.ok.get() + 1);
                }
                // Refused before anything was sent: it had no effect.
                Err(KvClientError::Invalid(e)) => panic!("put {key}: {e}"),
                // Anything else may have been applied (an earlier attempt of it, before a
                // timeout or a leader change): outcome unknown.
                Err(_) => {
                    pending.unknown();
                    tally.unknown.set(tally.unknown.get() + 1);
                }
            }
        } else {
            let path = [
                ReadPath::Index,
                ReadPath::Lease,
                ReadPath::Follower,
                ReadPath::Log,
            ][rng.below(4) as usize];
            let pending = history.read(key.clone());
            match kv.get_with(&key, path).await {
                Ok(value) => {
                    pending.returned(value);
                    tally.ok.set(tally.ok.get() + 1);
                }
                // A read that failed changed nothing.
                Err(_) => {
                    pending.failed();
                    tally.failed.set(tally.failed.get() + 1);
                }
            }
        }
    }
}

/// The faults: one at a time, and every node runs again when one is over.
pub struct Nemesis<'a> {
    /// The nemesis's choices.
    pub rng: Rng,
    /// The namespaces, when the nodes run in them (partitions need them).
    pub lan: Option<&'a NetnsLan>,
    /// The `kv` binary, to restart a node.
    pub bin: &'a Path,
    /// When the faults began, for the lines it prints.
    pub started: Instant,
    /// Processes killed.
    pub kills: u64,
    /// Processes paused.
    pub pauses: u64,
    /// Partitions made.
    pub partitions: u64,
    /// Partitions that left the other nodes a connected majority, and how long each
    /// took until the cluster answered a read index (`None`: not within
    /// [`SERVE_BOUND`]).
    pub served: Vec<Option<Duration>>,
    /// Finds the leader, to aim at it.
    observer: KvClient,
    /// Every node by its address.
    by_addr: BTreeMap<String, u64>,
}

impl<'a> Nemesis<'a> {
    /// A nemesis making the choices of `seed` among the nodes at `addrs`, with the
    /// certificates in `dir/certs`.
    pub fn new(
        seed: u64,
        lan: Option<&'a NetnsLan>,
        bin: &'a Path,
        dir: &Path,
        addrs: &BTreeMap<u64, String>,
    ) -> Self {
        Self {
            rng: Rng::new(seed),
            lan,
            bin,
            started: Instant::now(),
            kills: 0,
            pauses: 0,
            partitions: 0,
            served: Vec::new(),
            observer: client(&dir.join("certs"), addrs, Duration::from_secs(2)),
            by_addr: addrs.iter().map(|(&id, a)| (a.clone(), id)).collect(),
        }
    }

    /// Waits a little, then picks the next node to strike: the leader as the clients
    /// last found it, half of the time; else any node.
    pub async fn aim(&mut self) -> u64 {
        tokio::time::sleep(millis(&mut self.rng, 200, 700)).await;
        let _ = self.observer.get("k0").await;
        let leader = self
            .observer
            .known_leader()
            .and_then(|addr| self.by_addr.get(&addr).copied());
        match leader {
            Some(id) if self.rng.below(2) == 0 => id,
            _ => {
                let ids: Vec<u64> = self.by_addr.values().copied().collect();
                ids[self.rng.below(ids.len() as u64) as usize]
            }
        }
    }

    /// How long until a read index is answered (by any node the observer finds), or
    /// `None` when none is within `bound`.
    async fn serve_within(&mut self, bound: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < bound {
            if self.observer.get_with("k0", ReadPath::Index).await.is_ok() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// `served=<served>/<partitions that left a connected majority> slowest=<time>`, for
    /// the test's summary line.
    pub fn served_line(&self) -> String {
        let served: Vec<Duration> = self.served.iter().flatten().copied().collect();
        let slowest = served.iter().max().copied().unwrap_or_default();
        format!(
            "served={}/{} slowest={slowest:.1?}",
            served.len(),
            self.served.len()
        )
    }

    /// The partitions that left a connected majority but were not served within
    /// [`SERVE_BOUND`], as a line for an assertion (empty when there were none).
    pub fn unserved(&self) -> String {
        let stalled = self.served.iter().filter(|s| s.is_none()).count();
        if stalled == 0 {
            return String::new();
        }
        format!(
            "{stalled} of {} partitions that left the other nodes a connected majority were not served within {SERVE_BOUND:?}",
            self.served.len()
        )
    }

    /// Prints what the nemesis does, with the time (shown with a failed test's output).
    pub fn say(&self, what: &str) {
        eprintln!(
            "nemesis {:7.2}s {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    /// How many kinds of fault [`strike`](Self::strike) picks from.
    pub fn actions(&self) -> u64 {
        if self.lan.is_some() {
            11
        } else {
            8
        }
    }

    /// One fault aimed at `target`, one of `nodes`, picked at random: a kill (sometimes
    /// of a majority, `target` among them), a pause (sometimes past the QUIC idle
    /// timeout) or, in the namespaces, a partition for up to 8 s; returns once it is over.
    pub async fn strike(&mut self, target: u64, nodes: &mut BTreeMap<u64, KvProcess>) {
        let ids: Vec<u64> = nodes.keys().copied().collect();
        let action = self.rng.below(self.actions());
        match action {
            // Partitions (network namespaces only).
            8..=10 => {
                let lan = self.lan.expect("partitions need the namespaces");
                // Whether the nodes other than those cut off stay connected and a
                // majority: then the cluster must answer while the cut lasts.
                let majority_left = match self.rng.below(6) {
                    0 => {
                        self.say(&format!("cut node {target} off"));
                        lan.isolate(target).unwrap();
                        true
                    }
                    1 => {
                        let other = other_than(&ids, target, &mut self.rng);
                        self.say(&format!("cut the link {target}-{other}"));
                        lan.cut(&[target, other]).unwrap();
                        true
                    }
                    3 => {
                        let other = other_than(&ids, target, &mut self.rng);
                        self.say(&format!("cut the link {target}->{other} one way"));
                        lan.block(target, other).unwrap();
                        true
                    }
                    // Heard by nobody, while it hears every node.
                    4 => {
                        self.say(&format!("node {target} reaches no node, one way"));
                        for &other in ids.iter().filter(|&&id| id != target) {
                            lan.block(target, other).unwrap();
                        }
                        true
                    }
                    // Hears nobody, while every node hears it.
                    5 => {
                        self.say(&format!("no node reaches node {target}, one way"));
                        for &other in ids.iter().filter(|&&id| id != target) {
                            lan.block(other, target).unwrap();
                        }
                        true
                    }
                    // No node reaches another, while clients reach every node.
                    _ => {
                        self.say("cut every link between nodes");
                        lan.cut(&ids).unwrap();
                        false
                    }
                };
                self.partitions += 1;
                let hold = millis(&mut self.rng, 300, 8000);
                let cut_at = Instant::now();
                if majority_left {
                    let served = self.serve_within(SERVE_BOUND).await;
                    match served {
                        Some(after) => self.say(&format!("served after {after:.1?}")),
                        None => self.say(&format!("not served within {SERVE_BOUND:?}")),
                    }
                    self.served.push(served);
                }
                tokio::time::sleep(hold.saturating_sub(cut_at.elapsed())).await;
                lan.heal().unwrap();
                self.say("healed");
            }
            // A majority down: the cluster stops, then must come back.
            0 => {
                let mut down = vec![target];
                while down.len() < ids.len() / 2 + 1 {
                    let other = other_than(&ids, target, &mut self.rng);
                    if !down.contains(&other) {
                        down.push(other);
                    }
                }
                self.say(&format!("kill -9 nodes {down:?}"));
                for id in &down {
                    nodes.get_mut(id).unwrap().kill();
                    self.kills += 1;
                }
                tokio::time::sleep(millis(&mut self.rng, 100, 1500)).await;
                for id in down.iter().rev() {
                    nodes.get_mut(id).unwrap().start(self.bin);
                }
                self.say("restarted");
            }
            1..=3 => {
                let node = nodes.get_mut(&target).unwrap();
                self.say(&format!("kill -9 node {target}"));
                node.kill();
                self.kills += 1;
                tokio::time::sleep(millis(&mut self.rng, 100, 1500)).await;
                node.start(self.bin);
                self.say("restarted");
            }
            pause => {
                let node = nodes.get_mut(&target).unwrap();
                if node.pause() {
                    self.pauses += 1;
                    // Now and then longer than the QUIC idle timeout (5 s): the
                    // connections to it die and are dialled again.
                    let (from, to) = if pause == 7 {
                        (5500, 7000)
                    } else {
                        (100, 2500)
                    };
                    self.say(&format!("pause node {target}"));
                    tokio::time::sleep(millis(&mut self.rng, from, to)).await;
                    node.resume();
                    self.say("resumed");
                }
            }
        }
    }
}

/// The last lines of every node's log, for a failure message.
pub fn logs(nodes: &BTreeMap<u64, KvProcess>) -> String {
    nodes
        .values()
        .map(|n| format!("--- node {}\n{}", n.id, n.log_tail(20)))
        .collect::<Vec<_>>()
        .join("\n")
}
