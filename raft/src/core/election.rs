//! Leader election (§5.2, §5.4.1), Pre-Vote and the CheckQuorum lease.

use std::time::Duration;

use super::message::{AppendReply, AppendResult, ConflictHint, Message, VoteReply, VoteRequest};
use super::output::{Event, VoteRefusal};
use super::progress::Progress;
use super::types::{NodeId, Payload, Role, Term};
use super::RaftCore;

impl RaftCore {
    /// CheckQuorum's lease: a leader, or a follower that heard from its leader recently,
    /// refuses to help anyone else win an election.
    ///
    /// "Recently" is the minimum election timeout less half a heartbeat interval. A live
    /// leader is heard every heartbeat interval, well within that window; a candidate
    /// whose timer fired (never sooner than the minimum timeout after its own last
    /// contact) finds the others' leases expired even when the leader's last heartbeat
    /// reached them a little after it reached the candidate.
    pub(super) fn in_lease(&self) -> bool {
        if !self.config.check_quorum {
            return false;
        }
        if self.boot_guard() {
            return true;
        }
        let window = self.config.election_timeout_min - self.config.heartbeat_interval / 2;
        match (self.role, self.leader, self.leader_contact) {
            (Role::Leader, _, _) => true,
            (_, Some(_), Some(at)) => self.now < at + window,
            _ => false,
        }
    }

    /// Does a majority, this node included, count as heard from within the minimum
    /// election timeout?
    pub(super) fn quorum_active(&self) -> bool {
        let window = self.config.election_timeout_min;
        self.configs.current().has_quorum(|id| {
            id == self.id
                || self
                    .progress
                    .get(&id)
                    .is_some_and(|p| self.now.saturating_sub(p.last_heard) < window)
        })
    }

    /// The election timer fired with Pre-Vote on: ask whether we could win in the next
    /// term, without raising our own.
    pub(super) fn start_pre_vote(&mut self) {
        let term = self.term() + 1;
        tracing::debug!(node = self.id, term, "election timeout, starting pre-vote");
        self.events.push(Event::ElectionStarted {
            term,
            pre_vote: true,
        });
        self.campaign(Role::PreCandidate, term);
    }

    /// Becomes a candidate (§5.2): new term, vote for self, ask every peer in parallel.
    /// The requests leave at once, while the new term and vote are being made durable:
    /// a voter's grant is durable before it is sent, and this node's own vote counts
    /// only once it is durable too (`count_own_vote`), so a crash before then loses
    /// nothing anyone relied on. Sending early keeps the disk's sync out of the time a
    /// rival's timer has to split the vote.
    pub(super) fn start_election(&mut self) {
        let term = self.term() + 1;
        tracing::debug!(node = self.id, term, "starting election");
        self.events.push(Event::ElectionStarted {
            term,
            pre_vote: false,
        });
        self.hard.current_term = term;
        self.hard.voted_for = Some(self.id);
        self.leader_contact = None;
        self.events.push(Event::TermChanged { term });
        self.campaign(Role::Candidate, term);
    }

    /// Asks every peer for its (pre-)vote in `term`, counting our own, and moves on at
    /// once when our own is a majority (a cluster of one).
    fn campaign(&mut self, role: Role, term: Term) {
        let pre_vote = role == Role::PreCandidate;
        self.set_leader(None);
        self.set_role(role);
        self.granted.clear();
        self.refused.clear();
        // A pre-vote changes nothing durable; a vote for ourselves counts once it is
        // durable (the new term never is yet), unless it alone decides (see below).
        let alone = self.configs.current().has_quorum(|v| v == self.id);
        if pre_vote || alone {
            self.granted.insert(self.id);
        }
        self.reset_election_timer();
        let req = VoteRequest {
            term,
            last_log: self.log.last_id(),
            leader_transfer: self.transfer_campaign && !pre_vote,
        };
        let id = self.id;
        let voters = self.configs.current().voters();
        for peer in voters.into_iter().filter(|&v| v != id) {
            if pre_vote {
                self.send(peer, Message::PreVote(req.clone()));
            } else {
                self.send(peer, Message::RequestVote(req.clone()));
            }
        }
        if self.won() {
            if pre_vote {
                self.start_election();
            } else {
                // Won on this node's own vote: the new term is not even handed to the
                // driver yet.
                self.unsaved_leadership = true;
                self.become_leader();
            }
        }
    }

    /// This candidate's term and vote for itself are durable: its own vote counts now.
    pub(super) fn count_own_vote(&mut self) {
        self.granted.insert(self.id);
        if self.won() {
            self.become_leader();
        }
    }

    /// Do the (pre-)votes granted form a quorum of the configuration in force?
    fn won(&self) -> bool {
        self.configs
            .current()
            .has_quorum(|id| self.granted.contains(&id))
    }

