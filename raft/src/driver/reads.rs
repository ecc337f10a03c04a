//! Bookkeeping of linearizable reads: a read waits for its read index from the core,
//! then for the state machine to apply that far, and is answered then.

use std::collections::BTreeMap;

use crate::core::{LogIndex, ReadId, ReadState};
use crate::node::ClientError;

/// Reads in flight on one node, bounded by
/// [`Limits::max_pending_reads`](super::Limits::max_pending_reads).
#[derive(Debug)]
pub(super) struct Reads<R> {
    next_id: ReadId,
    /// Waiting for the core's read index.
    asked: BTreeMap<ReadId, R>,
    /// Have a read index, waiting for the state machine to apply it: by (index, id).
    confirmed: BTreeMap<(LogIndex, ReadId), R>,
}

impl<R> Default for Reads<R> {
    fn default() -> Self {
        Self {
            next_id: 0,
            asked: BTreeMap::new(),
            confirmed: BTreeMap::new(),
        }
    }
}

impl<R> Reads<R> {
    pub(super) fn len(&self) -> usize {
        self.asked.len() + self.confirmed.len()
    }

    /// Registers a new read and returns its id.
    pub(super) fn start(&mut self, responder: R) -> ReadId {
        self.next_id += 1;
        self.asked.insert(self.next_id, responder);
        self.next_id
    }

    /// Takes the core's outcome for a read. Returns the responder and its answer when
    /// the read can be answered now (`applied` is how far the state machine got).
    pub(super) fn outcome(
        &mut self,
        state: ReadState,
        applied: LogIndex,
    ) -> Option<(R, Result<LogIndex, ClientError>)> {
        let responder = self.asked.remove(&state.id)?;
        match state.result {
            Ok(index) if index <= applied => Some((responder, Ok(index))),
            Ok(index) => {
                self.confirmed.insert((index, state.id), responder);
                None
            }
            Err(error) => Some((responder, Err(ClientError::Read(error)))),
        }
    }

    /// Every confirmed read whose index is now applied.
    pub(super) fn applied(
        &mut self,
        applied: LogIndex,
        out: &mut Vec<(R, Result<LogIndex, ClientError>)>,
    ) {
        while let Some(entry) = self.confirmed.first_entry() {
            let (index, _) = *entry.key();
            if index > applied {
                break;
            }
            let responder = entry.remove();
            out.push((responder, Ok(index)));
        }
    }

    /// Answers every read with `error` (the node is stopping).
    pub(super) fn fail_all(
        &mut self,
        error: &ClientError,
        out: &mut Vec<(R, Result<LogIndex, ClientError>)>,
    ) {
        for (_, r) in std::mem::take(&mut self.asked) {
            out.push((r, Err(error.clone())));
        }
        for (_, r) in std::mem::take(&mut self.confirmed) {
            out.push((r, Err(error.clone())));
        }
    }
}
