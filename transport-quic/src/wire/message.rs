//! The Raft messages as they travel: plain data, one type per shape, frozen by the
//! golden test. See the [module rules](super) before changing anything here.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A message addressed from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub from: u64,
    /// The node the message is for.
    pub to: u64,
    /// The RPC itself.
    pub message: Message,
}

/// One Raft RPC or reply. New kinds go at the end, with the next tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Tag 0. A candidate asks for a vote.
    RequestVote(VoteRequest),
    /// Tag 1. The answer to a `RequestVote`.
    RequestVoteReply(VoteReply),
    /// Tag 2. A would-be candidate asks whether it could win.
    PreVote(VoteRequest),
    /// Tag 3. The answer to a `PreVote`.
    PreVoteReply(VoteReply),
    /// Tag 4. The leader replicates entries, or sends a heartbeat (no entries).
    AppendEntries(AppendRequest),
    /// Tag 5. The answer to an `AppendEntries`.
    AppendEntriesReply(AppendReply),
    /// Tag 6 (version 2). A `RequestVote` of a candidate that campaigns because the
    /// leader handed leadership to it: voters grant it even within the leader lease.
    TransferVote(VoteRequest),
    /// Tag 7 (version 2). The leader tells the target of a leadership transfer to
    /// campaign at once.
    TimeoutNow(TimeoutNow),
    /// Tag 8 (version 2). A follower asks the leader for a read index.
    ReadIndex(ReadIndexRequest),
    /// Tag 9 (version 2). The leader answers a `ReadIndex`.
    ReadIndexReply(ReadIndexReply),
    /// Tag 10 (version 2). An `AppendEntries` that carries the leader's read round.
    RoundAppendEntries(RoundAppendRequest),
    /// Tag 11 (version 2). An `AppendEntriesReply` that echoes the request's read round.
    RoundAppendEntriesReply(RoundAppendReply),
    /// Tag 12 (version 3). One chunk of the leader's snapshot.
    InstallSnapshot(InstallSnapshotRequest),
    /// Tag 13 (version 3). The answer to an `InstallSnapshot`.
    InstallSnapshotReply(InstallSnapshotReply),
    /// Tag 14 (version 4). One chunk of the leader's snapshot, whose metadata carries
    /// the cluster configuration (version 3's `InstallSnapshot` carried a member list).
    ConfigInstallSnapshot(ConfigInstallSnapshotRequest),
}

/// Where a snapshot sits in the log, and the configuration in force there (version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSnapshotMeta {
    /// The last entry the snapshot includes.
    pub last_included: LogId,
    /// The configuration in force at that entry.
    pub config: ClusterConfig,
}

/// Arguments of InstallSnapshot with the configuration in its metadata (version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigInstallSnapshotRequest {
    /// The leader's term.
    pub term: u64,
    /// The snapshot the chunk belongs to.
    pub meta: ConfigSnapshotMeta,
    /// Where the chunk starts in the snapshot's bytes.
    pub offset: u64,
    /// The chunk's bytes.
    pub data: Bytes,
    /// True on the last chunk.
    pub done: bool,
}

/// One cluster configuration (version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The voters, ascending.
    pub voters: Vec<u64>,
    /// The learners, ascending.
    pub learners: Vec<u64>,
    /// (member, address) pairs, ascending by member.
    pub addresses: Vec<(u64, String)>,
}

/// The configuration a node obeys (version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterConfig {
    /// Tag 0. One configuration.
    Stable(Membership),
    /// Tag 1. The joint configuration of a change in progress.
    Joint {
        /// The configuration the change started from.
        old: Membership,
        /// The configuration the change goes to.
        new: Membership,
    },
}

/// Where a snapshot sits in the log, and the membership it reflects (version 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last entry the snapshot includes.
    pub last_included: LogId,
    /// The members as of that entry.
    pub membership: Vec<u64>,
}

