//! The election walkthrough: the scenarios of an introduction to Raft leader election,
//! replayed on real actraft nodes over the in-memory transport, recorded as timelines
//! and checked.
//!
//! Each scene returns a [`Scene`]: its timeline and the facts it established (who won,
//! in which term, who refused whom). The `election-walkthrough` example prints them; the
//! tests assert them, so the walkthrough cannot drift from what the code does.
//!
//! Scenes 2–5 run with Pre-Vote and CheckQuorum off, to show plain Raft as the paper
//! and most introductions describe it; scenes 1 and 6 run with actraft's defaults.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actraft::core::{Config, Event, NodeId, Role, Term, VoteRefusal};
use actraft::{NodeBuilder, NodeEvent, RaftHandle};
use actraft_storage_mem::MemStorage;
use actraft_transport_mem::MemRouter;
use bytes::Bytes;
use tokio::sync::broadcast;

use crate::recording::{AppliedLog, RecordingMachine};

const WAIT: Duration = Duration::from_secs(10);

/// One line of a scene's timeline.
#[derive(Debug, Clone)]
pub struct Row {
    /// Time since the scene started.
    pub at: Duration,
    /// The node's name (A, B, ...).
    pub node: char,
    /// Its role right after the event.
    pub role: Role,
    /// Its term right after the event.
    pub term: Term,
    /// What happened, in words.
    pub what: String,
}

/// A refused vote: who refused whom, in which term, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The voter.
    pub voter: NodeId,
    /// The candidate.
    pub candidate: NodeId,
    /// The term asked for.
    pub term: Term,
    /// Why.
    pub reason: VoteRefusal,
}

/// What a scene showed.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    /// The scene's title.
    pub title: String,
    /// What happened, in order.
    pub timeline: Vec<Row>,
    /// Elections won: term -> winner.
    pub winners: BTreeMap<Term, NodeId>,
    /// Elections started without Pre-Vote: (node, term).
    pub candidacies: Vec<(NodeId, Term)>,
    /// Votes granted: (voter, candidate, term).
    pub votes: Vec<(NodeId, NodeId, Term)>,
    /// Votes refused.
    pub refusals: Vec<Refusal>,
    /// The one-line verdict.
    pub verdict: String,
    /// False when the scene did not go as Raft says.
    pub ok: bool,
}

/// Node id to the letter the walkthrough calls it by.
pub fn name(id: NodeId) -> char {
    (b'A' + (id as u8 - 1)) as char
}

fn plain_raft(min_ms: u64, max_ms: u64) -> Config {
    Config {
        pre_vote: false,
        check_quorum: false,
        ..Config::with_election_range(Duration::from_millis(min_ms), Duration::from_millis(max_ms))
    }
}

struct Stage {
    router: MemRouter,
    nodes: BTreeMap<NodeId, RaftHandle>,
    storages: BTreeMap<NodeId, MemStorage>,
    configs: BTreeMap<NodeId, Config>,
    members: Vec<NodeId>,
    events: broadcast::Sender<NodeEvent>,
    rx: broadcast::Receiver<NodeEvent>,
    start: Instant,
    scene: Scene,
}

impl Stage {
    fn new(title: &str, configs: Vec<Config>) -> Self {
        let (events, rx) = broadcast::channel(1 << 16);
        let members: Vec<NodeId> = (1..=configs.len() as u64).collect();
        Self {
            router: MemRouter::with_seed(11),
            nodes: BTreeMap::new(),
            storages: BTreeMap::new(),
            configs: members.iter().copied().zip(configs).collect(),
            members,
            events,
            rx,
            start: Instant::now(),
            scene: Scene {
                title: title.to_string(),
                ..Scene::default()
            },
        }
    }

    async fn start_node(&mut self, id: NodeId) {
        let storage = self.storages.entry(id).or_default().clone();
        let handle = NodeBuilder::new(id, self.members.clone())
            .config(self.configs[&id].clone())
            .seed(id * 7919)
            .start(
                storage,
                self.router.transport(id),
                RecordingMachine::new(AppliedLog::default()),
            )
            .await
            .expect("node starts");
        let mut rx = handle.subscribe();
        let tx = self.events.clone();
        actix_rt::spawn(async move {
            while let Ok(e) = rx.recv().await {
                let _ = tx.send(e);
            }
        });
        self.nodes.insert(id, handle);
    }

    async fn start_all(&mut self) {
        self.start = Instant::now();
        for id in self.members.clone() {
            self.start_node(id).await;
        }
    }

    fn handle(&self, id: NodeId) -> &RaftHandle {
        &self.nodes[&id]
    }

