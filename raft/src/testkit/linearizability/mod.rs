//! A linearizability checker for key-value services: record what concurrent clients
//! did, then check that one order of the operations, consistent with real time, explains
//! every answer.
//!
//! # Model
//!
//! Every key is an independent register that starts empty (`None`). A write sets it; a
//! read returns what it holds. Because operations on different keys never constrain each
//! other, each key's history is checked on its own (linearizability is compositional).
//!
//! # Recording
//!
//! A [`History`] is a cheap, cloneable, thread-safe recorder. A client calls
//! [`History::write`] or [`History::read`] right *before* it sends a request (the
//! invocation) and completes the returned handle right *after* the answer arrives:
//!
//! - a write is [`ok`](PendingWrite::ok) (acknowledged), [`failed`](PendingWrite::failed)
//!   (definitely not applied, e.g. refused by a follower) or
//!   [`unknown`](PendingWrite::unknown) (a timeout, a crash, a lost leadership: it may
//!   have taken effect, possibly long after the client gave up). A handle dropped
//!   without an answer counts as unknown, so a cancelled request is never forgotten;
//! - a read [`returned`](PendingRead::returned) a value, or
//!   [`failed`](PendingRead::failed) (no answer: it constrains nothing).
//!
//! Times are logical: one atomic counter orders every invocation and response, so an
//! operation that returned before another was invoked is ordered before it exactly as in
//! real time, with no clock involved.
//!
//! # Checking
//!
//! [`History::check`] (or [`check_operations`] for a history you built yourself) runs a
//! Wing–Gong search, with the memoization of Lowe: operations are linearized one at a
//! time, only when every operation that returned before their invocation already is, and
//! a (set of linearized operations, register value) pair seen once is never explored
//! again. An acknowledged write must take effect between its invocation and its
//! response; a write of unknown outcome may take effect at any point after its
//! invocation, or never.
//!
//! # Example
//!
//! ```
//! use actraft::testkit::linearizability::History;
//!
//! let history: History<&str, u32> = History::new();
//! // Client A writes 1 and is acknowledged.
//! let w = history.write("x", 1);
//! w.ok();
//! // Client B writes 2 while client C reads: the two overlap.
//! let w2 = history.write("x", 2);
//! let r = history.read("x");
//! r.returned(Some(2));
//! w2.ok();
//! // Later, a read still sees 2.
//! history.read("x").returned(Some(2));
//! let report = history.check().expect("linearizable");
//! assert_eq!(report.operations, 4);
//!
//! // A stale read after the acknowledged write of 2 is caught.
//! history.read("x").returned(Some(1));
//! assert!(history.check().is_err());
//! ```

mod search;

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;

/// What an operation did, with what it saw or wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<V> {
    /// A write of a value.
    Write(V),
    /// A read that returned this value (`None`: the key held nothing).
    Read(Option<V>),
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It completed, at this logical time.
    Ok(u64),
    /// It definitely did not take effect (a refused write, a read with no answer). Left
    /// out of the check.
    Failed,
    /// It may or may not have taken effect, at any point after its invocation (a timed-out
    /// or interrupted write). A read of unknown outcome constrains nothing.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<K, V> {
    /// The client that issued it (for reports only).
    pub client: u64,
    /// The key.
    pub key: K,
    /// What it did.
    pub op: Op<V>,
    /// The logical time of its invocation.
    pub invoked: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// What a successful check covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// Operations checked (acknowledged ones plus writes of unknown outcome).
    pub operations: usize,
    /// Of those, writes of unknown outcome.
    pub unknown: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Search states explored, over every key.
    pub states: u64,
}

/// Why a history failed the check.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LinearizabilityError {
    /// No order of one key's operations, consistent with real time, explains every
    /// answer.
    #[error("not linearizable on key {key}: {detail}")]
    NotLinearizable {
        /// The key (its `Debug` form).
        key: String,
        /// The longest order found that explains a prefix, and the operations left
        /// over (their `Debug` forms), to start an investigation from.
        detail: String,
    },
    /// The search explored more states than allowed without an answer.
    #[error("inconclusive on key {key}: more than {limit} search states")]
    Inconclusive {
        /// The key (its `Debug` form).
        key: String,
        /// The limit that was hit.
        limit: u64,
    },
    /// An operation's response time is not after its invocation.
    #[error("operation {index} returned at {returned}, not after its invocation at {invoked}")]
    BadTimes {
        /// Its position in the history.
        index: usize,
        /// Its invocation time.
        invoked: u64,
        /// Its response time.
        returned: u64,
    },
}

