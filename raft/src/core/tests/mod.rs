//! Unit tests of the protocol core, in the style of etcd's `raft_paper_test.go`: every
//! test names the section of the Raft paper (Ongaro & Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", extended version) whose rule it checks, or the
//! extension (Pre-Vote, CheckQuorum, §9.6 of Ongaro's thesis) it exercises.
//!
//! The harness at the top drives real [`RaftCore`]s: a [`Cluster`] keyed by node id with a
//! manual clock, "instant" storage (every `Ready` write is durable at once, unless a
//! node's writes are explicitly held back), FIFO delivery with an optional drop filter,
//! and a few helpers for single cores fed by hand.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use super::*;

// ===== harness ========================================================================

const NS: Duration = Duration::from_nanos(1);

/// The default configuration: 150..300 ms election timeouts, 50 ms heartbeats, Pre-Vote
/// and CheckQuorum on.
fn config() -> Config {
    Config::default()
}

/// The plain Raft of the paper: no Pre-Vote.
fn config_no_pre_vote() -> Config {
    Config {
        pre_vote: false,
        ..Config::default()
    }
}

/// The entry every node agrees on for a given (term, index): its payload is derived from
/// both, so logs built independently are equal exactly where they match.
fn entry(term: Term, index: LogIndex) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Command(Bytes::from(format!("t{term}i{index}"))),
    }
}

fn noop(term: Term, index: LogIndex) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Noop,
    }
}

/// A log from index 1 whose entries have the given terms.
fn log_of(terms: &[Term]) -> Vec<Entry> {
    terms.iter().zip(1..).map(|(&t, i)| entry(t, i)).collect()
}

fn terms_of(entries: &[Entry]) -> Vec<Term> {
    entries.iter().map(|e| e.term).collect()
}

/// What a node recovers from storage: a hard state and a log with the given terms.
fn initial(term: Term, voted_for: Option<NodeId>, log: &[Term]) -> InitialState {
    InitialState {
        hard_state: HardState {
            current_term: term,
            voted_for,
        },
        log_prefix: LogId::default(),
        entries: log_of(log),
        applied_index: 0,
        snapshot: LogId::default(),
        membership: None,
    }
}

fn new_core(id: NodeId, members: &[NodeId], config: Config, state: InitialState) -> RaftCore {
    RaftCore::new(id, members.to_vec(), config, state, 0x5EED_0000 + id).expect("valid core")
}

fn env(from: NodeId, to: NodeId, message: Message) -> Envelope {
    Envelope { from, to, message }
}

/// Feeds `message` from `from` to a hand-driven core, at the core's current time.
fn step(core: &mut RaftCore, from: NodeId, message: Message) {
    let now = core.now;
    core.step(now, env(from, core.id(), message))
        .expect("accepted");
}

/// Takes the next `Ready` of a hand-driven core and makes its write durable at once.
fn ready_persisted(core: &mut RaftCore) -> Ready {
    let ready = core.ready();
    if let Some(hard) = ready.hard_state {
        core.hard_state_persisted(hard);
    }
    if let Some(ack) = ready.persist_ack() {
        core.persisted(ack);
    }
    ready
}

/// Ticks a hand-driven core exactly at its next deadline.
fn fire(core: &mut RaftCore) {
    let at = core.next_deadline();
    core.tick(at);
}

fn append(term: Term, prev: LogId, entries: Vec<Entry>, leader_commit: LogIndex) -> Message {
    Message::AppendEntries(AppendRequest {
        term,
        prev_log: prev,
        entries,
        leader_commit,
        read_round: 0,
    })
}

fn request_vote(term: Term, last_log: LogId) -> Message {
    Message::RequestVote(VoteRequest {
        term,
        last_log,
        leader_transfer: false,
    })
}

fn vote_reply(term: Term, granted: bool) -> Message {
    Message::RequestVoteReply(VoteReply { term, granted })
}

fn is_conflict(message: &Message) -> bool {
    matches!(
        message,
        Message::AppendEntriesReply(AppendReply {
            result: AppendResult::Conflict { .. },
            ..
        })
    )
}

type Filter = Box<dyn Fn(&Envelope) -> bool>;

/// A write still in flight: the id to acknowledge and the messages waiting for it.
type HeldWrite = (Option<HardState>, Option<LogId>, Vec<Envelope>);

/// Votes a candidate receives in one round: (voter, granted).
type Votes = &'static [(NodeId, bool)];