    /// Moves every event seen so far into the timeline and the facts.
    fn collect(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.record(e);
        }
    }

    fn note(&mut self, what: impl Into<String>) {
        self.collect();
        self.scene.timeline.push(Row {
            at: self.start.elapsed(),
            node: '*',
            role: Role::Follower,
            term: 0,
            what: what.into(),
        });
    }

    fn record(&mut self, e: NodeEvent) {
        let who = |id: NodeId| name(id);
        let what = match e.event {
            Event::RoleChanged { role, term } => {
                if role == Role::Leader {
                    self.scene.winners.insert(term, e.node);
                }
                format!("becomes {role} in term {term}")
            }
            Event::TermChanged { term } => format!("moves to term {term}"),
            Event::TransferStarted { target, term } => {
                format!("hands leadership of term {term} to {}", who(target))
            }
            Event::TransferAbandoned { target, term } => {
                format!("gives up handing term {term} to {}", who(target))
            }
            Event::LeaderChanged {
                leader: Some(l),
                term,
            } => {
                format!("knows {} leads term {term}", who(l))
            }
            Event::LeaderChanged { leader: None, .. } => return,
            Event::ElectionStarted { term, pre_vote } => {
                if pre_vote {
                    format!("times out, asks for pre-votes for term {term}")
                } else {
                    self.scene.candidacies.push((e.node, term));
                    format!("times out: candidate in term {term}, votes for itself, asks everyone")
                }
            }
            Event::VoteGranted {
                candidate,
                term,
                pre_vote,
            } => {
                if !pre_vote {
                    self.scene.votes.push((e.node, candidate, term));
                }
                let kind = if pre_vote { "pre-vote" } else { "vote" };
                format!("grants its {kind} to {} for term {term}", who(candidate))
            }
            Event::VoteRefused {
                candidate,
                term,
                pre_vote,
                reason,
            } => {
                if !pre_vote {
                    self.scene.refusals.push(Refusal {
                        voter: e.node,
                        candidate,
                        term,
                        reason,
                    });
                }
                let kind = if pre_vote { "pre-vote" } else { "vote" };
                let why = match reason {
                    VoteRefusal::StaleTerm => "its term is behind".to_string(),
                    VoteRefusal::AlreadyVoted { voted_for } => {
                        format!("already voted for {} in this term", who(voted_for))
                    }
                    VoteRefusal::HasLeader { leader } => format!("{} already leads", who(leader)),
                    VoteRefusal::LeaderLease { leader } => {
                        format!("it just heard from leader {}", who(leader))
                    }
                    VoteRefusal::LogNotUpToDate { ours, theirs } => format!(
                        "its log (last {ours}) is more up to date than the candidate's (last {theirs})"
                    ),
                    other => format!("{other:?}"),
                };
                format!(
                    "refuses its {kind} to {} for term {term}: {why}",
                    who(candidate)
                )
            }
            Event::QuorumLost { term } => format!("lost its majority, steps down from term {term}"),
            Event::Committed { .. } => return,
            // Kinds of events added later are not part of the walkthrough.
            _ => return,
        };
        self.scene.timeline.push(Row {
            at: e.at.saturating_duration_since(self.start),
            node: name(e.node),
            role: e.role,
            term: e.term,
            what,
        });
    }

    /// Waits for a leader acknowledged by every node in `among`.
    async fn leader_among(&mut self, among: &[NodeId]) -> (NodeId, Term) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let statuses: Vec<_> = among.iter().map(|id| self.handle(*id).status()).collect();
            if let Some(l) = statuses.iter().find(|s| s.role == Role::Leader) {
                if statuses
                    .iter()
                    .all(|s| s.leader == Some(l.id) && s.term == l.term)
                {
                    return (l.id, l.term);
                }
            }
            let mut watches: Vec<_> = among
                .iter()
                .map(|id| self.handle(*id).watch_status())
                .collect();
            let changed =
                futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("no leader among {among:?} within {WAIT:?}");
            }
        }
    }

    async fn finish(mut self, ok: bool, verdict: String) -> Scene {
        self.collect();
        for handle in self.nodes.values() {
            handle.shutdown().await;
        }
        self.scene.ok = ok;
        self.scene.verdict = verdict;
        self.scene
    }
}