/// The default bound on search states per key (see [`check_operations_with_limit`]); each
/// state remembered costs about one bit per operation of the key, plus a few words.
pub const DEFAULT_STATE_LIMIT: u64 = 2_000_000;

struct Shared<K, V> {
    clock: AtomicU64,
    clients: AtomicU64,
    operations: Mutex<Vec<Operation<K, V>>>,
}

/// A thread-safe recorder of a history: clone it into every client. See the
/// [module documentation](self) for the protocol.
pub struct History<K, V> {
    shared: Arc<Shared<K, V>>,
    client: u64,
}

impl<K, V> Clone for History<K, V> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            client: self.client,
        }
    }
}

impl<K, V> fmt::Debug for History<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("client", &self.client)
            .field("clock", &self.shared.clock.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K, V> Default for History<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> History<K, V> {
    /// An empty history; this handle records as client 0.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                clock: AtomicU64::new(1),
                clients: AtomicU64::new(1),
                operations: Mutex::new(Vec::new()),
            }),
            client: 0,
        }
    }

    /// A handle on the same history that records as a new client (the client number
    /// only labels operations in reports).
    pub fn client(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            client: self.shared.clients.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn tick(&self) -> u64 {
        self.shared.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn push(&self, operation: Operation<K, V>) {
        self.shared
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(operation);
    }

    /// Records the invocation of a write of `value` to `key`; complete the handle when
    /// the answer arrives.
    pub fn write(&self, key: K, value: V) -> PendingWrite<K, V> {
        PendingWrite {
            inner: Some(Invocation {
                history: self.clone(),
                key,
                invoked: self.tick(),
            }),
            value: Some(value),
        }
    }

    /// Records the invocation of a read of `key`; complete the handle when the answer
    /// arrives.
    pub fn read(&self, key: K) -> PendingRead<K, V> {
        PendingRead {
            inner: Some(Invocation {
                history: self.clone(),
                key,
                invoked: self.tick(),
            }),
        }
    }

    /// Every completed operation so far (pending ones are left out), in completion order.
    pub fn operations(&self) -> Vec<Operation<K, V>>
    where
        K: Clone,
        V: Clone,
    {
        self.shared
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many operations completed so far, failed ones included.
    pub fn len(&self) -> usize {
        self.shared
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// True when no operation completed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the completed operations (see [`check_operations`]).
    pub fn check(&self) -> Result<CheckReport, LinearizabilityError>
    where
        K: Clone + Eq + Hash + fmt::Debug,
        V: Clone + Eq + Hash + fmt::Debug,
    {
        check_operations(&self.operations())
    }
}

struct Invocation<K, V> {
    history: History<K, V>,
    key: K,
    invoked: u64,
}

impl<K, V> Invocation<K, V> {
    fn finish(self, op: Op<V>, outcome: Outcome) {
        self.history.push(Operation {
            client: self.history.client,
            key: self.key,
            op,
            invoked: self.invoked,
            outcome,
        });
    }
}

/// A write in flight. Dropped without an answer, it is recorded as
/// [`Outcome::Unknown`].
#[must_use = "complete the write with ok, failed or unknown"]
pub struct PendingWrite<K, V> {
    inner: Option<Invocation<K, V>>,
    value: Option<V>,
}

impl<K, V> PendingWrite<K, V> {
    fn finish(mut self, outcome: impl FnOnce(&History<K, V>) -> Outcome) {
        if let (Some(inv), Some(value)) = (self.inner.take(), self.value.take()) {
            let outcome = outcome(&inv.history);
            inv.finish(Op::Write(value), outcome);
        }
    }

    /// The write was acknowledged.
    pub fn ok(self) {
        self.finish(|h| Outcome::Ok(h.tick()));
    }

    /// The write definitely did not take effect.
    pub fn failed(self) {
        self.finish(|_| Outcome::Failed);
    }

    /// The write may or may not take effect, at any time after its invocation.
    pub fn unknown(self) {
        self.finish(|_| Outcome::Unknown);
    }
}

impl<K, V> Drop for PendingWrite<K, V> {
    fn drop(&mut self) {
        if let (Some(inv), Some(value)) = (self.inner.take(), self.value.take()) {
            inv.finish(Op::Write(value), Outcome::Unknown);
        }
    }
}

impl<K, V> fmt::Debug for PendingWrite<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingWrite")
            .field("invoked", &self.inner.as_ref().map(|i| i.invoked))
            .finish_non_exhaustive()
    }
}

/// A read in flight. Dropped without an answer, it is recorded as failed (a read with no
/// answer constrains nothing).
#[must_use = "complete the read with returned or failed"]
pub struct PendingRead<K, V> {
    inner: Option<Invocation<K, V>>,
}

impl<K, V> PendingRead<K, V> {
    /// The read returned `value` (`None`: the key held nothing).
    pub fn returned(mut self, value: Option<V>) {
        if let Some(inv) = self.inner.take() {
            let at = inv.history.tick();
            inv.finish(Op::Read(value), Outcome::Ok(at));
        }
    }

    /// The read got no answer.
    pub fn failed(mut self) {
        if let Some(inv) = self.inner.take() {
            inv.finish(Op::Read(None), Outcome::Failed);
        }
    }
}

impl<K, V> Drop for PendingRead<K, V> {
    fn drop(&mut self) {
        if let Some(inv) = self.inner.take() {
            inv.finish(Op::Read(None), Outcome::Failed);
        }
    }
}

impl<K, V> fmt::Debug for PendingRead<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingRead")
            .field("invoked", &self.inner.as_ref().map(|i| i.invoked))
            .finish_non_exhaustive()
    }
}