    fn become_leader(&mut self) {
        tracing::info!(node = self.id, term = self.term(), "became leader");
        self.set_role(Role::Leader);
        self.set_leader(Some(self.id));
        self.granted.clear();
        self.refused.clear();
        let next = self.log.last_index() + 1;
        let now = self.now;
        self.uncommitted_bytes = self
            .log
            .range(self.commit + 1, self.log.last_index())
            .iter()
            .map(|e| e.payload.len())
            .sum();
        self.progress = self
            .peers()
            .map(|p| (p, Progress::new(next, now)))
            .collect();
        self.heartbeat_deadline = now + self.config.heartbeat_interval;
        self.election_deadline = Duration::MAX;
        // §8: a no-op of the new term lets earlier entries commit without a client.
        self.append_local(Payload::Noop);
        self.maybe_commit();
    }

    pub(super) fn handle_vote_request(&mut self, from: NodeId, req: VoteRequest, pre_vote: bool) {
        let ours = self.log.last_id();
        let up_to_date = req.last_log.is_at_least_as_up_to_date_as(&ours);
        let refusal = if pre_vote {
            if req.term <= self.term() {
                Some(VoteRefusal::StaleTerm)
            } else if self.in_lease() {
                Some(VoteRefusal::LeaderLease {
                    leader: self.leader.unwrap_or(self.id),
                })
            } else if !up_to_date {
                Some(VoteRefusal::LogNotUpToDate {
                    ours,
                    theirs: req.last_log,
                })
            } else {
                None
            }
        } else {
            match (self.hard.voted_for, self.leader) {
                (Some(v), _) if v != from => Some(VoteRefusal::AlreadyVoted { voted_for: v }),
                (None, Some(leader)) => Some(VoteRefusal::HasLeader { leader }),
                _ if !up_to_date => Some(VoteRefusal::LogNotUpToDate {
                    ours,
                    theirs: req.last_log,
                }),
                _ => None,
            }
        };
        if let Some(reason) = refusal {
            self.refuse_vote(from, req.term, pre_vote, reason);
            return;
        }
        self.events.push(Event::VoteGranted {
            candidate: from,
            term: req.term,
            pre_vote,
        });
        self.vote_link = Some((self.term(), from));
        if pre_vote {
            let reply = VoteReply {
                term: req.term,
                granted: true,
            };
            self.send(from, Message::PreVoteReply(reply));
        } else {
            tracing::debug!(
                node = self.id,
                term = self.term(),
                candidate = from,
                "granting vote"
            );
            self.hard.voted_for = Some(from);
            self.reset_election_timer();
            let reply = VoteReply {
                term: self.term(),
                granted: true,
            };
            // The vote must be durable before the candidate can count it.
            self.send_after_persist(from, Message::RequestVoteReply(reply));
        }
    }

    pub(super) fn refuse_vote(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        reason: VoteRefusal,
    ) {
        tracing::debug!(
            node = self.id,
            term,
            candidate = from,
            pre_vote,
            ?reason,
            "refusing vote"
        );
        self.events.push(Event::VoteRefused {
            candidate: from,
            term,
            pre_vote,
            reason,
        });
        let reply = VoteReply {
            term: self.term(),
            granted: false,
        };
        let message = if pre_vote {
            Message::PreVoteReply(reply)
        } else {
            Message::RequestVoteReply(reply)
        };
        self.send(from, message);
    }

    pub(super) fn handle_vote_reply(&mut self, from: NodeId, rep: VoteReply, pre_vote: bool) {
        let current = if pre_vote {
            self.role == Role::PreCandidate && (!rep.granted || rep.term == self.term() + 1)
        } else {
            self.role == Role::Candidate && rep.term == self.term()
        };
        if !current {
            return;
        }
        if rep.granted {
            self.granted.insert(from);
        } else {
            self.refused.insert(from);
        }
        if self.won() {
            if pre_vote {
                self.start_election();
            } else {
                // The voters' grants alone form a quorum: this node may lead before its
                // own term is durable, but sends nothing until it is.
                self.unsaved_leadership = self.durable_term < self.term();
                self.become_leader();
            }
        } else if self
            .configs
            .current()
            .quorum_impossible(|id| self.refused.contains(&id))
        {
            // A majority said no: this round is lost. Wait for the next timeout.
            self.become_follower(self.term(), None);
        }
    }

    /// Answers a message from a lower term so that its sender learns the current term.
    pub(super) fn reply_stale(&mut self, from: NodeId, message: &Message) {
        match message {
            Message::AppendEntries(req) => {
                let reply = AppendReply {
                    term: self.term(),
                    result: AppendResult::Conflict {
                        rejected: req.prev_log.index,
                        hint: ConflictHint {
                            term: None,
                            index: self.log.last_index() + 1,
                        },
                    },
                    read_round: 0,
                };
                self.send(from, Message::AppendEntriesReply(reply));
            }
            Message::RequestVote(req) => {
                self.refuse_vote(from, req.term, false, VoteRefusal::StaleTerm)
            }
            Message::PreVote(req) => self.refuse_vote(from, req.term, true, VoteRefusal::StaleTerm),
            Message::InstallSnapshot(req) => self.reply_stale_install(from, req),
            _ => {}
        }
    }
}
