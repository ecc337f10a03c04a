//! The bounded queues that carry proposals and inbound messages to the node.
//!
//! Producers (client handles, transport threads) push onto a shared buffer and wake the
//! node only when the buffer goes from "drained" to "has items", so a burst costs one
//! wake-up ([`WakeSignal`]: a bit per queue and the node's task, no message and no
//! allocation); the node drains the whole buffer at once, and everything drained
//! together leaves in one write and one AppendEntries. Each queue has a capacity: a push
//! into a full queue is refused and handed back, and the caller decides what that means
//! (`Busy` for a proposal, drop-and-count for a peer message).
//!
//! A queue can also count what the node took from it and still holds (for proposals:
//! those waiting for their entry to apply), as the node last published it
//! ([`WakeQueue::set_held`]), against a second bound ([`WakeQueue::with_held_limit`]).
//! A push that would take queued plus held past it is refused on the caller's thread,
//! so a node whose table is full does not spend its own thread taking proposals only
//! to answer each one `Busy`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::stream::Stream;
use futures_util::task::AtomicWaker;

/// Which of a node's queues has something waiting: one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    Proposals = 1,
    Inbound = 2,
    Reads = 4,
}

/// How the producers of a node's queues wake it: they raise their queue's bit and wake
/// the node's task, which reads every raised bit at once ([`Wakes`]).
#[derive(Debug, Default)]
pub(crate) struct WakeSignal {
    raised: AtomicU8,
    task: AtomicWaker,
}

impl WakeSignal {
    /// `wake`'s queue went from drained to holding something.
    pub(crate) fn raise(&self, wake: Wake) {
        self.raised.fetch_or(wake as u8, Ordering::AcqRel);
        self.task.wake();
    }
}

/// The bits raised since the last item, as a stream the node's actor reads. It never
/// ends.
pub(crate) struct Wakes(pub(crate) Arc<WakeSignal>);

/// The queues a [`Wakes`] item names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raised(u8);

impl Raised {
    /// Whether `wake`'s bit is among them.
    pub(crate) fn has(self, wake: Wake) -> bool {
        self.0 & wake as u8 != 0
    }
}

impl Stream for Wakes {
    type Item = Raised;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Raised>> {
        let signal = &self.0;
        let bits = signal.raised.swap(0, Ordering::AcqRel);
        if bits != 0 {
            return Poll::Ready(Some(Raised(bits)));
        }
        signal.task.register(cx.waker());
        // A bit raised before the registration woke no one: look again.
        match signal.raised.swap(0, Ordering::AcqRel) {
            0 => Poll::Pending,
            bits => Poll::Ready(Some(Raised(bits))),
        }
    }
}

/// Why a push was refused; the item comes back.
#[derive(Debug)]
pub(crate) enum Refused<T> {
    /// The queue holds its capacity.
    Full(T),
    /// The node has stopped.
    Closed(T),
}