fn names(ids: &[NodeId]) -> String {
    ids.iter()
        .map(|&id| name(id).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Scene 1, start-up: every node starts as a follower; one times out, raises its term,
/// votes for itself, asks the others in parallel, wins a majority, and the others
/// follow it.
pub async fn startup() -> Scene {
    let mut st = Stage::new("Start-up", vec![Config::default(); 3]);
    st.start_all().await;
    let all = st.members.clone();
    for id in &all {
        assert_eq!(st.handle(*id).status().role, Role::Follower);
    }
    st.note("three nodes start as followers in term 0, with timeouts drawn from 150..300 ms");
    let (leader, term) = st.leader_among(&all).await;
    st.collect();
    let voters: Vec<NodeId> = st
        .scene
        .votes
        .iter()
        .filter(|(_, c, t)| *c == leader && *t == term)
        .map(|(v, _, _)| *v)
        .collect();
    let ok = term >= 1 && voters.len() + 1 >= 2 && st.scene.winners.get(&term) == Some(&leader);
    let verdict = format!(
        "{} won term {term} with its own vote and {} of {}; {} follow it",
        name(leader),
        voters.len(),
        names(&voters),
        names(
            &all.iter()
                .copied()
                .filter(|&i| i != leader)
                .collect::<Vec<_>>()
        )
    );
    st.finish(ok, verdict).await
}

/// Scene 2, the split vote with four nodes: A and D time out together and both stand in
/// the same term; B's vote reaches A first and C's reaches D first, so each has 2 of 4
/// votes, short of the 3 a majority of four needs; neither wins; the randomized timeout
/// expires on one of them first, it starts a new term and wins.
pub async fn split_vote() -> Scene {
    // A and D time out first and close together; B and C much later.
    let fast = plain_raft(100, 110);
    let slow = plain_raft(1_000, 2_000);
    let mut st = Stage::new(
        "The split vote",
        vec![fast.clone(), slow.clone(), slow, fast],
    );
    // B hears A first and C hears D first: pair them up for the first round.
    st.router.partition(&[&[1, 2], &[3, 4]]);
    st.start_all().await;
    st.note(
        "A and D have timeouts of 100..110 ms, B and C of 1..2 s; B hears A first, C hears D first",
    );
    // Wait until both A and D stood in term 1 and each got one vote.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        st.collect();
        let firsts = st.scene.votes.iter().filter(|v| v.2 == 1).count();
        if firsts >= 2 || tokio::time::Instant::now() > deadline {
            break;
        }
        let mut rx = st.events.subscribe();
        let _ = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
    }
    st.note("term 1: A has A+B, D has D+C: 2 of 4 each, and a majority of 4 is 3; no leader");
    st.router.heal();
    st.note("the network heals; the next timeout decides");
    let all = st.members.clone();
    let (leader, term) = st.leader_among(&all).await;
    st.collect();
    let both_stood =
        st.scene.candidacies.contains(&(1, 1)) && st.scene.candidacies.contains(&(4, 1));
    let no_winner_in_1 = !st.scene.winners.contains_key(&1);
    let ok = both_stood && no_winner_in_1 && term > 1 && (leader == 1 || leader == 4);
    let verdict = format!(
        "A and D split term 1 two votes each, nobody won it; {} won term {term} after its timeout fired first",
        name(leader)
    );
    st.finish(ok, verdict).await
}

/// Scene 3, the up-to-date rule: a node that missed committed entries times out and
/// asks for votes; the others refuse, their logs being more up to date; a node holding
/// every committed entry wins instead, so no committed entry is lost.
pub async fn up_to_date() -> Scene {
    // A leads first; C, which will miss entries, has the shortest timeout afterwards.
    let configs = vec![
        plain_raft(50, 60),
        plain_raft(300, 400),
        plain_raft(120, 130),
    ];
    let mut st = Stage::new("The up-to-date rule", configs);
    st.start_all().await;
    let (a, _) = st.leader_among(&[1, 2, 3]).await;
    st.router.isolate(3);
    st.note(format!(
        "{} leads; C is cut off and misses the next writes",
        name(a)
    ));
    let leader = st.handle(a).clone();
    for i in 0..3 {
        leader
            .propose(Bytes::from(format!("write-{i}")))
            .await
            .expect("commits on A and B");
    }
    let committed = leader.status().commit_index;
    st.note(format!(
        "three writes committed on A and B (commit index {committed}); C's log is behind"
    ));
    // The leader crashes; C comes back.
    leader.kill();
    st.router.heal();
    st.router.isolate(a);
    st.note(format!("{} crashes; C rejoins", name(a)));
    let (winner, term) = st.leader_among(&[2, 3]).await;
    st.collect();
    let refused_c = st.scene.refusals.iter().any(|r| {
        r.voter == 2 && r.candidate == 3 && matches!(r.reason, VoteRefusal::LogNotUpToDate { .. })
    });
    let w = st.handle(winner).status();
    let ok = refused_c && winner == 2 && w.last_log.index >= committed;
    let verdict = format!(
        "B refused C (C's log was behind); {} won term {term} holding every committed entry (last index {})",
        name(winner),
        w.last_log.index
    );
    st.finish(ok, verdict).await
}

/// Scene 4, one vote per term: two candidates ask the same voter in one term; the first
/// request gets the vote, the second is refused.
pub async fn one_vote_per_term() -> Scene {
    // C times out first, but its requests travel slowly; A times out 10 ms later, in the
    // same term, and its requests arrive at once.
    let a = plain_raft(110, 111);
    let voter = plain_raft(2_000, 3_000);
    let c = plain_raft(100, 101);
    let mut st = Stage::new("One vote per term", vec![a, voter, c]);
    // C's requests travel slowly: A's reach B first.
    st.router
        .set_link_delay(3, 2, Duration::from_millis(30), Duration::from_millis(31));
    st.router
        .set_link_delay(3, 1, Duration::from_millis(30), Duration::from_millis(31));
    st.start_all().await;
    st.note("C times out at 100 ms and A at 110 ms, both into term 1; C's messages take 30 ms, A's arrive at once");
    let all = st.members.clone();
    let (leader, term) = st.leader_among(&all).await;
    // Let C's slow request reach B.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !st
        .scene
        .refusals
        .iter()
        .any(|r| r.voter == 2 && r.candidate == 3)
        && tokio::time::Instant::now() < deadline
    {
        let mut rx = st.events.subscribe();
        let _ = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        st.collect();
    }
    let granted_a = st.scene.votes.contains(&(2, 1, term));
    let refused_c = st.scene.refusals.iter().any(|r| {
        r.voter == 2
            && r.candidate == 3
            && r.term == term
            && matches!(r.reason, VoteRefusal::AlreadyVoted { voted_for: 1 })
    });
    let ok = leader == 1 && granted_a && refused_c;
    let verdict = format!(
        "B gave its term-{term} vote to A, whose request came first, and refused C's; {} leads",
        name(leader)
    );
    st.finish(ok, verdict).await
}

/// Scene 5, a stale leader: a leader cut off from the others keeps its old term while
/// the majority elects a new leader; when it reconnects it sees the higher term and
/// becomes a follower of the new leader.
pub async fn stale_leader() -> Scene {
    let mut st = Stage::new("A stale leader", vec![plain_raft(150, 300); 5]);
    st.start_all().await;
    let all = st.members.clone();
    let (old, old_term) = st.leader_among(&all).await;
    st.router.isolate(old);
    st.note(format!(
        "{} leads term {old_term}, then is cut off from the others",
        name(old)
    ));
    let rest: Vec<NodeId> = all.iter().copied().filter(|&id| id != old).collect();
    let (new, new_term) = st.leader_among(&rest).await;
    let stale = st.handle(old).status();
    st.note(format!(
        "{} still thinks it leads term {} while {} leads term {new_term}",
        name(old),
        stale.term,
        name(new)
    ));
    st.router.heal();
    st.note(format!("{} reconnects", name(old)));
    let back = st
        .handle(old)
        .wait_until(WAIT, |s| s.leader == Some(new))
        .await
        .expect("the stale leader follows");
    let ok = stale.role == Role::Leader
        && stale.term == old_term
        && new_term > old_term
        && back.role == Role::Follower
        && back.term == new_term;
    let verdict = format!(
        "{} kept term {old_term} while cut off; on reconnecting it saw term {new_term} and now follows {}",
        name(old),
        name(new)
    );
    st.finish(ok, verdict).await
}

/// Scene 6, heartbeats: while the leader is alive and heard, no follower starts an
/// election.
pub async fn heartbeats(window: Duration) -> Scene {
    let mut st = Stage::new("Heartbeats", vec![Config::default(); 3]);
    st.start_all().await;
    let all = st.members.clone();
    let (leader, term) = st.leader_among(&all).await;
    st.collect();
    let started_before = st.scene.timeline.len();
    st.note(format!(
        "{} leads term {term} and sends heartbeats every 50 ms; watching for {:.1} s",
        name(leader),
        window.as_secs_f64()
    ));
    tokio::time::sleep(window).await;
    st.collect();
    let elections = st.scene.timeline[started_before..]
        .iter()
        .filter(|r| r.what.contains("times out"))
        .count();
    let terms: Vec<Term> = all.iter().map(|id| st.handle(*id).status().term).collect();
    let ok = elections == 0 && terms.iter().all(|&t| t == term);
    let verdict = format!(
        "{:.1} s with the leader alive: {elections} elections started, every node still in term {term}",
        window.as_secs_f64()
    );
    st.finish(ok, verdict).await
}
