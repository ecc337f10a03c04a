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
    })
}

fn request_vote(term: Term, last_log: LogId) -> Message {
    Message::RequestVote(VoteRequest { term, last_log })
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
type HeldWrite = (Option<LogId>, Vec<Envelope>);

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
            hold: BTreeSet::new(),
            held: BTreeMap::new(),
            leaders: BTreeMap::new(),
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
        for (ack, messages) in self.held.remove(&id).unwrap_or_default() {
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
            let ack = ready.persist_ack();
            self.sent.extend(ready.messages.iter().cloned());
            self.queue.extend(ready.messages);
            if held {
                self.held
                    .entry(id)
                    .or_default()
                    .push((ack, ready.persisted_messages));
            } else {
                if let Some(ack) = ack {
                    node.persisted(ack);
                }
                self.sent.extend(ready.persisted_messages.iter().cloned());
                self.queue.extend(ready.persisted_messages);
            }
            let applied = self.applied.entry(id).or_default();
            for entry in ready.committed {
                if let Some(last) = applied.last() {
                    assert_eq!(entry.index, last.index + 1, "node {id} applies in order");
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
        self.node_mut(to).step(now, envelope).expect("step");
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

// ===== §5.1: terms ====================================================================

/// §5.1: "If a server's current term is smaller than the other's, it updates its current
/// term to the larger value. If a candidate or leader discovers that its term is out of
/// date, it immediately reverts to follower state." Checked for every RPC and reply a
/// node can receive (a refused pre-vote reply carries the voter's real term), from every
/// role. (CheckQuorum is off so that the leader's lease does not refuse the RequestVote.)
#[test]
fn s5_1_any_message_with_a_larger_term_makes_a_follower_of_that_term() {
    let base = Config {
        check_quorum: false,
        ..config()
    };
    type MakeMessage = fn(Term) -> Message;
    let kinds: [(&str, MakeMessage); 5] = [
        ("RequestVote", |t| request_vote(t, LogId::default())),
        ("RequestVoteReply", |t| vote_reply(t, false)),
        ("AppendEntries", |t| append(t, LogId::default(), vec![], 0)),
        ("AppendEntriesReply", |t| {
            Message::AppendEntriesReply(AppendReply {
                term: t,
                result: AppendResult::Success { match_index: 0 },
            })
        }),
        ("refused PreVoteReply", |t| {
            Message::PreVoteReply(VoteReply {
                term: t,
                granted: false,
            })
        }),
    ];
    for role in [
        Role::Follower,
        Role::PreCandidate,
        Role::Candidate,
        Role::Leader,
    ] {
        for (name, make) in kinds {
            let mut core = core_in_role(role, &base);
            let term = core.status().term + 2;
            step(&mut core, 2, make(term));
            let status = core.status();
            assert_eq!(status.term, term, "{role} given {name}");
            assert_eq!(status.role, Role::Follower, "{role} given {name}");
            if name == "AppendEntries" {
                assert_eq!(status.leader, Some(2), "{role} given {name}");
            } else {
                assert_eq!(status.leader, None, "{role} given {name}");
            }
            let ready = core.ready();
            assert_eq!(
                ready.hard_state.map(|h| h.current_term),
                Some(term),
                "{role} given {name}: the new term must be persisted"
            );
            assert!(ready.events.contains(&Event::TermChanged { term }));
        }
    }
}

/// §5.1 with Pre-Vote: a PreVote request proposes a term nobody holds yet, and a granted
/// pre-vote reply only echoes it; neither raises the receiver's term.
#[test]
fn s5_1_pre_vote_messages_do_not_raise_the_term() {
    let mut voter = new_core(1, &[1, 2, 3], config(), initial(2, None, &[1, 2]));
    step(
        &mut voter,
        2,
        Message::PreVote(VoteRequest {
            term: 5,
            last_log: LogId::new(2, 2),
        }),
    );
    let status = voter.status();
    assert_eq!((status.term, status.voted_for), (2, None));
    let ready = voter.ready();
    assert_eq!(ready.hard_state, None, "nothing to persist for a pre-vote");
    assert_eq!(
        ready.messages,
        vec![env(
            1,
            2,
            Message::PreVoteReply(VoteReply {
                term: 5,
                granted: true
            })
        )]
    );
    assert!(ready.persisted_messages.is_empty());

    // A pre-candidate of a 5-node cluster gets one granted reply (not yet a quorum).
    let mut pre = new_core(1, &[1, 2, 3, 4, 5], config(), initial(2, None, &[1, 2]));
    fire(&mut pre);
    assert_eq!(pre.status().role, Role::PreCandidate);
    assert_eq!(pre.status().term, 2, "Pre-Vote does not raise the term");
    step(
        &mut pre,
        2,
        Message::PreVoteReply(VoteReply {
            term: 3,
            granted: true,
        }),
    );
    assert_eq!(pre.status().term, 2);
    assert_eq!(pre.status().role, Role::PreCandidate);
}

/// §5.1: "If a server receives a request with a stale term number, it rejects the
/// request." The rejection carries the current term so that the sender updates.
#[test]
fn s5_1_requests_with_a_stale_term_are_rejected() {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(3, None, &[1, 3]));
    let deadline = core.next_deadline();

    step(
        &mut core,
        2,
        append(2, LogId::new(1, 1), vec![entry(2, 2)], 1),
    );
    let status = core.status();
    assert_eq!(status.term, 3);
    assert_eq!(status.leader, None, "a stale leader is not recognised");
    assert_eq!(status.last_log, LogId::new(3, 2), "log untouched");
    assert_eq!(status.commit_index, 0);
    assert_eq!(core.next_deadline(), deadline, "election timer not reset");
    let ready = core.ready();
    assert_eq!(ready.hard_state, None);
    assert!(ready.entries.is_empty() && ready.truncate_from.is_none());
    assert_eq!(ready.messages.len(), 1);
    let reply = &ready.messages[0];
    assert_eq!((reply.to, reply.message.term()), (2, 3));
    assert!(is_conflict(&reply.message), "{reply:?}");

    step(&mut core, 3, request_vote(2, LogId::new(9, 9)));
    assert_eq!(core.status().voted_for, None);
    assert_eq!(core.status().term, 3);
    let ready = core.ready();
    assert_eq!(ready.messages, vec![env(1, 3, vote_reply(3, false))]);
    assert!(ready.persisted_messages.is_empty());

    // And a stale leader learns the newer term from that rejection (§5.1).
    let mut leader = core_in_role(Role::Leader, &config_no_pre_vote());
    let term = leader.status().term;
    step(
        &mut leader,
        2,
        Message::AppendEntriesReply(AppendReply {
            term: term + 1,
            result: AppendResult::Conflict {
                rejected: 1,
                hint: ConflictHint {
                    term: None,
                    index: 3,
                },
            },
        }),
    );
    assert_eq!(leader.status().role, Role::Follower);
    assert_eq!(leader.status().term, term + 1);
}

// ===== §5.2: leader election ==========================================================

/// §5.2: "When servers start up, they begin as followers", with the term and vote they
/// recovered, no known leader, and an election timer armed.
#[test]
fn s5_2_nodes_start_as_followers() {
    let cfg = config();
    let c = Cluster::new(3, cfg.clone());
    for id in 1..=3 {
        let status = c.status(id);
        assert_eq!(status.role, Role::Follower);
        assert_eq!(
            (status.term, status.voted_for, status.leader),
            (0, None, None)
        );
        let deadline = c.node(id).next_deadline();
        assert!(deadline >= cfg.election_timeout_min && deadline < cfg.election_timeout_max);
    }
    let restarted = new_core(2, &[1, 2, 3], cfg, initial(5, Some(3), &[1, 4]));
    let status = restarted.status();
    assert_eq!(status.role, Role::Follower);
    assert_eq!((status.term, status.voted_for), (5, Some(3)));
    assert_eq!(status.last_log, LogId::new(4, 2));
    assert_eq!(
        status.commit_index, 0,
        "nothing is known committed on restart"
    );
}

/// §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries)
/// to all followers", every heartbeat interval, and nothing in between.
#[test]
fn s5_2_leader_sends_heartbeats_to_every_peer_each_interval() {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval * 2);
    let term = c.status(1).term;
    for _ in 0..3 {
        let deadline = c.node(1).next_deadline();
        c.node_mut(1).tick(deadline - NS);
        assert!(!c.node(1).has_ready(), "no heartbeat before the interval");
        let before = c.sent.len();
        c.fire(1);
        assert_eq!(c.now, deadline);
        let mut to = Vec::new();
        for e in &c.sent[before..] {
            let Message::AppendEntries(req) = &e.message else {
                panic!("unexpected {e:?}");
            };
            assert_eq!(e.from, 1);
            assert_eq!(req.term, term);
            assert!(req.entries.is_empty(), "a heartbeat carries no entries");
            assert_eq!(req.leader_commit, c.status(1).commit_index);
            to.push(e.to);
        }
        to.sort_unstable();
        assert_eq!(to, vec![2, 3]);
        assert_eq!(c.node(1).next_deadline(), deadline + cfg.heartbeat_interval);
        c.run();
    }
    assert_eq!(c.status(2).leader, Some(1));
}

/// §5.2: "If a follower receives no communication over a period of time called the
/// election timeout, then it ... begins an election": it increments its term, votes for
/// itself and sends RequestVote to every peer; the requests leave only once the new term
/// and vote are durable (they are in `persisted_messages`). A candidate that neither wins
/// nor loses starts a new election when its timer fires again.
#[test]
fn s5_2_follower_and_candidate_start_an_election_on_timeout() {
    let mut core = new_core(
        1,
        &[1, 2, 3],
        config_no_pre_vote(),
        initial(2, None, &[1, 2]),
    );
    let deadline = core.next_deadline();
    core.tick(deadline - NS);
    assert!(!core.has_ready());
    assert_eq!(core.status().role, Role::Follower);

    for term in [3, 4] {
        fire(&mut core);
        let status = core.status();
        assert_eq!(status.role, Role::Candidate);
        assert_eq!((status.term, status.voted_for), (term, Some(1)));
        let ready = core.ready();
        assert_eq!(
            ready.hard_state,
            Some(HardState {
                current_term: term,
                voted_for: Some(1)
            })
        );
        assert!(
            ready.messages.is_empty(),
            "nothing leaves before the vote is durable"
        );
        let request = request_vote(term, LogId::new(2, 2));
        assert_eq!(
            ready.persisted_messages,
            vec![env(1, 2, request.clone()), env(1, 3, request)]
        );
        assert!(ready.events.contains(&Event::ElectionStarted {
            term,
            pre_vote: false
        }));
    }
}

/// §5.2: a candidate wins an election if it receives votes from a majority (its own
/// included), loses (returns to follower) once a majority refused, and otherwise stays a
/// candidate. One round, for clusters of 1, 3 and 5 nodes (etcd's
/// TestLeaderElectionInOneRoundRPC).
#[test]
fn s5_2_election_outcome_in_one_round() {
    let cases: &[(u64, Votes, Role)] = &[
        (1, &[], Role::Leader),
        (3, &[(2, true), (3, true)], Role::Leader),
        (3, &[(2, true)], Role::Leader),
        (3, &[(2, false), (3, true)], Role::Leader),
        (
            5,
            &[(2, true), (3, true), (4, true), (5, true)],
            Role::Leader,
        ),
        (5, &[(2, true), (3, true), (4, true)], Role::Leader),
        (5, &[(2, true), (3, true)], Role::Leader),
        (
            5,
            &[(2, false), (3, false), (4, true), (5, true)],
            Role::Leader,
        ),
        (3, &[(2, false), (3, false)], Role::Follower),
        (
            5,
            &[(2, false), (3, false), (4, false), (5, false)],
            Role::Follower,
        ),
        (
            5,
            &[(2, true), (3, false), (4, false), (5, false)],
            Role::Follower,
        ),
        (5, &[(2, false), (3, false), (4, false)], Role::Follower),
        (3, &[], Role::Candidate),
        (3, &[(2, false)], Role::Candidate),
        (5, &[(2, true)], Role::Candidate),
        (5, &[(2, false), (3, false)], Role::Candidate),
        (5, &[(2, true), (3, false), (4, false)], Role::Candidate),
    ];
    for &(size, votes, want) in cases {
        let members: Vec<NodeId> = (1..=size).collect();
        let mut core = new_core(1, &members, config_no_pre_vote(), InitialState::default());
        fire(&mut core);
        let _ = ready_persisted(&mut core);
        for &(from, granted) in votes {
            step(&mut core, from, vote_reply(1, granted));
        }
        let status = core.status();
        assert_eq!(status.role, want, "size {size}, votes {votes:?}");
        assert_eq!(status.term, 1, "size {size}, votes {votes:?}");
        let leader = (want == Role::Leader).then_some(1);
        assert_eq!(status.leader, leader, "size {size}, votes {votes:?}");
    }
}

/// §5.2 with Pre-Vote (thesis §9.6): a majority of granted pre-votes turns the node into
/// a real candidate of the next term (whose RequestVotes wait for durability); a majority
/// of refusals sends it back to follower; its term never moves during the pre-vote.
#[test]
fn s5_2_pre_vote_outcome_in_one_round() {
    let cases: &[(u64, Votes, Role)] = &[
        (1, &[], Role::Leader),
        (3, &[(2, true)], Role::Candidate),
        (3, &[(2, false), (3, true)], Role::Candidate),
        (5, &[(2, true), (3, true)], Role::Candidate),
        (3, &[(2, false), (3, false)], Role::Follower),
        (
            5,
            &[(2, true), (3, false), (4, false), (5, false)],
            Role::Follower,
        ),
        (3, &[], Role::PreCandidate),
        (3, &[(2, false)], Role::PreCandidate),
        (5, &[(2, true)], Role::PreCandidate),
        (5, &[(2, true), (3, false), (4, false)], Role::PreCandidate),
    ];
    for &(size, votes, want) in cases {
        let members: Vec<NodeId> = (1..=size).collect();
        let mut core = new_core(1, &members, config(), initial(4, None, &[4]));
        fire(&mut core);
        let ready = ready_persisted(&mut core);
        if size > 1 {
            assert_eq!(core.status().term, 4, "Pre-Vote keeps the term");
            assert_eq!(ready.hard_state, None);
            assert_eq!(ready.messages.len(), size as usize - 1);
            assert!(ready.messages.iter().all(|e| e.message
                == Message::PreVote(VoteRequest {
                    term: 5,
                    last_log: LogId::new(4, 1)
                })));
        }
        for &(from, granted) in votes {
            // A granted pre-vote echoes the proposed term; a refusal carries the voter's.
            let term = if granted { 5 } else { 4 };
            step(
                &mut core,
                from,
                Message::PreVoteReply(VoteReply { term, granted }),
            );
        }
        let status = core.status();
        assert_eq!(status.role, want, "size {size}, votes {votes:?}");
        let want_term = if matches!(want, Role::Candidate | Role::Leader) {
            5
        } else {
            4
        };
        assert_eq!(status.term, want_term, "size {size}, votes {votes:?}");
        if want == Role::Candidate {
            let ready = core.ready();
            assert_eq!(ready.persisted_messages.len(), size as usize - 1);
            assert!(ready
                .persisted_messages
                .iter()
                .all(|e| e.message == request_vote(5, LogId::new(4, 1))));
        }
    }
}

/// §5.2: "Each server will vote for at most one candidate in a given term, on a
/// first-come-first-served basis." Asking again for the vote already granted is answered
/// with the same grant (a lost reply must not cost the candidate its vote).
#[test]
fn s5_2_one_vote_per_term_first_come_first_served() {
    let mut voter = new_core(1, &[1, 2, 3], config_no_pre_vote(), initial(1, None, &[1]));
    let last = LogId::new(1, 1);

    step(&mut voter, 2, request_vote(2, last));
    assert_eq!(voter.status().voted_for, Some(2));
    let ready = voter.ready();
    assert_eq!(
        ready.hard_state,
        Some(HardState {
            current_term: 2,
            voted_for: Some(2)
        }),
        "the vote is persisted"
    );
    assert!(ready.messages.is_empty());
    assert_eq!(
        ready.persisted_messages,
        vec![env(1, 2, vote_reply(2, true))]
    );

    step(&mut voter, 3, request_vote(2, last));
    assert_eq!(voter.status().voted_for, Some(2));
    let ready = voter.ready();
    assert_eq!(ready.messages, vec![env(1, 3, vote_reply(2, false))]);
    assert!(ready.events.contains(&Event::VoteRefused {
        candidate: 3,
        term: 2,
        pre_vote: false,
        reason: VoteRefusal::AlreadyVoted { voted_for: 2 },
    }));

    step(&mut voter, 2, request_vote(2, last));
    let ready = voter.ready();
    assert_eq!(
        ready.persisted_messages,
        vec![env(1, 2, vote_reply(2, true))]
    );

    // A new term brings a new vote.
    step(&mut voter, 3, request_vote(3, last));
    assert_eq!(voter.status().voted_for, Some(3));
    assert_eq!(voter.status().term, 3);
}

/// §5.2: "If the AppendEntries RPC is from another server claiming to be leader ... and
/// the leader's term is at least as large as the candidate's current term, then the
/// candidate recognizes the leader as legitimate and returns to follower state." Also for
/// a pre-candidate.
#[test]
fn s5_2_candidate_steps_down_on_append_from_a_leader_of_its_term() {
    let mut candidate = core_in_role(Role::Candidate, &config());
    let term = candidate.status().term;
    step(&mut candidate, 2, append(term, LogId::new(1, 1), vec![], 0));
    let status = candidate.status();
    assert_eq!(status.role, Role::Follower);
    assert_eq!((status.term, status.leader), (term, Some(2)));
    assert_eq!(
        status.voted_for,
        Some(1),
        "the vote of this term stays cast"
    );
    let ready = ready_persisted(&mut candidate);
    assert!(ready.events.contains(&Event::RoleChanged {
        role: Role::Follower,
        term
    }));
    assert_eq!(
        ready.messages,
        vec![env(
            1,
            2,
            Message::AppendEntriesReply(AppendReply {
                term,
                result: AppendResult::Success { match_index: 1 }
            })
        )]
    );

    let mut pre = core_in_role(Role::PreCandidate, &config());
    let term = pre.status().term;
    step(&mut pre, 3, append(term, LogId::new(1, 1), vec![], 0));
    assert_eq!(pre.status().role, Role::Follower);
    assert_eq!(pre.status().leader, Some(3));
    assert_eq!(pre.status().term, term);
}

/// §5.2: "Raft uses randomized election timeouts ... chosen randomly from a fixed
/// interval": across seeds, timeouts cover the whole [min, max) range about uniformly,
/// and the same seed always gives the same timeout.
#[test]
fn s5_2_election_timeouts_are_spread_over_the_range() {
    let cfg = config();
    let (lo, hi) = (cfg.election_timeout_min, cfg.election_timeout_max);
    let samples = 1000u32;
    let mut buckets = [0u32; 10];
    let (mut min, mut max) = (Duration::MAX, Duration::ZERO);
    for seed in 0..u64::from(samples) {
        let make = || {
            RaftCore::new(1, vec![1, 2, 3], cfg.clone(), InitialState::default(), seed)
                .expect("valid")
        };
        let timeout = make().next_deadline();
        assert_eq!(make().next_deadline(), timeout, "deterministic per seed");
        min = min.min(timeout);
        max = max.max(timeout);
        let bucket =
            ((timeout.saturating_sub(lo)).as_nanos() * 10 / (hi - lo).as_nanos()).min(9) as usize;
        buckets[bucket] += 1;
    }
    assert!(min >= lo, "{min:?} below {lo:?}");
    assert!(max < hi, "{max:?} not below {hi:?}");
    for (i, &n) in buckets.iter().enumerate() {
        assert!(
            n >= samples / 20,
            "bucket {i} got {n} of {samples}: {buckets:?}"
        );
    }

    // One node's successive timeouts vary too.
    let mut core = new_core(1, &[1, 2, 3], config_no_pre_vote(), InitialState::default());
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let start = core.next_deadline();
        core.tick(start);
        let _ = ready_persisted(&mut core);
        let timeout = core.next_deadline() - start;
        assert!(timeout >= lo && timeout < hi);
        seen.insert(timeout);
    }
    assert!(seen.len() > 10, "re-armed timeouts repeat: {seen:?}");
}

/// §5.2: a cluster left alone elects exactly one leader, which every other node follows
/// (Election Safety is also checked by the harness on every event).
#[test]
fn s5_2_a_cluster_elects_one_leader() {
    for size in [1, 3, 5] {
        let mut c = Cluster::new(size, config());
        c.run_for(Duration::from_secs(2));
        let leaders = c.leaders();
        assert_eq!(leaders.len(), 1, "size {size}");
        let leader = leaders[0];
        let term = c.status(leader).term;
        for id in 1..=size {
            assert_eq!(c.status(id).leader, Some(leader), "size {size}");
            assert_eq!(c.status(id).term, term, "size {size}");
        }
    }
}

// ===== §5.3: log replication ==========================================================

/// §5.3: the leader appends a command to its log and issues AppendEntries to each
/// follower, carrying the new entry and the id of the one before it; a follower refuses
/// proposals and names the leader.
#[test]
fn s5_3_leader_replicates_a_proposal() {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval);
    let before = c.status(1);
    assert_eq!(
        c.node_mut(2).propose("no".into()),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );

    let id = c.node_mut(1).propose("x".into()).expect("leader");
    assert_eq!(id, LogId::new(before.term, before.last_log.index + 1));
    let sent = c.sent.len();
    c.drain(1);
    let mut to = Vec::new();
    for e in &c.sent[sent..] {
        let Message::AppendEntries(req) = &e.message else {
            continue;
        };
        to.push(e.to);
        assert_eq!(req.term, before.term);
        assert_eq!(req.prev_log, before.last_log);
        assert_eq!(
            req.entries,
            vec![Entry {
                term: id.term,
                index: id.index,
                payload: Payload::Command("x".into())
            }]
        );
        assert_eq!(req.leader_commit, before.commit_index);
    }
    to.sort_unstable();
    assert_eq!(to, vec![2, 3]);

    c.run();
    for node in [2, 3] {
        assert_eq!(c.node(node).log_term(id.index), Some(id.term));
    }
    assert_eq!(c.status(1).commit_index, id.index);
}

