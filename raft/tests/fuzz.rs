//! Hostile input: one node, driven through the same driver as the actix node, fed
//! random and mutated messages from its two peers (which may lie about anything),
//! interleaved with ticks and proposals. After every input it checks that nothing
//! panicked and that the node kept the single-node forms of the Figure 3 properties:
//! terms only grow and a vote is cast once per term (Election Safety), a leader never
//! removes entries from its own log (Leader Append-Only), log terms never decrease along
//! the log (Log Matching), committed entries never change (Leader Completeness, State
//! Machine Safety), and entries are applied once, in order, as committed. A refused
//! message must change nothing.
//!
//! `ACTRAFT_FUZZ_MESSAGES=<n>` sets how many messages to feed (default 200 000, quick
//! enough for CI); `ACTRAFT_FUZZ_SEED=<n>` picks the seed.
#![allow(clippy::print_stdout)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actraft::core::{
    AppendReply, AppendRequest, AppendResult, Config, ConflictHint, Entry, Envelope, InitialState,
    InstallSnapshotReply, InstallSnapshotRequest, Message, Payload, RaftCore, ReadIndexReply,
    ReadIndexRequest, ReadMode, Role, SnapshotResult, StepError, TimeoutNow, VoteReply,
    VoteRequest,
};
use actraft::driver::{Counters, Driver, InstallProgress, Limits, Run};
use actraft::snapshot::SnapshotMeta;
use actraft::{LogId, LogIndex, StateMachine, Term};
use bytes::Bytes;

/// xorshift64*: the test's own seeded randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// Records what it applies.
#[derive(Default)]
struct Recorder {
    applied: Vec<(LogIndex, u64)>,
}

fn print(entry: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    entry.hash(&mut h);
    h.finish()
}

impl StateMachine for Recorder {
    fn apply(&mut self, _index: LogIndex, _command: &Bytes) -> Bytes {
        Bytes::new()
    }

    fn apply_entry(&mut self, entry: &Entry) -> Bytes {
        self.applied.push((entry.index, print(entry)));
        Bytes::new()
    }
}

