//! The RPCs nodes exchange (Figure 2), plus Pre-Vote. Every message carries the sender's
//! term; the envelope carries the sender and the recipient.

use serde::{Deserialize, Serialize};

use super::types::{Entry, LogId, LogIndex, NodeId, Term};

/// A message addressed from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub from: NodeId,
    /// The node the message is for.
    pub to: NodeId,
    /// The RPC itself.
    pub message: Message,
}

/// One Raft RPC or RPC reply.
///
/// Deliberately exhaustive: a transport that encodes messages maps each kind to its own
/// versioned wire form, and a new kind must fail to compile there until it has one,
/// rather than be dropped by a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A candidate asks for a vote (§5.2).
    RequestVote(VoteRequest),
    /// A voter answers a [`Message::RequestVote`].
    RequestVoteReply(VoteReply),
    /// A would-be candidate asks whether it could win, without raising any term.
    PreVote(VoteRequest),
    /// A voter answers a [`Message::PreVote`].
    PreVoteReply(VoteReply),
    /// The leader replicates entries; with no entries it is a heartbeat (§5.3).
    AppendEntries(AppendRequest),
    /// A follower answers an [`Message::AppendEntries`].
    AppendEntriesReply(AppendReply),
    /// The leader hands over leadership: the recipient, whose log it knows is up to
    /// date, campaigns at once (thesis §3.10).
    TimeoutNow(TimeoutNow),
    /// A follower asks the leader for a read index (follower reads, thesis §6.4).
    ReadIndex(ReadIndexRequest),
    /// The leader answers a [`Message::ReadIndex`].
    ReadIndexReply(ReadIndexReply),
    /// The leader streams one chunk of its latest snapshot to a follower whose next
    /// entry it no longer holds (§7).
    InstallSnapshot(Box<super::InstallSnapshotRequest>),
    /// A follower answers a [`Message::InstallSnapshot`].
    InstallSnapshotReply(super::InstallSnapshotReply),
}

impl Message {
    /// The term the message carries.
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote(m) | Message::PreVote(m) => m.term,
            Message::RequestVoteReply(m) | Message::PreVoteReply(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendEntriesReply(m) => m.term,
            Message::TimeoutNow(m) => m.term,
            Message::ReadIndex(m) => m.term,
            Message::ReadIndexReply(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotReply(m) => m.term,
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::RequestVote(_) => "RequestVote",
            Message::RequestVoteReply(_) => "RequestVoteReply",
            Message::PreVote(_) => "PreVote",
            Message::PreVoteReply(_) => "PreVoteReply",
            Message::AppendEntries(_) => "AppendEntries",
            Message::AppendEntriesReply(_) => "AppendEntriesReply",
            Message::TimeoutNow(_) => "TimeoutNow",
            Message::ReadIndex(_) => "ReadIndex",
            Message::ReadIndexReply(_) => "ReadIndexReply",
            Message::InstallSnapshot(_) => "InstallSnapshot",
            Message::InstallSnapshotReply(_) => "InstallSnapshotReply",
        }
    }

    /// True for the requests a node takes from a node outside its configuration
    /// (Raft §6: servers process incoming requests without consulting their
    /// configuration): AppendEntries, InstallSnapshot and TimeoutNow, which only a
    /// leader sends (one whose configuration is ahead of the recipient's log, one being
    /// removed that leads until its removal commits), and RequestVote and PreVote (a
    /// voter of a configuration the recipient has not seen yet). Replies and reads are
    /// taken from members only. A transport that refuses non-members refuses only the
    /// messages for which this is false, so that it refuses no more than the core does.
    pub fn accepted_from_non_members(&self) -> bool {
        matches!(
            self,
            Message::AppendEntries(_)
                | Message::InstallSnapshot(_)
                | Message::TimeoutNow(_)
                | Message::RequestVote(_)
                | Message::PreVote(_)
        )
    }

    /// True for the small, latency-critical messages (votes, replies, heartbeats) that a
    /// transport should never queue behind a large AppendEntries.
    pub fn is_urgent(&self) -> bool {
        match self {
            Message::AppendEntries(m) => m.entries.is_empty(),
            Message::InstallSnapshot(_) => false,
            _ => true,
        }
    }
}

/// Arguments of RequestVote and of PreVote.
///
/// For PreVote, `term` is the term the sender *would* campaign in (its current term + 1);
/// nobody adopts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// Candidate's term (for PreVote: the proposed next term).
    pub term: Term,
    /// The candidate's last log entry, for the §5.4.1 up-to-date check.
    pub last_log: LogId,
    /// Set on the RequestVote of a candidate that campaigns because the leader handed
    /// leadership to it ([`Message::TimeoutNow`]): voters grant it even within the
    /// CheckQuorum leader lease (thesis §3.10). Always false on a PreVote.
    pub leader_transfer: bool,
}

/// Reply to RequestVote or PreVote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteReply {
    /// For a granted PreVote, the term asked about; otherwise the voter's current term.
    pub term: Term,
    /// True when the vote is granted.
    pub granted: bool,
}

/// Arguments of AppendEntries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// Leader's term.
    pub term: Term,
    /// The entry just before `entries`, for the consistency check.
    pub prev_log: LogId,
    /// Entries to store; empty for a heartbeat.
    pub entries: Vec<Entry>,
    /// Leader's commit index.
    pub leader_commit: LogIndex,
    /// The leader's read round when it sent this message (0 when it never started one).
    /// The follower echoes it in its reply, so that the leader can tell an
    /// acknowledgement given after a read began from an older one.
    pub read_round: u64,
}

/// Reply to AppendEntries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReply {
    /// The follower's current term.
    pub term: Term,
    /// On success, the follower's log matches the leader's up to here, and every entry up
    /// to here is durable on the follower.
    pub result: AppendResult,
    /// The `read_round` of the request answered (0 for an answer to a stale term).
    pub read_round: u64,
}

/// Outcome of an AppendEntries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
    /// The consistency check passed; the follower's log matches the leader's up to
    /// `match_index` and those entries are durable.
    Success {
        /// Last index known to match the leader's log.
        match_index: LogIndex,
    },
    /// The consistency check failed at `rejected` (the request's `prev_log.index`).
    Conflict {
        /// The `prev_log.index` that did not match.
        rejected: LogIndex,
        /// Where the leader should look next.
        hint: ConflictHint,
    },
}

/// The fast back-up hint of a rejected AppendEntries: it lets the leader skip a whole
/// conflicting term per round trip instead of one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictHint {
    /// The term of the follower's entry at the rejected index, or `None` when the
    /// follower's log is shorter than that index.
    pub term: Option<Term>,
    /// With `term`: the first index the follower holds in that term. Without: the
    /// follower's last index + 1.
    pub index: LogIndex,
}

/// Arguments of TimeoutNow: the leader of `term` asks the recipient to campaign now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The leader's term.
    pub term: Term,
    /// The leader's last log entry, which the recipient is known to hold. A recipient
    /// whose log is behind it ignores the message (it could not win).
    pub last_log: LogId,
}

/// A follower's request for a read index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    /// The follower's current term.
    pub term: Term,
    /// Names the request among the follower's reads in flight; echoed in the reply.
    pub ctx: u64,
}

/// The leader's answer to a [`ReadIndexRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexReply {
    /// The leader's current term.
    pub term: Term,
    /// The request's `ctx`.
    pub ctx: u64,
    /// The read index: every entry committed before the request reached the leader is
    /// at or below it. `None` when the node could not confirm its leadership.
    pub index: Option<LogIndex>,
}
