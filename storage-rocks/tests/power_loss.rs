//! The power-loss test: a writer in a child process works on a store kept on a file
//! system that forgets what was not synced; the power is cut at random moments, the
//! file system comes back with only what was durable, and the store is reopened and
//! checked.
//!
//! The crash test kills the writer, but a killed process leaves its unsynced writes in
//! the operating system's page cache, where the next process finds them: it cannot catch
//! a missing or misplaced sync. Here the store lives on [`actraft_testfs`], which drops
//! everything not synced (file contents not `fsync`ed, names in directories not
//! `fsync`ed), sometimes keeping a torn part of the unsynced writes.
//!
//! Each cycle: a writer (this binary again, selected by an environment variable) opens
//! the store, runs the seeded operations of the crash test (appends, conflicting
//! suffixes with a new term, hard states, truncations, compactions, several in flight)
//! and prints `durable K` on its stdout, a pipe off the forgetting file system, once
//! operation K's future completed. With small memtables RocksDB also flushes, compacts
//! and rewrites its manifest and options files as it goes. At a random moment (during
//! start-up and recovery too) the power is cut: from that instant nothing more becomes
//! durable and every file system call fails. The writer is killed, the file system
//! mounted again with only its durable contents, and the store reopened: it must open,
//! and hold exactly the state after some operation J, J at least the last one reported
//! durable. The next writer goes on from there.
//!
//! The last line is `power-loss: cycles=<n> acknowledged=<n> lost=<n>`: operations
//! reported durable in all, and how many of them were missing (the test fails unless it
//! is 0). Where FUSE cannot be mounted it prints `power-loss: skipped: <reason>`.
//!
//! ```sh
//! cargo test --release -p actraft-storage-rocks --test power_loss              # 8 cycles
//! ACTRAFT_POWERLOSS_CYCLES=1000 cargo test --release -p actraft-storage-rocks --test power_loss
//! ACTRAFT_POWERLOSS_SEED=42 cargo test --release -p actraft-storage-rocks --test power_loss
//! ```
#![allow(clippy::print_stdout)]

mod support {
    pub mod log_model;
    pub mod power_cycle;
}

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use actraft::LogStorage;
use actraft_storage_rocks::{RocksOptions, RocksStorage};
use actraft_testfs::{CutReport, Mount};

use support::log_model::{read_model, Model, Op, Rng};
use support::power_cycle::{self, cut_during_writer, env_u64, Cut};

const NAME: &str = "power_loss_reopen";
const CHILD_ENV: &str = "ACTRAFT_POWERLOSS_CHILD";
const CYCLES_ENV: &str = "ACTRAFT_POWERLOSS_CYCLES";
const SEED_ENV: &str = "ACTRAFT_POWERLOSS_SEED";
const DEFAULT_CYCLES: usize = 8;
const MAX_DEPTH: u64 = 8;

/// Small memtables and write-ahead log, so that a few hundred operations make RocksDB
/// flush, compact, delete old files and write new ones: every file it manages is
/// exercised, not only the write-ahead log.
fn options() -> RocksOptions {
    RocksOptions {
        write_buffer_size: 64 << 10,
        max_total_wal_size: 256 << 10,
        ..RocksOptions::default()
    }
}

/// The writer: runs operations from `start` on, `depth` in flight, until killed (or
/// until the file system fails under it, after the power cut).
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
        let s = RocksStorage::open(dir, options())
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

/// What the reopened store holds, against what was reported durable.
enum Verdict {
    /// The state after operation `upto - 1`, with `upto` at least the first operation
    /// not reported durable.
    Intact { upto: u64, model: Model },
    /// The state after an earlier operation: `lost` operations reported durable are
    /// missing.
    Lost { lost: u64, detail: String },
}