/// One key's operations, with their positions in the history.
type KeyOps<'a, K, V> = Vec<(usize, &'a Operation<K, V>)>;

/// Checks a history against the register model, key by key, with
/// [`DEFAULT_STATE_LIMIT`] search states per key at most.
///
/// Failed operations and reads of unknown outcome are ignored; acknowledged operations
/// must take effect between invocation and response; writes of unknown outcome take
/// effect after their invocation, or never.
pub fn check_operations<K, V>(
    operations: &[Operation<K, V>],
) -> Result<CheckReport, LinearizabilityError>
where
    K: Clone + Eq + Hash + fmt::Debug,
    V: Clone + Eq + Hash + fmt::Debug,
{
    check_operations_with_limit(operations, DEFAULT_STATE_LIMIT)
}

/// Like [`check_operations`], with at most `limit` search states per key before giving
/// up with [`LinearizabilityError::Inconclusive`].
pub fn check_operations_with_limit<K, V>(
    operations: &[Operation<K, V>],
    limit: u64,
) -> Result<CheckReport, LinearizabilityError>
where
    K: Clone + Eq + Hash + fmt::Debug,
    V: Clone + Eq + Hash + fmt::Debug,
{
    let mut by_key: HashMap<&K, KeyOps<'_, K, V>> = HashMap::new();
    for (index, operation) in operations.iter().enumerate() {
        if let Outcome::Ok(returned) = operation.outcome {
            if returned <= operation.invoked {
                return Err(LinearizabilityError::BadTimes {
                    index,
                    invoked: operation.invoked,
                    returned,
                });
            }
        }
        let keep = !matches!(
            (&operation.op, operation.outcome),
            (_, Outcome::Failed) | (Op::Read(_), Outcome::Unknown)
        );
        if keep {
            by_key
                .entry(&operation.key)
                .or_default()
                .push((index, operation));
        }
    }
    let mut report = CheckReport {
        keys: by_key.len(),
        ..CheckReport::default()
    };
    for (key, ops) in by_key {
        report.operations += ops.len();
        report.unknown += ops
            .iter()
            .filter(|(_, o)| o.outcome == Outcome::Unknown)
            .count();
        let outcome = search::check_key(&ops, limit);
        report.states += outcome.states;
        match outcome.result {
            search::Verdict::Linearizable => {}
            search::Verdict::Inconclusive => {
                return Err(LinearizabilityError::Inconclusive {
                    key: format!("{key:?}"),
                    limit,
                })
            }
            search::Verdict::Violation(detail) => {
                return Err(LinearizabilityError::NotLinearizable {
                    key: format!("{key:?}"),
                    detail,
                })
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
