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

use actraft::core::{Entry, HardState, LogId, LogIndex, Payload, Term};
use actraft::{LogStorage, LogWrite};
use actraft_storage_rocks::{OpenError, RocksOptions, RocksStorage};
use bytes::Bytes;

const NAME: &str = "crash_sigkill_reopen";
const CHILD_ENV: &str = "ACTRAFT_CRASH_CHILD";
const KILLS_ENV: &str = "ACTRAFT_CRASH_KILLS";
const SEED_ENV: &str = "ACTRAFT_CRASH_SEED";
const DEFAULT_KILLS: usize = 5;
const MAX_DEPTH: u64 = 8;

/// splitmix64: small, seedable, the same in the writer and the checker.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One operation of the writer.
#[derive(Debug, Clone)]
enum Op {
    Write(LogWrite),
    Compact(LogIndex),
}

/// What the store should hold: hard state, prefix, and the term of every entry after the
/// prefix (payloads are a function of index and term).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    hard_state: HardState,
    prefix: LogId,
    terms: Vec<Term>,
}

fn payload(index: LogIndex, term: Term) -> Payload {
    if index.is_multiple_of(11) {
        return Payload::Noop;
    }
    let len = ((index * 7 + term * 13) % 97) as usize;
    Payload::Command(Bytes::from(
        (0..len)
            .map(|i| (index as usize ^ term as usize ^ i) as u8)
            .collect::<Vec<_>>(),
    ))
}

fn entries(from: LogIndex, to: LogIndex, term: Term) -> Vec<Entry> {
    (from..=to)
        .map(|index| Entry {
            term,
            index,
            payload: payload(index, term),
        })
        .collect()
}

impl Model {
    fn last(&self) -> LogId {
        match self.terms.last() {
            Some(&term) => LogId::new(term, self.prefix.index + self.terms.len() as u64),
            None => self.prefix,
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Write(w) => {
                if let Some(from) = w.truncate_from {
                    self.terms.truncate((from - self.prefix.index - 1) as usize);
                }
                if let Some(first) = w.entries.first() {
                    self.terms
                        .truncate((first.index - self.prefix.index - 1) as usize);
                    self.terms.extend(w.entries.iter().map(|e| e.term));
                }
                if let Some(hs) = w.hard_state {
                    self.hard_state = hs;
                }
            }
            &Op::Compact(upto) => {
                if upto > self.prefix.index {
                    let n = (upto - self.prefix.index) as usize;
                    self.prefix = LogId::new(self.terms[n - 1], upto);
                    self.terms.drain(..n);
                }
            }
        }
    }

    /// Operation `k` of the run seeded with `seed`, given the state it applies to.
    fn next_op(&self, seed: u64, k: u64) -> Op {
        let mut rng = Rng(seed ^ k.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let (hs, last, prefix) = (self.hard_state, self.last(), self.prefix.index);
        let write = |truncate_from, entries, hard_state| {
            Op::Write(LogWrite {
                truncate_from,
                entries,
                hard_state,
            })
        };
        if hs.current_term == 0 {
            let hs = HardState {
                current_term: 1,
                voted_for: Some(1),
            };
            return write(None, Vec::new(), Some(hs));
        }
        let term = hs.current_term;
        let stored = last.index - prefix;
        match rng.below(100) {
            // A conflicting suffix replaced by a new leader's entries, with its term.
            65..75 if stored > 0 => {
                let from = last.index.saturating_sub(rng.below(8)).max(prefix + 1);
                let hs = HardState {
                    current_term: term + 1,
                    voted_for: Some(1 + rng.below(5)),
                };
                let new = entries(from, from + rng.below(4), term + 1);
                write(Some(from), new, Some(hs))
            }
            75..88 => {
                let hs = if rng.below(2) == 0 {
                    HardState {
                        current_term: term + 1,
                        voted_for: None,
                    }
                } else {
                    HardState {
                        current_term: term,
                        voted_for: Some(1 + rng.below(5)),
                    }
                };
                write(None, Vec::new(), Some(hs))
            }
            88..93 if stored > 0 => {
                let from = last.index.saturating_sub(rng.below(4)).max(prefix + 1);
                write(Some(from), Vec::new(), None)
            }
            93..100 if stored > 8 => Op::Compact(prefix + stored / 2),
            _ => {
                let n = 1 + rng.below(32);
                write(None, entries(last.index + 1, last.index + n, term), None)
            }
        }
    }
}

/// Reads the whole store back into a model, checking every payload.
async fn read_model(s: &RocksStorage) -> Model {
    let state = s.state().await.expect("state");
    let mut model = Model {
        hard_state: state.hard_state,
        prefix: state.prefix,
        terms: Vec::new(),
    };
    if state.last.index > state.prefix.index {
        let stored = s
            .entries(state.prefix.index + 1, state.last.index)
            .await
            .expect("read the whole log: no holes");
        for e in stored {
            assert_eq!(
                e.payload,
                payload(e.index, e.term),
                "payload of {}",
                e.index
            );
            model.terms.push(e.term);
        }
    }
    assert_eq!(model.last(), state.last, "last id matches the entries");
    model
}

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
