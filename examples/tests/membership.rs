//! Cluster tests of membership change (joint consensus, learners, removal) over the
//! in-memory transport: grow 3 -> 5, shrink 5 -> 3, replace a node, remove the leader,
//! transfer under load, a removed node that stays quiet and is added back, and a
//! follower that missed the addition of its next leader catching up with it (over
//! QUIC too), and the KV admin's answer to a change already made but not committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actraft::core::{
    ClusterConfig, Envelope, LogIndex, Membership, MembershipError, Message, NodeId, Role, Term,
};
use actraft::{ClientError, Inbox, Member, RaftHandle, Transport, TransportError};
use actraft_examples::cluster::{
    fast_config, Cluster, ClusterOptions, MemStorages, TransportProvider,
};
use actraft_examples::kv_admin::{answer, AdminRequest};
use actraft_examples::kv_wire::Reply;
use actraft_examples::scenarios::assert_all_acked_present;
use actraft_transport_mem::{MemRouter, MemTransport};
use bytes::Bytes;
use futures_util::future::select_all;
use futures_util::FutureExt;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

async fn started(nodes: usize) -> (Cluster, NodeId) {
    let (cluster, leader, _) =
        Cluster::start_with_leader(ClusterOptions::new(nodes).config(fast_config()), WAIT)
            .await
            .unwrap();
    (cluster, leader)
}

async fn write(cluster: &Cluster, what: &str) {
    cluster
        .propose(Bytes::copy_from_slice(what.as_bytes()), WAIT)
        .await
        .unwrap();
}

fn stable(voters: &[NodeId]) -> ClusterConfig {
    ClusterConfig::Stable(Membership::new(voters.iter().copied(), []))
}

/// Waits until `handle`'s configuration in force is `config`.
async fn wait_config(handle: &RaftHandle, config: &ClusterConfig) {
    let mut metrics = handle.watch_metrics();
    tokio::time::timeout(WAIT, metrics.wait_for(|m| m.membership == *config))
        .await
        .unwrap_or_else(|_| panic!("node {} never reached {config:?}", handle.id()))
        .unwrap();
}

/// The leader among `ids`, as the running nodes see it.
async fn leader_among(cluster: &Cluster, ids: &[NodeId]) -> RaftHandle {
    let (leader, _) = cluster.wait_for_leader_among(ids, WAIT).await.unwrap();
    cluster.handle(leader).unwrap()
}

async fn grow(cluster: &mut Cluster, leader: &RaftHandle, new: &[NodeId]) {
    for &id in new {
        cluster.start_joining(id).await.unwrap();
        leader.add_learner(id, format!("node-{id}")).await.unwrap();
    }
}

