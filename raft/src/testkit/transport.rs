//! The `Transport` conformance suite. Every transport crate runs it; so can yours:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     actraft::testkit::transport::run_suite(MyFactory::new()).await;
//! }
//! ```
//!
//! Each case is also a public function, for running them one by one. A case panics with
//! a message naming the case and the rule it found broken, as the storage suite does.
//!
//! The suite holds a transport to the rules of [`Transport`]: it accepts reordering and
//! duplicates (a duplicate must equal a message that was sent), never an altered message
//! nor one handed to a node other than its `to`. Every wait is bounded by [`WAIT`]; a
//! case that needs a reconnect resends every [`RETRY_INTERVAL`] until the message gets
//! through or [`WAIT`] runs out.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc::Receiver;
use tokio::time::{timeout_at, Instant};

use crate::core::{
    AppendReply, AppendRequest, AppendResult, ConflictHint, Entry, Envelope, LogId, Message,
    NodeId, Payload, VoteReply, VoteRequest,
};
use crate::transport::{Inbox, Member as ConfigMember, Transport, TransportError};

/// The longest the suite waits for any one thing (a message, a reconnect) to happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often a case resends while it waits for a restarted peer to become reachable.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// How long a burst of sends to an absent peer may take before the suite calls it
/// blocking (sends must queue or drop, never wait for the peer).
const SEND_BURST_LIMIT: Duration = Duration::from_secs(2);

/// Creates the transports the suite tests. The factory owns everything a transport
/// needs besides the [`Inbox`]: addresses, certificates, a shared in-process router.
#[async_trait]
pub trait TransportFactory: Send {
    /// The transport under test.
    type Transport: Transport;

    /// Creates a fresh cluster: one transport per id in `ids`, not yet started, each able
    /// to reach every other. Called once per case; a new call replaces the previous
    /// cluster (whose transports the suite has stopped and dropped by then).
    async fn create(
        &mut self,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, Self::Transport)>, TransportError>;

    /// A fresh, not yet started transport for `id`, a member of the latest cluster whose
    /// previous transport the suite has stopped and dropped: a node coming back after a
    /// crash. It must be reachable where the old one was (same address), since the
    /// other members keep the transports [`create`](Self::create) gave them.
    async fn restart(&mut self, id: NodeId) -> Result<Self::Transport, TransportError>;

    /// A fresh, not yet started transport for `id`, a node that was not part of the
    /// latest cluster and joins it at run time, and the address the cluster configuration
    /// records for it (as [`Transport::set_members`] receives it; empty when the
    /// transport needs none). It may reach the members of the latest cluster the way
    /// [`create`](Self::create)'s transports reach each other (an application starting
    /// a new node gives it the current members' addresses); they learn of it only
    /// through [`Transport::set_members`].
    async fn join(&mut self, id: NodeId) -> Result<(Self::Transport, String), TransportError>;
}

/// Runs every case, each on a fresh cluster.
pub async fn run_suite<F: TransportFactory>(mut factory: F) {
    two_nodes(&mut factory).await;
    many_nodes(&mut factory).await;
    unknown_peer(&mut factory).await;
    large_message(&mut factory).await;
    large_snapshot_chunk(&mut factory).await;
    peer_restart(&mut factory).await;
    membership(&mut factory).await;
}

/// One message of each kind, both ways between two nodes, arrives intact with the right
/// `from` and `to`.
pub async fn two_nodes<F: TransportFactory>(factory: &mut F) {
    let mut c = Cluster::start(factory, "two_nodes", &[1, 2]).await;
    let one_to_two: Vec<Envelope> = (0..6).map(|i| c.send(1, 2, sample(i))).collect();
    let two_to_one: Vec<Envelope> = (6..12).map(|i| c.send(2, 1, sample(i))).collect();
    c.expect(2, one_to_two).await;
    c.expect(1, two_to_one).await;
    c.stop_all();
}

