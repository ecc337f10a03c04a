//! Conversions between the core's messages and the wire's, both ways.
//!
//! Each direction is one exhaustive `match` per enum, with no wildcard arm: a new kind
//! in the core does not compile here until it has a wire form (a new tag, see the
//! [module rules](super)), and a new wire kind does not compile until it maps to the
//! core. Conversions move the entries' payloads ([`Bytes`](bytes::Bytes) are reference
//! counted), so they copy no command bytes.

use actraft::core;

use super::message::{
    AppendReply, AppendRequest, AppendResult, ClusterConfig, ConfigInstallSnapshotRequest,
    ConfigSnapshotMeta, ConflictHint, Entry, Envelope, InstallSnapshotReply, LogId, Membership,
    Message, Payload, ReadIndexReply, ReadIndexRequest, RoundAppendReply, RoundAppendRequest,
    SnapshotResult, TimeoutNow, VoteReply, VoteRequest,
};

impl From<core::Envelope> for Envelope {
    fn from(e: core::Envelope) -> Self {
        Self {
            from: e.from,
            to: e.to,
            message: e.message.into(),
        }
    }
}

impl From<Envelope> for core::Envelope {
    fn from(e: Envelope) -> Self {
        Self {
            from: e.from,
            to: e.to,
            message: e.message.into(),
        }
    }
}

impl From<core::Message> for Message {
    fn from(m: core::Message) -> Self {
        match m {
            core::Message::RequestVote(r) if r.leader_transfer => Message::TransferVote(r.into()),
            core::Message::RequestVote(r) => Message::RequestVote(r.into()),
            core::Message::RequestVoteReply(r) => Message::RequestVoteReply(r.into()),
            core::Message::PreVote(r) => Message::PreVote(r.into()),
            core::Message::PreVoteReply(r) => Message::PreVoteReply(r.into()),
            core::Message::AppendEntries(r) => Message::RoundAppendEntries(RoundAppendRequest {
                read_round: r.read_round,
                request: r.into(),
            }),
            core::Message::AppendEntriesReply(r) => {
                Message::RoundAppendEntriesReply(RoundAppendReply {
                    read_round: r.read_round,
                    reply: r.into(),
                })
            }
            core::Message::TimeoutNow(t) => Message::TimeoutNow(TimeoutNow {
                term: t.term,
                last_log: t.last_log.into(),
            }),
            core::Message::ReadIndex(r) => Message::ReadIndex(ReadIndexRequest {
                term: r.term,
                ctx: r.ctx,
            }),
            core::Message::ReadIndexReply(r) => Message::ReadIndexReply(ReadIndexReply {
                term: r.term,
                ctx: r.ctx,
                index: r.index,
            }),
            core::Message::InstallSnapshot(r) => {
                Message::ConfigInstallSnapshot(ConfigInstallSnapshotRequest {
                    term: r.term,
                    meta: ConfigSnapshotMeta {
                        last_included: r.meta.last_included.into(),
                        config: r.meta.membership.into(),
                    },
                    offset: r.offset,
                    data: r.data,
                    done: r.done,
                })
            }
            core::Message::InstallSnapshotReply(r) => {
                Message::InstallSnapshotReply(InstallSnapshotReply {
                    term: r.term,
                    last_included: r.last_included.into(),
                    result: match r.result {
                        core::SnapshotResult::Stored { offset } => {
                            SnapshotResult::Stored { offset }
                        }
                        core::SnapshotResult::Resend { offset } => {
                            SnapshotResult::Resend { offset }
                        }
                        core::SnapshotResult::Installed => SnapshotResult::Installed,
                    },
                })
            }
        }
    }
}

