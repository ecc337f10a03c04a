//! The KV service under process faults, as an operator runs it: three `kv serve`
//! processes (QUIC between them, RocksDB under each, snapshots every few hundred
//! entries) on loopback. Concurrent clients put unique values to a few keys and read them
//! back by every read path (log, index, lease, follower) while a nemesis kills nodes with
//! SIGKILL and restarts them (now and then two at once), and pauses nodes with SIGSTOP
//! (now and then past the QUIC idle timeout) and resumes them, the leader more often than
//! the others. Afterwards the cluster must take a write again, and every
//! client history (writes whose answer never came count as "outcome unknown") must be
//! linearizable by testkit's checker.
//!
//! `ACTRAFT_KV_FAULT_SECS` sets how long the faults go on (default 8, quick enough for
//! CI), `ACTRAFT_KV_FAULT_SEED` the nemesis's choices. With `ACTRAFT_KV_NETNS=1` (root,
//! iproute2) each node runs in a network namespace of its own on one bridge, and the
//! nemesis also partitions, for up to 8 s: it cuts a node off from everyone, or cuts the
//! link between two nodes, or every link between nodes while clients still reach them all. It runs the `kv` example binary,
//! which `cargo test -p actraft-examples --features rocks` builds along with the tests.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actraft::testkit::linearizability::History;
use actraft::testkit::SplitMix64 as Rng;
use actraft_examples::kv_client::{KvClient, KvClientError, KvClientOptions};
use actraft_examples::kv_process::{self, free_port, kv_bin, write_certs, KvProcess, NetnsLan};
use actraft_examples::kv_wire::ReadPath;

const KEYS: usize = 4;
const CLIENTS: usize = 5;
const IDS: [u64; 3] = [1, 2, 3];

/// A random span of `from..to` milliseconds.
fn millis(rng: &mut Rng, from: u64, to: u64) -> Duration {
    Duration::from_millis(from + rng.below(to - from))
}

