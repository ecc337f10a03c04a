//! The wire format: the types that travel on a stream, kept apart from the core's own
//! structs so that a refactor of the core never changes the protocol by accident.
//!
//! A stream carries one [`Frame::Hello`] first, then only [`Frame::Message`]s. The
//! [`codec`](crate::codec) turns a [`Frame`] into bytes and back; [`convert`] maps the
//! core's [`Envelope`](actraft::core::Envelope) to the wire's [`Envelope`] and back.
//!
//! # Versions
//!
//! Every stream opens with a [`Hello`] naming the sender's [`PROTOCOL_VERSION`]. A
//! receiver accepts the stream only if that version is one of its
//! [`SUPPORTED_VERSIONS`]; otherwise it closes the connection with
//! [`QuicError::Version`](crate::QuicError::Version). Whatever else changes, a hello
//! always starts with its frame tag (0) and the version, so that a receiver can read the
//! version of a peer whose hello it could not otherwise decode, and refuse it by name.
//!
//! # Rules for changing the format
//!
//! Enums are tagged by the position of their variants (the tag of each is written on
//! it), and structs are their fields in declaration order. So:
//!
//! - **Never reorder, rename the meaning of, or remove** a variant or a field of a type
//!   here. Retire a variant by leaving it in place.
//! - **A new message kind** (a snapshot chunk, `TimeoutNow`, a read-index heartbeat
//!   context, ...) is a new variant at the end of [`Message`]; **a new entry payload**
//!   (a membership change, ...) is a new variant at the end of [`Payload`]. Old encodings
//!   stay byte for byte what they were, so the new build still reads the old version.
//! - **A new field on an existing message** changes that message's bytes. Give the new
//!   shape a new variant instead (a heartbeat that carries a read-index context is a new
//!   kind beside `AppendEntries`), so that frames of the old shape keep decoding.
//! - Each new wire kind gets its arm in [`convert`]; the core's `Message` and `Payload`
//!   are exhaustive on purpose, so a kind added there does not compile here until it has
//!   a wire form.
//! - **Any change** to what a build sends is a new [`PROTOCOL_VERSION`], with its own
//!   golden file (`tests/golden/wire-v<N>.txt`); the previous version stays in
//!   [`SUPPORTED_VERSIONS`] (and its golden file in the tests) for as long as this build
//!   should talk to peers that speak it. A peer must not be sent a kind its version does
//!   not know.
//!
//! The golden test (`tests/golden.rs`) fails whenever the bytes of a version's samples
//! change. To record a new version's file, bump [`PROTOCOL_VERSION`] and run
//! `ACTRAFT_BLESS_WIRE=1 cargo test -p actraft-transport-quic --test golden`: it writes
//! the file of the current version only when that file does not exist yet, so an
//! existing version's bytes can never be re-blessed.

pub mod convert;
mod message;

use serde::{Deserialize, Serialize};

pub use message::{
    AppendReply, AppendRequest, AppendResult, ClusterConfig, ConfigInstallSnapshotRequest,
    ConfigSnapshotMeta, ConflictHint, Entry, Envelope, InstallSnapshotReply,
    InstallSnapshotRequest, LogId, Membership, Message, Payload, ReadIndexReply, ReadIndexRequest,
    RoundAppendReply, RoundAppendRequest, SnapshotMeta, SnapshotResult, TimeoutNow, VoteReply,
    VoteRequest,
};

/// The wire protocol version this build sends in every [`Hello`].
pub const PROTOCOL_VERSION: u16 = 4;

/// The versions this build accepts from a peer. It decodes every one of them.
///
/// Versions 1 to 3 are refused: version 1 knows neither leadership transfer nor read
/// rounds, version 2 not InstallSnapshot, version 3 neither membership entries nor
/// configurations in snapshots, so a node of this build could send them kinds they
/// cannot read. Their frames still decode (the golden test keeps them; a version 3
/// snapshot's member list reads as a stable configuration of those voters), but a
/// cluster upgrades from them all at once.
pub const SUPPORTED_VERSIONS: &[u16] = &[4];

/// Versions whose frames this build still decodes although it refuses their peers.
pub const RETIRED_VERSIONS: &[u16] = &[1, 2, 3];

/// One unit on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Tag 0. Opens a stream: who is talking, for which cluster, in which version.
    Hello(Hello),
    /// Tag 1. A Raft message.
    Message(Envelope),
}

/// The first frame of every stream.
///
/// The sender's identity is proven by its certificate, not by this frame: the receiver
/// checks the version first, then that `from` agrees with the certificate and that
/// `cluster` is its own, before it reads anything else from the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's [`PROTOCOL_VERSION`]. Always the first field, in every version.
    pub version: u16,
    /// The cluster the sender belongs to.
    pub cluster: String,
    /// The sending node.
    pub from: u64,
    /// A random number the sender draws each time its transport starts. A new value
    /// tells the receiver that the peer restarted, so that it drops its own (now stale)
    /// connection to that peer at once instead of waiting for an idle timeout.
    pub instance: u64,
}