/// The first index the core still holds in memory (`last + 1` when it holds none): the
/// window's start, found by bisection (entries are held from there to the end).
fn held_from(core: &RaftCore, last: LogIndex) -> LogIndex {
    let (mut lo, mut hi) = (1, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if core.log_entries(mid, mid).is_empty() {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

struct Node {
    driver: Driver<Recorder, ()>,
    now: Duration,
    /// Fingerprints of committed entries, by index - 1 (`None`: it had left the
    /// in-memory window before it was seen committed).
    committed: Vec<Option<u64>>,
    applied_upto: LogIndex,
    /// (term, voted_for) last seen.
    vote: (Term, Option<u64>),
    /// While leading: (term, last id, fingerprint of the last entry).
    leading: Option<(Term, LogId, u64)>,
}

impl Node {
    fn new() -> Self {
        let config = Config {
            max_apply_batch: 7,
            ..Config::default()
        };
        let core = RaftCore::new(1, vec![1, 2, 3], config, InitialState::default(), 7).unwrap();
        let limits = Limits {
            max_applies_per_run: 16,
            ..Limits::default()
        };
        Self {
            driver: Driver::new(
                core,
                Recorder::default(),
                limits,
                Arc::new(Counters::default()),
            ),
            now: Duration::ZERO,
            committed: Vec::new(),
            applied_upto: 0,
            vote: (0, None),
            leading: None,
        }
    }

    /// Runs the driver to quiescence with a storage that is durable at once; returns the
    /// messages it sends.
    fn settle(&mut self) -> Vec<Envelope> {
        let mut sent = Vec::new();
        loop {
            let run = self.driver.run();
            assert_ne!(run, Run::Fatal);
            let out = self.driver.output();
            let writes = std::mem::take(&mut out.writes);
            let chunks = std::mem::take(&mut out.install_chunks);
            out.snapshot_sends.clear();
            sent.append(&mut out.messages);
            out.replies.clear();
            out.events.clear();
            let applied = self.driver.status().applied_index;
            for (_, answer) in self.driver.output().read_replies.drain(..) {
                if let Ok(index) = answer {
                    assert!(index <= applied, "a read answered before its index applied");
                }
            }
            for (id, _) in writes {
                self.driver.write_done(id, Ok(()));
            }
            // Chunks are "stored"; the last one fails to commit (this node's state
            // machine cannot restore), so a transfer never replaces the log here.
            for chunk in chunks {
                let progress = if chunk.done {
                    InstallProgress::Failed(actraft::SnapshotError::Unsupported)
                } else {
                    InstallProgress::Stored {
                        end: chunk.offset + chunk.data.len() as u64,
                    }
                };
                self.driver.install_progress(&chunk.meta, progress);
            }
            if run == Run::Done && !self.driver.has_work() {
                return sent;
            }
        }
    }

    fn entry_print(&self, index: LogIndex) -> Option<u64> {
        let core = self.driver.core();
        core.log_entries(index, index).first().map(print)
    }

    /// Checks every property after one input.
    fn check(&mut self, step: u64) {
        let core = self.driver.core();
        let s = core.status();
        let fail = |what: &str| panic!("step {step}: {what} (status {s:?})");
        // Election Safety, locally: terms grow, one vote per term.
        let (term, voted) = self.vote;
        if s.term < term {
            fail("term went backwards");
        }
        if s.term == term && voted.is_some() && s.voted_for != voted {
            fail("voted twice in one term");
        }
        self.vote = (s.term, s.voted_for);
        // Commit index: monotonic, within the log.
        let commit = s.commit_index;
        if commit < self.committed.len() as u64 {
            fail("commit index went backwards");
        }
        if commit > s.last_log.index {
            fail("commit index beyond the log");
        }
        // Committed entries never change: record new ones, re-check the newest old one.
        // The core keeps a window of the log in memory: an applied entry that left it
        // can no longer be compared (`None` here), and the window only moves forward.
        let held_from = held_from(core, s.last_log.index);
        if held_from > s.applied_index + 1 {
            fail("an entry left the in-memory window before it was applied");
        }
        if let Some(&last) = self.committed.last() {
            let index = self.committed.len() as u64;
            if index >= held_from && last.is_some() && self.entry_print(index) != last {
                fail("a committed entry changed");
            }
        }
        for index in self.committed.len() as u64 + 1..=commit {
            // An entry applied and dropped from the window in the same input is known
            // by what was applied.
            let p = self.entry_print(index).or_else(|| {
                let applied = &self.driver.state_machine().applied;
                applied.iter().find(|a| a.0 == index).map(|a| a.1)
            });
            if p.is_none() && index >= held_from {
                fail("a committed entry is missing from the log");
            }
            self.committed.push(p);
        }
        if step.is_multiple_of(4096) {
            let from = held_from.max(1) as usize - 1;
            for (i, &p) in self.committed.iter().enumerate().skip(from) {
                if p.is_some() && self.entry_print(i as u64 + 1) != p {
                    fail("a committed entry changed");
                }
            }
            let entries = core.log_entries(held_from, s.last_log.index);
            if entries.windows(2).any(|w| w[1].term < w[0].term) {
                fail("log terms decrease");
            }
        }
        // Leader Append-Only.
        if let Some((term, last, p)) = self.leading {
            let still_leading = s.role == Role::Leader && s.term == term;
            if still_leading
                && (s.last_log.index < last.index || self.entry_print(last.index) != Some(p))
            {
                fail("a leader removed entries from its log");
            }
        }
        self.leading = (s.role == Role::Leader).then(|| {
            let p = self.entry_print(s.last_log.index).unwrap_or(0);
            (s.term, s.last_log, p)
        });
        // Applied once, in order, as committed.
        for (index, p) in self.driver.state_machine_mut().applied.drain(..) {
            if index != self.applied_upto + 1 {
                panic!("step {step}: applied {index} after {}", self.applied_upto);
            }
            if self.committed.get(index as usize - 1) != Some(&Some(p)) {
                panic!("step {step}: applied entry {index} is not the committed one");
            }
            self.applied_upto = index;
        }
    }
}

/// A random message from peer 2 or 3 near the node's state, sometimes made malformed.
fn message(rng: &mut Rng, node: &Node, seen: &[Envelope]) -> Envelope {
    let from = 2 + rng.below(2);
    // Replay (and mutate) something the node sent, addressed back to it.
    if !seen.is_empty() && rng.chance(150) {
        let mut env = seen[rng.below(seen.len() as u64) as usize].clone();
        env.to = 1;
        env.from = from;
        mutate(rng, &mut env.message);
        return env;
    }
    let s = node.driver.core().status();
    // Mostly the node's own term, sometimes a stale or a newer one.
    let term = match rng.below(100) {
        0..=9 => s.term.saturating_sub(1),
        10..=13 => s.term + 1,
        _ => s.term,
    };
    let last = s.last_log.index;
    let index = (last + rng.below(8)).saturating_sub(4);
    let log_term = |i: LogIndex| node.driver.core().log_term(i).unwrap_or(term);
    let message = match rng.below(11) {
        0 | 1 => {
            let prev_index = index;
            let prev_term = if rng.chance(800) {
                log_term(prev_index).min(term)
            } else {
                rng.below(term + 1)
            };
            let prev_term = if prev_index == 0 { 0 } else { prev_term };
            let n = rng.below(5);
            let mut t = prev_term;
            let entries: Vec<Entry> = (0..n)
                .map(|k| {
                    if rng.chance(300) {
                        t = (t + 1).min(term);
                    }
                    Entry {
                        term: t,
                        index: prev_index + 1 + k,
                        payload: if rng.chance(100) {
                            Payload::Noop
                        } else if rng.chance(40) {
                            Payload::Membership(Box::new(config(rng)))
                        } else {
                            Payload::Command(Bytes::from(rng.next().to_le_bytes().to_vec()))
                        },
                    }
                })
                .collect();
            let leader_commit = rng.below(prev_index + n + 1);
            Message::AppendEntries(AppendRequest {
                term,
                prev_log: LogId::new(prev_term, prev_index),
                entries,
                leader_commit,
                read_round: rng.below(4),
            })
        }
        2 => Message::AppendEntriesReply(AppendReply {
            term,
            result: if rng.chance(700) {
                AppendResult::Success {
                    match_index: rng.below(last + 2),
                }
            } else {
                AppendResult::Conflict {
                    rejected: rng.below(last + 2),
                    hint: ConflictHint {
                        term: rng.chance(500).then(|| rng.below(term + 1)),
                        index: rng.below(last + 2),
                    },
                }
            },
            read_round: rng.below(4),
        }),
        6 => Message::ReadIndex(ReadIndexRequest {
            term,
            ctx: rng.next(),
        }),
        7 => Message::ReadIndexReply(ReadIndexReply {
            term,
            ctx: rng.next(),
            index: rng.chance(700).then(|| rng.below(last + 4)),
        }),
        3 => {
            let req = VoteRequest {
                term: term + rng.below(2),
                last_log: LogId::new(rng.below(term + 2), rng.below(last + 4)),
                leader_transfer: rng.chance(200),
            };
            if rng.chance(500) {
                Message::PreVote(req)
            } else {
                Message::RequestVote(req)
            }
        }
        9 => Message::InstallSnapshot(Box::new(InstallSnapshotRequest {
            term,
            meta: SnapshotMeta {
                last_included: LogId::new(
                    rng.below(term + 1).max(1),
                    (last + rng.below(8)).saturating_sub(3).max(1),
                ),
                membership: if rng.chance(100) {
                    config(rng)
                } else {
                    actraft::core::ClusterConfig::bootstrap([1, 2, 3])
                },
            },
            offset: [0, 0, 16, rng.below(64)][rng.below(4) as usize],
            data: Bytes::from(vec![7u8; 1 + rng.below(16) as usize]),
            done: rng.chance(300),
        })),
        10 => Message::InstallSnapshotReply(InstallSnapshotReply {
            term,
            last_included: LogId::new(log_term(index).min(term), index),
            result: match rng.below(3) {
                0 => SnapshotResult::Stored {
                    offset: rng.below(100),
                },
                1 => SnapshotResult::Resend {
                    offset: rng.below(100),
                },
                _ => SnapshotResult::Installed,
            },
        }),
        8 => Message::TimeoutNow(TimeoutNow {
            term,
            last_log: LogId::new(log_term(last).min(term), last.saturating_sub(rng.below(2))),
        }),
        _ => {
            let rep = VoteReply {
                term: s.term + rng.below(2),
                granted: rng.chance(700),
            };
            if rng.chance(500) {
                Message::PreVoteReply(rep)
            } else {
                Message::RequestVoteReply(rep)
            }
        }
    };
    let mut env = Envelope {
        from,
        to: 1,
        message,
    };
    if rng.chance(100) {
        mutate(rng, &mut env.message);
    }
    if rng.chance(5) {
        env.from = [0, 1, 4, u64::MAX][rng.below(4) as usize];
    }
    env
}

/// Breaks a message in one of the ways a buggy or hostile peer could.
fn mutate(rng: &mut Rng, message: &mut Message) {
    match message {
        Message::AppendEntries(req) => match rng.below(6) {
            0 if !req.entries.is_empty() => {
                let k = rng.below(req.entries.len() as u64) as usize;
                req.entries[k].index = req.entries[k].index.wrapping_add(1 + rng.below(3));
            }
            1 if !req.entries.is_empty() => {
                let k = rng.below(req.entries.len() as u64) as usize;
                req.entries[k].term = rng.below(req.term + 3);
            }
            2 => req.leader_commit = req.leader_commit.wrapping_add(rng.below(100)),
            3 => req.prev_log.term = rng.below(req.term + 3),
            4 => req.term = rng.below(req.term + 3),
            _ => req.prev_log.index = rng.below(req.prev_log.index + 5),
        },
        Message::AppendEntriesReply(rep) => match &mut rep.result {
            AppendResult::Success { match_index } => *match_index = rng.next() % 1000,
            AppendResult::Conflict { rejected, hint } => {
                *rejected = rng.next() % 1000;
                hint.index = rng.next() % 1000;
            }
        },
        Message::RequestVote(req) | Message::PreVote(req) => {
            req.last_log.term = rng.below(req.term + 5);
        }
        Message::RequestVoteReply(rep) | Message::PreVoteReply(rep) => rep.granted = !rep.granted,
        Message::TimeoutNow(req) => req.term = rng.below(req.term + 3),
        Message::ReadIndex(req) => req.ctx = rng.next(),
        Message::ReadIndexReply(rep) => rep.index = Some(rng.next() % 1000),
        Message::InstallSnapshot(req) => match rng.below(4) {
            0 => req.meta.last_included.term = rng.below(req.term + 3),
            1 => req.offset = u64::MAX - rng.below(4),
            2 => {
                req.data = Bytes::new();
                req.done = false;
            }
            _ => req.meta.last_included.index = rng.below(3),
        },
        Message::InstallSnapshotReply(rep) => rep.last_included.index = rng.next() % 1000,
    }
}

#[test]
fn hostile_messages_never_break_a_node() {
    let messages = std::env::var("ACTRAFT_FUZZ_MESSAGES")
        .ok()
        .map_or(200_000, |v| v.parse().expect("ACTRAFT_FUZZ_MESSAGES"));
    let seed = std::env::var("ACTRAFT_FUZZ_SEED")
        .ok()
        .map_or(0x00F0_22ED, |v| v.parse().expect("ACTRAFT_FUZZ_SEED"));
    let started = Instant::now();
    let mut rng = Rng(seed | 1);
    let mut node = Node::new();
    let mut seen: Vec<Envelope> = Vec::new();
    let (mut refused, mut leaderships, mut fed) = (0u64, 0u64, 0u64);
    let mut step = 0u64;
    while fed < messages {
        step += 1;
        match rng.below(100) {
            0..=2 => {
                node.now += Duration::from_millis(rng.below(200));
                let now = node.now;
                node.driver.tick(now);
            }
            3..=5 => node
                .driver
                .propose(Bytes::from(step.to_le_bytes().to_vec()), ()),
            6 => {
                let mode =
                    [ReadMode::Index, ReadMode::Lease, ReadMode::Follower][rng.below(3) as usize];
                let now = node.now;
                node.driver.read(now, mode, ());
            }
            _ => {
                fed += 1;
                let env = message(&mut rng, &node, &seen);
                let before = (node.driver.status(), node.driver.core().log_term(1));
                let now = node.now;
                match node.driver.receive(now, env) {
                    Ok(()) => {}
                    Err(StepError::Malformed { .. } | StepError::UnknownPeer { .. }) => {
                        refused += 1;
                        let after = (node.driver.status(), node.driver.core().log_term(1));
                        assert_eq!(
                            before, after,
                            "step {step}: a refused message changed state"
                        );
                        assert!(
                            !node.driver.has_work(),
                            "step {step}: refused message left work"
                        );
                    }
                    Err(e) => panic!("step {step}: unexpected refusal {e}"),
                }
            }
        }
        let sent = node.settle();
        if !sent.is_empty() {
            if seen.len() >= 64 {
                seen.drain(..32);
            }
            seen.extend(sent);
        }
        let was_leader = node.leading.is_some();
        node.check(step);
        if !was_leader && node.leading.is_some() {
            leaderships += 1;
        }
    }
    let s = node.driver.status();
    println!(
        "fuzz: messages={fed} refused={refused} leaderships={leaderships} term={} commit={} applied={} panics=0 secs={:.1}",
        s.term,
        s.commit_index,
        node.applied_upto,
        started.elapsed().as_secs_f64()
    );
    assert!(refused > 0, "the generator must produce malformed messages");
    assert!(
        leaderships > 0 && s.commit_index > 0,
        "the run must reach leadership and commits"
    );
}

/// A random configuration over nodes 1..=5: sometimes without this node, sometimes
/// joint, now and then without voters (which the node must refuse as malformed).
fn config(rng: &mut Rng) -> actraft::core::ClusterConfig {
    use actraft::core::{ClusterConfig, Membership};
    let half = |rng: &mut Rng| {
        let voters: Vec<u64> = (1..=5).filter(|_| rng.chance(500)).collect();
        let learners: Vec<u64> = (1..=5).filter(|_| rng.chance(200)).collect();
        Membership::new(voters, learners)
    };
    if rng.chance(300) {
        ClusterConfig::Joint {
            old: half(rng),
            new: half(rng),
        }
    } else {
        ClusterConfig::Stable(half(rng))
    }
}