/// Several cores wired together: a manual clock, instant storage and a FIFO network.
struct Cluster {
    nodes: BTreeMap<NodeId, RaftCore>,
    now: Duration,
    /// Messages sent and not yet delivered, oldest first.
    queue: VecDeque<Envelope>,
    /// When set, only messages it accepts are delivered; the rest are lost.
    filter: Option<Filter>,
    /// Every message handed to the network, in order.
    sent: Vec<Envelope>,
    /// Every message that reached its recipient, in order.
    delivered: Vec<Envelope>,
    /// Every event, with the time and node it happened at.
    events: Vec<(Duration, NodeId, Event)>,
    /// Entries each node's state machine was handed, in order.
    applied: BTreeMap<NodeId, Vec<Entry>>,
    /// Nodes whose writes are not durable until `release_writes`.
    hold: BTreeSet<NodeId>,
    /// Held writes: the ack to report and the messages waiting for it.
    held: BTreeMap<NodeId, Vec<HeldWrite>>,
    /// Election Safety (§5.2): the one leader of each term seen so far.
    leaders: BTreeMap<Term, NodeId>,
    /// Read outcomes, with the time and node they came out at.
    reads: Vec<(Duration, NodeId, ReadState)>,
    /// The last snapshot each node installed from its leader.
    installed: BTreeMap<NodeId, LogIndex>,
    /// Each node's stored log (its durable writes, compactions aside), to answer the
    /// reads of entries behind a leader's in-memory window.
    disk: BTreeMap<NodeId, BTreeMap<LogIndex, Entry>>,
    /// Reads of stored entries answered, per node.
    log_reads: BTreeMap<NodeId, u64>,
    /// When set, reads of stored entries are not answered but kept here.
    held_reads: Option<Vec<(NodeId, LogRead)>>,
}

impl Cluster {
    /// `size` fresh nodes with ids 1..=size.
    fn new(size: u64, config: Config) -> Self {
        Self::with_states(
            config,
            (1..=size).map(|id| (id, InitialState::default())).collect(),
        )
    }

    /// One node per given state; the ids listed are the members.
    fn with_states(config: Config, states: Vec<(NodeId, InitialState)>) -> Self {
        let members: Vec<NodeId> = states.iter().map(|(id, _)| *id).collect();
        let nodes = states
            .into_iter()
            .map(|(id, state)| (id, new_core(id, &members, config.clone(), state)))
            .collect();
        Self {
            nodes,
            now: Duration::ZERO,
            queue: VecDeque::new(),
            filter: None,
            sent: Vec::new(),
            delivered: Vec::new(),
            events: Vec::new(),
            applied: BTreeMap::new(),
            installed: BTreeMap::new(),
            disk: BTreeMap::new(),
            log_reads: BTreeMap::new(),
            held_reads: None,
            hold: BTreeSet::new(),
            held: BTreeMap::new(),
            leaders: BTreeMap::new(),
            reads: Vec::new(),
        }
    }

