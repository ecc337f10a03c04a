//! The queue that carries proposals from handles to the node.
//!
//! Handles push onto a shared buffer and wake the node only when the buffer goes from
//! empty to non-empty, so a burst of proposals from many clients costs one mailbox message
//! and no per-proposal allocation beyond the reply channel; the node drains the whole
//! buffer at once, and everything drained together leaves in one write and one
//! AppendEntries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::handle::ClientError;

/// Where a proposal's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<Bytes, ClientError>>;

#[derive(Debug, Default)]
struct Buffer {
    items: Vec<(Bytes, Reply)>,
    closed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct ProposalQueue {
    buffer: Mutex<Buffer>,
    /// A drain is already on its way to the node.
    scheduled: AtomicBool,
}

impl ProposalQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a proposal. Returns true when the caller must wake the node; gives the
    /// reply back when the node has stopped.
    pub(crate) fn push(&self, command: Bytes, reply: Reply) -> Result<bool, Reply> {
        {
            let mut buffer = self.lock();
            if buffer.closed {
                return Err(reply);
            }
            buffer.items.push((command, reply));
        }
        Ok(!self.scheduled.swap(true, Ordering::AcqRel))
    }

    /// Takes everything queued, swapping in `spare` (an empty buffer to reuse).
    pub(crate) fn drain(&self, spare: &mut Vec<(Bytes, Reply)>) {
        // Clear the flag before taking: a push that lands after the take will then
        // schedule another drain, and none is lost.
        self.scheduled.store(false, Ordering::Release);
        let mut buffer = self.lock();
        std::mem::swap(&mut buffer.items, spare);
    }

    /// Refuses every later push and fails everything queued.
    pub(crate) fn close(&self) {
        let items = {
            let mut buffer = self.lock();
            buffer.closed = true;
            std::mem::take(&mut buffer.items)
        };
        for (_, reply) in items {
            let _ = reply.send(Err(ClientError::Stopped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_once_per_burst_and_fails_after_close() {
        let q = ProposalQueue::default();
        let (tx1, _rx1) = oneshot::channel();
        let (tx2, _rx2) = oneshot::channel();
        assert_eq!(q.push("a".into(), tx1).ok(), Some(true), "first push wakes");
        assert_eq!(
            q.push("b".into(), tx2).ok(),
            Some(false),
            "second rides along"
        );
        let mut got = Vec::new();
        q.drain(&mut got);
        assert_eq!(got.len(), 2);
        let (tx3, mut rx3) = oneshot::channel();
        assert_eq!(
            q.push("c".into(), tx3).ok(),
            Some(true),
            "wakes again after a drain"
        );
        q.close();
        assert_eq!(rx3.try_recv().unwrap(), Err(ClientError::Stopped));
        let (tx4, _rx4) = oneshot::channel();
        assert!(q.push("d".into(), tx4).is_err(), "closed");
    }
}