/// §5.3: "A log entry is committed once the leader that created the entry has replicated
/// it on a majority of the servers" — and not before: in a 5-node cluster, the leader and
/// one follower are a minority. Followers learn the commit index from later
/// AppendEntries and apply too.
#[test]
fn s5_3_commit_needs_a_majority() {
    let cfg = config();
    let mut c = Cluster::new(5, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval);
    let commit = c.status(1).commit_index;

    let id = c.node_mut(1).propose("x".into()).expect("leader");
    let with = |n: NodeId| move |e: &Envelope| e.from == n || e.to == n;
    c.run_only(with(2));
    assert_eq!(c.node(2).log_term(id.index), Some(id.term));
    assert_eq!(
        c.status(1).commit_index,
        commit,
        "two of five is a minority"
    );
    assert!(!c.applied_indexes(1).contains(&id.index));

    c.run_only(with(3));
    assert_eq!(c.status(1).commit_index, id.index, "three of five commit");
    assert_eq!(c.applied_indexes(1).last(), Some(&id.index));
    assert!(c
        .events_of(1, Duration::ZERO)
        .contains(&Event::Committed { index: id.index }));

    c.run();
    c.run_for(cfg.heartbeat_interval);
    for node in 1..=5 {
        assert_eq!(c.status(node).commit_index, id.index, "node {node}");
        assert_eq!(c.applied[&node].last().map(Entry::log_id), Some(id));
    }
}

