//! The node's snapshot IO: snapshot jobs written off the node's thread, and recovery
//! from the latest snapshot at start.

use std::sync::Arc;

use crate::core::{Entry, LogId};
use crate::driver::{check_snapshot_against_log, SnapshotJob};
use crate::snapshot::{write_snapshot, SnapshotError, SnapshotMeta, SnapshotStore};
use crate::storage::{LogState, LogStorage, LogWrite};
use crate::StateMachine;

use super::StartError;

/// Size of the chunks read from a snapshot source and written to the store.
pub(crate) const CHUNK_LEN: usize = 256 * 1024;

/// Writes a snapshot job to `store` on a blocking thread (the node's thread keeps
/// ticking, replicating and applying meanwhile).
pub(crate) async fn write_job(
    store: Arc<dyn SnapshotStore>,
    job: SnapshotJob,
) -> (SnapshotMeta, Result<(), SnapshotError>) {
    let meta = job.meta.clone();
    let SnapshotJob {
        meta: job_meta,
        mut source,
    } = job;
    let result = tokio::task::spawn_blocking(move || {
        write_snapshot(store.as_ref(), job_meta, source.as_mut(), CHUNK_LEN).map(|_| ())
    })
    .await
    .unwrap_or_else(|e| {
        Err(SnapshotError::Io(std::io::Error::other(format!(
            "the snapshot thread failed: {e}"
        ))))
    });
    (meta, result)
}

/// What a node recovers from its snapshot store and log at start.
pub(crate) struct Recovered<M> {
    pub(crate) state_machine: M,
    /// The latest snapshot, if any.
    pub(crate) snapshot: Option<SnapshotMeta>,
    /// Where the in-memory log starts: the snapshot point, or the stored log's prefix.
    pub(crate) log_prefix: LogId,
    /// The stored entries after `log_prefix`.
    pub(crate) entries: Vec<Entry>,
}

/// Reads the latest snapshot's metadata, restores the state machine from it when the
/// state machine does not already hold that state (on a blocking thread), and reads
/// the log after the snapshot only.
pub(crate) async fn recover<S: LogStorage, M: StateMachine>(
    storage: &S,
    state: &LogState,
    store: Option<Arc<dyn SnapshotStore>>,
    state_machine: M,
) -> Result<Recovered<M>, StartError> {
    let mut state_machine = state_machine;
    let mut snapshot = None;
    if let Some(store) = store {
        let restored = tokio::task::spawn_blocking(move || {
            let Some((meta, mut chunks)) = store.open_latest()? else {
                return Ok((state_machine, None));
            };
            if state_machine.applied_index() < meta.last_included.index {
                state_machine.restore(&meta, chunks.as_mut())?;
            }
            Ok::<_, SnapshotError>((state_machine, Some(meta)))
        })
        .await
        .map_err(|e| {
            StartError::Snapshot(SnapshotError::Io(std::io::Error::other(format!(
                "the snapshot thread failed: {e}"
            ))))
        })??;
        state_machine = restored.0;
        snapshot = restored.1;
    }
    let mut last = state.last;
    let log_prefix = match &snapshot {
        Some(meta) => {
            let point = meta.last_included;
            let at = point.index;
            let stored_term = if at == state.prefix.index {
                Some(state.prefix.term)
            } else if at > state.prefix.index && at <= state.last.index {
                storage.entries(at, at).await?.first().map(|e| e.term)
            } else {
                None
            };
            if at >= state.prefix.index && stored_term != Some(point.term) {
                // A snapshot received from a leader was committed, and the node stopped
                // before its log was reset: the stored log is obsolete. Finish the job.
                tracing::info!(snapshot = ?point, stored = ?state.last, "resetting the log to the installed snapshot");
                storage
                    .write(LogWrite {
                        reset_to: Some(point),
                        ..LogWrite::default()
                    })
                    .await?;
                last = point;
            } else {
                check_snapshot_against_log(at, state.prefix.index, state.last.index)?;
            }
            point
        }
        None => state.prefix,
    };
    let entries = if last.index > log_prefix.index {
        storage.entries(log_prefix.index + 1, last.index).await?
    } else {
        Vec::new()
    };
    Ok(Recovered {
        state_machine,
        snapshot,
        log_prefix,
        entries,
    })
}
