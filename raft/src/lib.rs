//! actraft: Raft consensus for replicated services.
//!
//! - [`core`]: the protocol as a deterministic, sans-IO state machine ([`core::RaftCore`]).
//! - [`driver`]: the node's own logic around the core (write merging and ordering,
//!   proposal bookkeeping, bounded applies), with no IO: the actix node and the simulator
//!   run the same driver.
//! - [`NodeBuilder`] / [`RaftHandle`]: one actix actor per Raft node, a thin shell that
//!   runs the driver against a [`LogStorage`], a [`Transport`] and your [`StateMachine`].
//! - [`session`]: client sessions, for exactly-once commands ([`session::SessionStateMachine`]).
//! - [`metrics`]: [`RaftMetrics`] snapshots, and the list of metrics recorded through the
//!   `metrics` facade.
//! - `testkit` (cargo feature): the deterministic simulator, the Figure 3 checker, and
//!   the conformance suites every storage and transport runs.
#![warn(missing_docs)]

pub mod core;
pub mod driver;
mod error;
pub mod metrics;
pub mod node;
pub mod session;
pub mod snapshot;
pub mod state_machine;
pub mod storage;
pub mod transport;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use crate::core::{
    ClusterConfig, Config, Entry, HardState, LogId, LogIndex, Membership, MembershipError, NodeId,
    ReadError, ReadMode, Role, Status, Term,
};
pub use driver::{CounterSnapshot, Limits};
pub use metrics::{FollowerProgress, RaftMetrics};
pub use node::{ClientError, NodeBuilder, NodeEvent, RaftHandle, StartError, Stopping, Submitted};
pub use snapshot::{SnapshotChunks, SnapshotError, SnapshotMeta, SnapshotStore};
pub use state_machine::{DecodedSnapshot, SnapshotDecoder, StateMachine};
pub use storage::{InvalidWrite, LogState, LogStorage, LogWrite, StorageError};
pub use transport::{Inbox, Member, Transport, TransportError};