/// §5.3: committing an entry "also commits all preceding entries in the leader's log,
/// including entries created by previous leaders" (etcd's
/// TestLeaderCommitPrecedingEntries), and they are applied in log order.
#[test]
fn s5_3_committing_an_entry_commits_the_preceding_ones() {
    let cfg = config();
    let mut c = Cluster::with_states(
        cfg.clone(),
        vec![
            (1, initial(2, None, &[1, 2])),
            (2, initial(2, None, &[])),
            (3, initial(2, None, &[])),
        ],
    );
    c.elect(1);
    let term = c.status(1).term;
    c.node_mut(1).propose("a".into()).expect("leader");
    c.node_mut(1).propose("b".into()).expect("leader");
    c.run();
    c.run_for(cfg.heartbeat_interval);

    let mut want = log_of(&[1, 2]);
    want.push(noop(term, 3));
    want.push(Entry {
        term,
        index: 4,
        payload: Payload::Command("a".into()),
    });
    want.push(Entry {
        term,
        index: 5,
        payload: Payload::Command("b".into()),
    });
    for node in 1..=3 {
        assert_eq!(c.status(node).commit_index, 5, "node {node}");
        assert_eq!(c.applied[&node], want, "node {node}");
    }
}

/// §5.3: a follower sets its commit index to min(leaderCommit, index of the last new
/// entry), and applies committed entries once they are durable.
#[test]
fn s5_3_follower_commits_up_to_the_leader_commit() {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(1, None, &[]));
    step(
        &mut core,
        2,
        append(1, LogId::default(), log_of(&[1, 1, 1]), 2),
    );
    assert_eq!(core.status().commit_index, 2);
    let first = core.ready();
    assert!(
        first.committed.is_empty(),
        "not applied before it is durable"
    );
    assert_eq!(first.entries, log_of(&[1, 1, 1]));
    core.persisted(first.persist_ack().expect("write"));
    assert_eq!(core.ready().committed, log_of(&[1, 1]));

    // The leader's commit index may run ahead of what this request proves matches.
    step(
        &mut core,
        2,
        append(1, LogId::new(1, 3), vec![entry(1, 4)], 9),
    );
    assert_eq!(core.status().commit_index, 4);
    // A heartbeat only vouches for the log up to its prev_log.
    step(&mut core, 2, append(1, LogId::new(1, 1), vec![], 9));
    assert_eq!(
        core.status().commit_index,
        4,
        "the commit index never goes back"
    );
}