    fn node(&self, id: NodeId) -> &RaftCore {
        &self.nodes[&id]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut RaftCore {
        self.nodes.get_mut(&id).expect("no such node")
    }

    fn status(&self, id: NodeId) -> Status {
        self.node(id).status()
    }

    /// Node `id`'s whole log.
    fn log(&self, id: NodeId) -> Vec<Entry> {
        let node = self.node(id);
        node.log_entries(1, node.status().last_log.index).to_vec()
    }

    fn applied_indexes(&self, id: NodeId) -> Vec<LogIndex> {
        self.applied
            .get(&id)
            .map_or_else(Vec::new, |es| es.iter().map(|e| e.index).collect())
    }

    /// Only messages `keep` accepts are delivered from now on; the others are lost.
    fn set_filter(&mut self, keep: impl Fn(&Envelope) -> bool + 'static) {
        self.filter = Some(Box::new(keep));
    }

    /// Cuts `id` off from everyone.
    fn isolate(&mut self, id: NodeId) {
        self.set_filter(move |e| e.from != id && e.to != id);
    }

    fn heal(&mut self) {
        self.filter = None;
    }

    /// Writes of `id` stay in flight (and its persisted messages unsent) until released.
    fn hold_writes(&mut self, id: NodeId) {
        self.hold.insert(id);
    }

    /// Makes every held write of `id` durable, in order, and sends what waited for it.
    fn release_writes(&mut self, id: NodeId) {
        self.hold.remove(&id);
        for (hard, ack, messages) in self.held.remove(&id).unwrap_or_default() {
            if let Some(hard) = hard {
                self.node_mut(id).hard_state_persisted(hard);
            }
            if let Some(ack) = ack {
                self.node_mut(id).persisted(ack);
            }
            self.sent.extend(messages.iter().cloned());
            self.queue.extend(messages);
        }
        self.drain(id);
    }

    /// Executes every pending `Ready` of `id`: write (instantly durable unless held),
    /// send, apply.
    fn drain(&mut self, id: NodeId) {
        let now = self.now;
        let held = self.hold.contains(&id);
        let node = self.nodes.get_mut(&id).expect("no such node");
        while node.has_ready() {
            let ready = node.ready();
            assert!(!ready.is_empty(), "has_ready promised work");
            for &event in &ready.events {
                if let Event::RoleChanged {
                    role: Role::Leader,
                    term,
                } = event
                {
                    let first = *self.leaders.entry(term).or_insert(id);
                    assert_eq!(first, id, "two leaders elected in term {term}");
                }
                self.events.push((now, id, event));
            }
            self.reads.extend(ready.reads.iter().map(|r| (now, id, *r)));
            // The stored log follows every write (held writes too: the reads below only
            // ask for entries behind the window, which are durable).
            let disk = self.disk.entry(id).or_default();
            if let Some(reset) = ready.reset_log {
                disk.clear();
                let _ = reset;
            }
            if let Some(from) = ready.truncate_from {
                disk.retain(|&i, _| i < from);
            }
            for e in &ready.entries {
                disk.retain(|&i, _| i < e.index);
                disk.insert(e.index, e.clone());
            }
            for read in &ready.log_reads {
                if let Some(held) = self.held_reads.as_mut() {
                    held.push((id, *read));
                    continue;
                }
                let entries: Option<Vec<Entry>> = (read.from..=read.to)
                    .map(|i| disk.get(&i).cloned())
                    .collect();
                *self.log_reads.entry(id).or_default() += 1;
                node.log_read_done(*read, entries);
            }
            let ack = ready.persist_ack();
            self.sent.extend(ready.messages.iter().cloned());
            self.queue.extend(ready.messages);
            if held {
                self.held.entry(id).or_default().push((
                    ready.hard_state,
                    ack,
                    ready.persisted_messages,
                ));
            } else {
                if let Some(hard) = ready.hard_state {
                    node.hard_state_persisted(hard);
                }
                if let Some(ack) = ack {
                    node.persisted(ack);
                }
                self.sent.extend(ready.persisted_messages.iter().cloned());
                self.queue.extend(ready.persisted_messages);
            }
            // Snapshot IO, done at once: chunks to send are cut from a synthetic
            // snapshot (`snapshot_bytes`); received chunks are "stored" immediately.
            for send in &ready.snapshot_sends {
                if let Some(envelope) = snapshot_chunk(id, node.config(), send) {
                    self.sent.push(envelope.clone());
                    self.queue.push_back(envelope);
                }
            }
            for chunk in &ready.install_chunks {
                let last = chunk.meta.last_included;
                if chunk.done {
                    node.snapshot_installed(last);
                    self.installed.insert(id, last.index);
                } else {
                    node.snapshot_chunk_stored(last, chunk.offset + chunk.data.len() as u64);
                }
            }
            let floor = self.installed.get(&id).copied().unwrap_or(0);
            let applied = self.applied.entry(id).or_default();
            for entry in ready.committed {
                if let Some(last) = applied.last() {
                    assert_eq!(
                        entry.index,
                        last.index.max(floor) + 1,
                        "node {id} applies in order"
                    );
                }
                node.applied(entry.index);
                applied.push(entry);
            }
        }
    }

    fn drain_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.drain(id);
        }
    }

    /// Delivers one message (unless the filter drops it) and executes the reaction.
    fn deliver(&mut self, envelope: Envelope) {
        if let Some(keep) = &self.filter {
            if !keep(&envelope) {
                return;
            }
        }
        self.delivered.push(envelope.clone());
        let (now, to) = (self.now, envelope.to);
        match self.node_mut(to).step(now, envelope) {
            // A late message from a node the recipient no longer counts as a member
            // (removed by a membership change) is dropped, like a lost one.
            Ok(()) | Err(StepError::UnknownPeer { .. }) => {}
            Err(e) => panic!("step: {e:?}"),
        }
        self.drain(to);
    }

    /// Delivers messages in FIFO order until none is left, without moving the clock.
    fn run(&mut self) {
        self.drain_all();
        let mut steps = 0;
        while let Some(envelope) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the cluster never quiesces");
            self.deliver(envelope);
        }
    }

    /// Like `run`, but only for messages `pick` accepts; the others stay queued in order.
    fn run_only(&mut self, pick: impl Fn(&Envelope) -> bool) {
        self.drain_all();
        while let Some(pos) = self.queue.iter().position(&pick) {
            let envelope = self.queue.remove(pos).expect("present");
            self.deliver(envelope);
        }
    }

    /// Moves the clock to `id`'s next deadline and ticks it (only it). Its output is
    /// queued, not delivered.
    fn fire(&mut self, id: NodeId) {
        self.now = self.now.max(self.node(id).next_deadline());
        let now = self.now;
        self.node_mut(id).tick(now);
        self.drain(id);
    }

    /// Lets `id`'s election timer fire and runs the election to quiescence.
    fn elect(&mut self, id: NodeId) {
        self.fire(id);
        self.run();
        assert_eq!(self.status(id).role, Role::Leader, "node {id} won");
    }

    /// Lets `span` of time pass: every timer fires when due (earliest first), and the
    /// network delivers everything instantly after each.
    fn run_for(&mut self, span: Duration) {
        let until = self.now + span;
        for _ in 0..1_000_000 {
            let (deadline, id) = self
                .nodes
                .iter()
                .map(|(&id, n)| (n.next_deadline(), id))
                .min()
                .expect("nodes");
            if deadline > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(deadline);
            let now = self.now;
            self.node_mut(id).tick(now);
            self.run();
        }
        panic!("timers never settle");
    }

    /// Events of `id` from time `since` on.
    fn events_of(&self, id: NodeId, since: Duration) -> Vec<Event> {
        self.events
            .iter()
            .filter(|(at, n, _)| *n == id && *at >= since)
            .map(|(_, _, e)| *e)
            .collect()
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.status().role == Role::Leader)
            .map(RaftCore::id)
            .collect()
    }
}

