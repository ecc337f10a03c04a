//! Linearizable reads without the log (thesis §6.4): ReadIndex, leader leases and
//! follower reads.
//!
//! # ReadIndex
//!
//! A read asks the core for a *read index*: an index such that every entry committed
//! before the read began is at or below it. Once the node's state machine has applied
//! that far, the state it holds reflects every write that completed before the read
//! began, so reading it locally is linearizable.
//!
//! The leader takes its commit index as the read index, then confirms that it still
//! leads: it starts a new *read round* and sends a heartbeat to every follower. Every
//! AppendEntries carries the leader's current round and every reply echoes it, so a
//! reply carrying round `r` or later was produced after round `r` started. Once a
//! majority (the leader included) has acknowledged round `r`, no other leader with a
//! higher term could have committed anything before round `r` started (that majority
//! still followed this leader then), so the recorded commit index was up to date. Reads
//! that arrive before the next [`Ready`](super::Ready) share one round.
//!
//! A new leader does not know which entries of earlier terms are committed until an
//! entry of its own term commits (§5.4.2, the no-op it appends on election): reads wait
//! for that commit before they take a read index.
//!
//! # Leases
//!
//! With [`Config::lease_reads`](super::Config::lease_reads) a leader serves a
//! [`ReadMode::Lease`] read (and a follower's request for a read index) without a round
//! when a majority acknowledged a heartbeat
//! *sent* less than `election_timeout_min − heartbeat_interval / 2 − clock_drift_margin`
//! ago (by the leader's clock). Every follower that acknowledged it heard from the
//! leader after that send, and CheckQuorum makes it refuse to vote for anyone else for
//! `election_timeout_min − heartbeat_interval / 2` after hearing from the leader (by its
//! own clock). A node that just started refuses votes for `election_timeout_min` as
//! well, so a restart cannot shorten the lease.
//!
//! **Clock assumption:** over one lease window, no node's clock runs slower than the
//! leader's by more than `clock_drift_margin` (bounded drift, not synchronised clocks).
//! Clocks must be monotonic; a paused process (GC, VM migration, `SIGSTOP`) counts as a
//! clock running slow. When the assumption may not hold, use [`ReadMode::Index`].
//!
//! # Follower reads
//!
//! A follower sends [`ReadIndexRequest`] to the leader, which confirms its leadership as
//! for its own reads and answers with the read index. The follower then waits until it
//! has applied that far. Every entry up to a leader's commit index is committed, so the
//! follower applies the same entries there, whatever its term by then.
//!
//! A read that cannot be confirmed within `election_timeout_max` fails with
//! [`ReadError::NotConfirmed`]; a leader that steps down fails its waiting reads with
//! [`ReadError::NotLeader`]. None of them ever yields a stale index.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::message::{AppendRequest, Message, ReadIndexReply, ReadIndexRequest};
use super::types::{LogIndex, NodeId, Role};
use super::RaftCore;

/// Names one read; the driver picks it, unique among its reads in flight.
pub type ReadId = u64;

/// How a read is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReadMode {
    /// On the leader: a round of heartbeats acknowledged by a majority (ReadIndex).
    Index,
    /// On the leader: no round while its lease holds (needs
    /// [`Config::lease_reads`](super::Config::lease_reads); otherwise as `Index`).
    Lease,
    /// On any node: a follower asks the leader for the read index; on the leader, as
    /// `Index`. A leader with [`Config::lease_reads`](super::Config::lease_reads) answers
    /// the follower from its lease while it holds (no round), else after a round.
    Follower,
}

/// Why a read got no read index. None of these is ever answered with a stale value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error, Serialize, Deserialize)]
pub enum ReadError {
    /// This node does not lead (or stopped leading before the read was confirmed); ask
    /// `leader` when known.
    #[error("node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// Leadership could not be confirmed by a majority in time (a partition, a leader
    /// change, an unresponsive leader). Retry, possibly on another node.
    #[error("leadership could not be confirmed in time")]
    NotConfirmed,
    /// A follower read found no known leader to ask.
    #[error("no leader is known")]
    NoLeader,
}

/// The outcome of one read, in [`Ready::reads`](super::Ready::reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    /// The read.
    pub id: ReadId,
    /// Its read index: serve the read once the state machine applied this far.
    pub result: Result<LogIndex, ReadError>,
}