/// Five nodes, every node sends 20 messages to every other: everything arrives.
pub async fn many_nodes<F: TransportFactory>(factory: &mut F) {
    let ids = [1, 2, 3, 4, 5];
    let mut c = Cluster::start(factory, "many_nodes", &ids).await;
    let mut expected: BTreeMap<NodeId, Vec<Envelope>> = BTreeMap::new();
    let mut seq = 0;
    for _round in 0..20 {
        for &from in &ids {
            for &to in ids.iter().filter(|&&to| to != from) {
                seq += 1;
                expected
                    .entry(to)
                    .or_default()
                    .push(c.send(from, to, sample(seq)));
            }
        }
    }
    for (to, messages) in expected {
        c.expect(to, messages).await;
    }
    c.stop_all();
}

/// Sending to an id outside the cluster returns [`TransportError::UnknownPeer`] or is
/// dropped; it never panics and never reaches any member.
pub async fn unknown_peer<F: TransportFactory>(factory: &mut F) {
    let ids = [1, 2, 3];
    let mut c = Cluster::start(factory, "unknown_peer", &ids).await;
    let stranger = 1_000;
    for seq in 0..10 {
        let envelope = envelope(1, stranger, sample(seq));
        match c.transport(1).send(envelope) {
            Ok(()) | Err(TransportError::UnknownPeer(_)) => {}
            Err(e) => c.fail(format!(
                "send to unknown peer {stranger}: expected Ok or UnknownPeer, got {e:?}"
            )),
        }
    }
    // Nothing for the stranger may show up anywhere: every member receives only the
    // markers sent to it afterwards (`expect` rejects anything else).
    let markers: Vec<(NodeId, Envelope)> = [2, 3]
        .into_iter()
        .map(|to| (to, c.send(1, to, sample(100 + to))))
        .chain([(1, c.send(2, 1, sample(200)))])
        .collect();
    for (to, marker) in markers {
        c.expect(to, vec![marker]).await;
    }
    for id in ids {
        c.drain_checked(id);
    }
    c.stop_all();
}

/// An AppendEntries carrying 4 MiB of payload arrives intact, and a small message sent
/// after it arrives too.
pub async fn large_message<F: TransportFactory>(factory: &mut F) {
    let mut c = Cluster::start(factory, "large_message", &[1, 2]).await;
    let entries = (1..=4)
        .map(|index| Entry {
            term: 7,
            index,
            payload: Payload::Command(pattern(1 << 20, index)),
        })
        .collect();
    let big = Message::AppendEntries(AppendRequest {
        term: 7,
        prev_log: LogId::default(),
        entries,
        leader_commit: 0,
        read_round: 0,
    });
    let big = c.send(1, 2, big);
    let small = c.send(1, 2, sample(1));
    c.expect(2, vec![big, small]).await;
    c.stop_all();
}

/// An InstallSnapshot carrying a 1 MiB chunk (the default chunk size) arrives intact,
/// and so do a small message and the chunk's reply sent after it.
pub async fn large_snapshot_chunk<F: TransportFactory>(factory: &mut F) {
    let mut c = Cluster::start(factory, "large_snapshot_chunk", &[1, 2]).await;
    let last_included = LogId::new(6, 123_456);
    let chunk = Message::InstallSnapshot(Box::new(crate::core::InstallSnapshotRequest {
        term: 7,
        meta: crate::snapshot::SnapshotMeta {
            last_included,
            membership: crate::core::ClusterConfig::bootstrap([1, 2]),
        },
        offset: 1 << 20,
        data: pattern(1 << 20, 9),
        done: false,
    }));
    let chunk = c.send(1, 2, chunk);
    let small = c.send(1, 2, sample(1));
    c.expect(2, vec![chunk, small]).await;
    let reply = Message::InstallSnapshotReply(crate::core::InstallSnapshotReply {
        term: 7,
        last_included,
        result: crate::core::SnapshotResult::Stored { offset: 2 << 20 },
    });
    let reply = c.send(2, 1, reply);
    c.expect(1, vec![reply]).await;
    c.stop_all();
}

