//! The Raft protocol as a deterministic, sans-IO state machine.
//!
//! [`RaftCore`] holds one node's protocol state. It performs no IO, reads no clock and
//! owns no global randomness: its driver feeds it the time, inbound messages, proposals
//! and storage completions, and executes the [`Ready`] batches it hands back. The same
//! core runs inside the actix node, the simulator and the unit tests.

mod config;
mod election;
mod error;
mod install;
mod log;
mod membership;
mod message;
mod output;
mod progress;
mod read_index;
mod reconfig;
mod replication;
pub(crate) mod rng;
mod snapshot;
mod transfer;
mod types;
mod validate;
mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;

pub use config::{Config, ConfigError};
pub use error::{InitError, Malformed, ProposeError, StepError};
pub use install::{InstallSnapshotReply, InstallSnapshotRequest, SnapshotResult, SnapshotSend};
pub use membership::{ClusterConfig, Membership, MembershipError};
pub use message::{
    AppendReply, AppendRequest, AppendResult, ConflictHint, Envelope, Message, ReadIndexReply,
    ReadIndexRequest, TimeoutNow, VoteReply, VoteRequest,
};
pub use output::{Event, Ready, Status, VoteRefusal};
pub use read_index::{ReadError, ReadId, ReadMode, ReadState};
pub(crate) use reconfig::LinksKey;
pub use transfer::TransferError;
pub use types::{Entry, HardState, LogId, LogIndex, NodeId, Payload, Role, Term};
pub use window::LogRead;

use log::RaftLog;
use membership::Configs;
use progress::Progress;
use rng::SplitMix64;

/// What a node recovered from stable storage when it (re)starts.
#[derive(Debug, Clone, Default)]
pub struct InitialState {
    /// The durable term and vote.
    pub hard_state: HardState,
    /// The last id of the compacted prefix of the log (default: the empty log). Every
    /// entry up to it must be committed and applied.
    pub log_prefix: LogId,
    /// Every stored entry after `log_prefix`, contiguous and in order. They are all
    /// durable, so they count as persisted.
    pub entries: Vec<Entry>,
    /// The highest index the state machine has applied (from a durable state machine;
    /// 0 for one rebuilt from the log). Committed entries above it are handed out again.
    pub applied_index: LogIndex,
    /// The last entry covered by the latest durable snapshot (default: none). The state
    /// machine was restored from it, so `applied_index` is at least its index.
    pub snapshot: LogId,
    /// The configuration in force at `log_prefix` (from the snapshot's metadata).
    /// `None`: the bootstrap configuration (the members given to [`RaftCore::new`]).
    /// Membership entries in `entries` override it from their index on.
    pub membership: Option<ClusterConfig>,
}