impl From<Message> for core::Message {
    fn from(m: Message) -> Self {
        match m {
            Message::RequestVote(r) => core::Message::RequestVote(r.into()),
            Message::RequestVoteReply(r) => core::Message::RequestVoteReply(r.into()),
            Message::PreVote(r) => core::Message::PreVote(r.into()),
            Message::PreVoteReply(r) => core::Message::PreVoteReply(r.into()),
            Message::AppendEntries(r) => core::Message::AppendEntries(r.into()),
            Message::AppendEntriesReply(r) => core::Message::AppendEntriesReply(r.into()),
            Message::TransferVote(r) => core::Message::RequestVote(core::VoteRequest {
                leader_transfer: true,
                ..r.into()
            }),
            Message::TimeoutNow(t) => core::Message::TimeoutNow(core::TimeoutNow {
                term: t.term,
                last_log: t.last_log.into(),
            }),
            Message::ReadIndex(r) => core::Message::ReadIndex(core::ReadIndexRequest {
                term: r.term,
                ctx: r.ctx,
            }),
            Message::ReadIndexReply(r) => core::Message::ReadIndexReply(core::ReadIndexReply {
                term: r.term,
                ctx: r.ctx,
                index: r.index,
            }),
            Message::RoundAppendEntries(r) => core::Message::AppendEntries(core::AppendRequest {
                read_round: r.read_round,
                ..r.request.into()
            }),
            Message::RoundAppendEntriesReply(r) => {
                core::Message::AppendEntriesReply(core::AppendReply {
                    read_round: r.read_round,
                    ..r.reply.into()
                })
            }
            // Version 3: a member list, read as a stable configuration of those voters.
            Message::InstallSnapshot(r) => {
                core::Message::InstallSnapshot(Box::new(core::InstallSnapshotRequest {
                    term: r.term,
                    meta: actraft::SnapshotMeta {
                        last_included: r.meta.last_included.into(),
                        membership: core::ClusterConfig::bootstrap(r.meta.membership),
                    },
                    offset: r.offset,
                    data: r.data,
                    done: r.done,
                }))
            }
            Message::ConfigInstallSnapshot(r) => {
                core::Message::InstallSnapshot(Box::new(core::InstallSnapshotRequest {
                    term: r.term,
                    meta: actraft::SnapshotMeta {
                        last_included: r.meta.last_included.into(),
                        membership: r.meta.config.into(),
                    },
                    offset: r.offset,
                    data: r.data,
                    done: r.done,
                }))
            }
            Message::InstallSnapshotReply(r) => {
                core::Message::InstallSnapshotReply(core::InstallSnapshotReply {
                    term: r.term,
                    last_included: r.last_included.into(),
                    result: match r.result {
                        SnapshotResult::Stored { offset } => {
                            core::SnapshotResult::Stored { offset }
                        }
                        SnapshotResult::Resend { offset } => {
                            core::SnapshotResult::Resend { offset }
                        }
                        SnapshotResult::Installed => core::SnapshotResult::Installed,
                    },
                })
            }
        }
    }
}

impl From<core::LogId> for LogId {
    fn from(id: core::LogId) -> Self {
        Self {
            term: id.term,
            index: id.index,
        }
    }
}

impl From<LogId> for core::LogId {
    fn from(id: LogId) -> Self {
        core::LogId::new(id.term, id.index)
    }
}

impl From<core::VoteRequest> for VoteRequest {
    fn from(r: core::VoteRequest) -> Self {
        Self {
            term: r.term,
            last_log: r.last_log.into(),
        }
    }
}

/// The plain form: the caller sets `leader_transfer` for a [`Message::TransferVote`].
impl From<VoteRequest> for core::VoteRequest {
    fn from(r: VoteRequest) -> Self {
        Self {
            term: r.term,
            last_log: r.last_log.into(),
            leader_transfer: false,
        }
    }
}

impl From<core::VoteReply> for VoteReply {
    fn from(r: core::VoteReply) -> Self {
        Self {
            term: r.term,
            granted: r.granted,
        }
    }
}

impl From<VoteReply> for core::VoteReply {
    fn from(r: VoteReply) -> Self {
        Self {
            term: r.term,
            granted: r.granted,
        }
    }
}

impl From<core::AppendRequest> for AppendRequest {
    fn from(r: core::AppendRequest) -> Self {
        Self {
            term: r.term,
            prev_log: r.prev_log.into(),
            entries: r.entries.into_iter().map(Entry::from).collect(),
            leader_commit: r.leader_commit,
        }
    }
}