#[derive(Debug)]
struct Buffer<T> {
    items: Vec<T>,
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct WakeQueue<T> {
    buffer: Mutex<Buffer<T>>,
    /// A drain is already on its way to the node.
    scheduled: AtomicBool,
    capacity: usize,
    /// Items the node took and still holds, as it last published them.
    held: AtomicUsize,
    /// Most items queued and held together.
    held_limit: usize,
}

impl<T> WakeQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            buffer: Mutex::new(Buffer {
                items: Vec::new(),
                closed: false,
            }),
            scheduled: AtomicBool::new(false),
            capacity: capacity.max(1),
            held: AtomicUsize::new(0),
            held_limit: usize::MAX,
        }
    }

    /// A queue of `capacity` that also refuses a push while the items queued plus those
    /// the node holds ([`set_held`](Self::set_held)) reach `held_limit`.
    pub(crate) fn with_held_limit(capacity: usize, held_limit: usize) -> Self {
        Self {
            held_limit: held_limit.max(1),
            ..Self::new(capacity)
        }
    }

    /// Publishes how many items the node took and still holds.
    pub(crate) fn set_held(&self, held: usize) {
        self.held.store(held, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Buffer<T>> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an item. Returns true when the caller must wake the node.
    pub(crate) fn push(&self, item: T) -> Result<bool, Refused<T>> {
        {
            let mut buffer = self.lock();
            if buffer.closed {
                return Err(Refused::Closed(item));
            }
            let queued = buffer.items.len();
            if queued >= self.capacity
                || queued.saturating_add(self.held.load(Ordering::Relaxed)) >= self.held_limit
            {
                return Err(Refused::Full(item));
            }
            buffer.items.push(item);
        }
        // While a drain is already on its way (a burst), only read the flag: the swap
        // would take its cache line from the node's thread on every push.
        if self.scheduled.load(Ordering::Acquire) {
            return Ok(false);
        }
        Ok(!self.scheduled.swap(true, Ordering::AcqRel))
    }

    /// Takes everything queued, swapping in `spare` (an empty buffer to reuse).
    pub(crate) fn drain(&self, spare: &mut Vec<T>) {
        // Clear the flag before taking: a push that lands after the take will then
        // schedule another drain, and none is lost.
        self.scheduled.store(false, Ordering::Release);
        let mut buffer = self.lock();
        std::mem::swap(&mut buffer.items, spare);
    }

    /// Refuses every later push and returns everything queued.
    pub(crate) fn close(&self) -> Vec<T> {
        let mut buffer = self.lock();
        buffer.closed = true;
        std::mem::take(&mut buffer.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raised_bits_are_read_together_and_a_raise_wakes_the_waiting_task() {
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let signal = Arc::new(WakeSignal::default());
        let mut wakes = Wakes(Arc::clone(&signal));
        assert!(Pin::new(&mut wakes).poll_next(&mut cx).is_pending());
        signal.raise(Wake::Inbound);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the waiting task is woken"
        );
        signal.raise(Wake::Reads);
        match Pin::new(&mut wakes).poll_next(&mut cx) {
            Poll::Ready(Some(raised)) => {
                assert!(raised.has(Wake::Inbound) && raised.has(Wake::Reads));
                assert!(!raised.has(Wake::Proposals));
            }
            other => panic!("expected the raised bits, got {other:?}"),
        }
        assert!(
            Pin::new(&mut wakes).poll_next(&mut cx).is_pending(),
            "each raise is read once"
        );
    }

    #[test]
    fn wakes_once_per_burst_refuses_when_full_and_after_close() {
        let q = WakeQueue::new(2);
        assert!(q.push(1).unwrap(), "first push wakes");
        assert!(!q.push(2).unwrap(), "second rides along");
        assert!(matches!(q.push(3), Err(Refused::Full(3))), "capacity 2");
        let mut got = Vec::new();
        q.drain(&mut got);
        assert_eq!(got, vec![1, 2]);
        assert!(q.push(4).unwrap(), "wakes again after a drain");
        assert_eq!(q.close(), vec![4]);
        assert!(matches!(q.push(5), Err(Refused::Closed(5))));
    }

    #[test]
    fn what_the_node_holds_counts_against_the_held_limit() {
        let q = WakeQueue::with_held_limit(10, 3);
        q.set_held(2);
        assert!(q.push(1).unwrap());
        assert!(
            matches!(q.push(2), Err(Refused::Full(2))),
            "1 queued + 2 held"
        );
        let mut got = Vec::new();
        q.drain(&mut got);
        q.set_held(3);
        assert!(matches!(q.push(3), Err(Refused::Full(3))), "3 held");
        q.set_held(0);
        assert!(q.push(4).unwrap());
        assert!(!q.push(5).unwrap());
        assert!(!q.push(6).unwrap());
        assert!(matches!(q.push(7), Err(Refused::Full(7))), "3 queued");
    }
}
