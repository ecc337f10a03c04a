//! The log model shared by the crash and power-loss tests: a seeded writer's
//! operations, the state they leave, and reading a store back into that state.
#![allow(dead_code)]

use actraft::core::{Entry, HardState, LogId, LogIndex, Payload, Term};
use actraft::{LogStorage, LogWrite};
use actraft_storage_rocks::RocksStorage;
use bytes::Bytes;

/// splitmix64: small, seedable, the same in the writer and the checker.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One operation of the writer.
#[derive(Debug, Clone)]
pub enum Op {
    Write(LogWrite),
    Compact(LogIndex),
}

/// What the store should hold: hard state, prefix, and the term of every entry after the
/// prefix (payloads are a function of index and term).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub hard_state: HardState,
    pub prefix: LogId,
    pub terms: Vec<Term>,
}

pub fn payload(index: LogIndex, term: Term) -> Payload {
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

pub fn entries(from: LogIndex, to: LogIndex, term: Term) -> Vec<Entry> {
    (from..=to)
        .map(|index| Entry {
            term,
            index,
            payload: payload(index, term),
        })
        .collect()
}

impl Model {
    pub fn last(&self) -> LogId {
        match self.terms.last() {
            Some(&term) => LogId::new(term, self.prefix.index + self.terms.len() as u64),
            None => self.prefix,
        }
    }

    pub fn apply(&mut self, op: &Op) {
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
    pub fn next_op(&self, seed: u64, k: u64) -> Op {
        let mut rng = Rng(seed ^ k.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let (hs, last, prefix) = (self.hard_state, self.last(), self.prefix.index);
        let write = |truncate_from, entries, hard_state| {
            Op::Write(LogWrite {
                truncate_from,
                entries,
                hard_state,
                reset_to: None,
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
pub async fn read_model(s: &RocksStorage) -> Model {
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