/// §5.3: the AppendEntries consistency check: "If the follower does not find an entry in
/// its log with the same index and term, then it refuses the new entries." The refusal
/// carries the fast back-up hint: the conflicting term and its first index, or the log's
/// end when it is too short.
#[test]
fn s5_3_follower_rejects_a_mismatched_prev_log() {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(2, None, &[1, 1, 2]));
    let conflict = |rejected, term, index| {
        vec![env(
            1,
            2,
            Message::AppendEntriesReply(AppendReply {
                term: 3,
                result: AppendResult::Conflict {
                    rejected,
                    hint: ConflictHint { term, index },
                },
            }),
        )]
    };
    let cases = [
        (LogId::new(3, 5), conflict(5, None, 4)),
        (LogId::new(3, 4), conflict(4, None, 4)),
        (LogId::new(3, 3), conflict(3, Some(2), 3)),
        (LogId::new(2, 2), conflict(2, Some(1), 1)),
    ];
    for (prev, want) in cases {
        step(
            &mut core,
            2,
            append(3, prev, vec![entry(3, prev.index + 1)], 0),
        );
        let ready = core.ready();
        assert_eq!(ready.messages, want, "prev {prev}");
        assert!(ready.entries.is_empty() && ready.truncate_from.is_none());
        assert_eq!(core.log_entries(1, 9), log_of(&[1, 1, 2]).as_slice());
    }
    // A matching prev_log passes.
    step(&mut core, 2, append(3, LogId::new(1, 2), vec![], 0));
    assert_eq!(
        core.ready().messages,
        vec![env(
            1,
            2,
            Message::AppendEntriesReply(AppendReply {
                term: 3,
                result: AppendResult::Success { match_index: 2 }
            })
        )]
    );
}

