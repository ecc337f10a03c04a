//! Log replication (§5.3) and commitment (§5.4.2): the leader's pipelined AppendEntries
//! with fast back-up, and the follower's consistency check.

use super::message::{AppendReply, AppendRequest, AppendResult, ConflictHint, Message};
use super::output::Event;
use super::progress::Mode;
use super::types::{Entry, LogId, LogIndex, NodeId, Role};
use super::RaftCore;

impl RaftCore {
    /// Offers every follower the entries it has not been sent, up to its pipeline bound.
    pub(super) fn broadcast_append(&mut self) {
        for peer in self.progress.keys().copied().collect::<Vec<_>>() {
            self.send_pipelined(peer);
        }
    }

    /// Sends as many AppendEntries to `peer` as its window allows.
    pub(super) fn send_pipelined(&mut self, peer: NodeId) {
        let last = self.log.last_index();
        loop {
            let Some(p) = self.progress.get(&peer) else {
                return;
            };
            if p.sending.is_some()
                || p.next > last
                || !p.can_send(
                    self.config.max_inflight_appends,
                    self.config.max_inflight_bytes,
                )
            {
                return;
            }
            if !self.send_append(peer, false) {
                return;
            }
        }
    }

    /// Sends one AppendEntries from `peer`'s next index. With `allow_empty` it goes out
    /// even with no entries (a probe). Returns false when nothing was sent.
    fn send_append(&mut self, peer: NodeId, allow_empty: bool) -> bool {
        let Some(p) = self.progress.get(&peer) else {
            return false;
        };
        if p.sending.is_some() || p.reading {
            return false;
        }
        let next = p.next;
        let prev_index = next - 1;
        if prev_index < self.window_start().index {
            let prev_known = prev_index == self.stored_prefix && self.stored_prefix_id().is_some();
            if prev_index > self.stored_prefix || prev_known {
                // Behind the window but still stored: read them, off the node's thread.
                return self.start_log_read(peer, prev_index);
            }
            // The entries this follower needs are compacted: send the snapshot.
            return self.start_snapshot_send(peer);
        }
        let Some(prev_term) = self.log.term_at(prev_index) else {
            // Never expected: `next` stays within the log. Resynchronise from the end.
            let last = self.log.last_index();
            if let Some(p) = self.progress.get_mut(&peer) {
                p.probe_from(last + 1);
            }
            return false;
        };
        let entries = self.log.slice(
            next,
            self.log.last_index(),
            self.config.max_append_entries,
            self.config.max_append_bytes,
        );
        if entries.is_empty() && !allow_empty {
            return false;
        }
        self.send_entries(peer, LogId::new(prev_term, prev_index), entries);
        true
    }

    /// Sends `entries`, which follow `prev` in this leader's log, to `peer`, and records
    /// them in flight.
    pub(super) fn send_entries(&mut self, peer: NodeId, prev: LogId, entries: Vec<Entry>) {
        let prev_index = prev.index;
        let bytes: usize = entries.iter().map(|e| e.size_hint()).sum();
        let last_sent = prev_index + entries.len() as u64;
        let req = AppendRequest {
            term: self.term(),
            prev_log: prev,
            entries,
            // Never vouch for more than the message carries: a follower takes the
            // commit index only as far as its log is known to match this one.
            leader_commit: self.commit.min(last_sent),
            read_round: self.reads.round(),
        };
        let now = self.now;
        if let Some(p) = self.progress.get_mut(&peer) {
            if p.mode == Mode::Probe || last_sent > prev_index {
                if p.mode == Mode::Probe || p.inflight.is_empty() {
                    // The stall clock starts when the pipeline or the probe does.
                    p.last_ack = now;
                }
                p.sent(last_sent, bytes);
            }
        }
        self.send(peer, Message::AppendEntries(req));
    }