#[actix_rt::test]
async fn grow_three_to_five() {
    let (mut cluster, old) = started(3).await;
    write(&cluster, "before").await;
    let leader = cluster.handle(old).unwrap();
    grow(&mut cluster, &leader, &[4, 5]).await;
    let learners = leader.membership();
    assert_eq!(learners.target().learners().len(), 2);
    assert_eq!(learners.address(4), Some("node-4"));
    let index = leader.change_membership([1, 2, 3, 4, 5], []).await.unwrap();
    let five = stable(&[1, 2, 3, 4, 5]);
    assert_eq!(
        leader.membership().target().voters(),
        five.target().voters()
    );
    assert!(leader.status().commit_index >= index);
    for id in 1..=5 {
        let h = cluster.handle(id).unwrap();
        let mut metrics = h.watch_metrics();
        tokio::time::timeout(
            WAIT,
            metrics.wait_for(|m| m.membership.target().voters().len() == 5),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(h.status().voter && !h.status().removed, "node {id}");
    }
    write(&cluster, "after").await;
    cluster.wait_for_applied(index + 1, WAIT).await.unwrap();
    let agreed = cluster.check_agreement().unwrap();
    assert!(agreed.values().any(|c| c == "before") && agreed.values().any(|c| c == "after"));
    // Two of the old three can no longer commit alone: the new voters count.
    cluster.kill(4).await;
    cluster.kill(5).await;
    write(&cluster, "with three of five").await;
}

#[actix_rt::test]
async fn shrink_five_to_three() {
    let (mut cluster, old) = started(5).await;
    write(&cluster, "before").await;
    let leader = cluster.handle(old).unwrap();
    let mut keep: Vec<NodeId> = vec![old];
    keep.extend((1..=5).filter(|&id| id != old).take(2));
    keep.sort_unstable();
    let gone: Vec<NodeId> = (1..=5).filter(|id| !keep.contains(id)).collect();
    leader.change_membership(keep.clone(), []).await.unwrap();
    let three = stable(&keep);
    for &id in &keep {
        wait_config(&cluster.handle(id).unwrap(), &three).await;
    }
    for &id in &gone {
        let h = cluster.handle(id).unwrap();
        h.wait_until(WAIT, |s| s.removed).await.unwrap();
        assert_ne!(h.status().role, Role::Leader);
    }
    // The removed nodes are down: three voters are a whole cluster now.
    for &id in &gone {
        cluster.kill(id).await;
    }
    write(&cluster, "after").await;
    cluster.check_agreement().unwrap();
}

/// The node that leads among `handles`, by their own statuses (the highest term wins).
fn leading(handles: &[RaftHandle]) -> Option<RaftHandle> {
    handles
        .iter()
        .filter(|h| h.status().role == Role::Leader)
        .max_by_key(|h| h.status().term)
        .cloned()
}

/// Waits until one of the nodes leads in a term after `term`, or the set of nodes
/// changes.
async fn next_leader(nodes: &mut watch::Receiver<Vec<RaftHandle>>, term: Term) {
    let handles = nodes.borrow_and_update().clone();
    let mut watches: Vec<_> = handles.iter().map(RaftHandle::watch_status).collect();
    let wait = async {
        loop {
            let led = watches.iter_mut().any(|w| {
                let s = *w.borrow_and_update();
                s.role == Role::Leader && s.term > term
            });
            if led {
                return;
            }
            // A stopped node's watch has ended: keep watching the others.
            watches.retain(|w| w.has_changed().is_ok());
            if watches.is_empty() {
                let _ = nodes.changed().await;
                return;
            }
            let changes: Vec<_> = watches
                .iter_mut()
                .map(|w| w.changed().boxed_local())
                .collect();
            tokio::select! {
                _ = select_all(changes) => {}
                _ = nodes.changed() => return,
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no leader after term {term}"));
}

/// Commits `n` unique commands one after another, each at whichever node leads, and
/// again at the next leader when a leader change refuses it (a busy machine may elect
/// another leader during a membership change; a client retries there). Returns the
/// committed commands and every refusal met on the way.
async fn write_in_order(
    n: usize,
    mut nodes: watch::Receiver<Vec<RaftHandle>>,
) -> (Vec<Bytes>, Vec<ClientError>) {
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for i in 0..n {
        let cmd = Bytes::from(format!("w{i}"));
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "write {i} never committed; refusals: {refused:?}"
            );
            let handles = nodes.borrow().clone();
            let Some(leader) = leading(&handles) else {
                next_leader(&mut nodes, 0).await;
                continue;
            };
            let term = leader.status().term;
            match leader.propose_timeout(cmd.clone(), WAIT).await {
                Ok(_) => {
                    acked.push(cmd);
                    break;
                }
                Err(
                    e @ (ClientError::NotLeader { .. }
                    | ClientError::LeadershipLost { .. }
                    | ClientError::OutcomeUnknown { .. }
                    | ClientError::Stopped),
                ) => {
                    refused.push(e);
                    next_leader(&mut nodes, term).await;
                }
                Err(e) => panic!("write {i} refused: {e}"),
            }
        }
    }
    (acked, refused)
}

/// Runs a membership call at whichever node leads, and again when a leader change
/// interrupted it (at the next leader, once the configuration it holds is settled).
/// Every refusal met is pushed to `refused`.
async fn at_leader<F, Fut>(cluster: &Cluster, refused: &mut Vec<MembershipError>, call: F)
where
    F: Fn(RaftHandle) -> Fut,
    Fut: std::future::Future<Output = Result<LogIndex, MembershipError>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let (id, term) = cluster.wait_for_leader(WAIT).await.unwrap();
        match call(cluster.handle(id).unwrap()).await {
            Ok(_) => return,
            Err(
                e @ (MembershipError::NotLeader { .. }
                | MembershipError::LeadershipLost { .. }
                | MembershipError::OutcomeUnknown { .. }
                | MembershipError::ChangeInProgress
                | MembershipError::Stopped),
            ) if Instant::now() < deadline => {
                refused.push(e);
                cluster
                    .wait_for(WAIT, "a new leader or a settled configuration", |s| {
                        s.iter().any(|s| {
                            s.role == Role::Leader
                                && (s.term > term
                                    || (s.id == id
                                        && !s.joint
                                        && s.membership_index <= s.commit_index))
                        })
                    })
                    .await
                    .unwrap();
            }
            Err(e) => panic!("membership change refused: {e} (earlier: {refused:?})"),
        }
    }
}

