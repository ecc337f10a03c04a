//! A precise timer shared by every node in the process.
//!
//! Tokio's timer rounds every deadline up to the next millisecond. With election timeouts
//! of a few milliseconds that rounding is a large, correlated error: timers of nodes on
//! different threads that fall in the same millisecond fire together, which turns
//! distinct random timeouts into simultaneous candidacies and split votes. This timer
//! thread sleeps until each deadline with the operating system's precision (tens of
//! microseconds) and then hands the firing to the node's own thread.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

type Callback = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    callbacks: HashMap<u64, Callback>,
    next_id: u64,
}

/// The process-wide timer thread.
pub(crate) struct Timers {
    state: Mutex<State>,
    wake: Condvar,
}

/// Identifies a scheduled callback, for [`Timers::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId(u64);

impl Timers {
    /// The shared instance, started on first use.
    pub(crate) fn global() -> &'static Timers {
        static TIMERS: OnceLock<&'static Timers> = OnceLock::new();
        TIMERS.get_or_init(|| {
            let timers: &'static Timers = Box::leak(Box::new(Timers {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
            }));
            std::thread::Builder::new()
                .name("actraft-timer".into())
                .spawn(move || timers.run())
                .expect("the timer thread starts");
            timers
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `callback` on the timer thread at `at` (keep it short: send a message).
    pub(crate) fn schedule(
        &self,
        at: Instant,
        callback: impl FnOnce() + Send + 'static,
    ) -> TimerId {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        let earliest = state.queue.peek().is_none_or(|Reverse((t, _))| at < *t);
        state.queue.push(Reverse((at, id)));
        state.callbacks.insert(id, Box::new(callback));
        drop(state);
        if earliest {
            self.wake.notify_one();
        }
        TimerId(id)
    }

    /// Cancels a callback that has not fired yet.
    pub(crate) fn cancel(&self, id: TimerId) {
        self.lock().callbacks.remove(&id.0);
    }

    fn run(&self) {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(&Reverse((at, id))) = state.queue.peek() {
                if at > now {
                    break;
                }
                state.queue.pop();
                if let Some(callback) = state.callbacks.remove(&id) {
                    due.push(callback);
                }
            }
            if !due.is_empty() {
                drop(state);
                for callback in due {
                    callback();
                }
                state = self.lock();
                continue;
            }
            state = match state.queue.peek() {
                Some(&Reverse((at, _))) => {
                    let wait = at.saturating_duration_since(now);
                    self.wake
                        .wait_timeout(state, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn fires_in_order_and_cancels() {
        let timers = Timers::global();
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        for (ms, tag) in [(30u64, 3), (10, 1), (20, 2)] {
            let tx = tx.clone();
            timers.schedule(start + Duration::from_millis(ms), move || {
                let _ = tx.send(tag);
            });
        }
        let tx2 = tx.clone();
        let cancelled = timers.schedule(start + Duration::from_millis(15), move || {
            let _ = tx2.send(99);
        });
        timers.cancel(cancelled);
        let got: Vec<i32> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("fires"))
            .collect();
        assert_eq!(got, vec![1, 2, 3]);
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(rx.try_recv().is_err(), "the cancelled callback never ran");
    }
}