/// One Raft node's protocol state machine (Figure 2 of the Raft paper, plus Pre-Vote and
/// CheckQuorum).
///
/// # Driving contract
///
/// The driver owns the clock, the network, the storage and the state machine. Time is a
/// [`Duration`] since any origin the driver picks, and never goes backwards.
///
/// 1. **Build** the core with [`RaftCore::new`] from the durable [`InitialState`], the
///    member ids and a seed for its election timeouts.
/// 2. **Feed inputs**, in any order and as many as you like before the next step:
///    - [`tick`](Self::tick) when the clock passes [`next_deadline`](Self::next_deadline)
///      (calling it more often is harmless);
///    - [`step`](Self::step) for every message the transport delivers;
///    - [`propose`](Self::propose) for every client command (leader only);
///    - [`persisted`](Self::persisted) when a write from an earlier `Ready` is durable;
///    - [`applied`](Self::applied) when the state machine has applied entries.
/// 3. **Take a batch** with [`ready`](Self::ready) whenever [`has_ready`](Self::has_ready)
///    is true. Proposals fed since the last batch leave in one AppendEntries per
///    follower, so feeding many inputs before calling `ready` groups them.
/// 4. **Execute the batch**, in this order:
///    1. start one durable write holding, atomically if the storage can: remove entries
///       from [`Ready::truncate_from`], append [`Ready::entries`], save
///       [`Ready::hard_state`]. Writes must become durable in the order the batches were
///       taken;
///    2. send [`Ready::messages`] now, even while the write is in flight;
///    3. once the write is durable, call
///       [`hard_state_persisted`](Self::hard_state_persisted) with [`Ready::hard_state`]
///       and [`persisted`](Self::persisted) with [`Ready::persist_ack`] (each when it is
///       `Some`), and only then send [`Ready::persisted_messages`];
///    4. apply [`Ready::committed`] to the state machine in order, and report progress
///       with [`applied`](Self::applied);
///    5. look at [`Ready::events`] for role, term and leader changes.
/// 5. **Sleep** until a message, a proposal, a completion or
///    [`next_deadline`](Self::next_deadline), then go back to step 2.
///
/// # Example
///
/// A single-node cluster, driven by hand with a storage that is durable at once:
///
/// ```
/// use std::time::Duration;
/// use actraft::core::{Config, InitialState, Payload, RaftCore, Role};
///
/// let mut core = RaftCore::new(1, vec![1], Config::default(), InitialState::default(), 7)
///     .unwrap();
/// let mut now = Duration::ZERO;
/// let mut applied = Vec::new();
/// let mut drive = |core: &mut RaftCore, applied: &mut Vec<_>| {
///     while core.has_ready() {
///         let ready = core.ready();
///         // 1. write (a no-op here: this "storage" is durable immediately)
///         // 2. send ready.messages (a single node has no peers)
///         // 3. the write is durable: acknowledge it, then send ready.persisted_messages
///         if let Some(hard) = ready.hard_state {
///             core.hard_state_persisted(hard);
///         }
///         if let Some(ack) = ready.persist_ack() {
///             core.persisted(ack);
///         }
///         // 4. apply
///         for entry in &ready.committed {
///             if let Payload::Command(cmd) = &entry.payload {
///                 applied.push(cmd.clone());
///             }
///             core.applied(entry.index);
///         }
///     }
/// };
/// // Nothing happens until the election timeout passes.
/// now = core.next_deadline();
/// core.tick(now);
/// drive(&mut core, &mut applied);
/// assert_eq!(core.status().role, Role::Leader);
///
/// core.propose("set x = 1".into()).unwrap();
/// drive(&mut core, &mut applied);
/// assert_eq!(applied, vec![bytes::Bytes::from("set x = 1")]);
/// ```
#[derive(Debug)]
pub struct RaftCore {
    id: NodeId,
    /// The configurations in the log; the last one is in force.
    configs: Configs,
    config: Config,
    rng: SplitMix64,

    hard: HardState,
    log: RaftLog,

    role: Role,
    leader: Option<NodeId>,
    /// The candidate this node last granted a vote or pre-vote, in the term it was then
    /// in: one of its links in that term (see [`links`](Self::links)).
    vote_link: Option<(Term, NodeId)>,
    commit: LogIndex,
    persisted: LogIndex,
    applied: LogIndex,
    /// Last index handed out in `Ready::committed`.
    handed: LogIndex,

    now: Duration,
    election_deadline: Duration,
    heartbeat_deadline: Duration,
    /// When this node last heard from the leader of its term (the CheckQuorum lease).
    leader_contact: Option<Duration>,

    /// Granted (pre-)votes, this node's own included, and refusals.
    granted: BTreeSet<NodeId>,
    refused: BTreeSet<NodeId>,
    /// The leader's view of each follower.
    progress: BTreeMap<NodeId, Progress>,
    /// The leader has entries that were not yet offered to followers.
    pending_broadcast: bool,
    /// Payload bytes of the entries after `commit` (kept while leading, for
    /// [`Config::max_uncommitted_bytes`]).
    uncommitted_bytes: usize,

    // The next Ready, being assembled.
    saved_hard: HardState,
    unstable_from: LogIndex,
    pending_truncate: Option<LogIndex>,
    messages: Vec<Envelope>,
    persisted_messages: Vec<Envelope>,
    events: Vec<Event>,
    /// An emptied vector of a `Ready` handed back ([`recycle`](Self::recycle)), for the
    /// next committed batch.
    spare_committed: Vec<Entry>,