/// §5.3: "If an existing entry conflicts with a new one (same index but different
/// terms), delete the existing entry and all that follow it", then append the new ones;
/// entries that already match are kept (a stale or duplicate request truncates nothing).
/// The success reply waits for any new entries to be durable.
#[test]
fn s5_3_follower_replaces_a_conflicting_suffix() {
    // (prev_log, entries sent, resulting log, truncate_from)
    type Case = (LogId, Vec<Entry>, Vec<Term>, Option<LogIndex>);
    let cases: Vec<Case> = vec![
        (LogId::new(2, 3), vec![entry(3, 4)], vec![1, 2, 2, 3], None),
        (LogId::new(1, 1), vec![entry(3, 2)], vec![1, 3], Some(2)),
        (LogId::new(0, 0), vec![entry(1, 1)], vec![1, 2, 2], None),
        (
            LogId::new(1, 1),
            vec![entry(2, 2), entry(2, 3), entry(3, 4)],
            vec![1, 2, 2, 3],
            None,
        ),
        (
            LogId::new(0, 0),
            vec![entry(1, 1), entry(3, 2), entry(3, 3), entry(3, 4)],
            vec![1, 3, 3, 3],
            Some(2),
        ),
    ];
    for (prev, entries, want, truncate) in cases {
        let mut core = new_core(1, &[1, 2, 3], config(), initial(2, None, &[1, 2, 2]));
        let last_new = prev.index + entries.len() as u64;
        step(&mut core, 2, append(3, prev, entries, 0));
        assert_eq!(
            core.log_entries(1, 9),
            log_of(&want).as_slice(),
            "prev {prev}"
        );
        let ready = ready_persisted(&mut core);
        assert_eq!(ready.truncate_from, truncate, "prev {prev}");
        let first_written = truncate.unwrap_or(4);
        assert_eq!(
            ready.entries,
            log_of(&want)[first_written as usize - 1..].to_vec(),
            "prev {prev}"
        );
        let reply = env(
            1,
            2,
            Message::AppendEntriesReply(AppendReply {
                term: 3,
                result: AppendResult::Success {
                    match_index: last_new,
                },
            }),
        );
        // Entries durable already are acknowledged at once; new ones once written.
        if !ready.entries.is_empty() {
            assert_eq!(ready.persisted_messages, vec![reply], "prev {prev}");
        } else {
            assert_eq!(ready.messages, vec![reply], "prev {prev}");
        }
        assert_eq!(core.status().persisted_index, want.len() as u64);
    }
}