#[derive(Debug, Clone, Copy)]
enum Origin {
    Local(ReadId),
    Remote { from: NodeId, ctx: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    origin: Origin,
    index: LogIndex,
    round: u64,
    deadline: Duration,
}

/// Rounds whose send time is remembered (older acknowledgements do not extend a lease).
const ROUNDS_KEPT: usize = 256;

/// The core's read bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Reads {
    /// The current read round, carried by every AppendEntries.
    round: u64,
    /// Recent rounds with the time they started.
    started: VecDeque<(u64, Duration)>,
    /// Per follower: the highest round acknowledged and when it started.
    acks: BTreeMap<NodeId, (u64, Duration)>,
    /// Leader: reads waiting for a round (or for the no-op of this term to commit).
    waiting: Vec<Pending>,
    /// Leader: reads in a round, in round order.
    in_round: VecDeque<Pending>,
    /// Follower: reads asked of the leader, by ctx (one request for every read that
    /// arrived before the same `Ready`).
    forwarded: BTreeMap<u64, (Vec<ReadId>, Duration)>,
    /// Follower: reads that arrived since the last `Ready`, with the first one's
    /// deadline; they share the next request to the leader.
    follower_batch: Vec<ReadId>,
    follower_batch_deadline: Duration,
    next_ctx: u64,
    /// Outcomes for the next Ready.
    pub(super) done: Vec<ReadState>,
    /// The first time the core saw.
    boot: Option<Duration>,
}

impl Reads {
    /// Seeds the follower-read context counter, so that a restarted node does not take
    /// a late answer meant for its previous life.
    pub(super) fn new(ctx_seed: u64) -> Self {
        Self {
            next_ctx: ctx_seed | 1,
            ..Self::default()
        }
    }

    pub(super) fn round(&self) -> u64 {
        self.round
    }

    pub(super) fn observe_time(&mut self, now: Duration) {
        if self.boot.is_none() {
            self.boot = Some(now);
        }
    }

    pub(super) fn next_deadline(&self) -> Duration {
        let a = self
            .waiting
            .iter()
            .chain(&self.in_round)
            .map(|p| p.deadline);
        let b = self.forwarded.values().map(|(_, d)| *d);
        let c = (!self.follower_batch.is_empty()).then_some(self.follower_batch_deadline);
        a.chain(b).chain(c).min().unwrap_or(Duration::MAX)
    }

    fn start_round(&mut self, now: Duration) -> u64 {
        self.round += 1;
        self.started.push_back((self.round, now));
        while self.started.len() > ROUNDS_KEPT {
            self.started.pop_front();
        }
        self.round
    }

    fn started_at(&self, round: u64) -> Option<Duration> {
        self.started
            .iter()
            .rev()
            .find(|&&(r, _)| r == round)
            .map(|&(_, t)| t)
    }
}

impl RaftCore {
    /// Asks for a read index for read `id` (see [`ReadMode`]). The outcome
    /// comes in [`Ready::reads`](super::Ready::reads), possibly at once. `now` is the
    /// current time (a lease is judged against it).
    pub fn read_index(&mut self, now: Duration, id: ReadId, mode: ReadMode) {
        self.advance(now);
        if self.role != Role::Leader {
            let result = match (mode, self.leader) {
                (ReadMode::Follower, Some(_)) => {
                    // Asked of the leader with every other read of this batch.
                    if self.reads.follower_batch.is_empty() {
                        self.reads.follower_batch_deadline = self.read_deadline();
                    }
                    self.reads.follower_batch.push(id);
                    return;
                }
                (ReadMode::Follower, None) => ReadError::NoLeader,
                _ => ReadError::NotLeader {
                    leader: self.leader,
                },
            };
            self.finish_read(Origin::Local(id), Err(result));
            return;
        }
        self.lead_read(Origin::Local(id), mode == ReadMode::Lease);
    }

    /// Leader: answers the read of `origin` at once from the lease when `lease` allows
    /// it and the lease holds (the commit index now, once this term's no-op committed),
    /// or else queues it for the next round of heartbeats to confirm.
    fn lead_read(&mut self, origin: Origin, lease: bool) {
        if lease && self.committed_in_term() && self.lease_valid() {
            self.finish_read(origin, Ok(self.commit));
            return;
        }
        self.reads.waiting.push(Pending {
            origin,
            index: 0,
            round: 0,
            deadline: self.read_deadline(),
        });
    }