    /// The last entry covered by the latest durable snapshot.
    snapshot: LogId,
    /// The leadership transfer in progress (leader only).
    transfer: Option<transfer::Transfer>,
    /// The next RequestVote is a campaign started by TimeoutNow.
    transfer_campaign: bool,
    /// The term in which this leader sent a TimeoutNow. Voters grant the target's
    /// flagged RequestVote despite the lease, so from then on, for the rest of that term,
    /// this leader holds no lease (even if the transfer is abandoned: the TimeoutNow may
    /// still arrive).
    lease_forfeited: Term,
    /// Reads waiting for a read index (ReadIndex, leases, follower reads).
    reads: read_index::Reads,
    /// The snapshot transfer this follower receives, if any.
    incoming: Option<install::Incoming>,
    /// Accepted snapshot chunks for the next `Ready`.
    install_chunks: Vec<InstallSnapshotRequest>,
    /// Snapshot chunks to read and send, for the next `Ready`.
    snapshot_sends: Vec<SnapshotSend>,
    /// The stored log must restart after this id (an installed snapshot).
    pending_reset: Option<LogId>,
    /// Where the stored log starts (entries up to it were compacted); see `window`.
    stored_prefix: LogIndex,
    /// The term of the entry at `stored_prefix`, when known (it is not kept once memory
    /// moved past it before storage compacted there).
    stored_prefix_term: Option<Term>,
    /// Stored entries to read for followers, for the next `Ready`.
    log_reads: Vec<LogRead>,
    /// The configuration in the metadata of the snapshot being received.
    incoming_membership: Option<(LogId, ClusterConfig)>,
    /// This leader won on its own vote alone, and its new term is not durable yet: it
    /// sends nothing before it is (a learner must never take entries from a leader
    /// whose term a crash could forget, and hand to a second leader of that term).
    unsaved_leadership: bool,
    /// The highest term known durable in this node's hard state (see
    /// [`hard_state_persisted`](Self::hard_state_persisted)): a candidate counts its own
    /// vote only once its term and vote are durable.
    durable_term: Term,
}