/// Arguments of InstallSnapshot: one chunk (version 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotRequest {
    /// The leader's term.
    pub term: u64,
    /// The snapshot the chunk belongs to.
    pub meta: SnapshotMeta,
    /// Where the chunk starts in the snapshot's bytes.
    pub offset: u64,
    /// The chunk's bytes.
    pub data: Bytes,
    /// True on the last chunk.
    pub done: bool,
}

/// Reply to InstallSnapshot (version 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotReply {
    /// The follower's term.
    pub term: u64,
    /// The snapshot answered about.
    pub last_included: LogId,
    /// What the follower did.
    pub result: SnapshotResult,
}

/// Outcome of an InstallSnapshot (version 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotResult {
    /// Tag 0. Every byte before `offset` is stored.
    Stored {
        /// The first byte not held yet.
        offset: u64,
    },
    /// Tag 1. Send again from `offset`.
    Resend {
        /// The first byte needed.
        offset: u64,
    },
    /// Tag 2. The snapshot is installed.
    Installed,
}

/// Arguments of ReadIndex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    /// The follower's term.
    pub term: u64,
    /// Names the request among the follower's reads in flight.
    pub ctx: u64,
}

/// Reply to ReadIndex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexReply {
    /// The leader's term.
    pub term: u64,
    /// The request's `ctx`.
    pub ctx: u64,
    /// The read index; `None` when the leader could not confirm its leadership.
    pub index: Option<u64>,
}

/// An AppendEntries with the leader's read round (version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundAppendRequest {
    /// The leader's read round when it sent the request.
    pub read_round: u64,
    /// The request itself.
    pub request: AppendRequest,
}

/// An AppendEntriesReply with the read round it answers (version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundAppendReply {
    /// The `read_round` of the request answered.
    pub read_round: u64,
    /// The reply itself.
    pub reply: AppendReply,
}

/// Arguments of TimeoutNow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The leader's term.
    pub term: u64,
    /// The leader's last log entry, which the recipient is known to hold.
    pub last_log: LogId,
}

/// A (term, index) log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogId {
    /// Term of the entry.
    pub term: u64,
    /// Index of the entry.
    pub index: u64,
}

/// Arguments of RequestVote and PreVote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The candidate's term (for a pre-vote: the term it would campaign in).
    pub term: u64,
    /// The candidate's last log entry.
    pub last_log: LogId,
}

/// Reply to RequestVote or PreVote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteReply {
    /// The voter's term (for a granted pre-vote: the term asked about).
    pub term: u64,
    /// True when the vote is granted.
    pub granted: bool,
}

/// Arguments of AppendEntries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// The leader's term.
    pub term: u64,
    /// The entry just before `entries`.
    pub prev_log: LogId,
    /// Entries to store; empty for a heartbeat.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: u64,
}

/// Reply to AppendEntries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReply {
    /// The follower's term.
    pub term: u64,
    /// What the follower did with the request.
    pub result: AppendResult,
}

/// Outcome of an AppendEntries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
    /// Tag 0. The consistency check passed.
    Success {
        /// Last index known to match the leader's log, durable on the follower.
        match_index: u64,
    },
    /// Tag 1. The consistency check failed.
    Conflict {
        /// The `prev_log.index` that did not match.
        rejected: u64,
        /// Where the leader should look next.
        hint: ConflictHint,
    },
}

/// The fast back-up hint of a rejected AppendEntries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictHint {
    /// The follower's term at the rejected index; `None` when its log is shorter.
    pub term: Option<u64>,
    /// The first index of that term, or the follower's last index + 1.
    pub index: u64,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created it.
    pub term: u64,
    /// Its position in the log.
    pub index: u64,
    /// What it carries.
    pub payload: Payload,
}

/// What an entry carries. New kinds go at the end, with the next tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Tag 0. A client command, opaque to Raft.
    Command(Bytes),
    /// Tag 1. The empty entry a new leader appends in its term.
    Noop,
    /// Tag 2 (version 4). A cluster configuration.
    Membership(ClusterConfig),
}
