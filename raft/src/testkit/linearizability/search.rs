//! The search over one key's operations: Wing–Gong with Lowe's memoization.
//!
//! Invocations and responses form one list ordered by time. The search walks it from the
//! front: at an invocation it tries to linearize that operation now (the register model
//! must accept it, and the pair (linearized set, register value) must be new); if so the
//! operation's two events leave the list and the walk starts over. Reaching a response
//! means an operation that had to take effect by then was not placed: the last choice is
//! undone and the walk continues after it. A write of unknown outcome has its response at
//! the end of time, so it can be placed anywhere after its invocation, or left out: the
//! search succeeds once every acknowledged operation is placed. One whose value no read
//! returned is left out from the start (it never needs a place).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;

use super::{Op, Operation, Outcome};

const NIL: usize = usize::MAX;

pub(super) enum Verdict {
    Linearizable,
    Inconclusive,
    Violation(String),
}

pub(super) struct Checked {
    pub result: Verdict,
    pub states: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Write(u32),
    Read(Option<u32>),
}

struct Item {
    step: Step,
    definite: bool,
    call: usize,
    ret: usize,
}

/// The doubly linked list of events; node `head` is a sentinel before the first.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each node: the operation and whether it is the response.
    node: Vec<(usize, bool)>,
    head: usize,
}

impl Events {
    fn unlink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = q;
        if q != NIL {
            self.prev[q] = p;
        }
    }

    fn relink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        if q != NIL {
            self.prev[q] = n;
        }
    }

    fn lift(&mut self, item: &Item) {
        self.unlink(item.call);
        self.unlink(item.ret);
    }

    fn unlift(&mut self, item: &Item) {
        self.relink(item.ret);
        self.relink(item.call);
    }
}

fn apply(state: Option<u32>, step: Step) -> Option<Option<u32>> {
    match step {
        Step::Write(v) => Some(Some(v)),
        Step::Read(seen) => (seen == state).then_some(state),
    }
}

fn describe<K: fmt::Debug, V: fmt::Debug>(o: &Operation<K, V>) -> String {
    let what = match &o.op {
        Op::Write(v) => format!("write {v:?}"),
        Op::Read(v) => format!("read -> {v:?}"),
    };
    let end = match o.outcome {
        Outcome::Ok(t) => t.to_string(),
        Outcome::Failed => "failed".into(),
        Outcome::Unknown => "unknown".into(),
    };
    format!("client {} {what} [{}..{end}]", o.client, o.invoked)
}