#[actix_rt::test]
async fn replace_a_node_under_writes() {
    let (mut cluster, old) = started(3).await;
    let replaced = (1..=3).find(|&id| id != old).unwrap();
    let (nodes, watched) = watch::channel(cluster.live());
    let writer = actix_rt::spawn(write_in_order(200, watched));
    let mut changes_refused = Vec::new();
    cluster.start_joining(4).await.unwrap();
    nodes.send_replace(cluster.live());
    at_leader(&cluster, &mut changes_refused, |h| async move {
        h.add_learner(4, "node-4").await
    })
    .await;
    let voters: Vec<NodeId> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&id| id != replaced)
        .collect();
    at_leader(&cluster, &mut changes_refused, |h| {
        let voters = voters.clone();
        async move { h.change_membership(voters, []).await }
    })
    .await;
    cluster.kill(replaced).await;
    nodes.send_replace(cluster.live());
    let (acked, refused) = writer.await.unwrap();
    assert_eq!(
        acked.len(),
        200,
        "every write went through during the change"
    );
    // Refusals come only from a change of leader (a busy machine's doing): with one
    // leader throughout, every write and every change went through at the first try.
    let leaders = cluster.leaders_by_term();
    assert!(
        (refused.is_empty() && changes_refused.is_empty()) || leaders.len() > 1,
        "refused with one leader throughout ({leaders:?}): {refused:?} {changes_refused:?}"
    );
    write(&cluster, "after").await;
    let mut metrics = cluster.handle(4).unwrap().watch_metrics();
    let want = stable(&voters);
    tokio::time::timeout(
        WAIT,
        metrics.wait_for(|m| !m.membership.is_joint() && m.membership.voters() == want.voters()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_all_acked_present(&cluster, &acked);
    assert!(leaders.values().all(|l| l.len() == 1), "{leaders:?}");
}

#[actix_rt::test]
async fn remove_the_leader() {
    let (cluster, old) = started(3).await;
    write(&cluster, "before").await;
    let leader = cluster.handle(old).unwrap();
    let rest: Vec<NodeId> = (1..=3).filter(|&id| id != old).collect();
    // The leader commits its own removal and steps down: the answer may come as that
    // commit, or as "outcome unknown" when the step-down is seen first.
    match leader.change_membership(rest.clone(), []).await {
        Ok(_) | Err(MembershipError::OutcomeUnknown { .. }) => {}
        Err(e) => panic!("removing the leader: {e}"),
    }
    let status = leader
        .wait_until(WAIT, |s| s.removed && s.role != Role::Leader)
        .await
        .unwrap();
    assert!(!status.voter);
    let new = leader_among(&cluster, &rest).await;
    assert_ne!(new.id(), old);
    write(&cluster, "after").await;
    // The hint is whatever leader the removed node knows when it answers, which may
    // change just after (the new leader's last heartbeat to it, telling it its removal).
    match leader.change_membership([old], []).await {
        Err(MembershipError::NotLeader { leader: hint }) => assert!(
            hint.is_none_or(|h| rest.contains(&h)),
            "the removed node names {hint:?} as leader"
        ),
        other => panic!("a removed node took a change: {other:?}"),
    }
    cluster.check_agreement().unwrap();
}

#[actix_rt::test]
async fn transfer_under_load_then_change() {
    let (cluster, old) = started(3).await;
    let handles = cluster.live();
    let writer = actix_rt::spawn(async move {
        let mut ok = 0;
        for i in 0..300 {
            'retry: for _ in 0..50 {
                for h in &handles {
                    if h.propose(Bytes::from(format!("load{i}"))).await.is_ok() {
                        ok += 1;
                        break 'retry;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        ok
    });
    let leader = cluster.handle(old).unwrap();
    let to = leader.transfer_leadership(None).await.unwrap();
    assert_ne!(to, old);
    let new = cluster.handle(to).unwrap();
    // One change at a time: a second call while the first is in flight is refused, or
    // finds the first already done.
    let (a, b) = tokio::join!(
        new.change_membership([1, 2, 3], []),
        new.change_membership([1, 2, 3], [])
    );
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
    assert!(
        a.is_ok() && b.is_ok()
            || matches!(
                (&a, &b),
                (Err(MembershipError::ChangeInProgress), _)
                    | (_, Err(MembershipError::ChangeInProgress))
            ),
        "{a:?} {b:?}"
    );
    assert_eq!(writer.await.unwrap(), 300);
    cluster.check_agreement().unwrap();
    assert!(cluster.leaders_by_term().values().all(|l| l.len() == 1));
}

/// Counts, from the router's observer, the AppendEntries between `members` (the
/// heartbeats of their leader, whichever it is: a clock that ticks by the cluster's own
/// events) and the campaign messages (PreVote, RequestVote) one node sends.
struct Watch {
    heartbeats: tokio::sync::watch::Receiver<u64>,
    campaigns: Arc<AtomicU64>,
}

impl Watch {
    fn install(cluster: &Cluster, members: &[NodeId], watched: NodeId) -> Self {
        let members = members.to_vec();
        let (beat, heartbeats) = tokio::sync::watch::channel(0u64);
        let campaigns = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&campaigns);
        cluster
            .router()
            .set_observer(move |env| match &env.message {
                Message::AppendEntries(_)
                    if members.contains(&env.from) && members.contains(&env.to) =>
                {
                    beat.send_modify(|n| *n += 1);
                }
                Message::PreVote(_) | Message::RequestVote(_) if env.from == watched => {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            });
        Self {
            heartbeats,
            campaigns,
        }
    }

    /// Waits until the members' leader has sent `n` more AppendEntries.
    async fn heartbeats(&mut self, n: u64) {
        let from = *self.heartbeats.borrow();
        tokio::time::timeout(WAIT, self.heartbeats.wait_for(|&k| k >= from + n))
            .await
            .expect("the leader keeps sending heartbeats")
            .unwrap();
    }

    fn campaigns(&self) -> u64 {
        self.campaigns.load(Ordering::Relaxed)
    }
}

#[actix_rt::test]
async fn removed_node_stays_quiet_and_rejoins() {
    // Elections of 200-400 ms, heartbeats every 50 ms: a busy machine does not make the
    // members lose their leader while the removed node is watched.
    let config = actraft::Config::with_election_range(
        Duration::from_millis(200),
        Duration::from_millis(400),
    );
    let (mut cluster, old, _) =
        Cluster::start_with_leader(ClusterOptions::new(3).config(config), WAIT)
            .await
            .unwrap();
    let leader = cluster.handle(old).unwrap();
    let out = (1..=3).find(|&id| id != old).unwrap();
    let rest: Vec<NodeId> = (1..=3).filter(|&id| id != out).collect();
    let removed = cluster.handle(out).unwrap();
    leader.change_membership(rest.clone(), []).await.unwrap();
    // The leader's last heartbeat to the removed node carries the commit of its
    // removal: the removed node learns that it is out for good, and says so.
    removed
        .wait_until(WAIT, |s| {
            s.removed && !s.voter && s.commit_index >= s.membership_index
        })
        .await
        .unwrap();
    assert_eq!(removed.status().role, Role::Follower);
    let removed_term = removed.status().term;

    // From then on it never campaigns: not a single pre-vote over many election
    // timeouts (the leader's heartbeats, every 50 ms, measure the time: 20 of them
    // are two and a half of the longest election timeouts), connected, cut off,
    // and connected again. (A busy machine may still make the members change leader
    // meanwhile: not the removed node's doing, as it asks nobody for a vote.)
    let mut watch = Watch::install(&cluster, &rest, out);
    watch.heartbeats(20).await;
    cluster.router().isolate(out);
    watch.heartbeats(20).await;
    cluster.router().reconnect(out);
    watch.heartbeats(20).await;
    assert_eq!(watch.campaigns(), 0, "the removed node asked for votes");
    assert_eq!(removed.status().term, removed_term, "its term stays put");
    assert!(removed.status().removed);
    cluster.router().clear_observer();
    let leader = leader_among(&cluster, &rest).await;
    write(&cluster, "without").await;

    // Added back: as a learner first, then as a voter.
    leader.add_learner(out, "back").await.unwrap();
    leader.change_membership([1, 2, 3], []).await.unwrap();
    let all = stable(&[1, 2, 3]);
    wait_config(
        &removed,
        &ClusterConfig::Stable(all.target().clone().with_address(out, "back")),
    )
    .await;
    assert!(!removed.status().removed && removed.status().voter);
    write(&cluster, "with").await;
    cluster
        .wait_for_applied(leader.status().commit_index, WAIT)
        .await
        .unwrap();
    cluster.check_agreement().unwrap();
    let _ = cluster.shutdown(out).await;
}

/// Over QUIC: the leader's transport keeps the removed node's connection until the
/// heartbeat that carries the commit of its removal went out, so the removed node learns
/// it was removed, and asks for no vote afterwards.
#[actix_rt::test]
async fn removed_node_hears_its_removal_over_quic() {
    let transports = actraft_examples::quic::provider(3).unwrap();
    let options = ClusterOptions::new(3).config(fast_config());
    let mut cluster = Cluster::start_on(options, MemStorages::default(), transports, None)
        .await
        .unwrap();
    let (old, _) = cluster.wait_for_leader(WAIT).await.unwrap();
    let leader = cluster.handle(old).unwrap();
    let out = (1..=3).find(|&id| id != old).unwrap();
    let rest: Vec<NodeId> = (1..=3).filter(|&id| id != out).collect();
    let removed = cluster.handle(out).unwrap();
    leader.change_membership(rest, []).await.unwrap();
    removed
        .wait_until(WAIT, |s| {
            s.removed && !s.voter && s.commit_index >= s.membership_index
        })
        .await
        .unwrap();
    let term = removed.status().term;
    let mut events = removed.subscribe();
    // The members go on committing (200 round trips: a clock of their own, several
    // election timeouts long); the removed node stays put.
    for i in 0..200 {
        write(&cluster, &format!("after {i}")).await;
    }
    assert_eq!(removed.status().term, term);
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event.event, actraft::core::Event::ElectionStarted { .. }),
            "the removed node campaigned after it learnt of its removal: {event:?}"
        );
    }
    assert_eq!(leader.status().role, Role::Leader);
    cluster.shutdown_all().await;
}

/// How a test cuts a node off, and brings it back.
#[derive(Clone, Copy)]
enum Cut {
    /// The router isolates it, then reconnects it.
    Router,
    /// It crashes, then restarts from its storage.
    Crash,
}

impl Cut {
    async fn apply(self, cluster: &mut Cluster, id: NodeId) {
        match self {
            Cut::Router => cluster.router().isolate(id),
            Cut::Crash => cluster.kill(id).await,
        }
    }

    async fn undo(self, cluster: &mut Cluster, id: NodeId) {
        match self {
            Cut::Router => cluster.router().reconnect(id),
            Cut::Crash => {
                cluster.restart(id).await.unwrap();
            }
        }
    }
}

/// The cluster moves from C_old = {1, 2, 3} to one led by node 4, which a follower
/// (`lagging`) never heard of: it was cut off while 4 was added, made leader and the
/// old leader removed. Brought back, the lagging follower still holds C_old, which does
/// not name its new leader; it must take 4's AppendEntries and answer them all the
/// same, catch up, apply what it missed, and then count for a quorum.
async fn lagging_follower_catches_up(
    cluster: &mut Cluster,
    old: NodeId,
    four_address: String,
    cut: Cut,
) {
    let leader = cluster.handle(old).unwrap();
    leader
        .propose_timeout(Bytes::from_static(b"before"), WAIT)
        .await
        .unwrap();
    let lagging = (1..=3).find(|&id| id != old).unwrap();
    let other = (1..=3).find(|&id| id != old && id != lagging).unwrap();
    cut.apply(cluster, lagging).await;

    // 4 joins, becomes a voter, takes over, and removes the old leader.
    cluster.start_joining(4).await.unwrap();
    leader.add_learner(4, four_address).await.unwrap();
    leader.change_membership([1, 2, 3, 4], []).await.unwrap();
    assert_eq!(leader.transfer_leadership(Some(4)).await, Ok(4));
    let new = cluster.handle(4).unwrap();
    new.wait_until(WAIT, |s| {
        s.role == Role::Leader && s.commit_index >= s.membership_index
    })
    .await
    .unwrap();
    let voters = [lagging, other, 4];
    new.change_membership(voters, []).await.unwrap();
    cluster.kill(old).await;
    new.propose_timeout(Bytes::from_static(b"while cut off"), WAIT)
        .await
        .unwrap();

    // The lagging follower comes back knowing C_old only.
    cut.undo(cluster, lagging).await;
    let follower = cluster.handle(lagging).unwrap();
    let target = new.status().commit_index;
    let caught_up = follower
        .wait_until(WAIT, |s| {
            s.leader == Some(4) && s.commit_index >= target && s.applied_index >= target
        })
        .await
        .unwrap_or_else(|e| panic!("node {lagging} never caught up with leader 4: {e}"));
    assert_eq!(caught_up.term, new.status().term);
    let mut metrics = follower.watch_metrics();
    let want = stable(&voters);
    tokio::time::timeout(
        WAIT,
        metrics.wait_for(|m| !m.membership.is_joint() && m.membership.voters() == want.voters()),
    )
    .await
    .expect("the lagging follower has the new configuration")
    .unwrap();

    // It counts now: with `other` down too, 4 and it still commit.
    cluster.kill(other).await;
    let index = new.status().last_log.index;
    new.propose_timeout(Bytes::from_static(b"after"), WAIT)
        .await
        .unwrap();
    follower
        .wait_until(WAIT, |s| s.applied_index > index)
        .await
        .unwrap();
    assert_eq!(new.status().role, Role::Leader);
    cluster.check_agreement().unwrap();
}

/// Raft §6 liveness over the in-memory transport: the lagging follower is cut off by
/// the router, then reconnected.
#[actix_rt::test]
async fn a_follower_that_missed_its_leader_s_addition_catches_up() {
    let (mut cluster, old) = started(3).await;
    lagging_follower_catches_up(&mut cluster, old, "node-4".into(), Cut::Router).await;
}

/// The same over QUIC: the lagging follower crashes and restarts, its transport
/// configured with the initial members' addresses only; it finds its new leader at the
/// address the leader's connection came from.
#[actix_rt::test]
async fn a_follower_that_missed_its_leader_s_addition_catches_up_over_quic() {
    let transports = actraft_examples::quic::provider_with_spares(3, 1).unwrap();
    let four = transports.addr(4).unwrap();
    let options = ClusterOptions::new(3).config(fast_config());
    let mut cluster = Cluster::start_on(options, MemStorages::default(), transports, None)
        .await
        .unwrap();
    let (old, _) = cluster.wait_for_leader(WAIT).await.unwrap();
    lagging_follower_catches_up(&mut cluster, old, four.to_string(), Cut::Crash).await;
    cluster.shutdown_all().await;
}

/// Counts the sends a node's transport refused for want of knowing the destination.
struct Counting {
    router: MemRouter,
    unknown: Arc<AtomicU64>,
}

struct CountingTransport {
    inner: MemTransport,
    unknown: Arc<AtomicU64>,
}

impl Transport for CountingTransport {
    fn start(&self, inbox: Inbox) -> Result<(), TransportError> {
        self.inner.start(inbox)
    }

    fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        let result = self.inner.send(envelope);
        if let Err(TransportError::UnknownPeer(_)) = result {
            self.unknown.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn stop(&self) {
        self.inner.stop();
    }

    fn set_members(&self, members: &[Member]) {
        self.inner.set_members(members);
    }
}

impl TransportProvider for Counting {
    fn transport(&mut self, id: NodeId) -> Result<Box<dyn Transport>, String> {
        Ok(Box::new(CountingTransport {
            inner: self.router.transport(id),
            unknown: Arc::clone(&self.unknown),
        }))
    }
}

/// The first AppendEntries to a node just added leaves with the entry that adds it: its
/// transport must know the node by then (the node names it before those messages, and
/// lets go of a node that leaves only after its last ones). No send of the whole
/// change, learner, promotion and the new member's first answers, finds its
/// destination unknown.
#[actix_rt::test]
async fn the_first_messages_to_a_new_member_find_it_known() {
    let router = MemRouter::new();
    let unknown = Arc::new(AtomicU64::new(0));
    let transports = Counting {
        router: router.clone(),
        unknown: Arc::clone(&unknown),
    };
    let options = ClusterOptions::new(3).config(fast_config());
    let mut cluster = Cluster::start_on(options, MemStorages::default(), transports, Some(router))
        .await
        .unwrap();
    let (old, _) = cluster.wait_for_leader(WAIT).await.unwrap();
    let leader = cluster.handle(old).unwrap();
    write(&cluster, "before").await;
    grow(&mut cluster, &leader, &[4]).await;
    leader.change_membership([1, 2, 3, 4], []).await.unwrap();
    let index = leader.status().commit_index;
    cluster.wait_for_applied(index, WAIT).await.unwrap();
    assert_eq!(
        unknown.load(Ordering::Relaxed),
        0,
        "a node sent to a destination its transport did not know"
    );
}

/// The KV service's admin answers `ok` to a request that finds the cluster already as it
/// asks only once that configuration is committed: a retried removal must not report a
/// node gone (for its operator to stop or wipe it) while the next leader may still hold
/// the configuration that keeps it.
#[actix_rt::test]
async fn an_admin_request_already_done_answers_once_its_configuration_commits() {
    let (mut cluster, first) = started(3).await;
    let leader = cluster.handle(first).unwrap();
    grow(&mut cluster, &leader, &[4]).await;
    // Cut the leader off, then remove the learner: one stable entry, in force on the
    // leader at once, that no majority stores.
    cluster.router().isolate(first);
    let removal = ClusterConfig::Stable(Membership::new(1..=3, []));
    let removing = {
        let leader = leader.clone();
        actix_rt::spawn(async move { leader.change_membership(1..=3, []).await })
    };
    wait_config(&leader, &removal).await;
    let redirect = |_| Reply::Unavailable("not the leader".into());
    let reply = answer(&leader, AdminRequest::Remove { id: 4 }, redirect).await;
    assert!(
        matches!(reply, Reply::Unavailable(_)),
        "an uncommitted removal was reported done: {reply:?}"
    );
    // Once the leader is back, the removal goes through (its entry, or a new change made
    // by whichever node leads), and only then does the request answer `ok`.
    cluster.router().reconnect(first);
    let _ = removing.await;
    let deadline = Instant::now() + WAIT;
    loop {
        let leader = leader_among(&cluster, &[1, 2, 3]).await;
        match answer(&leader, AdminRequest::Remove { id: 4 }, redirect).await {
            Reply::Ok(_) => break,
            other => assert!(Instant::now() < deadline, "never removed: {other:?}"),
        }
    }
    write(&cluster, "after").await;
    for id in 1..=3 {
        wait_config(&cluster.handle(id).unwrap(), &removal).await;
    }
}
