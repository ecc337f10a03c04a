//! Snapshots (§7 of the Raft paper): a state machine's applied state, frozen at a log
//! position, streamed in chunks.
//!
//! Three pieces meet here:
//!
//! - [`SnapshotMeta`]: where a snapshot sits in the log (the last entry it includes,
//!   with its term) and the membership it reflects.
//! - [`SnapshotChunks`]: a stream of byte chunks. A state machine hands one out from
//!   [`StateMachine::snapshot`](crate::StateMachine::snapshot) (its *source*: a frozen
//!   copy or a handle on an immutable version of its state) and reads one in
//!   [`StateMachine::restore`](crate::StateMachine::restore). A [`SnapshotStore`]
//!   serves the stored snapshot as one, too.
//! - [`SnapshotStore`]: where a node keeps its latest snapshot, durably.
//!
//! # The source contract
//!
//! [`StateMachine::snapshot`](crate::StateMachine::snapshot) runs on the node's thread,
//! so it must be quick: it captures the state as of the last applied entry and returns
//! a source without encoding anything. The node then moves the source to another
//! thread, which pulls chunks from it and writes them to the [`SnapshotStore`], while
//! the node goes on ticking, replicating and applying. The source must therefore be
//! [`Send`], own what it reads (a clone, an `Arc` of a persistent structure, a database
//! checkpoint) and never see later applies.

mod crc;
mod mem;
mod store;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::core::LogId;

pub use crc::crc32c;
pub use mem::MemSnapshotStore;
pub use store::{write_snapshot, SnapshotStore, SnapshotWriter, StoredSnapshot};

/// Where a snapshot sits in the log, and the membership it reflects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last entry whose effects the snapshot includes (index and term). The log
    /// after a snapshot starts right after it.
    pub last_included: LogId,
    /// The cluster configuration in force at `last_included`: a node that restarts or
    /// installs from this snapshot obeys it until a later membership entry in its log.
    pub membership: crate::core::ClusterConfig,
}

/// Why producing, storing or restoring a snapshot failed.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// The state machine does not implement snapshots.
    #[error("the state machine does not support snapshots")]
    Unsupported,
    /// The snapshot bytes could not be decoded by the state machine.
    #[error("malformed snapshot: {0}")]
    Malformed(String),
    /// A stored snapshot failed its checksum, or ends early (a torn write).
    #[error("stored snapshot is corrupt: {0}")]
    Corrupt(String),
    /// A snapshot older than the stored one was committed.
    #[error("snapshot up to {index} is older than the stored one (up to {stored})")]
    Stale {
        /// Last included index of the refused snapshot.
        index: crate::core::LogIndex,
        /// Last included index of the stored one.
        stored: crate::core::LogIndex,
    },
    /// The device failed.
    #[error("snapshot IO failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A stream of snapshot chunks, read in order, each at most a few hundred KiB.
///
/// Sources run on a thread of their own, so a call may block (read a file, encode a
/// large map); it must not wait on the node.
pub trait SnapshotChunks: Send {
    /// The next chunk, or `None` at the end. `max_len` is a hint for the chunk size;
    /// a chunk may be shorter, and an implementation that cannot split a record may
    /// exceed it.
    fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, SnapshotError>;
}

/// Chunks held in memory: the simplest source, and a reader over received chunks.
#[derive(Debug, Default, Clone)]
pub struct VecChunks {
    chunks: std::collections::VecDeque<Bytes>,
}

impl VecChunks {
    /// A stream of these chunks, in order.
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter().collect(),
        }
    }
}

impl SnapshotChunks for VecChunks {
    fn next_chunk(&mut self, _max_len: usize) -> Result<Option<Bytes>, SnapshotError> {
        Ok(self.chunks.pop_front())
    }
}

/// Reads a whole stream into memory (for tests and small snapshots).
pub fn read_all(chunks: &mut dyn SnapshotChunks) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next_chunk(64 * 1024)? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