/// Checks one key's operations (failed ones already left out).
pub(super) fn check_key<K, V>(ops: &[(usize, &Operation<K, V>)], limit: u64) -> Checked
where
    K: fmt::Debug,
    V: Eq + Hash + fmt::Debug,
{
    // A write of unknown outcome whose value no read returned can always be left out:
    // wherever it took effect, no read came before the next write overwrote it, so the
    // order without it explains the same answers. Leaving such writes out keeps the
    // search from trying every place for each of them.
    let observed: HashSet<&V> = ops
        .iter()
        .filter_map(|(_, o)| match &o.op {
            Op::Read(Some(v)) => Some(v),
            _ => None,
        })
        .collect();
    let ops: Vec<(usize, &Operation<K, V>)> = ops
        .iter()
        .filter(|(_, o)| match (&o.op, o.outcome) {
            (Op::Write(v), Outcome::Unknown) => observed.contains(v),
            _ => true,
        })
        .copied()
        .collect();
    let ops = &ops[..];
    // Intern the written values.
    let mut values: HashMap<&V, u32> = HashMap::new();
    for (_, o) in ops {
        if let Op::Write(v) = &o.op {
            let next = values.len() as u32;
            values.entry(v).or_insert(next);
        }
    }
    let mut items = Vec::with_capacity(ops.len());
    for (_, o) in ops {
        let step = match &o.op {
            Op::Write(v) => Step::Write(values[v]),
            Op::Read(None) => Step::Read(None),
            Op::Read(Some(v)) => match values.get(v) {
                Some(&id) => Step::Read(Some(id)),
                None => {
                    return Checked {
                        result: Verdict::Violation(format!(
                            "{} read a value no write of this key wrote",
                            describe(o)
                        )),
                        states: 0,
                    }
                }
            },
        };
        items.push(Item {
            step,
            definite: matches!(o.outcome, Outcome::Ok(_)),
            call: NIL,
            ret: NIL,
        });
    }

    // Events in time order; at equal times invocations come first (the lenient reading).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
    for (i, (_, o)) in ops.iter().enumerate() {
        order.push((o.invoked, false, i));
        let end = match o.outcome {
            Outcome::Ok(t) => t,
            _ => u64::MAX,
        };
        order.push((end, true, i));
    }
    order.sort_unstable();
    let n = order.len();
    let mut events = Events {
        next: (1..=n).map(|k| if k == n { NIL } else { k }).collect(),
        prev: (0..n).map(|k| if k == 0 { n } else { k - 1 }).collect(),
        node: order.iter().map(|&(_, r, i)| (i, r)).collect(),
        head: n,
    };
    events.next.push(if n == 0 { NIL } else { 0 });
    events.prev.push(NIL);
    for (k, &(_, is_ret, i)) in order.iter().enumerate() {
        if is_ret {
            items[i].ret = k;
        } else {
            items[i].call = k;
        }
    }

    let words = ops.len().div_ceil(64);
    let mut placed = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u32>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u32>)> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut state: Option<u32> = None;
    let mut remaining = items.iter().filter(|i| i.definite).count();
    let mut states = 0u64;
    let mut cur = events.next[events.head];

    loop {
        if remaining == 0 {
            return Checked {
                result: Verdict::Linearizable,
                states,
            };
        }
        if cur == NIL {
            // Unreachable while an acknowledged operation is unplaced (its response is
            // still listed); treated as a dead end all the same.
            match stack.pop() {
                Some((i, before)) => {
                    placed[i / 64] &= !(1 << (i % 64));
                    state = before;
                    events.unlift(&items[i]);
                    if items[i].definite {
                        remaining += 1;
                    }
                    cur = events.next[items[i].call];
                    continue;
                }
                None => break,
            }
        }
        let (i, is_ret) = events.node[cur];
        if !is_ret {
            if let Some(after) = apply(state, items[i].step) {
                placed[i / 64] |= 1 << (i % 64);
                if seen.insert((placed.clone(), after)) {
                    states += 1;
                    if states > limit {
                        return Checked {
                            result: Verdict::Inconclusive,
                            states,
                        };
                    }
                    stack.push((i, state));
                    if stack.len() > best.len() {
                        best = stack.iter().map(|&(j, _)| j).collect();
                    }
                    state = after;
                    events.lift(&items[i]);
                    if items[i].definite {
                        remaining -= 1;
                    }
                    cur = events.next[events.head];
                    continue;
                }
                placed[i / 64] &= !(1 << (i % 64));
            }
            cur = events.next[cur];
        } else {
            match stack.pop() {
                Some((j, before)) => {
                    placed[j / 64] &= !(1 << (j % 64));
                    state = before;
                    events.unlift(&items[j]);
                    if items[j].definite {
                        remaining += 1;
                    }
                    cur = events.next[items[j].call];
                }
                None => break,
            }
        }
    }
    Checked {
        result: Verdict::Violation(violation(ops, &items, &best)),
        states,
    }
}

fn violation<K: fmt::Debug, V: fmt::Debug>(
    ops: &[(usize, &Operation<K, V>)],
    items: &[Item],
    best: &[usize],
) -> String {
    const SHOW: usize = 8;
    let mut in_best = vec![false; ops.len()];
    for &i in best {
        in_best[i] = true;
    }
    let mut left: Vec<usize> = (0..ops.len())
        .filter(|&i| !in_best[i] && items[i].definite)
        .collect();
    left.sort_by_key(|&i| ops[i].1.invoked);
    let tail: Vec<String> = best
        .iter()
        .skip(best.len().saturating_sub(SHOW))
        .map(|&i| describe(ops[i].1))
        .collect();
    let stuck: Vec<String> = left
        .iter()
        .take(SHOW)
        .map(|&i| describe(ops[i].1))
        .collect();
    format!(
        "{} of {} operations placed at best, ending with [{}]; acknowledged operations left \
         (earliest first): [{}]",
        best.len(),
        ops.len(),
        tail.join("; "),
        stuck.join("; ")
    )
}