/// §5.3, Figure 7: whatever the follower's log — missing entries (a, b), extra
/// uncommitted entries (c, d), or both (e, f) — the leader of term 8 brings it in line
/// with its own log, its term-8 no-op included. The leader is elected with the vote of a
/// third node whose log is empty, which ends up with the same log.
#[test]
fn s5_3_figure_7_followers_converge_to_the_leader_log() {
    const LEADER: [Term; 10] = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [(&str, &[Term]); 6] = [
        ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6]),
        ("b", &[1, 1, 1, 4]),
        ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
        ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
        ("e", &[1, 1, 1, 4, 4, 4, 4]),
        ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
    ];
    let cfg = config();
    let mut want = log_of(&LEADER);
    want.push(noop(8, 11));
    for (name, log) in followers {
        let last_term = *log.last().expect("non-empty");
        let mut c = Cluster::with_states(
            cfg.clone(),
            vec![
                (1, initial(7, None, &LEADER)),
                (2, initial(last_term, None, log)),
                (3, initial(7, None, &[])),
            ],
        );
        c.elect(1);
        assert_eq!(c.status(1).term, 8, "({name})");
        c.run_for(cfg.heartbeat_interval * 2);
        assert_eq!(c.leaders(), vec![1], "({name})");
        assert_eq!(c.log(1), want, "({name}) leader");
        for node in [2, 3] {
            assert_eq!(c.log(node), want, "({name}) node {node}");
            assert_eq!(c.status(node).commit_index, 11, "({name}) node {node}");
            assert_eq!(c.applied[&node], want, "({name}) node {node}");
        }
    }
}

/// §5.3 (the optimization at the end of the section): with the conflicting term and its
/// first index in each rejection, the leader skips a whole term per round trip. A
/// follower with 60 conflicting entries in 3 terms is repaired after a handful of
/// rejections, not 60.
#[test]
fn s5_3_fast_back_up_skips_whole_terms() {
    let cfg = config();
    let mut leader_log = vec![1; 5];
    leader_log.extend([5; 30]);
    let mut follower_log = vec![1; 5];
    follower_log.extend([2; 20]);
    follower_log.extend([3; 20]);
    follower_log.extend([4; 20]);
    let mut c = Cluster::with_states(
        cfg.clone(),
        vec![
            (1, initial(5, None, &leader_log)),
            (2, initial(4, None, &follower_log)),
            (3, initial(5, None, &[])),
        ],
    );
    c.elect(1);
    c.run_for(cfg.heartbeat_interval * 2);
    let log = c.log(1);
    assert_eq!(log.len(), 36);
    assert_eq!(c.log(2), log, "the follower converged");
    let rejections = c
        .delivered
        .iter()
        .filter(|e| e.from == 2 && e.to == 1 && is_conflict(&e.message))
        .count();
    assert!(rejections >= 1, "the follower's log did conflict");
    assert!(
        rejections <= 4,
        "{rejections} rejected AppendEntries for 3 conflicting terms"
    );
    let appends_to_2 = c
        .delivered
        .iter()
        .filter(|e| e.to == 2 && matches!(e.message, Message::AppendEntries(_)))
        .count();
    assert!(
        appends_to_2 < 15,
        "{appends_to_2} AppendEntries to repair 60 entries"
    );
}

/// §5.3: "If followers crash or run slowly, or if network packets are lost, the leader
/// retries AppendEntries RPCs indefinitely ... until all followers eventually store all
/// log entries." Here every AppendEntries carrying the new entry is lost while
/// heartbeats (and their replies) still go through.
#[test]
fn s5_3_leader_retries_lost_append_entries() {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval * 2);
    c.set_filter(|e| !matches!(&e.message, Message::AppendEntries(r) if !r.entries.is_empty()));
    let id = c.node_mut(1).propose("lost".into()).expect("leader");
    c.run();
    assert_eq!(c.node(2).log_term(id.index), None);
    assert!(c.status(1).commit_index < id.index);

    c.heal();
    c.run_for(cfg.election_timeout_min);
    assert_eq!(c.leaders(), vec![1]);
    for node in 1..=3 {
        assert_eq!(
            c.node(node).log_term(id.index),
            Some(id.term),
            "node {node}"
        );
        assert_eq!(c.status(node).commit_index, id.index, "node {node}");
    }
}

// ===== §5.4.1: election restriction ===================================================

/// §5.4.1: RequestVote (and PreVote) carry the candidate's last log term and index.
#[test]
fn s5_4_1_vote_requests_carry_the_last_log_id() {
    for (cfg, pre_vote) in [(config_no_pre_vote(), false), (config(), true)] {
        let mut core = new_core(1, &[1, 2, 3], cfg, initial(3, None, &[1, 1, 3]));
        fire(&mut core);
        let ready = core.ready();
        let request = VoteRequest {
            term: 4,
            last_log: LogId::new(3, 3),
        };
        let (sent, message) = if pre_vote {
            (&ready.messages, Message::PreVote(request))
        } else {
            (&ready.persisted_messages, Message::RequestVote(request))
        };
        assert_eq!(
            *sent,
            vec![env(1, 2, message.clone()), env(1, 3, message)],
            "pre_vote {pre_vote}"
        );
    }
}

