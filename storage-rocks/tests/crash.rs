//! The crash test: a writer in a child process, killed with SIGKILL at random moments,
//! then the store reopened and checked.
//!
//! The test binary runs itself again as the writer (selected by an environment
//! variable). The writer derives every operation from a seed and the operation's number
//! (appends of random sizes, conflicting suffixes replaced together with a new term,
//! hard states alone, truncations, compactions), keeps several in flight so group
//! commit is exercised, and prints `durable K` once operation K's future completed. The
//! parent kills it at a random moment, reopens the directory, and checks that the store
//! is exactly the state after some operation J with J at least the last one reported
//! durable and at most the last one issued: every append reported durable is present,
//! the log has no holes (every entry is read back, with its payload), the hard state is
//! the last one reported saved or a later one that was in flight. The next writer goes
//! on from there, in the same directory.
//!
//! ```sh
//! cargo test --release -p actraft-storage-rocks --test crash                 # 5 kills
//! ACTRAFT_CRASH_KILLS=500 cargo test --release -p actraft-storage-rocks --test crash
//! ACTRAFT_CRASH_SEED=42 cargo test --release -p actraft-storage-rocks --test crash
//! ```
#![allow(clippy::print_stdout)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actraft::LogStorage;
use actraft_storage_rocks::{OpenError, RocksOptions, RocksStorage};

const NAME: &str = "crash_sigkill_reopen";
const CHILD_ENV: &str = "ACTRAFT_CRASH_CHILD";
const KILLS_ENV: &str = "ACTRAFT_CRASH_KILLS";
const SEED_ENV: &str = "ACTRAFT_CRASH_SEED";
const DEFAULT_KILLS: usize = 5;
const MAX_DEPTH: u64 = 8;

// The seeded operations, the model of the log and the read-back check are shared with
// the power-loss test.
#[path = "support/log_model.rs"]
mod log_model;
use log_model::{read_model, Model, Op, Rng};

/// The writer: runs operations from `start` on, `depth` in flight, until killed.
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [dir, seed, start, depth] = parts[..] else {
        panic!("bad child spec {spec:?}");
    };
    let (seed, mut k, depth): (u64, u64, usize) = (
        seed.parse().unwrap(),
        start.parse().unwrap(),
        depth.parse().unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = RocksStorage::open(dir, RocksOptions::default())
            .await
            .expect("the writer opens the store");
        let mut model = read_model(&s).await;
        println!("open");
        let mut in_flight = VecDeque::new();
        loop {
            while in_flight.len() < depth {
                let op = model.next_op(seed, k);
                model.apply(&op);
                let fut = match op {
                    Op::Write(w) => s.write(w),
                    Op::Compact(upto) => s.compact(upto),
                };
                in_flight.push_back((k, fut));
                k += 1;
            }
            let (done, fut) = in_flight.pop_front().expect("in flight");
            fut.await.expect("a write of the writer");
            println!("durable {done}");
        }
    });
}

/// Opens the store in the parent and reads it back.
fn reopen(rt: &tokio::runtime::Runtime, dir: &Path) -> Model {
    rt.block_on(async {
        let s = RocksStorage::open(dir, RocksOptions::default())
            .await
            .expect("reopen after the kill");
        read_model(&s).await
    })
}

fn parent() {
    let kills: usize = std::env::var(KILLS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("{NAME}: {kills} kills, seed {seed} (replay with {SEED_ENV}={seed})");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(seed);
    let (mut base, mut next) = (Model::default(), 0u64);
    let (mut survived, mut reported_total) = (0usize, 0u64);
    let started = Instant::now();
    for round in 0..kills {
        let depth = 1 + rng.below(MAX_DEPTH);
        let spec = format!("{}|{seed}|{next}|{depth}", dir.path().display());
        let mut writer = Command::new(&exe)
            .env(CHILD_ENV, spec)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the writer");
        let (lines_tx, lines) = mpsc::channel();
        let stdout = writer.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        if round == 0 {
            // While the writer holds the store, another process cannot open it.
            let line = lines.recv_timeout(Duration::from_secs(30)).expect("opened");
            assert_eq!(line, "open");
            let held = RocksStorage::open_blocking(dir.path(), RocksOptions::default());
            assert!(
                matches!(held, Err(OpenError::Locked { .. })),
                "{:?}",
                held.err()
            );
        }
        // Sometimes during start-up or recovery, mostly while writing.
        std::thread::sleep(Duration::from_micros(rng.below(150_000)));
        writer.kill().expect("SIGKILL the writer");
        let status = writer.wait().unwrap();
        reader.join().unwrap();
        let mut last_durable = None;
        for line in lines.try_iter() {
            if let Some(k) = line.strip_prefix("durable ") {
                last_durable = Some(k.parse::<u64>().unwrap());
            }
        }
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round}: the writer died before the kill ({status}); seed {seed}"
        );
        survived += 1;
        // Operations next..=last_durable were reported durable: all must be there.
        let must = last_durable.map_or(next, |k| k + 1);
        reported_total += must - next;
        let mut expected = base.clone();
        for k in next..must {
            let op = expected.next_op(seed, k);
            expected.apply(&op);
        }
        let stored = reopen(&rt, dir.path());
        let mut k = must;
        while stored != expected {
            assert!(
                k < must + MAX_DEPTH + 1,
                "round {round}, seed {seed}: the store matches no state after operation \
                 {}..={} (reported durable up to {last_durable:?})\nstored: {:?} prefix {:?} last {:?}\nexpected at least: {:?} prefix {:?} last {:?}",
                must.saturating_sub(1),
                k - 1,
                stored.hard_state,
                stored.prefix,
                stored.last(),
                expected.hard_state,
                expected.prefix,
                expected.last(),
            );
            let op = expected.next_op(seed, k);
            expected.apply(&op);
            k += 1;
        }
        base = expected;
        next = k;
    }
    println!(
        "{NAME}: survived {survived} kills in {:.1} s; {reported_total} operations reported \
         durable, {next} found durable; log ends at {:?}",
        started.elapsed().as_secs_f64(),
        base.last()
    );
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    // `cargo test NAME_FILTER` passes the filter to every test binary: honour it.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        return;
    }
    parent();
}