    /// When a read asked now fails if not confirmed (see the module docs).
    fn read_deadline(&self) -> Duration {
        self.now + self.config.election_timeout_max
    }

    /// Does this leader hold a lease (see the module docs)?
    pub(super) fn lease_valid(&self) -> bool {
        if !self.config.lease_reads
            || !self.config.check_quorum
            || self.role != Role::Leader
            || self.lease_forfeited == self.term()
        {
            return false;
        }
        let window = (self.config.election_timeout_min - self.config.heartbeat_interval / 2)
            .saturating_sub(self.config.clock_drift_margin);
        // A round never acknowledged has no start: ZERO is never within the window
        // unless the clock itself is that young, which the boot guard covers. Every
        // half of a joint configuration must grant the lease.
        self.configs.current().has_quorum(|id| {
            id == self.id
                || self.reads.acks.get(&id).is_some_and(|a| {
                    let start: Duration = a.1;
                    start > Duration::ZERO && self.now < start + window
                })
        })
    }

    /// A node that just started refuses votes for the minimum election timeout when
    /// leases are on, so that a restart cannot cut another node's lease short.
    pub(super) fn boot_guard(&self) -> bool {
        self.config.lease_reads
            && self
                .reads
                .boot
                .is_some_and(|b| self.now < b + self.config.election_timeout_min)
    }

    /// True when the next Ready has read outcomes, or a round to start.
    pub(super) fn reads_ready(&self) -> bool {
        !self.reads.done.is_empty()
            || !self.reads.follower_batch.is_empty()
            || (!self.reads.waiting.is_empty()
                && self.role == Role::Leader
                && self.committed_in_term())
    }

    fn committed_in_term(&self) -> bool {
        self.log.term_at(self.commit) == Some(self.term())
    }

    /// A new round starts with every heartbeat broadcast; returns it.
    pub(super) fn next_read_round(&mut self) -> u64 {
        self.reads.start_round(self.now)
    }

    /// Leader: moves waiting reads into a round of their own once the term's no-op has
    /// committed, and sends the heartbeats of that round.
    pub(super) fn flush_reads(&mut self) {
        self.flush_follower_reads();
        if self.role != Role::Leader || self.reads.waiting.is_empty() || !self.committed_in_term() {
            return;
        }
        let round = self.reads.start_round(self.now);
        let commit = self.commit;
        for mut p in std::mem::take(&mut self.reads.waiting) {
            p.index = commit;
            p.round = round;
            self.reads.in_round.push_back(p);
        }
        for peer in self.peers().collect::<Vec<_>>() {
            let Some(matched) = self.progress.get(&peer).map(|p| p.matched) else {
                continue;
            };
            let prev_log = self.heartbeat_prev(matched);
            let req = AppendRequest {
                term: self.term(),
                prev_log,
                entries: Vec::new(),
                leader_commit: self.commit.min(prev_log.index),
                read_round: round,
            };
            self.send(peer, Message::AppendEntries(req));
        }
        self.confirm_reads();
    }

    /// Leader: `from` acknowledged `round` in this term.
    pub(super) fn read_ack(&mut self, from: NodeId, round: u64) {
        let prev = self.reads.acks.get(&from).map_or(0, |a| a.0);
        if round <= prev {
            return;
        }
        let Some(at) = self.reads.started_at(round) else {
            // Too old to be remembered: it still confirms the round, not a lease.
            self.reads.acks.insert(from, (round, Duration::ZERO));
            self.confirm_reads();
            return;
        };
        self.reads.acks.insert(from, (round, at));
        self.confirm_reads();
    }

    /// Answers every read whose round a majority acknowledged.
    fn confirm_reads(&mut self) {
        let confirmed = self.configs.current().quorum_index(|id| {
            if id == self.id {
                self.reads.round
            } else {
                self.reads.acks.get(&id).map_or(0, |a| a.0)
            }
        });
        while let Some(p) = self.reads.in_round.front() {
            if p.round > confirmed {
                break;
            }
            let p = self.reads.in_round.pop_front().expect("peeked");
            self.finish_read(p.origin, Ok(p.index));
        }
    }