/// The version 1 form: no read round (the caller sets it for a round message).
impl From<AppendRequest> for core::AppendRequest {
    fn from(r: AppendRequest) -> Self {
        Self {
            term: r.term,
            prev_log: r.prev_log.into(),
            entries: r.entries.into_iter().map(core::Entry::from).collect(),
            leader_commit: r.leader_commit,
            read_round: 0,
        }
    }
}

impl From<core::AppendReply> for AppendReply {
    fn from(r: core::AppendReply) -> Self {
        Self {
            term: r.term,
            result: r.result.into(),
        }
    }
}

/// The version 1 form: no read round (the caller sets it for a round message).
impl From<AppendReply> for core::AppendReply {
    fn from(r: AppendReply) -> Self {
        Self {
            term: r.term,
            result: r.result.into(),
            read_round: 0,
        }
    }
}

impl From<core::AppendResult> for AppendResult {
    fn from(r: core::AppendResult) -> Self {
        match r {
            core::AppendResult::Success { match_index } => AppendResult::Success { match_index },
            core::AppendResult::Conflict { rejected, hint } => AppendResult::Conflict {
                rejected,
                hint: ConflictHint {
                    term: hint.term,
                    index: hint.index,
                },
            },
        }
    }
}

impl From<AppendResult> for core::AppendResult {
    fn from(r: AppendResult) -> Self {
        match r {
            AppendResult::Success { match_index } => core::AppendResult::Success { match_index },
            AppendResult::Conflict { rejected, hint } => core::AppendResult::Conflict {
                rejected,
                hint: core::ConflictHint {
                    term: hint.term,
                    index: hint.index,
                },
            },
        }
    }
}

impl From<core::Entry> for Entry {
    fn from(e: core::Entry) -> Self {
        Self {
            term: e.term,
            index: e.index,
            payload: e.payload.into(),
        }
    }
}

impl From<Entry> for core::Entry {
    fn from(e: Entry) -> Self {
        Self {
            term: e.term,
            index: e.index,
            payload: e.payload.into(),
        }
    }
}

impl From<core::Payload> for Payload {
    fn from(p: core::Payload) -> Self {
        match p {
            core::Payload::Command(bytes) => Payload::Command(bytes),
            core::Payload::Noop => Payload::Noop,
            core::Payload::Membership(c) => Payload::Membership((*c).into()),
        }
    }
}

impl From<Payload> for core::Payload {
    fn from(p: Payload) -> Self {
        match p {
            Payload::Command(bytes) => core::Payload::Command(bytes),
            Payload::Noop => core::Payload::Noop,
            Payload::Membership(c) => core::Payload::Membership(Box::new(c.into())),
        }
    }
}

impl From<core::ClusterConfig> for ClusterConfig {
    fn from(c: core::ClusterConfig) -> Self {
        match c {
            core::ClusterConfig::Stable(m) => ClusterConfig::Stable(m.into()),
            core::ClusterConfig::Joint { old, new } => ClusterConfig::Joint {
                old: old.into(),
                new: new.into(),
            },
        }
    }
}

impl From<ClusterConfig> for core::ClusterConfig {
    fn from(c: ClusterConfig) -> Self {
        match c {
            ClusterConfig::Stable(m) => core::ClusterConfig::Stable(m.into()),
            ClusterConfig::Joint { old, new } => core::ClusterConfig::Joint {
                old: old.into(),
                new: new.into(),
            },
        }
    }
}

impl From<core::Membership> for Membership {
    fn from(m: core::Membership) -> Self {
        Self {
            voters: m.voters().iter().copied().collect(),
            learners: m.learners().iter().copied().collect(),
            addresses: m
                .addresses()
                .iter()
                .map(|(&id, a)| (id, a.clone()))
                .collect(),
        }
    }
}

/// A node listed as voter and learner is a voter; addresses of non-members are dropped.
impl From<Membership> for core::Membership {
    fn from(m: Membership) -> Self {
        m.addresses.into_iter().fold(
            core::Membership::new(m.voters, m.learners),
            |acc, (id, address)| acc.with_address(id, address),
        )
    }
}