/// A peer stops and goes away: sends to it neither block nor panic, and the others keep
/// talking. A fresh transport for the same id comes back: messages reach it again, both
/// ways (after retries, since a transport may need time to reconnect), and nothing more
/// reaches the stopped transport's inbox.
pub async fn peer_restart<F: TransportFactory>(factory: &mut F) {
    let mut c = Cluster::start(factory, "peer_restart", &[1, 2, 3]).await;
    let first = c.send(1, 2, sample(1));
    c.expect(2, vec![first]).await;

    let Member {
        transport: old,
        rx: mut old_rx,
    } = c.members.remove(&2).expect("member 2");
    old.stop();
    old.stop(); // stopping twice is harmless
    let _ = old.send(envelope(2, 1, sample(2))); // may fail, must not panic
    drop(old);

    // While 2 is away: sends to it return at once, and 1 and 3 still talk.
    const AWAY: u64 = 1_000;
    let started = std::time::Instant::now();
    for seq in 0..100 {
        for from in [1, 3] {
            match c
                .transport(from)
                .send(envelope(from, 2, sample(AWAY + seq)))
            {
                Ok(()) | Err(TransportError::UnknownPeer(_)) => {}
                Err(e) => c.fail(format!("send to stopped peer 2 from {from}: got {e:?}")),
            }
        }
    }
    if started.elapsed() > SEND_BURST_LIMIT {
        c.fail(format!(
            "200 sends to a stopped peer took {:?}: send must not block",
            started.elapsed()
        ));
    }
    let to_three = c.send(1, 3, sample(3));
    let to_one = c.send(3, 1, sample(4));
    c.expect(3, vec![to_three]).await;
    c.expect(1, vec![to_one]).await;

    // 2 comes back.
    let fresh = match factory.restart(2).await {
        Ok(t) => t,
        Err(e) => c.fail(format!("factory.restart(2) failed: {e}")),
    };
    let (inbox, rx) = Inbox::channel();
    if let Err(e) = fresh.start(inbox) {
        c.fail(format!(
            "starting the restarted transport of node 2 failed: {e}"
        ));
    }
    c.members.insert(
        2,
        Member {
            transport: fresh,
            rx,
        },
    );
    c.until_through(1, 2, 10_000).await;
    c.until_through(2, 1, 20_000).await;
    c.until_through(3, 2, 30_000).await;

    while let Ok(late) = old_rx.try_recv() {
        if late.message.term() >= AWAY {
            c.fail(format!(
                "the stopped transport of node 2 still received {}",
                describe(&late)
            ));
        }
    }
    c.stop_all();
}