impl RaftCore {
    /// Builds a node's core from what its storage recovered. `members` lists every
    /// voter of the bootstrap configuration, `id` included; it is used only when the
    /// recovered state holds no configuration (no snapshot, no membership entry). An
    /// empty `members` makes a joining node: it has no configuration, never campaigns,
    /// and waits for a leader to replicate one to it. `seed` drives the election
    /// timeouts (give each node its own). The node starts as a follower whose election
    /// timer runs from time zero.
    pub fn new(
        id: NodeId,
        members: Vec<NodeId>,
        config: Config,
        state: InitialState,
        seed: u64,
    ) -> Result<Self, InitError> {
        config.validate()?;
        let mut members = members;
        members.sort_unstable();
        members.dedup();
        let recovered = state.membership.is_some()
            || state
                .entries
                .iter()
                .any(|e| matches!(e.payload, Payload::Membership(_)));
        if !recovered && !members.is_empty() && !members.contains(&id) {
            return Err(InitError::NotAMember { id, members });
        }
        let mut configs = Configs::new(
            id,
            state.log_prefix.index,
            state
                .membership
                .clone()
                .unwrap_or_else(|| ClusterConfig::bootstrap(members)),
        );
        for e in &state.entries {
            if let Payload::Membership(c) = &e.payload {
                configs.push(e.index, (**c).clone());
            }
        }
        for (i, e) in state.entries.iter().enumerate() {
            let want = state.log_prefix.index + 1 + i as u64;
            if e.index != want {
                return Err(InitError::BrokenLog { index: want });
            }
        }
        let log = RaftLog::new(state.log_prefix, state.entries);
        // A node's term is never below a term in its log. A snapshot installed from a
        // leader is made durable on its own path, so a crash can keep it and lose the
        // write of that leader's term: take the term back up (with no vote in it: a vote
        // is granted only once durable, and none was in a term this high).
        let mut hard = state.hard_state;
        let last_term = log.last_id().term.max(state.snapshot.term);
        if hard.current_term < last_term {
            tracing::warn!(
                node = id,
                term = hard.current_term,
                last_term,
                "recovered term is below the recovered log's; raising it"
            );
            hard = HardState {
                current_term: last_term,
                voted_for: None,
            };
        }
        let reads = read_index::Reads::new(SplitMix64::new(seed.rotate_left(17) ^ id).next_u64());
        let last = log.last_index();
        let applied = state.applied_index.max(state.log_prefix.index).min(last);
        let mut core = Self {
            id,
            configs,
            rng: SplitMix64::new(seed ^ id.wrapping_mul(0x2545_F491_4F6C_DD1D)),
            hard,
            role: Role::Follower,
            leader: None,
            vote_link: None,
            commit: applied,
            persisted: last,
            applied,
            handed: applied,
            now: Duration::ZERO,
            election_deadline: Duration::ZERO,
            heartbeat_deadline: Duration::MAX,
            leader_contact: None,
            granted: BTreeSet::new(),
            refused: BTreeSet::new(),
            progress: BTreeMap::new(),
            pending_broadcast: false,
            uncommitted_bytes: 0,
            saved_hard: state.hard_state,
            unstable_from: last + 1,
            pending_truncate: None,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            events: Vec::new(),
            spare_committed: Vec::new(),
            snapshot: state.snapshot,
            transfer: None,
            transfer_campaign: false,
            lease_forfeited: 0,
            reads,
            incoming: None,
            install_chunks: Vec::new(),
            snapshot_sends: Vec::new(),
            pending_reset: None,
            stored_prefix: state.log_prefix.index,
            stored_prefix_term: Some(state.log_prefix.term),
            log_reads: Vec::new(),
            incoming_membership: None,
            unsaved_leadership: false,
            durable_term: state.hard_state.current_term,
            log,
            config,
        };
        core.reset_election_timer();
        Ok(core)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The role this node plays now.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Every member of the configuration in force (voters and learners of both halves),
    /// this node included if it is one, sorted.
    pub fn members(&self) -> Vec<NodeId> {
        self.configs.current().members().into_iter().collect()
    }

    /// The configuration in force (the last one in this node's log).
    pub fn membership(&self) -> &ClusterConfig {
        self.configs.current()
    }

    /// Grows whenever the configurations this node's log holds change (see
    /// [`membership`](Self::membership)): equal values, the same configurations.
    pub(crate) fn configs_version(&self) -> u64 {
        self.configs.version()
    }

    /// The index of the entry that set the configuration in force (the log's start for
    /// the bootstrap or snapshot configuration).
    pub fn membership_index(&self) -> LogIndex {
        self.configs.current_index()
    }

    /// The configuration in force at `index` (for an index this node's log still
    /// covers: at or after its compacted prefix).
    pub fn membership_at(&self, index: LogIndex) -> &ClusterConfig {
        self.configs.at(index)
    }

    /// True when this node has a configuration with voters and is not a member of it:
    /// it was removed (or its log is behind the change that adds it). A removed node
    /// never campaigns.
    pub fn is_removed(&self) -> bool {
        self.configs.standing().removed
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's current state.
    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            role: self.role,
            term: self.hard.current_term,
            voted_for: self.hard.voted_for,
            leader: self.leader,
            last_log: self.log.last_id(),
            commit_index: self.commit,
            persisted_index: self.persisted,
            applied_index: self.applied,
            membership_index: self.configs.current_index(),
            voter: self.configs.standing().voter,
            joint: self.configs.standing().joint,
            removed: self.configs.standing().removed,
        }
    }

