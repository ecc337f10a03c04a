//! The `StateMachine` trait: the user's replicated service.

use bytes::Bytes;

use crate::core::{Entry, LogIndex, Payload};
use crate::snapshot::{SnapshotChunks, SnapshotError, SnapshotMeta};

/// The service a Raft cluster replicates. Every node applies the same commands in the
/// same order, so every node's state machine goes through the same states.
///
/// # Correctness rules
///
/// 1. **Deterministic.** [`apply`](StateMachine::apply) must depend only on the state
///    and the command: no clocks, no randomness, no outside reads. Otherwise replicas
///    drift apart.
/// 2. **In order, once.** The node calls `apply` with strictly increasing indexes, each
///    committed index once per node lifetime. After a restart it resumes after
///    [`applied_index`](StateMachine::applied_index): a state machine that keeps its
///    state durably reports how far it got; one held in memory reports 0 (the default)
///    and is rebuilt from the log.
/// 3. **Quick.** `apply` runs on the node's thread; a slow one delays heartbeats. Hand
///    expensive work to another thread and keep `apply` to the state change itself.
/// 4. **Snapshots (optional).** A state machine that implements
///    [`snapshot`](StateMachine::snapshot) and [`restore`](StateMachine::restore) lets
///    the node compact its log (§7 of the Raft paper). `snapshot` captures the state as
///    of the last applied entry and returns a source read on another thread (see the
///    contract in [`crate::snapshot`]); `restore` replaces the whole state with a
///    snapshot's, after which the node applies from the snapshot's last index on. The
///    two must round-trip: restoring a snapshot gives the state that produced it.
pub trait StateMachine: Send + 'static {
    /// Applies the committed command at `index` and returns the response for the client
    /// that proposed it.
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes;

    /// Called by the node for every committed entry, in order: the leaders' no-op
    /// entries as well as commands. The default passes commands to
    /// [`apply`](Self::apply) and answers a no-op with empty bytes. Override it to see
    /// every entry with its term (a state machine that records the last applied
    /// `(index, term)`, a checker); the same rules apply.
    fn apply_entry(&mut self, entry: &Entry) -> Bytes {
        match &entry.payload {
            Payload::Command(command) => self.apply(entry.index, command),
            Payload::Noop | Payload::Membership(_) => Bytes::new(),
        }
    }

    /// The highest index whose effects the state machine holds durably; 0 when it keeps
    /// nothing across restarts.
    fn applied_index(&self) -> LogIndex {
        0
    }

    /// Captures the applied state for a snapshot and returns its source, or `None`
    /// when snapshots are not supported (the default: the node then never compacts).
    ///
    /// Runs on the node's thread: capture, do not encode. The source is moved to
    /// another thread and read there while the node keeps applying, so it must own a
    /// frozen view (a clone, an `Arc` of an immutable version, a checkpoint).
    fn snapshot(&mut self) -> Option<Box<dyn SnapshotChunks>> {
        None
    }

    /// Replaces the whole state with the snapshot read from `chunks` (made by
    /// [`snapshot`](Self::snapshot) on this or another node), described by `meta`.
    /// On an error the state must be unchanged (decode fully, then swap). The node
    /// calls it on its own thread while it installs a snapshot, and applies entries
    /// after `meta.last_included.index` afterwards.
    fn restore(
        &mut self,
        meta: &SnapshotMeta,
        chunks: &mut dyn SnapshotChunks,
    ) -> Result<(), SnapshotError> {
        let _ = (meta, chunks);
        Err(SnapshotError::Unsupported)
    }

    /// Offers to decode a received snapshot off the node's thread: a function the node
    /// runs on a blocking thread, with no access to the machine, that reads the chunks
    /// and returns the decoded state; the node then hands that state to
    /// [`install_decoded`](Self::install_decoded) on its own thread, which only swaps it
    /// in. The node keeps ticking and heartbeating while a large snapshot decodes.
    ///
    /// The default (`None`) makes the node call [`restore`](Self::restore) on its own
    /// thread instead, which is fine for small states. Implement both or neither.
    fn snapshot_decoder(&self) -> Option<SnapshotDecoder> {
        None
    }

    /// Replaces the whole state with `decoded`, made by the function
    /// [`snapshot_decoder`](Self::snapshot_decoder) returned, for the snapshot `meta`.
    /// Must be quick (a swap). On an error the state must be unchanged.
    fn install_decoded(
        &mut self,
        meta: &SnapshotMeta,
        decoded: DecodedSnapshot,
    ) -> Result<(), SnapshotError> {
        let _ = (meta, decoded);
        Err(SnapshotError::Unsupported)
    }
}

/// A snapshot's state decoded off the node's thread (see
/// [`StateMachine::snapshot_decoder`]): whatever the state machine's decoder returns,
/// handed back to the same state machine's
/// [`install_decoded`](StateMachine::install_decoded), which downcasts it.
pub type DecodedSnapshot = Box<dyn std::any::Any + Send>;

/// Decodes a snapshot's chunks into a [`DecodedSnapshot`], on a thread other than the
/// node's (see [`StateMachine::snapshot_decoder`]).
pub type SnapshotDecoder = Box<
    dyn FnOnce(&SnapshotMeta, &mut dyn SnapshotChunks) -> Result<DecodedSnapshot, SnapshotError>
        + Send,
>;

/// The error for a [`DecodedSnapshot`] of the wrong type.
pub fn foreign_decoded_snapshot() -> SnapshotError {
    SnapshotError::Malformed("a decoded snapshot of another state machine".into())
}

/// A boxed state machine is a state machine, so nodes can pick one at run time.
impl<M: StateMachine + ?Sized> StateMachine for Box<M> {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        (**self).apply(index, command)
    }

    fn apply_entry(&mut self, entry: &Entry) -> Bytes {
        (**self).apply_entry(entry)
    }

    fn applied_index(&self) -> LogIndex {
        (**self).applied_index()
    }

    fn snapshot(&mut self) -> Option<Box<dyn SnapshotChunks>> {
        (**self).snapshot()
    }

    fn restore(
        &mut self,
        meta: &SnapshotMeta,
        chunks: &mut dyn SnapshotChunks,
    ) -> Result<(), SnapshotError> {
        (**self).restore(meta, chunks)
    }

    fn snapshot_decoder(&self) -> Option<SnapshotDecoder> {
        (**self).snapshot_decoder()
    }

    fn install_decoded(
        &mut self,
        meta: &SnapshotMeta,
        decoded: DecodedSnapshot,
    ) -> Result<(), SnapshotError> {
        (**self).install_decoded(meta, decoded)
    }
}
