//! Checks every inbound message before it can change anything.
//!
//! Raft tolerates lost, late and duplicated messages, but not malformed ones: an
//! AppendEntries whose entries do not follow `prev_log`, or that would overwrite a
//! committed entry, corrupts the log if it is taken at face value. A peer with a bug, a
//! version mismatch or a corrupting network can send such a message; the core refuses it
//! with a typed [`Malformed`] reason and changes no state, not even its term.
//!
//! What is *not* refused here: anything an honest peer can send. A reply from a term
//! already left behind, a duplicate, a vote reply to a campaign that is over, a heartbeat
//! for a follower whose log is behind: all of these are part of normal operation and are
//! handled (mostly ignored) by the protocol code.

use super::error::{Malformed, StepError};
use super::install::{InstallSnapshotReply, InstallSnapshotRequest};
use super::message::{AppendRequest, AppendResult, Message, VoteRequest};
use super::types::{NodeId, Role};
use super::RaftCore;

impl RaftCore {
    /// Refuses `message` from `from` if no honest peer could have sent it.
    pub(super) fn validate(&self, from: NodeId, message: &Message) -> Result<(), StepError> {
        let reason = match message {
            Message::RequestVote(req) | Message::PreVote(req) => check_vote_request(req),
            Message::AppendEntries(req) => self.check_append(req),
            Message::AppendEntriesReply(rep) => self.check_append_reply(rep.term, &rep.result),
            Message::RequestVoteReply(_) | Message::PreVoteReply(_) => None,
            Message::TimeoutNow(req) => self.check_timeout_now(from, req.term),
            Message::ReadIndex(_) => None,
            // Only a leader answers with a read index: one for this node's own leadership
            // term claims a second leader.
            Message::ReadIndexReply(rep)
                if rep.index.is_some() && rep.term == self.term() && self.role == Role::Leader =>
            {
                Some(Malformed::SecondLeader { term: rep.term })
            }
            Message::ReadIndexReply(_) => None,
            Message::InstallSnapshot(req) => self.check_install(req),
            Message::InstallSnapshotReply(rep) => self.check_install_reply(rep),
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(StepError::Malformed {
                from,
                kind: message.kind(),
                reason,
            }),
        }
    }

    fn check_append(&self, req: &AppendRequest) -> Option<Malformed> {
        if req.prev_log.term > req.term {
            return Some(Malformed::PrevTermAboveMessage {
                prev_term: req.prev_log.term,
                term: req.term,
            });
        }
        if req.prev_log.index == 0 && req.prev_log.term != 0 {
            return Some(Malformed::PrevTermAboveMessage {
                prev_term: req.prev_log.term,
                term: 0,
            });
        }
        let mut last_term = req.prev_log.term;
        for (expected, entry) in (req.prev_log.index + 1..).zip(&req.entries) {
            if entry.index != expected {
                return Some(Malformed::NotContiguous {
                    expected,
                    found: entry.index,
                });
            }
            if entry.term < last_term {
                return Some(Malformed::TermDecreases {
                    index: entry.index,
                    term: entry.term,
                    before: last_term,
                });
            }
            if let super::types::Payload::Membership(config) = &entry.payload {
                if config.halves().any(|m| m.voters().is_empty()) {
                    return Some(Malformed::NoVoters { index: entry.index });
                }
            }
            if entry.term > req.term {
                return Some(Malformed::EntryTermAboveMessage {
                    index: entry.index,
                    entry_term: entry.term,
                    term: req.term,
                });
            }
            last_term = entry.term;
        }
        let last_new = req.prev_log.index + req.entries.len() as u64;
        if req.leader_commit > last_new {
            return Some(Malformed::CommitBeyondMessage {
                leader_commit: req.leader_commit,
                last: last_new,
            });
        }
        if req.term == self.term() && self.role == Role::Leader {
            // Election Safety makes a second leader in one term impossible: whoever
            // claims it is broken, and following it would fork the log.
            return Some(Malformed::SecondLeader { term: req.term });
        }
        if req.term >= self.term() {
            // The message may be taken as from the leader of its term: it must not
            // contradict what this node already knows committed.
            let prev_ok = req.prev_log.index > self.commit
                || req.prev_log.index < self.log.prefix().index
                || self.log.term_at(req.prev_log.index) == Some(req.prev_log.term);
            if !prev_ok {
                return Some(Malformed::ContradictsCommitted {
                    index: req.prev_log.index,
                });
            }
            for entry in &req.entries {
                if entry.index > self.commit {
                    break;
                }
                if let Some(t) = self.log.term_at(entry.index) {
                    if t != entry.term {
                        return Some(Malformed::ContradictsCommitted { index: entry.index });
                    }
                }
            }
        }
        None
    }

    fn check_install(&self, req: &InstallSnapshotRequest) -> Option<Malformed> {
        let last = req.meta.last_included;
        if last.index == 0 || last.term == 0 || last.term > req.term {
            return Some(Malformed::ImpossibleSnapshot {
                index: last.index,
                last_term: last.term,
                term: req.term,
            });
        }
        let len = req.data.len() as u64;
        if (!req.done && len == 0) || req.offset.checked_add(len).is_none() {
            return Some(Malformed::BadSnapshotChunk {
                offset: req.offset,
                len,
            });
        }
        if req.term == self.term() && self.role == Role::Leader {
            return Some(Malformed::SecondLeader { term: req.term });
        }
        if req.term >= self.term() && last.index <= self.commit {
            // A snapshot of committed state must agree with the committed entries.
            if let Some(t) = self.log.term_at(last.index) {
                if t != last.term {
                    return Some(Malformed::ContradictsCommitted { index: last.index });
                }
            }
        }
        None
    }

    fn check_install_reply(&self, rep: &InstallSnapshotReply) -> Option<Malformed> {
        if self.role != Role::Leader || rep.term != self.term() {
            return None;
        }
        let last = self.log.last_index();
        if rep.last_included.index > last {
            return Some(Malformed::NeverSent {
                index: rep.last_included.index,
                last,
            });
        }
        None
    }

    fn check_append_reply(&self, term: u64, result: &AppendResult) -> Option<Malformed> {
        // Only a reply in this node's own leadership term can be checked against what it
        // sent; older and newer ones are dealt with by the term rules.
        if self.role != Role::Leader || term != self.term() {
            return None;
        }
        let last = self.log.last_index();
        match *result {
            AppendResult::Success { match_index } if match_index > last => {
                Some(Malformed::NeverSent {
                    index: match_index,
                    last,
                })
            }
            AppendResult::Conflict { rejected, hint } if rejected > last || hint.index == 0 => {
                Some(Malformed::NeverSent {
                    index: rejected,
                    last,
                })
            }
            _ => None,
        }
    }
}

fn check_vote_request(req: &VoteRequest) -> Option<Malformed> {
    if req.last_log.term > req.term {
        return Some(Malformed::CandidateLogAboveTerm {
            last_term: req.last_log.term,
            term: req.term,
        });
    }
    if req.last_log.index == 0 && req.last_log.term != 0 {
        return Some(Malformed::CandidateLogAboveTerm {
            last_term: req.last_log.term,
            term: 0,
        });
    }
    None
}
