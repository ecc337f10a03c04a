//! Checks the five safety properties of the Raft paper's Figure 3 against a history of
//! observations, incrementally, so it can run after every simulated step.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use thiserror::Error;

use crate::core::{Entry, LogIndex, NodeId, Term};

/// A broken Figure 3 property.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Violation {
    /// Two leaders were elected in one term.
    #[error("Election Safety: nodes {first} and {second} both led term {term}")]
    ElectionSafety {
        /// The term.
        term: Term,
        /// The first leader seen.
        first: NodeId,
        /// The second leader seen.
        second: NodeId,
    },
    /// A leader removed entries from its own log.
    #[error("Leader Append-Only: leader {node} of term {term} truncated its log at {index}")]
    LeaderAppendOnly {
        /// The leader.
        node: NodeId,
        /// Its term.
        term: Term,
        /// Where it truncated.
        index: LogIndex,
    },
    /// Two logs hold the same (index, term) but differ before it.
    #[error("Log Matching: node {node} holds entry {index}@{term} with a prefix that differs from another log's")]
    LogMatching {
        /// The node whose log disagrees with an earlier log.
        node: NodeId,
        /// The index.
        index: LogIndex,
        /// The term.
        term: Term,
    },
    /// A leader was elected without an entry committed in an earlier term.
    #[error("Leader Completeness: leader {leader} of term {term} lacks committed entry {index}")]
    LeaderCompleteness {
        /// The leader.
        leader: NodeId,
        /// Its term.
        term: Term,
        /// The committed index it lacks (or holds with another term).
        index: LogIndex,
    },
    /// Two nodes applied different entries at one index.
    #[error("State Machine Safety: node {node} applied a different entry at index {index}")]
    StateMachineSafety {
        /// The node that applied the second, different entry.
        node: NodeId,
        /// The index.
        index: LogIndex,
    },
}

/// A fingerprint of one entry: its term and a hash of its index and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryPrint {
    /// The entry's term.
    pub term: Term,
    /// Hash of index, term and payload.
    pub hash: u64,
}

impl EntryPrint {
    /// Fingerprints an entry.
    pub fn of(entry: &Entry) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        entry.hash(&mut h);
        Self {
            term: entry.term,
            hash: h.finish(),
        }
    }
}

#[derive(Debug, Default)]
struct Mirror {
    /// prefix_hash[i] covers entries 1..=i+1.
    prefix_hash: Vec<u64>,
    terms: Vec<Term>,
}

/// The Figure 3 checker. Feed it what happens, in order; each call returns the first
/// property it sees broken.
#[derive(Debug, Default)]
pub struct Checker {
    leaders: HashMap<Term, NodeId>,
    /// Terms of each leader's log when it was elected, by term.
    leader_logs: HashMap<Term, (NodeId, Vec<Term>)>,
    /// Nodes currently leading, with their term.
    leading: HashMap<NodeId, Term>,
    logs: HashMap<NodeId, Mirror>,
    /// The prefix hash of the first log seen holding each (index, term).
    prefixes: HashMap<(LogIndex, Term), u64>,
    /// Entries known committed, by index - 1, with the term they were committed in.
    committed: Vec<(EntryPrint, Term)>,
    /// Entries applied by any node, by index - 1.
    applied: Vec<EntryPrint>,
    elections: u64,
}

fn chain(prev: u64, print: EntryPrint) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (prev, print.term, print.hash).hash(&mut h);
    h.finish()
}

impl Checker {
    /// A checker with an empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leader elections were observed.
    pub fn elections(&self) -> u64 {
        self.elections
    }

    /// The fingerprint of the entry known committed at `index`, if known yet.
    pub fn committed_at(&self, index: LogIndex) -> Option<EntryPrint> {
        let i = usize::try_from(index).ok()?.checked_sub(1)?;
        self.committed.get(i).map(|(print, _)| *print)
    }

    /// How many entries are known committed.
    pub fn committed_len(&self) -> u64 {
        self.committed.len() as u64
    }

    /// `node` became leader of `term`; `log_terms[i]` is the term of its entry `i + 1`.
    /// Checks Election Safety and Leader Completeness.
    pub fn leader_elected(
        &mut self,
        node: NodeId,
        term: Term,
        log_terms: &[Term],
    ) -> Result<(), Violation> {
        self.elections += 1;
        if let Some(&first) = self.leaders.get(&term) {
            if first != node {
                return Err(Violation::ElectionSafety {
                    term,
                    first,
                    second: node,
                });
            }
        }
        self.leaders.insert(term, node);
        self.leading.insert(node, term);
        for (i, (c, commit_term)) in self.committed.iter().enumerate() {
            if *commit_term < term && log_terms.get(i) != Some(&c.term) {
                return Err(Violation::LeaderCompleteness {
                    leader: node,
                    term,
                    index: i as u64 + 1,
                });
            }
        }
        self.leader_logs.insert(term, (node, log_terms.to_vec()));
        Ok(())
    }

    /// `node` is no longer a leader.
    pub fn stepped_down(&mut self, node: NodeId) {
        self.leading.remove(&node);
    }

    /// `node` crashed: it leads nothing any more. Its durable log stays as written.
    pub fn crashed(&mut self, node: NodeId) {
        self.leading.remove(&node);
    }

    /// `node` restarted with `entries` as its whole log.
    pub fn restarted(&mut self, node: NodeId, entries: &[Entry]) -> Result<(), Violation> {
        self.logs.remove(&node);
        self.log_written(node, None, entries)
    }

    /// `node` restarted with its log compacted up to `prefix` (committed entries) and
    /// `entries` after it.
    pub fn restarted_from(
        &mut self,
        node: NodeId,
        prefix: LogIndex,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        self.log_reset(node, prefix)?;
        self.log_written(node, None, entries)
    }