/// The transports follow the configuration ([`Transport::set_members`]):
///
/// 1. Before any member list, a node joining at run time reaches a member.
/// 2. Once the members list it (with the address its factory gave), they reach it.
/// 3. Once a member is removed from the others' lists, their sends to it fail with
///    [`TransportError::UnknownPeer`], and none of the replies it sends them arrives
///    (its requests may: the node judges those), while the remaining members keep
///    talking.
/// 4. The requests of a node no list names ([`Message::accepted_from_non_members`]: a
///    leader or candidate whose configuration the members have not seen yet) reach a
///    member; once that member lists it, with no address (as a node lists a leader its
///    configuration lacks), the member reaches it.
pub async fn membership<F: TransportFactory>(factory: &mut F) {
    let mut c = Cluster::start(factory, "membership", &[1, 2, 3]).await;
    let (joiner, address) = match factory.join(4).await {
        Ok(t) => t,
        Err(e) => c.fail(format!("factory.join(4) failed: {e}")),
    };
    let (inbox, rx) = Inbox::channel();
    if let Err(e) = joiner.start(inbox) {
        c.fail(format!("starting the joining node 4 failed: {e}"));
    }
    c.members.insert(
        4,
        Member {
            transport: joiner,
            rx,
        },
    );
    // 1. Nobody has a member list yet: the new node reaches a member.
    c.until_through(4, 1, 1_000).await;

    // 2. The configuration grows to 1, 2, 3, 4.
    let listing = |ids: &[NodeId], local: NodeId| -> Vec<ConfigMember> {
        ids.iter()
            .filter(|&&id| id != local)
            .map(|&id| ConfigMember {
                id,
                address: if id == 4 {
                    address.clone()
                } else {
                    String::new()
                },
            })
            .collect()
    };
    for id in [1, 2, 3, 4] {
        c.transport(id).set_members(&listing(&[1, 2, 3, 4], id));
    }
    c.until_through(1, 4, 2_000).await;
    c.until_through(4, 2, 3_000).await;
    c.until_through(3, 4, 4_000).await;

    // 3. Node 3 is removed; it keeps its old list (it may not know yet).
    for id in [1, 2, 4] {
        c.transport(id).set_members(&listing(&[1, 2, 4], id));
    }
    for from in [1, 2, 4] {
        match c
            .transport(from)
            .send(envelope(from, 3, sample(5_000 + from)))
        {
            Err(TransportError::UnknownPeer(3)) => {}
            other => c.fail(format!(
                "send {from} -> removed member 3: expected UnknownPeer(3), got {other:?}"
            )),
        }
    }
    // The removed node's replies are refused, while members still reach each other:
    // each round sends from 3 before a member's message gets through. Any reply from
    // 3 that arrives from now on fails the case.
    const REMOVED: u64 = 10_000;
    c.banned = Some((3, REMOVED));
    for round in 0..5u64 {
        for to in [1, 2, 4] {
            let _ = c
                .transport(3)
                .send(envelope(3, to, sample(REMOVED + round * 10 + to)));
        }
        c.until_through(2, 1, 20_000 + round * 100).await;
        c.until_through(1, 4, 30_000 + round * 100).await;
        c.until_through(4, 2, 40_000 + round * 100).await;
    }
    for id in [1, 2, 4] {
        c.drain_checked(id);
    }

    // 4. Node 5 leads a configuration the others have not seen: its requests reach 1,
    //    which then lists it with no address and answers it.
    let (stranger, _) = match factory.join(5).await {
        Ok(t) => t,
        Err(e) => c.fail(format!("factory.join(5) failed: {e}")),
    };
    let (inbox, rx) = Inbox::channel();
    if let Err(e) = stranger.start(inbox) {
        c.fail(format!("starting the joining node 5 failed: {e}"));
    }
    stranger.set_members(&listing(&[1, 2, 4], 5));
    c.members.insert(
        5,
        Member {
            transport: stranger,
            rx,
        },
    );
    c.until_through_with(5, 1, 50_000, request).await;
    let mut with_leader = listing(&[1, 2, 4], 1);
    with_leader.push(ConfigMember {
        id: 5,
        address: String::new(),
    });
    c.transport(1).set_members(&with_leader);
    c.until_through(1, 5, 60_000).await;
    c.until_through(5, 1, 70_000).await;
    c.stop_all();
}

struct Member<T> {
    transport: T,
    rx: Receiver<Envelope>,
}

/// A started cluster of one case.
struct Cluster<T> {
    case: &'static str,
    members: BTreeMap<NodeId, Member<T>>,
    /// A node whose messages of this term or later must not arrive anywhere.
    banned: Option<(NodeId, u64)>,
}

