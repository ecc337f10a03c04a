//! The bounded queues that carry proposals and inbound messages to the node.
//!
//! Producers (client handles, transport threads) push onto a shared buffer and wake the
//! node only when the buffer goes from "drained" to "has items", so a burst costs one
//! mailbox message; the node drains the whole buffer at once, and everything drained
//! together leaves in one write and one AppendEntries. Each queue has a capacity: a push
//! into a full queue is refused and handed back, and the caller decides what that means
//! (`Busy` for a proposal, drop-and-count for a peer message).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

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
        }
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
            if buffer.items.len() >= self.capacity {
                return Err(Refused::Full(item));
            }
            buffer.items.push(item);
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
}