/// One of the nodes other than `id`, at random.
fn other_than(id: u64, rng: &mut Rng) -> u64 {
    let at = IDS.iter().position(|&i| i == id).expect("a node");
    IDS[(at + 1 + rng.below(IDS.len() as u64 - 1) as usize) % IDS.len()]
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

fn client(certs: &std::path::Path, addrs: &BTreeMap<u64, String>, timeout: Duration) -> KvClient {
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
    ok: Cell<u64>,
    unknown: Cell<u64>,
    failed: Cell<u64>,
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

#[actix_rt::test]
async fn kv_histories_stay_linearizable_under_kills_and_pauses() {
    let secs = env_u64("ACTRAFT_KV_FAULT_SECS", 8);
    let seed = env_u64("ACTRAFT_KV_FAULT_SEED", 1);
    let bin = kv_bin();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    write_certs(&bin, &certs, &IDS);
    let lan = (env_u64("ACTRAFT_KV_NETNS", 0) == 1)
        .then(|| NetnsLan::new(&IDS).unwrap_or_else(|e| panic!("ACTRAFT_KV_NETNS: {e}")));
    let addrs: BTreeMap<u64, String> = IDS
        .iter()
        .map(|&id| match &lan {
            Some(lan) => (id, lan.addr(id, 7000)),
            None => (id, format!("127.0.0.1:{}", free_port())),
        })
        .collect();
    let by_addr: BTreeMap<String, u64> = addrs.iter().map(|(&id, a)| (a.clone(), id)).collect();
    let extra = [
        "--lease-reads",
        "--snapshot-after-entries",
        "300",
        "--snapshot-keep-entries",
        "50",
    ];
    let mut nodes: BTreeMap<u64, KvProcess> = IDS
        .iter()
        .map(|&id| {
            let node = KvProcess::at(id, &addrs, dir.path(), &certs, &extra);
            let node = match &lan {
                Some(lan) => node.prefixed(lan.prefix(id)),
                None => node,
            };
            (id, node)
        })
        .collect();
    for node in nodes.values_mut() {
        node.start(&bin);
    }

    let history: History<String, String> = History::new();
    let stop = Rc::new(Cell::new(false));
    let tally = Rc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            actix_rt::spawn(run_client(
                n,
                client(&certs, &addrs, Duration::from_secs(4)),
                history.client(),
                Rc::clone(&stop),
                Rc::clone(&tally),
                seed,
            ))
        })
        .collect();

    // The nemesis: one fault at a time; every node runs again between faults.
    let observer = client(&certs, &addrs, Duration::from_secs(2));
    let mut rng = Rng::new(seed);
    let (mut kills, mut pauses, mut partitions) = (0, 0, 0);
    let actions = if lan.is_some() { 11 } else { 8 };
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    // What the nemesis did, with the time: printed with the test's output on failure.
    let say = |what: String| eprintln!("nemesis {:7.2}s {what}", started.elapsed().as_secs_f64());
    while Instant::now() < end {
        tokio::time::sleep(millis(&mut rng, 200, 700)).await;
        // The leader as the clients last found it, half of the time; else any node.
        let _ = observer.get("k0").await;
        let leader = observer
            .known_leader()
            .and_then(|addr| by_addr.get(&addr).copied());
        let target = match leader {
            Some(id) if rng.below(2) == 0 => id,
            _ => IDS[rng.below(IDS.len() as u64) as usize],
        };
        match rng.below(actions) {
            // Partitions (network namespaces only).
            8..=10 => {
                let lan = lan.as_ref().expect("partitions need the namespaces");
                match rng.below(3) {
                    0 => {
                        say(format!("cut node {target} off"));
                        lan.isolate(target).unwrap();
                    }
                    1 => {
                        let other = other_than(target, &mut rng);
                        say(format!("cut the link {target}-{other}"));
                        lan.cut(&[target, other]).unwrap();
                    }
                    // No node reaches another, while clients reach every node.
                    _ => {
                        say("cut every link between nodes".into());
                        lan.cut(&IDS).unwrap();
                    }
                }
                partitions += 1;
                tokio::time::sleep(millis(&mut rng, 300, 8000)).await;
                lan.heal().unwrap();
                say("healed".into());
            }
            // A majority down: the cluster stops, then must come back.
            0 => {
                let other = other_than(target, &mut rng);
                say(format!("kill -9 nodes {target} and {other}"));
                for id in [target, other] {
                    nodes.get_mut(&id).unwrap().kill();
                    kills += 1;
                }
                tokio::time::sleep(millis(&mut rng, 100, 1500)).await;
                for id in [other, target] {
                    nodes.get_mut(&id).unwrap().start(&bin);
                }
                say("restarted".into());
            }
            1..=3 => {
                let node = nodes.get_mut(&target).unwrap();
                say(format!("kill -9 node {target}"));
                node.kill();
                kills += 1;
                tokio::time::sleep(millis(&mut rng, 100, 1500)).await;
                node.start(&bin);
                say("restarted".into());
            }
            pause => {
                let node = nodes.get_mut(&target).unwrap();
                if node.pause() {
                    pauses += 1;
                    // Now and then longer than the QUIC idle timeout (5 s): the
                    // connections to it die and are dialled again.
                    let (from, to) = if pause == 7 {
                        (5500, 7000)
                    } else {
                        (100, 2500)
                    };
                    say(format!("pause node {target}"));
                    tokio::time::sleep(millis(&mut rng, from, to)).await;
                    node.resume();
                    say("resumed".into());
                }
            }
        }
    }
    stop.set(true);
    for c in clients {
        c.await.unwrap();
    }

    // Every node runs again: the cluster takes a write, and the last values are read.
    let kv = client(&certs, &addrs, Duration::from_secs(30));
    let logs = |nodes: &BTreeMap<u64, KvProcess>| {
        nodes
            .values()
            .map(|n| format!("--- node {}\n{}", n.id, n.log_tail(20)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let final_put = history.write("k0".to_string(), "final".to_string());
    match kv.put("k0", "final").await {
        Ok(_) => final_put.ok(),
        Err(e) => panic!(
            "the cluster took no write after the faults: {e}\n{}",
            logs(&nodes)
        ),
    }
    for k in 0..KEYS {
        let key = format!("k{k}");
        let pending = history.read(key.clone());
        let value = kv
            .get(&key)
            .await
            .unwrap_or_else(|e| panic!("read {key} after the faults: {e}\n{}", logs(&nodes)));
        pending.returned(value);
    }

    let report = history
        .check()
        .unwrap_or_else(|e| panic!("seed {seed}: the history is not linearizable: {e}"));
    eprintln!(
        "kv faults: secs={secs} seed={seed} kills={kills} pauses={pauses} partitions={partitions} ok={} unknown={} failed={} checked={} states={}",
        tally.ok.get(),
        tally.unknown.get(),
        tally.failed.get(),
        report.operations,
        report.states
    );
    assert!(
        tally.ok.get() >= 20,
        "the clients made progress between faults: {} operations answered\n{}",
        tally.ok.get(),
        logs(&nodes)
    );
}