    /// `node` removed its entries from `truncate_from` on and appended `entries`.
    /// Checks Leader Append-Only and Log Matching.
    pub fn log_written(
        &mut self,
        node: NodeId,
        truncate_from: Option<LogIndex>,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        let mirror = self.logs.entry(node).or_default();
        if let Some(t) = truncate_from {
            if t <= mirror.terms.len() as u64 {
                if let Some(&term) = self.leading.get(&node) {
                    return Err(Violation::LeaderAppendOnly {
                        node,
                        term,
                        index: t,
                    });
                }
                let keep = t.saturating_sub(1) as usize;
                mirror.terms.truncate(keep);
                mirror.prefix_hash.truncate(keep);
            }
        }
        for entry in entries {
            let len = mirror.terms.len() as u64;
            if entry.index <= len {
                // A rewrite of an index the mirror holds: the driver truncates first.
                let keep = entry.index as usize - 1;
                mirror.terms.truncate(keep);
                mirror.prefix_hash.truncate(keep);
            }
            let prev = mirror.prefix_hash.last().copied().unwrap_or(0);
            let print = EntryPrint::of(entry);
            let h = chain(prev, print);
            mirror.terms.push(entry.term);
            mirror.prefix_hash.push(h);
            let seen = *self.prefixes.entry((entry.index, entry.term)).or_insert(h);
            if seen != h {
                return Err(Violation::LogMatching {
                    node,
                    index: entry.index,
                    term: entry.term,
                });
            }
        }
        Ok(())
    }

    /// The leader of `commit_term` counted a majority for `entry` (or for a later one).
    /// Call it in index order. Checks Leader Completeness for leaders of later terms
    /// already elected: they must hold the entry too.
    pub fn committed(&mut self, entry: &Entry, commit_term: Term) -> Result<(), Violation> {
        let print = EntryPrint::of(entry);
        let i = entry.index as usize - 1;
        if let Some(&(seen, _)) = self.committed.get(i) {
            if seen != print {
                return Err(Violation::StateMachineSafety {
                    node: self.leaders.get(&commit_term).copied().unwrap_or_default(),
                    index: entry.index,
                });
            }
            return Ok(());
        }
        if i != self.committed.len() {
            return Ok(()); // out of order: the caller reports earlier indexes first
        }
        self.committed.push((print, commit_term));
        for (&term, (leader, terms)) in &self.leader_logs {
            if term > commit_term && terms.get(i) != Some(&entry.term) {
                return Err(Violation::LeaderCompleteness {
                    leader: *leader,
                    term,
                    index: entry.index,
                });
            }
        }
        Ok(())
    }

    /// The fold of the committed prefix `1..=index` (the chain of its entries' prints,
    /// from 0), or `None` when fewer entries are known committed.
    pub fn committed_fold(&self, index: LogIndex) -> Option<u64> {
        let n = usize::try_from(index).ok()?;
        let prefix = self.committed.get(..n)?;
        Some(prefix.iter().fold(0, |h, (print, _)| chain(h, *print)))
    }

    /// The term of the committed entry at `index` (0 for index 0), if known.
    pub fn committed_term(&self, index: LogIndex) -> Option<Term> {
        if index == 0 {
            return Some(0);
        }
        self.committed_at(index).map(|p| p.term)
    }

    /// `node`'s state machine was restored from a snapshot through `index` whose state
    /// has fold `fold`. State Machine Safety through snapshots: a restored state must
    /// equal the fold of the committed prefix it claims to cover.
    pub fn restored(&mut self, node: NodeId, index: LogIndex, fold: u64) -> Result<(), Violation> {
        match self.committed_fold(index) {
            Some(expected) if expected == fold => Ok(()),
            _ => Err(Violation::StateMachineSafety { node, index }),
        }
    }

    /// `node`'s log was replaced by a snapshot through `index`: its mirror becomes the
    /// committed prefix up to there. A snapshot beyond what is known committed breaks
    /// State Machine Safety.
    pub fn log_reset(&mut self, node: NodeId, index: LogIndex) -> Result<(), Violation> {
        let n = usize::try_from(index).unwrap_or(usize::MAX);
        let Some(prefix) = self.committed.get(..n) else {
            return Err(Violation::StateMachineSafety { node, index });
        };
        let mut mirror = Mirror::default();
        let mut h = 0;
        for (print, _) in prefix {
            h = chain(h, *print);
            mirror.terms.push(print.term);
            mirror.prefix_hash.push(h);
        }
        self.logs.insert(node, mirror);
        Ok(())
    }

    /// Folds one more applied entry into a state machine's fold, as
    /// [`committed_fold`](Self::committed_fold) does.
    pub fn fold_entry(fold: u64, entry: &Entry) -> u64 {
        chain(fold, EntryPrint::of(entry))
    }

    /// `node` applied `entry` to its state machine. Checks State Machine Safety.
    pub fn applied(&mut self, node: NodeId, entry: &Entry) -> Result<(), Violation> {
        let print = EntryPrint::of(entry);
        let i = entry.index as usize - 1;
        match self.applied.get(i) {
            Some(seen) if *seen != print => {
                return Err(Violation::StateMachineSafety {
                    node,
                    index: entry.index,
                })
            }
            Some(_) => {}
            None if i == self.applied.len() => self.applied.push(print),
            None => {}
        }
        match self.committed.get(i) {
            Some((seen, _)) if *seen != print => Err(Violation::StateMachineSafety {
                node,
                index: entry.index,
            }),
            _ => Ok(()),
        }
    }
}
