//! The write pipeline: what the core asked to persist, merged while earlier writes are in
//! flight, handed out in order, and completed in order.

use std::collections::VecDeque;

use crate::core::{Envelope, HardState, LogId, Ready};
use crate::storage::{LogWrite, StorageError};

/// Names one write handed to the storage, so its completion can be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId(pub u64);

/// A write handed out, with what to do once it is durable.
#[derive(Debug)]
struct InFlight {
    id: WriteId,
    ack: Option<LogId>,
    hard: Option<HardState>,
    after: Vec<Envelope>,
    done: Option<Result<(), StorageError>>,
}

/// What a completed write releases, in issue order.
#[derive(Debug)]
pub(super) struct Completed {
    pub(super) ack: Option<LogId>,
    pub(super) hard: Option<HardState>,
    pub(super) after: Vec<Envelope>,
    pub(super) result: Result<(), StorageError>,
}

/// Writes waiting for a slot, merged into one (group commit).
#[derive(Debug, Default)]
struct Pending {
    write: LogWrite,
    ack: Option<LogId>,
    after: Vec<Envelope>,
    any: bool,
}

#[derive(Debug)]
pub(super) struct Writes {
    max_in_flight: usize,
    next_id: u64,
    in_flight: VecDeque<InFlight>,
    pending: Pending,
}

impl Writes {
    pub(super) fn new(max_in_flight: usize) -> Self {
        Self {
            max_in_flight: max_in_flight.max(1),
            next_id: 0,
            in_flight: VecDeque::new(),
            pending: Pending::default(),
        }
    }

    /// Takes the write and the after-persist messages of `ready` into the pending write.
    pub(super) fn add(&mut self, ready: &mut Ready) {
        if !ready.has_write() && ready.persisted_messages.is_empty() {
            return;
        }
        let pending = &mut self.pending;
        pending.any = true;
        pending.write.merge(LogWrite {
            truncate_from: ready.truncate_from,
            entries: std::mem::take(&mut ready.entries),
            hard_state: ready.hard_state,
            reset_to: ready.reset_log,
        });
        if let Some(last) = pending.write.entries.last() {
            pending.ack = Some(last.log_id());
        } else if ready.truncate_from.is_some() || ready.reset_log.is_some() {
            // A truncation with nothing appended after it acknowledges nothing.
            pending.ack = None;
        }
        if pending.after.is_empty() {
            std::mem::swap(&mut pending.after, &mut ready.persisted_messages);
        } else {
            pending.after.append(&mut ready.persisted_messages);
        }
    }

    /// Hands out the pending write when a slot is free.
    pub(super) fn issue(&mut self) -> Option<(WriteId, LogWrite)> {
        if !self.pending.any || self.in_flight.len() >= self.max_in_flight {
            return None;
        }
        let pending = std::mem::take(&mut self.pending);
        self.next_id += 1;
        let id = WriteId(self.next_id);
        self.in_flight.push_back(InFlight {
            id,
            ack: pending.ack,
            hard: pending.write.hard_state,
            after: pending.after,
            done: None,
        });
        Some((id, pending.write))
    }

    /// Records a completion. Returns false for an id that is not in flight.
    pub(super) fn complete(&mut self, id: WriteId, result: Result<(), StorageError>) -> bool {
        match self.in_flight.iter_mut().find(|w| w.id == id) {
            Some(w) if w.done.is_none() => {
                w.done = Some(result);
                true
            }
            _ => false,
        }
    }

    /// The oldest write, once it and everything before it completed.
    pub(super) fn pop_completed(&mut self) -> Option<Completed> {
        self.in_flight.front()?.done.as_ref()?;
        let w = self.in_flight.pop_front()?;
        Some(Completed {
            ack: w.ack,
            hard: w.hard,
            after: w.after,
            result: w.done.expect("checked above"),
        })
    }

    /// True when the oldest write in flight has completed.
    pub(super) fn front_done(&self) -> bool {
        self.in_flight.front().is_some_and(|w| w.done.is_some())
    }

    /// True when a write waits for a slot that is free (the driver has work).
    pub(super) fn can_issue(&self) -> bool {
        self.pending.any && self.in_flight.len() < self.max_in_flight
    }

    /// Writes handed out and not yet completed in order.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// True when nothing is pending or in flight.
    pub(super) fn is_idle(&self) -> bool {
        !self.pending.any && self.in_flight.is_empty()
    }
}