/// §5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
/// candidate": a later last term wins; with equal last terms the longer log wins.
#[test]
fn s5_4_1_votes_only_for_an_up_to_date_candidate() {
    // The voter's log is [1, 1, 2]: its last entry is 3@2.
    let cases = [
        (LogId::new(1, 5), false, "lower last term, longer log"),
        (LogId::new(1, 3), false, "lower last term, same length"),
        (LogId::new(2, 2), false, "same last term, shorter log"),
        (LogId::new(2, 3), true, "same last term, same length"),
        (LogId::new(2, 4), true, "same last term, longer log"),
        (LogId::new(3, 1), true, "higher last term, shorter log"),
        (LogId::new(3, 3), true, "higher last term"),
    ];
    for (last_log, granted, why) in cases {
        let mut voter = new_core(
            1,
            &[1, 2, 3],
            config_no_pre_vote(),
            initial(2, None, &[1, 1, 2]),
        );
        step(&mut voter, 2, request_vote(3, last_log));
        assert_eq!(voter.status().term, 3, "{why}");
        assert_eq!(voter.status().voted_for, granted.then_some(2), "{why}");
        let ready = voter.ready();
        let reply = vec![env(1, 2, vote_reply(3, granted))];
        if granted {
            assert_eq!(ready.persisted_messages, reply, "{why}");
        } else {
            assert_eq!(ready.messages, reply, "{why}");
            assert!(
                ready.events.contains(&Event::VoteRefused {
                    candidate: 2,
                    term: 3,
                    pre_vote: false,
                    reason: VoteRefusal::LogNotUpToDate {
                        ours: LogId::new(2, 3),
                        theirs: last_log
                    },
                }),
                "{why}"
            );
        }
    }
}

// ===== §5.4.2: committing entries from previous terms =================================

/// §5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only
/// log entries from the leader's current term are committed by counting replicas; once
/// an entry from the current term has been committed in this way, then all prior entries
/// are committed indirectly." The term-4 leader's entry 2 (term 2) is on a majority
/// ({1, 2}) but stays uncommitted while the leader's own no-op is not yet durable on a
/// majority; once it is, both commit.
#[test]
fn s5_4_2_old_term_entries_commit_only_with_a_current_term_entry() {
    let mut c = Cluster::with_states(
        config_no_pre_vote(),
        vec![
            (1, initial(3, None, &[1, 2])),
            (2, initial(3, None, &[1, 2])),
            (3, initial(3, None, &[1])),
        ],
    );
    c.isolate(3);
    c.fire(1);
    // The leader's write of its no-op stays in flight.
    c.hold_writes(1);
    c.run();
    let status = c.status(1);
    assert_eq!((status.role, status.term), (Role::Leader, 4));
    assert_eq!(status.last_log, LogId::new(4, 3));
    assert_eq!(status.persisted_index, 2);
    // Node 2 stores and acknowledges everything.
    assert_eq!(terms_of(&c.log(2)), vec![1, 2, 4]);
    assert_eq!(c.node(1).progress[&2].matched, 3);
    assert_eq!(
        status.commit_index, 0,
        "entry 2 of term 2 is on a majority but must not commit in term 4"
    );
    assert!(c.applied_indexes(1).is_empty());

    c.release_writes(1);
    assert_eq!(c.status(1).commit_index, 3);
    assert_eq!(c.applied_indexes(1), vec![1, 2, 3]);
}

// ===== Pre-Vote (thesis §9.6) =========================================================

/// Pre-Vote: a node cut off from the cluster keeps timing out, but only asks for
/// pre-votes, so its term does not grow; when it comes back, its pre-votes are refused
/// (the followers heard from the leader recently) and the leader keeps its term and role.
#[test]
fn pre_vote_rejoining_node_does_not_disturb_a_stable_leader() {
    let cfg = config();
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.run_for(cfg.heartbeat_interval * 2);
    let term = c.status(1).term;
    let since = c.now;

    c.isolate(3);
    let id = c
        .node_mut(1)
        .propose("while 3 is away".into())
        .expect("leader");
    c.run_for(cfg.election_timeout_max * 5);
    let pre_votes = c
        .events_of(3, since)
        .into_iter()
        .filter(|e| matches!(e, Event::ElectionStarted { pre_vote: true, .. }))
        .count();
    assert!(pre_votes >= 3, "node 3 timed out only {pre_votes} times");
    assert_eq!(c.status(3).term, term, "Pre-Vote keeps the term");
    assert_eq!(c.status(3).role, Role::PreCandidate);

    // Node 3 is back just as its timer fires once more.
    let deadline = c.node(3).next_deadline();
    c.run_for(deadline - c.now - NS);
    c.heal();
    let rejoined = c.now;
    c.fire(3);
    c.run();
    for voter in [1, 2] {
        assert!(
            c.events_of(voter, rejoined).iter().any(|e| matches!(
                e,
                Event::VoteRefused {
                    candidate: 3,
                    pre_vote: true,
                    ..
                }
            )),
            "node {voter} refused the pre-vote"
        );
    }
    c.run_for(cfg.election_timeout_max * 3);
    let leader = c.status(1);
    assert_eq!((leader.role, leader.term), (Role::Leader, term));
    let status = c.status(3);
    assert_eq!((status.role, status.term), (Role::Follower, term));
    assert_eq!(status.leader, Some(1));
    assert_eq!(
        c.node(3).log_term(id.index),
        Some(id.term),
        "node 3 caught up"
    );
    assert!(
        !c.events
            .iter()
            .any(|(at, _, e)| *at >= since && matches!(e, Event::TermChanged { .. })),
        "no node changed term"
    );
}