    /// On the leader: each follower's replication progress as (follower, match index,
    /// next index to send). Empty on other roles. A read-only view, for metrics.
    pub fn replication(&self) -> impl Iterator<Item = (NodeId, LogIndex, LogIndex)> + '_ {
        self.progress.iter().map(|(&id, p)| (id, p.matched, p.next))
    }

    /// The term of the entry at `index` in this node's log, if it holds one there.
    pub fn log_term(&self, index: LogIndex) -> Option<Term> {
        self.log.term_at(index)
    }

    /// Entries `from..=to` of this node's in-memory log (durable or not).
    pub fn log_entries(&self, from: LogIndex, to: LogIndex) -> &[Entry] {
        self.log.range(from, to)
    }

    /// The moment the core next needs a [`tick`](Self::tick).
    pub fn next_deadline(&self) -> Duration {
        let timer = match self.role {
            Role::Leader => self.heartbeat_deadline.min(self.transfer_deadline()),
            _ => self.election_deadline,
        };
        timer.min(self.reads.next_deadline())
    }

    /// Advances the clock to `now` and fires the election or heartbeat timer if due.
    pub fn tick(&mut self, now: Duration) {
        self.advance(now);
        self.expire_reads();
        match self.role {
            Role::Leader => {
                self.check_transfer_deadline();
                if now >= self.heartbeat_deadline {
                    self.heartbeat_deadline = now + self.config.heartbeat_interval;
                    if self.config.check_quorum && !self.quorum_active() {
                        tracing::info!(
                            node = self.id,
                            term = self.term(),
                            "lost quorum, stepping down"
                        );
                        self.events.push(Event::QuorumLost { term: self.term() });
                        self.become_follower(self.term(), None);
                        return;
                    }
                    // A removed node silent for an election timeout is let go.
                    self.prune_removed();
                    self.broadcast_heartbeat();
                    if let Some(target) = self.transfer_target() {
                        self.advance_transfer(target, true);
                    }
                }
            }
            _ => {
                if now >= self.election_deadline && !self.can_campaign() {
                    // Learners, joining and removed nodes never campaign.
                    self.reset_election_timer();
                } else if now >= self.election_deadline {
                    if self.config.pre_vote {
                        self.start_pre_vote();
                    } else {
                        self.start_election();
                    }
                }
            }
        }
    }

    /// Feeds one inbound message. `now` is the current time.
    pub fn step(&mut self, now: Duration, envelope: Envelope) -> Result<(), StepError> {
        self.advance(now);
        if envelope.to != self.id {
            return Err(StepError::WrongRecipient {
                to: envelope.to,
                this: self.id,
            });
        }
        let from = envelope.from;
        if from == self.id || !self.accepts_from(from, &envelope.message) {
            return Err(StepError::UnknownPeer { from });
        }
        let message = envelope.message;
        self.validate(from, &message)?;
        let term = message.term();
        if term > self.term() {
            match &message {
                // A pre-vote request proposes a term nobody has yet; a granted pre-vote
                // echoes it. Neither raises anyone's term.
                Message::PreVote(_) | Message::PreVoteReply(VoteReply { granted: true, .. }) => {}
                Message::RequestVote(req) if self.in_lease() && !req.leader_transfer => {
                    let leader = self.leader.unwrap_or(self.id);
                    self.refuse_vote(from, req.term, false, VoteRefusal::LeaderLease { leader });
                    return Ok(());
                }
                Message::AppendEntries(_)
                | Message::TimeoutNow(_)
                | Message::InstallSnapshot(_) => self.become_follower(term, Some(from)),
                _ => self.become_follower(term, None),
            }
        } else if term < self.term() {
            self.reply_stale(from, &message);
            return Ok(());
        }
        if let Some(p) = self.progress.get_mut(&from) {
            p.last_heard = self.now;
        }
        match message {
            Message::RequestVote(req) => self.handle_vote_request(from, req, false),
            Message::PreVote(req) => self.handle_vote_request(from, req, true),
            Message::RequestVoteReply(rep) => self.handle_vote_reply(from, rep, false),
            Message::PreVoteReply(rep) => self.handle_vote_reply(from, rep, true),
            Message::AppendEntries(req) => self.handle_append(from, req),
            Message::AppendEntriesReply(rep) => self.handle_append_reply(from, rep),
            Message::TimeoutNow(req) => self.handle_timeout_now(from, req),
            Message::ReadIndex(req) => self.handle_read_request(from, req),
            Message::ReadIndexReply(rep) => self.handle_read_reply(rep),
            Message::InstallSnapshot(req) => self.handle_install_snapshot(from, *req),
            Message::InstallSnapshotReply(rep) => self.handle_install_reply(from, rep),
        }
        Ok(())
    }

    /// Appends a client command to the leader's log. It leaves for the followers with
    /// the next [`ready`](Self::ready), batched with every other proposal fed before it.
    ///
    /// Refused with [`ProposeError::Busy`] while the uncommitted tail is at
    /// [`Config::max_uncommitted_entries`] or [`Config::max_uncommitted_bytes`] (a
    /// single command larger than the byte bound is still taken when nothing else is
    /// uncommitted, so it can never be refused forever).
    pub fn propose(&mut self, command: Bytes) -> Result<LogId, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(target) = self.transfer_target() {
            return Err(ProposeError::TransferInProgress { target });
        }
        let entries = (self.log.last_index() - self.commit) as usize;
        let bytes = self.uncommitted_bytes;
        if entries >= self.config.max_uncommitted_entries
            || (bytes > 0 && bytes + command.len() > self.config.max_uncommitted_bytes)
        {
            return Err(ProposeError::Busy { entries, bytes });
        }
        Ok(self.append_local(Payload::Command(command)))
    }

    /// Entries and payload bytes appended by this leader that are not committed yet
    /// (zeros on a follower).
    pub fn uncommitted(&self) -> (usize, usize) {
        if self.role != Role::Leader {
            return (0, 0);
        }
        (
            (self.log.last_index() - self.commit) as usize,
            self.uncommitted_bytes,
        )
    }

    /// Reports that the write whose last entry is `last` is durable. A stale report (the
    /// entry was replaced since) is ignored.
    pub fn persisted(&mut self, last: LogId) {
        if last.index <= self.persisted || self.log.term_at(last.index) != Some(last.term) {
            return;
        }
        self.persisted = last.index;
        if last.term == self.term() {
            // The write that holds an entry of this term also held the term itself.
            self.unsaved_leadership = false;
            self.durable_term = self.durable_term.max(last.term);
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// Reports that `hard`, a [`Ready::hard_state`] handed out earlier, is durable (the
    /// write that held it completed). A candidate sends its vote requests before its new
    /// term and vote are durable, and counts its own vote only from this call on.
    pub fn hard_state_persisted(&mut self, hard: HardState) {
        if hard.current_term <= self.durable_term {
            return;
        }
        self.durable_term = hard.current_term;
        if hard.current_term == self.term() && self.role == Role::Leader {
            self.unsaved_leadership = false;
        }
        if self.role == Role::Candidate
            && hard.current_term == self.term()
            && hard.voted_for == Some(self.id)
        {
            self.count_own_vote();
        }
    }

    /// Reports that the state machine has applied every entry up to `index`.
    pub fn applied(&mut self, index: LogIndex) {
        if index > self.applied && index <= self.handed {
            self.applied = index;
            self.trim_window();
        }
    }

    /// True when [`ready`](Self::ready) has something for the driver.
    pub fn has_ready(&self) -> bool {
        self.pending_broadcast
            || self.hard != self.saved_hard
            || self.pending_truncate.is_some()
            || self.unstable_from <= self.log.last_index()
            || !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || !self.events.is_empty()
            || self.handed < self.apply_limit()
            || self.reads_ready()
            || self.pending_reset.is_some()
            || !self.install_chunks.is_empty()
            || !self.snapshot_sends.is_empty()
            || !self.log_reads.is_empty()
    }

    /// The highest index the next `Ready` may hand out for applying: committed, durable
    /// here, and at most [`Config::max_apply_batch`] past what the driver has applied.
    fn apply_limit(&self) -> LogIndex {
        self.commit
            .min(self.persisted)
            .min(self.applied + self.config.max_apply_batch as u64)
    }

    /// Takes the next batch of work. See the driving contract on [`RaftCore`].
    pub fn ready(&mut self) -> Ready {
        if self.pending_broadcast {
            self.pending_broadcast = false;
            self.broadcast_append();
        }
        self.flush_reads();
        let hard_state = (self.hard != self.saved_hard).then_some(self.hard);
        self.saved_hard = self.hard;
        let last = self.log.last_index();
        let entries = if self.unstable_from <= last {
            self.log.range(self.unstable_from, last).to_vec()
        } else {
            Vec::new()
        };
        self.unstable_from = last + 1;
        let apply_to = self.apply_limit();
        let committed = if self.handed < apply_to {
            let mut c = std::mem::take(&mut self.spare_committed);
            c.extend_from_slice(self.log.range(self.handed + 1, apply_to));
            self.handed = apply_to;
            c
        } else {
            Vec::new()
        };
        Ready {
            hard_state,
            truncate_from: self.pending_truncate.take(),
            entries,
            messages: std::mem::take(&mut self.messages),
            persisted_messages: std::mem::take(&mut self.persisted_messages),
            committed,
            events: std::mem::take(&mut self.events),
            reads: std::mem::take(&mut self.reads.done),
            reset_log: self.pending_reset.take(),
            install_chunks: std::mem::take(&mut self.install_chunks),
            snapshot_sends: std::mem::take(&mut self.snapshot_sends),
            log_reads: std::mem::take(&mut self.log_reads),
        }
    }

    /// Hands back a `Ready` whose work was taken: the core keeps the vectors' memory
    /// for the next ones (what they still hold is dropped). Optional; a driver that
    /// drops its `Ready`s instead costs only allocations.
    pub fn recycle(&mut self, mut ready: Ready) {
        fn keep<T>(mine: &mut Vec<T>, spare: &mut Vec<T>) {
            if mine.capacity() == 0 {
                spare.clear();
                std::mem::swap(mine, spare);
            }
        }
        keep(&mut self.messages, &mut ready.messages);
        keep(&mut self.persisted_messages, &mut ready.persisted_messages);
        keep(&mut self.events, &mut ready.events);
        keep(&mut self.spare_committed, &mut ready.committed);
    }

    // ----- shared helpers -------------------------------------------------------------

    fn term(&self) -> Term {
        self.hard.current_term
    }

    fn advance(&mut self, now: Duration) {
        if now > self.now {
            self.now = now;
        }
        self.reads.observe_time(now);
    }

    fn send(&mut self, to: NodeId, message: Message) {
        if self.unsaved_leadership {
            self.send_after_persist(to, message);
            return;
        }
        self.messages.push(Envelope {
            from: self.id,
            to,
            message,
        });
    }

    fn send_after_persist(&mut self, to: NodeId, message: Message) {
        self.persisted_messages.push(Envelope {
            from: self.id,
            to,
            message,
        });
    }

    /// The nodes a leader replicates to: every member of the configuration in force
    /// and, until that configuration commits, of the committed one before it (so that
    /// a node being removed still gets the entry that removes it, and learns it was
    /// removed), this node excepted.
    fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let id = self.id;
        let mut ids = self.configs.current().members();
        if self.configs.current_index() > self.commit {
            ids.extend(self.configs.at(self.commit).members());
        }
        ids.into_iter().filter(move |&m| m != id)
    }

    fn reset_election_timer(&mut self) {
        let min = self.config.election_timeout_min.as_nanos() as u64;
        let max = self.config.election_timeout_max.as_nanos() as u64;
        let timeout = min + self.rng.below(max - min);
        self.election_deadline = self.now + Duration::from_nanos(timeout);
    }

    /// Appends an entry of the current term to the local log (leader only).
    fn append_local(&mut self, payload: Payload) -> LogId {
        let id = LogId::new(self.term(), self.log.last_index() + 1);
        self.uncommitted_bytes += payload.len();
        let entry = Entry {
            term: id.term,
            index: id.index,
            payload,
        };
        self.note_appended(&entry);
        self.log.push(entry);
        self.pending_broadcast = true;
        id
    }

    /// Removes the local suffix from `index` on (a follower replacing conflicting
    /// entries), keeping the Ready bookkeeping in step.
    fn truncate_local(&mut self, index: LogIndex) {
        debug_assert!(index > self.commit, "never truncate committed entries");
        self.log.truncate_from(index);
        if self.configs.truncate_from(index) {
            self.membership_changed();
        }
        self.pending_truncate = Some(self.pending_truncate.map_or(index, |t| t.min(index)));
        self.unstable_from = self.unstable_from.min(index);
        self.persisted = self.persisted.min(index - 1);
    }

    fn set_role(&mut self, role: Role) {
        if self.role != role {
            self.role = role;
            self.events.push(Event::RoleChanged {
                role,
                term: self.term(),
            });
        }
    }

    fn set_leader(&mut self, leader: Option<NodeId>) {
        if self.leader != leader {
            self.leader = leader;
            self.events.push(Event::LeaderChanged {
                leader,
                term: self.term(),
            });
        }
    }

    /// Becomes a follower in `term` (at least the current one). The election timer keeps
    /// running unless this node was leading: Figure 2 resets it only on hearing from the
    /// leader or granting a vote, so a stream of hopeless candidates cannot hold off
    /// everyone else's elections.
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was_leader = self.role == Role::Leader;
        if term > self.term() {
            self.hard.current_term = term;
            self.hard.voted_for = None;
            self.leader_contact = None;
            self.events.push(Event::TermChanged { term });
            // Whatever leader we knew belonged to the old term.
            self.set_leader(leader);
        } else if leader.is_some() {
            self.set_leader(leader);
        } else if self.leader == Some(self.id) {
            self.set_leader(None);
        }
        self.set_role(Role::Follower);
        self.unsaved_leadership = false;
        self.transfer = None;
        self.progress.clear();
        self.granted.clear();
        self.refused.clear();
        self.pending_broadcast = false;
        self.heartbeat_deadline = Duration::MAX;
        if was_leader {
            self.reset_election_timer();
            self.abandon_reads();
        }
    }
}

#[cfg(test)]
mod tests;