impl<T: Transport> Cluster<T> {
    async fn start<F>(factory: &mut F, case: &'static str, ids: &[NodeId]) -> Self
    where
        F: TransportFactory<Transport = T>,
    {
        let transports = match factory.create(ids).await {
            Ok(t) => t,
            Err(e) => panic!("transport suite, case `{case}`: factory.create failed: {e}"),
        };
        let mut members = BTreeMap::new();
        for (id, transport) in transports {
            let (inbox, rx) = Inbox::channel();
            if let Err(e) = transport.start(inbox) {
                panic!("transport suite, case `{case}`: starting node {id} failed: {e}");
            }
            members.insert(id, Member { transport, rx });
        }
        let mut got: Vec<NodeId> = members.keys().copied().collect();
        let mut want = ids.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(
            got, want,
            "transport suite, case `{case}`: factory.create returned other ids than asked"
        );
        Self {
            case,
            members,
            banned: None,
        }
    }

    fn fail(&self, detail: String) -> ! {
        panic!("transport suite, case `{}`: {detail}", self.case)
    }

    fn transport(&self, id: NodeId) -> &T {
        &self.members[&id].transport
    }

    /// Sends `message` from `from` to `to`, which must succeed; returns what was sent.
    fn send(&self, from: NodeId, to: NodeId, message: Message) -> Envelope {
        let envelope = envelope(from, to, message);
        if let Err(e) = self.transport(from).send(envelope.clone()) {
            self.fail(format!("send {from} -> {to} failed: {e}"));
        }
        envelope
    }

    /// Next message for `id`, or `None` at `deadline`; checks it is addressed to `id`.
    async fn recv_until(&mut self, id: NodeId, deadline: Instant) -> Option<Envelope> {
        let rx = &mut self.members.get_mut(&id).expect("member").rx;
        match timeout_at(deadline, rx.recv()).await {
            Err(_) => None,
            Ok(None) => self.fail(format!("the inbox channel of node {id} closed")),
            Ok(Some(envelope)) if envelope.to != id => self.fail(format!(
                "node {id} received a message addressed to another node: {}",
                describe(&envelope)
            )),
            Ok(Some(envelope)) => {
                self.check_not_banned(id, &envelope);
                Some(envelope)
            }
        }
    }

    /// Fails if `envelope` is a reply or read from the banned node (see
    /// [`membership`]): a transport may refuse no request of a non-member.
    fn check_not_banned(&self, id: NodeId, envelope: &Envelope) {
        if let Some((from, term)) = self.banned {
            if envelope.from == from
                && envelope.message.term() >= term
                && !envelope.message.accepted_from_non_members()
            {
                self.fail(format!(
                    "node {id} took a message from node {from}, which is not a member: {}",
                    describe(envelope)
                ));
            }
        }
    }

    /// Waits until every message of `expected` has reached `id`, in any order. Anything
    /// else arriving meanwhile fails the case, except a duplicate of an expected one.
    async fn expect(&mut self, id: NodeId, expected: Vec<Envelope>) {
        let total = expected.len();
        let deadline = Instant::now() + WAIT;
        let mut missing = expected;
        let mut seen = Vec::new();
        while !missing.is_empty() {
            let Some(got) = self.recv_until(id, deadline).await else {
                self.fail(format!(
                    "timed out after {WAIT:?}: node {id} received {} of {total} messages; \
                     first missing: {}",
                    total - missing.len(),
                    describe(&missing[0])
                ));
            };
            if let Some(i) = missing.iter().position(|m| *m == got) {
                seen.push(missing.swap_remove(i));
            } else if !seen.contains(&got) {
                self.fail(format!(
                    "node {id} received a message that was never sent (altered?): {}",
                    describe(&got)
                ));
            }
        }
    }

    /// Takes whatever already waits in the inbox of `id`; fails on a message addressed
    /// to another node.
    fn drain_checked(&mut self, id: NodeId) {
        let rx = &mut self.members.get_mut(&id).expect("member").rx;
        let mut pending = Vec::new();
        while let Ok(envelope) = rx.try_recv() {
            pending.push(envelope);
        }
        if let Some(stray) = pending.iter().find(|e| e.to != id) {
            self.fail(format!(
                "node {id} received a message addressed to another node: {}",
                describe(stray)
            ));
        }
        for envelope in &pending {
            self.check_not_banned(id, envelope);
        }
    }

    /// Sends from `from` to `to` every [`RETRY_INTERVAL`] (terms `tag`, `tag + 1`, ...)
    /// until one of those messages arrives. Older messages arriving late are accepted.
    async fn until_through(&mut self, from: NodeId, to: NodeId, tag: u64) {
        self.until_through_with(from, to, tag, sample).await;
    }

    /// [`until_through`](Self::until_through) with the messages `make` gives for each
    /// term.
    async fn until_through_with(
        &mut self,
        from: NodeId,
        to: NodeId,
        tag: u64,
        make: fn(u64) -> Message,
    ) {
        let deadline = Instant::now() + WAIT;
        let mut attempt = 0;
        while Instant::now() < deadline {
            let sent = envelope(from, to, make(tag + attempt));
            match self.transport(from).send(sent) {
                Ok(()) | Err(TransportError::UnknownPeer(_)) => {}
                Err(e) => self.fail(format!("send {from} -> {to} after restart: {e:?}")),
            }
            attempt += 1;
            let round_end = (Instant::now() + RETRY_INTERVAL).min(deadline);
            while let Some(got) = self.recv_until(to, round_end).await {
                let term = got.message.term();
                if got.from == from && (tag..tag + attempt).contains(&term) {
                    if got != envelope(from, to, make(term)) {
                        self.fail(format!("message altered in transit: {}", describe(&got)));
                    }
                    return;
                }
            }
        }
        self.fail(format!(
            "timed out after {WAIT:?} ({attempt} attempts): nothing from {from} reached \
             restarted peer path {from} -> {to}"
        ))
    }

    fn stop_all(self) {
        for member in self.members.values() {
            member.transport.stop();
        }
    }
}

fn envelope(from: NodeId, to: NodeId, message: Message) -> Envelope {
    Envelope { from, to, message }
}

/// A small message of one of the six kinds (by `seq`), whose term is `seq` so that
/// every message of a case is distinct.
pub fn sample(seq: u64) -> Message {
    let last_log = LogId::new(seq / 2, seq * 3);
    match seq % 6 {
        0 => Message::RequestVote(VoteRequest {
            term: seq,
            last_log,
            leader_transfer: seq.is_multiple_of(12),
        }),
        1 => Message::RequestVoteReply(VoteReply {
            term: seq,
            granted: seq % 4 == 1,
        }),
        2 => Message::PreVote(VoteRequest {
            term: seq,
            last_log,
            leader_transfer: false,
        }),
        3 => Message::AppendEntries(AppendRequest {
            term: seq,
            prev_log: last_log,
            entries: vec![Entry {
                term: seq,
                index: seq * 3 + 1,
                payload: Payload::Command(pattern(64 + seq as usize % 100, seq)),
            }],
            leader_commit: seq,
            read_round: 0,
        }),
        4 => Message::AppendEntriesReply(AppendReply {
            term: seq,
            result: AppendResult::Conflict {
                rejected: seq * 3,
                hint: ConflictHint {
                    term: Some(seq / 3),
                    index: seq,
                },
            },
            read_round: 0,
        }),
        _ => Message::PreVoteReply(VoteReply {
            term: seq,
            granted: true,
        }),
    }
}

/// A request a node takes from a node outside its configuration (see
/// [`Message::accepted_from_non_members`]), of term `seq`: a RequestVote, a PreVote or
/// an AppendEntries by `seq`.
pub fn request(seq: u64) -> Message {
    let last_log = LogId::new(seq / 2, seq * 3);
    let vote = VoteRequest {
        term: seq,
        last_log,
        leader_transfer: false,
    };
    match seq % 3 {
        0 => Message::RequestVote(vote),
        1 => Message::PreVote(vote),
        _ => Message::AppendEntries(AppendRequest {
            term: seq,
            prev_log: last_log,
            entries: vec![Entry {
                term: seq,
                index: seq * 3 + 1,
                payload: Payload::Command(pattern(64, seq)),
            }],
            leader_commit: seq,
            read_round: 0,
        }),
    }
}

/// `len` bytes of a pattern seeded by `seed`, so corruption or truncation shows.
fn pattern(len: usize, seed: u64) -> Bytes {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seed) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// A one-line summary, short even for a 4 MiB message.
fn describe(envelope: &Envelope) -> String {
    let bytes: usize = match &envelope.message {
        Message::AppendEntries(m) => m.entries.iter().map(Entry::size_hint).sum(),
        Message::InstallSnapshot(m) => m.data.len(),
        _ => 0,
    };
    format!(
        "{} {} -> {} (term {}, {bytes} payload bytes)",
        envelope.message.kind(),
        envelope.from,
        envelope.to,
        envelope.message.term()
    )
}