/// The synthetic snapshot every test leader sends: two and a half chunks of bytes.
fn snapshot_bytes(config: &Config) -> Vec<u8> {
    let len = config.max_snapshot_chunk_bytes * 5 / 2;
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The InstallSnapshot carrying the chunk `send` names, cut from `snapshot_bytes`.
fn snapshot_chunk(from: NodeId, config: &Config, send: &SnapshotSend) -> Option<Envelope> {
    let bytes = snapshot_bytes(config);
    let start = send.offset as usize;
    if start >= bytes.len() && start > 0 {
        return None;
    }
    let end = (start + send.len).min(bytes.len());
    Some(Envelope {
        from,
        to: send.to,
        message: Message::InstallSnapshot(Box::new(InstallSnapshotRequest {
            term: send.term,
            meta: crate::snapshot::SnapshotMeta {
                last_included: send.snapshot,
                membership: crate::core::ClusterConfig::bootstrap([1, 2, 3]),
            },
            offset: send.offset,
            data: Bytes::copy_from_slice(&bytes[start..end]),
            done: end == bytes.len(),
        })),
    })
}

/// A core of a 3-node cluster {1, 2, 3} in `role`, at term 1 before any election, with a
/// one-entry log. Pre-Vote is on only for `Role::PreCandidate`.
fn core_in_role(role: Role, base: &Config) -> RaftCore {
    let config = Config {
        pre_vote: role == Role::PreCandidate,
        ..base.clone()
    };
    let mut core = new_core(1, &[1, 2, 3], config, initial(1, None, &[1]));
    if role != Role::Follower {
        fire(&mut core);
        let _ = ready_persisted(&mut core);
    }
    if role == Role::Leader {
        let term = core.status().term;
        step(&mut core, 2, vote_reply(term, true));
        let _ = ready_persisted(&mut core);
    }
    assert_eq!(core.status().role, role);
    core
}

mod construction;
mod pre_vote_check_quorum;
mod reads;
mod s3_10_transfer;
mod s5_1_terms;
mod s5_2_election;
mod s5_3_replication;
mod s5_4_safety;
mod s6_membership;
mod s7_log_compaction;
mod validation;
mod window;