// ===== CheckQuorum (thesis §6.2) ======================================================

/// CheckQuorum: a leader that has not heard from a majority for an election timeout
/// steps down (reporting `Event::QuorumLost`) — within about an election timeout of
/// being cut off. Without CheckQuorum it would stay leader.
#[test]
fn check_quorum_leader_cut_off_steps_down() {
    for check_quorum in [true, false] {
        let cfg = Config {
            check_quorum,
            ..config()
        };
        let mut c = Cluster::new(3, cfg.clone());
        c.elect(1);
        c.run_for(cfg.heartbeat_interval * 3);
        let term = c.status(1).term;
        let cut = c.now;
        c.isolate(1);
        c.run_for(cfg.election_timeout_max * 2);

        let lost = c
            .events
            .iter()
            .find(|(_, n, e)| *n == 1 && *e == Event::QuorumLost { term })
            .map(|(at, _, _)| *at);
        if !check_quorum {
            assert_eq!(lost, None);
            assert_eq!(c.status(1).role, Role::Leader);
            continue;
        }
        let at = lost.expect("the leader reported QuorumLost");
        let earliest = cut + cfg.election_timeout_min - cfg.heartbeat_interval;
        let latest = cut + cfg.election_timeout_min + cfg.heartbeat_interval;
        assert!(
            at >= earliest && at <= latest,
            "stepped down {:?} after being cut off",
            at - cut
        );
        assert!(c.events_of(1, at).contains(&Event::RoleChanged {
            role: Role::Follower,
            term
        }));
        assert_ne!(c.status(1).role, Role::Leader);
        assert_eq!(
            c.status(1).term,
            term,
            "isolated, it cannot learn a newer term"
        );
        // The majority side elected a new leader meanwhile.
        let others = c.leaders();
        assert_eq!(others.len(), 1);
        assert!(c.status(others[0]).term > term);
    }
}

/// CheckQuorum's lease: a follower that heard from its leader within the lease (the
/// minimum election timeout less half a heartbeat) refuses a RequestVote of a higher
/// term and does not adopt that term; once the lease has run out, the same request is
/// granted.
#[test]
fn check_quorum_follower_in_lease_refuses_a_higher_term_vote() {
    let cfg = config();
    let lease = cfg.election_timeout_min - cfg.heartbeat_interval / 2;
    let mut c = Cluster::new(3, cfg.clone());
    c.elect(1);
    c.fire(1); // a heartbeat
    c.run();
    let heard = c.now;
    let before = c.status(2);
    assert_eq!(before.leader, Some(1));
    let term = before.term;
    let vote = request_vote(term + 1, LogId::new(term + 1, 100));

    let follower = c.node_mut(2);
    follower
        .step(heard + lease - NS, env(3, 2, vote.clone()))
        .expect("step");
    let status = follower.status();
    assert_eq!(status.term, term, "the higher term is not adopted");
    assert_eq!(status.voted_for, before.voted_for);
    assert_eq!(status.leader, Some(1));
    let ready = follower.ready();
    assert_eq!(ready.hard_state, None);
    assert_eq!(ready.messages, vec![env(2, 3, vote_reply(term, false))]);
    assert!(ready.events.contains(&Event::VoteRefused {
        candidate: 3,
        term: term + 1,
        pre_vote: false,
        reason: VoteRefusal::LeaderLease { leader: 1 },
    }));

    follower.step(heard + lease, env(3, 2, vote)).expect("step");
    let status = follower.status();
    assert_eq!((status.term, status.voted_for), (term + 1, Some(3)));
}

// ===== configuration and construction =================================================

/// `RaftCore::new` refuses an invalid configuration, an id that is not a member, and a
/// recovered log with a gap.
#[test]
fn new_rejects_bad_config_non_member_and_broken_log() {
    let empty_range = Config {
        election_timeout_min: Duration::from_millis(300),
        ..config()
    };
    assert!(matches!(
        RaftCore::new(1, vec![1, 2, 3], empty_range, InitialState::default(), 1).unwrap_err(),
        InitError::Config(ConfigError::EmptyElectionRange { .. })
    ));
    let slow_heartbeat = Config {
        heartbeat_interval: Duration::from_millis(100),
        ..config()
    };
    assert!(matches!(
        RaftCore::new(1, vec![1, 2, 3], slow_heartbeat, InitialState::default(), 1).unwrap_err(),
        InitError::Config(ConfigError::HeartbeatTooSlow { .. })
    ));
    let zero_batch = Config {
        max_append_entries: 0,
        ..config()
    };
    assert_eq!(
        RaftCore::new(1, vec![1], zero_batch, InitialState::default(), 1).unwrap_err(),
        InitError::Config(ConfigError::ZeroLimit {
            name: "max_append_entries"
        })
    );
    assert_eq!(
        RaftCore::new(4, vec![3, 1, 2, 1], config(), InitialState::default(), 1).unwrap_err(),
        InitError::NotAMember {
            id: 4,
            members: vec![1, 2, 3]
        }
    );
    let gap = InitialState {
        entries: vec![entry(1, 1), entry(1, 3)],
        ..InitialState::default()
    };
    assert_eq!(
        RaftCore::new(1, vec![1], config(), gap, 1).unwrap_err(),
        InitError::BrokenLog { index: 2 }
    );
}

/// Messages that are not for this node, or come from a stranger, are refused without
/// touching the state.
#[test]
fn step_rejects_misaddressed_messages() {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(1, None, &[]));
    assert_eq!(
        core.step(Duration::ZERO, env(2, 3, request_vote(5, LogId::default()))),
        Err(StepError::WrongRecipient { to: 3, this: 1 })
    );
    assert_eq!(
        core.step(Duration::ZERO, env(9, 1, request_vote(5, LogId::default()))),
        Err(StepError::UnknownPeer { from: 9 })
    );
    assert_eq!(core.status().term, 1);
    assert!(!core.has_ready());
}