    fn finish_read(&mut self, origin: Origin, result: Result<LogIndex, ReadError>) {
        match origin {
            Origin::Local(id) => self.reads.done.push(ReadState { id, result }),
            Origin::Remote { from, ctx } => {
                let reply = ReadIndexReply {
                    term: self.term(),
                    ctx,
                    index: result.ok(),
                };
                self.send(from, Message::ReadIndexReply(reply));
            }
        }
    }

    /// Fails reads whose deadline passed.
    pub(super) fn expire_reads(&mut self) {
        let now = self.now;
        if self.reads.next_deadline() > now {
            return;
        }
        let (late, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads.waiting)
            .into_iter()
            .partition(|p| p.deadline <= now);
        self.reads.waiting = keep;
        let (late2, keep2): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads.in_round)
            .into_iter()
            .partition(|p| p.deadline <= now);
        self.reads.in_round = keep2.into();
        for p in late.into_iter().chain(late2) {
            self.finish_read(p.origin, Err(ReadError::NotConfirmed));
        }
        let expired: Vec<u64> = self
            .reads
            .forwarded
            .iter()
            .filter(|(_, &(_, d))| d <= now)
            .map(|(&c, _)| c)
            .collect();
        for ctx in expired {
            for id in self
                .reads
                .forwarded
                .remove(&ctx)
                .map_or_else(Vec::new, |f| f.0)
            {
                self.reads.done.push(ReadState {
                    id,
                    result: Err(ReadError::NotConfirmed),
                });
            }
        }
    }

    /// Follower: sends one ReadIndex request for every read that arrived since the last
    /// `Ready`. The leader's answer comes after the request arrived, so its index covers
    /// every write completed before any of these reads began.
    fn flush_follower_reads(&mut self) {
        if self.reads.follower_batch.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.reads.follower_batch);
        let deadline = self.reads.follower_batch_deadline;
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                // Became leader meanwhile: confirmed here, as the leader's own reads.
                for id in ids {
                    self.reads.waiting.push(Pending {
                        origin: Origin::Local(id),
                        index: 0,
                        round: 0,
                        deadline,
                    });
                }
            }
            (_, Some(leader)) => {
                let ctx = self.reads.next_ctx;
                self.reads.next_ctx = self.reads.next_ctx.wrapping_add(2);
                self.reads.forwarded.insert(ctx, (ids, deadline));
                let term = self.term();
                self.send(leader, Message::ReadIndex(ReadIndexRequest { term, ctx }));
            }
            (_, None) => {
                for id in ids {
                    self.reads.done.push(ReadState {
                        id,
                        result: Err(ReadError::NoLeader),
                    });
                }
            }
        }
    }

    /// This node stops leading: its reads can no longer be confirmed.
    pub(super) fn abandon_reads(&mut self) {
        self.reads.acks.clear();
        let leader = self.leader.filter(|&l| l != self.id);
        let pending: Vec<Pending> = std::mem::take(&mut self.reads.waiting)
            .into_iter()
            .chain(std::mem::take(&mut self.reads.in_round))
            .collect();
        for p in pending {
            self.finish_read(p.origin, Err(ReadError::NotLeader { leader }));
        }
    }

    pub(super) fn handle_read_request(&mut self, from: NodeId, req: ReadIndexRequest) {
        let origin = Origin::Remote { from, ctx: req.ctx };
        if self.role != Role::Leader {
            self.finish_read(origin, Err(ReadError::NotConfirmed));
            return;
        }
        // A leader that serves leases (its operator accepted the clock assumption with
        // `Config::lease_reads`) answers a follower from its lease as it answers a
        // `Lease` read: the commit index now, taken after the follower's reads began.
        // Without a lease, a round confirms it, as for `Index`.
        self.lead_read(origin, true);
    }

    pub(super) fn handle_read_reply(&mut self, rep: ReadIndexReply) {
        let Some((ids, _)) = self.reads.forwarded.remove(&rep.ctx) else {
            return; // late, duplicated, or for an earlier life of this node
        };
        let result = rep.index.ok_or(ReadError::NotConfirmed);
        for id in ids {
            self.reads.done.push(ReadState { id, result });
        }
    }
}