/// Compares the store with the states after operations `next..`, starting from `base`
/// (the state before operation `next`), given that operations up to `must - 1` were
/// reported durable.
fn judge(stored: &Model, base: &Model, seed: u64, next: u64, must: u64) -> Verdict {
    let mut states = vec![base.clone()];
    let mut model = base.clone();
    for k in next..must + MAX_DEPTH + 1 {
        let op = model.next_op(seed, k);
        model.apply(&op);
        states.push(model.clone());
    }
    // states[i] is the state after operation next + i - 1. Some operations change
    // nothing (a vote saved again), so several states can be equal: any match at or
    // after `must` clears the cycle; otherwise the latest earlier match counts.
    let first = (must - next) as usize;
    let found = (first..states.len()).find(|&i| states[i] == *stored);
    match found {
        Some(i) => Verdict::Intact {
            upto: next + i as u64,
            model: states[i].clone(),
        },
        None => {
            let other = (0..first).rev().find(|&i| states[i] == *stored);
            let lost = match other {
                Some(i) => must - (next + i as u64),
                // Matches no state at all: count every operation of the cycle as lost.
                None => (must - next).max(1),
            };
            let expected = &states[(must - next) as usize];
            Verdict::Lost {
                lost,
                detail: format!(
                    "stored: {:?} prefix {:?} last {:?}; matches the state after operation \
                     {:?}\nexpected at least (after operation {}): {:?} prefix {:?} last {:?}",
                    stored.hard_state,
                    stored.prefix,
                    stored.last(),
                    other.map(|i| (next + i as u64) as i64 - 1),
                    must as i64 - 1,
                    expected.hard_state,
                    expected.prefix,
                    expected.last(),
                ),
            }
        }
    }
}

/// Reopens the store after the power came back and reads it.
fn reopen(rt: &tokio::runtime::Runtime, dir: &Path) -> Model {
    rt.block_on(async {
        let s = RocksStorage::open(dir, options())
            .await
            .unwrap_or_else(|e| panic!("the store refused to open after a power cut: {e}"));
        read_model(&s).await
    })
}

fn parent(mount: Mount) {
    let cycles = env_u64(CYCLES_ENV).map_or(DEFAULT_CYCLES, |n| n as usize);
    let seed = power_cycle::seed(SEED_ENV);
    println!("{NAME}: {cycles} power cuts, seed {seed} (replay with {SEED_ENV}={seed})");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = mount.path().join("store");
    let mut rng = Rng(seed);
    let (mut base, mut next) = (Model::default(), 0u64);
    let (mut acknowledged, mut lost) = (0u64, 0u64);
    let mut cut_total = CutReport::default();
    let mut mount = Some(mount);
    let started = Instant::now();
    for cycle in 0..cycles {
        let depth = 1 + rng.below(MAX_DEPTH);
        let spec = format!("{}|{seed}|{next}|{depth}", store.display());
        let Cut {
            mount: m,
            last_durable,
            tear,
            report,
        } = cut_during_writer(mount.take().expect("mounted"), CHILD_ENV, spec, &mut rng);
        mount = Some(m);
        cut_total += report;

        // Operations next..=last_durable were reported durable: all must be there.
        let must = last_durable.map_or(next, |k| k + 1);
        acknowledged += must - next;
        // Reopened even when the cut came before the store was first created.
        let stored = reopen(&rt, &store);
        match judge(&stored, &base, seed, next, must) {
            Verdict::Intact { upto, model } => {
                base = model;
                next = upto;
            }
            Verdict::Lost { lost: n, detail } => {
                lost += n;
                println!(
                    "{NAME}: cycle {cycle}, seed {seed}: {n} operations reported durable are \
                     missing after the power cut ({tear:?}, {report:?})\n{detail}"
                );
                println!(
                    "power-loss: cycles={} acknowledged={acknowledged} lost={lost}",
                    cycle + 1
                );
                panic!("acknowledged operations lost; seed {seed}");
            }
        }
    }
    println!(
        "{NAME}: {cycles} power cuts in {:.1} s; the cuts dropped {} unsynced bytes \
         in {} files, tore {} writes and lost {} names; the log ends at {:?}, {} operations in",
        started.elapsed().as_secs_f64(),
        cut_total.bytes_dropped,
        cut_total.files_reverted,
        cut_total.torn_writes,
        cut_total.names_lost,
        base.last(),
        next,
    );
    drop(mount);
    println!("power-loss: cycles={cycles} acknowledged={acknowledged} lost={lost}");
}

fn main() {
    power_cycle::main(NAME, CHILD_ENV, child, parent);
}
