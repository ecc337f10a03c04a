//! A state machine that records every command it applies, so tests can check that no
//! two nodes applied different entries at one index, and none applied one twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actraft::{LogIndex, StateMachine};
use bytes::Bytes;

#[derive(Debug, Default)]
struct Inner {
    applied: Vec<(LogIndex, Bytes)>,
    errors: Vec<String>,
}

/// What one state machine instance applied, shared with the test that reads it.
#[derive(Debug, Clone, Default)]
pub struct AppliedLog(Arc<Mutex<Inner>>);

impl AppliedLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every (index, command) applied, in order.
    pub fn entries(&self) -> Vec<(LogIndex, Bytes)> {
        self.lock().applied.clone()
    }

    /// The commands applied, in order.
    pub fn commands(&self) -> Vec<Bytes> {
        self.lock().applied.iter().map(|(_, c)| c.clone()).collect()
    }

    /// How many commands were applied.
    pub fn len(&self) -> usize {
        self.lock().applied.len()
    }

    /// True when nothing was applied.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Out-of-order or repeated applications seen.
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }
}

/// A [`StateMachine`] that appends each command to an [`AppliedLog`] and answers with
/// the command itself.
#[derive(Debug)]
pub struct RecordingMachine {
    log: AppliedLog,
    last: LogIndex,
}

impl RecordingMachine {
    /// A machine writing into `log`.
    pub fn new(log: AppliedLog) -> Self {
        Self { log, last: 0 }
    }
}

impl StateMachine for RecordingMachine {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        let mut inner = self.log.lock();
        if index <= self.last {
            inner.errors.push(format!(
                "index {index} applied after {}: out of order or twice",
                self.last
            ));
        }
        self.last = index;
        inner.applied.push((index, command.clone()));
        command.clone()
    }
}

/// Checks that every log in `logs` agrees with every other at each index, and that none
/// recorded an ordering error. Returns the longest log's commands by index.
pub fn check_agreement<'a>(
    logs: impl IntoIterator<Item = (String, &'a AppliedLog)>,
) -> Result<BTreeMap<LogIndex, Bytes>, String> {
    let mut seen: BTreeMap<LogIndex, (String, Bytes)> = BTreeMap::new();
    for (name, log) in logs {
        if let Some(e) = log.errors().first() {
            return Err(format!("{name}: {e}"));
        }
        for (index, command) in log.entries() {
            match seen.get(&index) {
                Some((other, c)) if *c != command => {
                    return Err(format!(
                        "{name} and {other} applied different commands at index {index}"
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(index, (name.clone(), command));
                }
            }
        }
    }
    Ok(seen.into_iter().map(|(i, (_, c))| (i, c)).collect())
}

/// A state machine that does nothing and answers with an empty response: what a
/// benchmark of the consensus layer alone wants.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopMachine;

impl StateMachine for NoopMachine {
    fn apply(&mut self, _index: LogIndex, _command: &Bytes) -> Bytes {
        Bytes::new()
    }

    /// It has no state: its snapshot is empty.
    fn snapshot(&mut self) -> Option<Box<dyn actraft::SnapshotChunks>> {
        Some(Box::new(actraft::snapshot::VecChunks::new([])))
    }

    fn restore(
        &mut self,
        _meta: &actraft::SnapshotMeta,
        chunks: &mut dyn actraft::SnapshotChunks,
    ) -> Result<(), actraft::snapshot::SnapshotError> {
        while chunks.next_chunk(64 << 10)?.is_some() {}
        Ok(())
    }
}