    /// The heartbeat timer fired: assert leadership to every follower (§5.2), re-probe
    /// followers whose probe or pipeline went unanswered.
    ///
    /// The heartbeat itself always checks only up to the follower's known match, so the
    /// follower answers it at once, even while a slow write of new entries keeps their
    /// acknowledgement back: CheckQuorum and the follower's election timer never depend
    /// on disk speed.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let stall = self.config.heartbeat_interval * 2;
        let read_round = self.next_read_round();
        for peer in self.progress.keys().copied().collect::<Vec<_>>() {
            let Some(p) = self.progress.get_mut(&peer) else {
                continue;
            };
            // Nothing acknowledged for two heartbeats: something was lost.
            let stalled = self.now.saturating_sub(p.last_ack) >= stall;
            match p.mode {
                Mode::Replicate if stalled && !p.inflight.is_empty() => {
                    // Start over from the match.
                    let from = p.matched + 1;
                    p.probe_from(from);
                }
                // Send the same probe again.
                Mode::Probe if stalled => p.probe_sent = false,
                _ => {}
            }
            let matched = p.matched;
            let sending = p.sending.is_some();
            let prev_log = self.heartbeat_prev(matched);
            let req = AppendRequest {
                term: self.term(),
                prev_log,
                entries: Vec::new(),
                leader_commit: self.commit.min(prev_log.index),
                read_round,
            };
            self.send(peer, Message::AppendEntries(req));
            if sending {
                self.check_snapshot_send(peer, stalled);
            }
            self.send_pipelined(peer);
        }
    }

    /// The `prev_log` of a heartbeat to a follower matched up to `matched`. A follower
    /// matched behind the compacted prefix gets a heartbeat that vouches for nothing
    /// (the empty log's position always matches).
    pub(super) fn heartbeat_prev(&self, matched: LogIndex) -> LogId {
        match self.log.term_at(matched) {
            Some(term) => LogId::new(term, matched),
            None => LogId::default(),
        }
    }

    /// Commits the highest index stored on a majority, if its entry is of the current
    /// term (§5.4.2). The leader counts itself only up to what is durable locally.
    pub(super) fn maybe_commit(&mut self) {
        let candidate = self.configs.current().quorum_index(|id| {
            if id == self.id {
                self.persisted
            } else {
                self.progress.get(&id).map_or(0, |p| p.matched)
            }
        });
        if candidate > self.commit && self.log.term_at(candidate) == Some(self.term()) {
            let newly: usize = self
                .log
                .range(self.commit + 1, candidate)
                .iter()
                .map(|e| e.payload.len())
                .sum();
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(newly);
            self.commit = candidate;
            self.events.push(Event::Committed { index: candidate });
            self.advance_membership();
        }
    }

    pub(super) fn handle_append_reply(&mut self, from: NodeId, rep: AppendReply) {
        if self.role != Role::Leader {
            return;
        }
        self.read_ack(from, rep.read_round);
        let now = self.now;
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        match rep.result {
            AppendResult::Success { match_index } => {
                // `validate` refused any index beyond the log.
                let advanced = p.acked(match_index);
                if advanced && match_index >= self.stored_prefix {
                    // The follower caught up some other way: no snapshot needed.
                    p.sending = None;
                }
                // Only progress restarts the stall clock: a heartbeat's reply says nothing
                // about the entries in flight, and must not hide their loss.
                if advanced {
                    p.last_ack = now;
                }
                if advanced {
                    self.maybe_commit();
                }
                self.send_pipelined(from);
                self.advance_transfer(from, false);
                self.prune_removed();
            }
            AppendResult::Conflict { rejected, hint } => {
                if p.sending.is_some()
                    || rejected <= p.matched
                    || (p.mode == Mode::Probe && rejected + 1 != p.next)
                {
                    return; // a stale rejection
                }
                let next = match hint.term {
                    None => hint.index,
                    Some(t) => match self.log.last_index_of_term(t) {
                        Some(last_of_term) => last_of_term + 1,
                        None => hint.index,
                    },
                };
                let next = next.min(rejected).max(1);
                let Some(p) = self.progress.get_mut(&from) else {
                    return;
                };
                p.probe_from(next);
                self.send_append(from, true);
            }
        }
    }

    /// `from`, the leader of this term, sent AppendEntries or InstallSnapshot: follow
    /// it, and restart the election timer (CheckQuorum lease included). False on a
    /// leader, which `validate` never lets such a message of its own term reach.
    pub(super) fn heard_from_leader(&mut self, from: NodeId) -> bool {
        match self.role {
            Role::Leader => return false,
            Role::Candidate | Role::PreCandidate => self.become_follower(self.term(), Some(from)),
            Role::Follower => self.set_leader(Some(from)),
        }
        self.leader_contact = Some(self.now);
        self.reset_election_timer();
        true
    }

    pub(super) fn handle_append(&mut self, from: NodeId, req: AppendRequest) {
        if !self.heard_from_leader(from) {
            return;
        }

        let last_new = req.prev_log.index + req.entries.len() as u64;
        let prefix = self.log.prefix();
        let (prev, skip) = if req.prev_log.index < prefix.index {
            // Everything up to the compacted prefix is committed and so identical.
            (prefix, (prefix.index - req.prev_log.index) as usize)
        } else {
            (req.prev_log, 0)
        };
        let hint = match self.log.term_at(prev.index) {
            None => Some(ConflictHint {
                term: None,
                index: self.log.last_index() + 1,
            }),
            Some(t) if t != prev.term => Some(ConflictHint {
                term: Some(t),
                index: self.log.first_index_of_term_run(prev.index, t),
            }),
            Some(_) => None,
        };
        if let Some(hint) = hint {
            let reply = AppendReply {
                term: self.term(),
                result: AppendResult::Conflict {
                    rejected: prev.index,
                    hint,
                },
                read_round: req.read_round,
            };
            self.send(from, Message::AppendEntriesReply(reply));
            return;
        }
        for entry in req.entries.into_iter().skip(skip) {
            match self.log.term_at(entry.index) {
                Some(t) if t == entry.term => continue,
                // `validate` refused a message that contradicts a committed entry.
                Some(_) => self.truncate_local(entry.index),
                None => {}
            }
            self.note_appended(&entry);
            self.log.push(entry);
        }
        if req.leader_commit > self.commit {
            let commit = req.leader_commit.min(last_new);
            if commit > self.commit {
                self.commit = commit;
                self.events.push(Event::Committed { index: commit });
            }
        }
        let reply = AppendReply {
            term: self.term(),
            result: AppendResult::Success {
                match_index: last_new,
            },
            read_round: req.read_round,
        };
        if last_new <= self.persisted {
            self.send(from, Message::AppendEntriesReply(reply));
        } else {
            self.send_after_persist(from, Message::AppendEntriesReply(reply));
        }
    }
}
