//! Exactly-once writes through client sessions, on in-process clusters over the
//! in-memory transport: the duplicate-apply scenario (a leader that can send but not
//! receive), restart, expiry and eviction decided by the log.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actraft::core::{LogIndex, NodeId, Role};
use actraft::session::{
    ClientSession, Envelope, SessionCommand, SessionConfig, SessionResponse, SessionStateMachine,
};
use actraft::{NodeBuilder, RaftHandle, StateMachine};
use actraft_examples::cluster::{fast_config, MemStorages};
use actraft_examples::kv::{KvCommand, KvMachine};
use actraft_transport_mem::MemRouter;
use bytes::Bytes;
use futures_util::future::select_all;
use futures_util::FutureExt;

const WAIT: Duration = Duration::from_secs(10);

/// What one node applied, shared with the test.
#[derive(Debug, Default)]
struct Observed {
    /// Commands the KV machine applied (not those answered from a session), in order.
    applied: Vec<(LogIndex, String)>,
    /// The session table after the latest entry, and that entry's index.
    table: (LogIndex, Bytes),
}

#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Observed>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn applied(&self) -> Vec<String> {
        self.lock().applied.iter().map(|(_, c)| c.clone()).collect()
    }

    fn times_applied(&self, command: &str) -> usize {
        self.applied().iter().filter(|c| *c == command).count()
    }
}

/// The KV machine, recording what it applies.
struct Recorded {
    kv: KvMachine,
    shared: Shared,
}

impl StateMachine for Recorded {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        let text = String::from_utf8_lossy(command).into_owned();
        self.shared.lock().applied.push((index, text));
        self.kv.apply(index, command)
    }
}

/// The session layer around it, publishing its table after every entry.
struct Probe {
    machine: SessionStateMachine<Recorded>,
    shared: Shared,
}

impl StateMachine for Probe {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        let response = self.machine.apply(index, command);
        self.shared.lock().table = (index, self.machine.sessions().encode());
        response
    }
}

struct TestCluster {
    router: MemRouter,
    storages: MemStorages,
    members: Vec<NodeId>,
    config: SessionConfig,
    nodes: Vec<Option<(RaftHandle, Shared)>>,
}

impl TestCluster {
    async fn start(config: SessionConfig) -> Self {
        let mut cluster = Self {
            router: MemRouter::with_seed(7),
            storages: MemStorages::default(),
            members: vec![1, 2, 3],
            config,
            nodes: vec![None, None, None],
        };
        for id in 1..=3 {
            cluster.restart(id).await;
        }
        cluster
    }

    async fn restart(&mut self, id: NodeId) {
        let shared = Shared::default();
        let machine = Probe {
            machine: SessionStateMachine::new(
                Recorded {
                    kv: KvMachine::new(),
                    shared: shared.clone(),
                },
                self.config,
            ),
            shared: shared.clone(),
        };
        let handle = NodeBuilder::new(id, self.members.clone())
            .config(fast_config())
            .seed(id * 7919)
            .start(self.storages.get(id), self.router.transport(id), machine)
            .await
            .expect("node starts");
        self.nodes[(id - 1) as usize] = Some((handle, shared));
    }

    async fn kill(&mut self, id: NodeId) {
        if let Some((handle, _)) = self.nodes[(id - 1) as usize].take() {
            handle.kill();
            let mut status = handle.watch_status();
            while status.changed().await.is_ok() {}
        }
    }

    fn handle(&self, id: NodeId) -> RaftHandle {
        self.nodes[(id - 1) as usize]
            .as_ref()
            .expect("running")
            .0
            .clone()
    }

    fn observed(&self, id: NodeId) -> Shared {
        self.nodes[(id - 1) as usize]
            .as_ref()
            .expect("running")
            .1
            .clone()
    }

    /// Waits for a node among `among` that leads with a majority of the cluster
    /// agreeing in its term.
    async fn leader_among(&self, among: &[NodeId]) -> NodeId {
        let handles: Vec<RaftHandle> = among.iter().map(|&id| self.handle(id)).collect();
        let mut watches: Vec<_> = handles.iter().map(RaftHandle::watch_status).collect();
        let wait = async {
            loop {
                let statuses: Vec<_> = watches.iter_mut().map(|w| *w.borrow_and_update()).collect();
                for s in statuses.iter().filter(|s| s.role == Role::Leader) {
                    let agree = statuses
                        .iter()
                        .filter(|o| o.term == s.term && o.leader == Some(s.id))
                        .count();
                    if agree >= 2 {
                        return s.id;
                    }
                }
                let changes = watches.iter_mut().map(|w| w.changed().boxed_local());
                let _ = select_all(changes).await;
            }
        };
        tokio::time::timeout(WAIT, wait).await.expect("a leader")
    }

    async fn propose(&self, id: NodeId, envelope: &Envelope) -> SessionResponse {
        let response = self
            .handle(id)
            .propose_timeout(envelope.encode(), WAIT)
            .await
            .expect("committed");
        SessionResponse::decode(&response).expect("a session response")
    }

    async fn register(&self, id: NodeId) -> ClientSession {
        let client = self
            .propose(id, &ClientSession::register())
            .await
            .into_client_id()
            .unwrap();
        ClientSession::new(client)
    }

    /// Waits until every running node has applied what `id` has.
    async fn settle(&self, id: NodeId) {
        let index = self.handle(id).status().applied_index;
        for (handle, _) in self.nodes.iter().flatten() {
            handle
                .wait_for_applied(index, WAIT)
                .await
                .expect("catches up");
        }
    }
}

fn put(key: &str, value: &str) -> Bytes {
    KvCommand::Put {
        key: key.into(),
        value: value.into(),
    }
    .encode()
}

fn get(key: &str) -> Envelope {
    Envelope::Unsessioned {
        stamp_ms: actraft::session::wall_clock_ms(),
        command: KvCommand::Get { key: key.into() }.encode(),
    }
}

/// How the client retries the put whose first attempt timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// With the same sequence number (what a session client does).
    SameSequence,
    /// As a new command (what a client without sessions does).
    NewSequence,
}

struct Outcome {
    retry_response: SessionResponse,
    final_read: Bytes,
    history: Vec<String>,
    put_a_applied: usize,
}

/// The scenario: leader L can send but not receive. Client A's `put r0 A`
/// reaches L, L replicates it, but hears nothing back: the attempt times out, while the
/// next leader commits the entry. Client B then writes `r0 = B`, and A retries.
async fn duplicate_apply_scenario(retry: Retry) -> Outcome {
    let cluster = TestCluster::start(SessionConfig::default()).await;
    let old = cluster.leader_among(&[1, 2, 3]).await;
    let mut a = cluster.register(old).await;
    let mut b = cluster.register(old).await;
    cluster.settle(old).await;

    let others: Vec<NodeId> = [1, 2, 3].into_iter().filter(|&id| id != old).collect();
    for &peer in &others {
        cluster.router.set_link_drop_rate(peer, old, 1.0);
    }
    let put_a = a.next_command(put("r0", "A"));
    let old_handle = cluster.handle(old);
    let first = old_handle.propose_timeout(put_a.encode_now(), Duration::from_millis(1500));
    // The others stop hearing from L once it steps down (it hears no majority), elect
    // one of them, which commits A's put with the rest of its log.
    let (first, new) = tokio::join!(first, cluster.leader_among(&others));
    assert!(
        first.is_err(),
        "the first attempt's outcome is unknown: {first:?}"
    );
    let observed = cluster.observed(new);
    cluster
        .handle(new)
        .wait_until(WAIT, |_| observed.times_applied("put r0 A") == 1)
        .await
        .expect("the next leader applies A's put");

    // B overwrites, then A retries.
    let put_b = b.next_command(put("r0", "B"));
    let answer_b = cluster
        .propose(new, &put_b.envelope(actraft::session::wall_clock_ms()))
        .await;
    assert_eq!(answer_b.into_result().unwrap(), "ok");
    let retried: SessionCommand = match retry {
        Retry::SameSequence => put_a.clone(),
        Retry::NewSequence => a.next_command(put("r0", "A")),
    };
    let retry_response = cluster
        .propose(new, &retried.envelope(actraft::session::wall_clock_ms()))
        .await;
    let final_read = cluster
        .propose(new, &get("r0"))
        .await
        .into_result()
        .unwrap();

    // The old leader hears again, catches up, and agrees.
    cluster.router.clear_faults();
    cluster.settle(new).await;
    let history = observed.applied();
    assert_eq!(
        cluster.observed(old).lock().applied,
        observed.lock().applied,
        "the old leader applied the same commands at the same indexes"
    );
    assert_eq!(
        cluster.observed(old).lock().table.1,
        observed.lock().table.1,
        "every replica holds the same session table"
    );
    Outcome {
        retry_response,
        final_read,
        put_a_applied: observed.times_applied("put r0 A"),
        history: history.into_iter().filter(|c| c.contains("r0")).collect(),
    }
}

#[actix_rt::test]
async fn a_retry_with_the_same_sequence_number_is_applied_once() {
    let outcome = duplicate_apply_scenario(Retry::SameSequence).await;
    assert_eq!(
        outcome.retry_response,
        SessionResponse::Applied {
            response: "ok".into(),
            duplicate: true
        },
        "the retry is answered from the session"
    );
    assert_eq!(outcome.put_a_applied, 1);
    assert_eq!(outcome.history, ["put r0 A", "put r0 B", "get r0"]);
    assert_eq!(
        outcome.final_read, "value B",
        "B stays: no old value reappears"
    );
}

/// The old behaviour, kept as a test: a client without sessions (here, a retry as a new
/// command) gets the put applied twice, and A reappears after B.
#[actix_rt::test]
async fn a_retry_as_a_new_command_applies_the_put_twice() {
    let outcome = duplicate_apply_scenario(Retry::NewSequence).await;
    assert!(matches!(
        outcome.retry_response,
        SessionResponse::Applied {
            duplicate: false,
            ..
        }
    ));
    assert_eq!(outcome.put_a_applied, 2);
    assert_eq!(
        outcome.history,
        ["put r0 A", "put r0 B", "put r0 A", "get r0"]
    );
    assert_eq!(outcome.final_read, "value A", "the old value came back");
}

#[actix_rt::test]
async fn a_restarted_node_rebuilds_the_same_session_table_from_its_log() {
    let mut cluster = TestCluster::start(SessionConfig::default()).await;
    let leader = cluster.leader_among(&[1, 2, 3]).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(cluster.register(leader).await);
    }
    for (i, s) in sessions.iter_mut().enumerate() {
        for j in 0..3 {
            let c = s.next_command(put(&format!("k{i}"), &format!("v{j}")));
            let r = cluster.propose(leader, &c.envelope(1_000 + j)).await;
            assert!(r.into_result().is_ok());
        }
    }
    cluster.settle(leader).await;
    let follower = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    let before = cluster.observed(follower).lock().table.clone();
    cluster.kill(follower).await;
    cluster.restart(follower).await;
    let index = cluster.handle(leader).status().applied_index;
    cluster
        .handle(follower)
        .wait_for_applied(index, WAIT)
        .await
        .unwrap();
    let after = cluster.observed(follower).lock().table.clone();
    assert_eq!(after, before, "the same table, at the same index");
    assert_eq!(after, cluster.observed(leader).lock().table);
    let table = actraft::session::SessionTable::decode(&after.1, SessionConfig::default()).unwrap();
    assert_eq!(table.len(), 3);
    assert!(sessions.iter().all(|s| table.latest(s.client()) == Some(3)));
}

#[actix_rt::test]
async fn expiry_and_eviction_are_decided_by_the_log_on_every_replica() {
    let config = SessionConfig {
        ttl: Duration::from_secs(60),
        max_sessions: 2,
    };
    let cluster = TestCluster::start(config).await;
    let leader = cluster.leader_among(&[1, 2, 3]).await;
    let t0 = 1_000_000;
    let register = |stamp_ms| Envelope::Register { stamp_ms };
    let a = cluster
        .propose(leader, &register(t0))
        .await
        .into_client_id()
        .unwrap();
    let b = cluster
        .propose(leader, &register(t0 + 1))
        .await
        .into_client_id()
        .unwrap();
    // A third session evicts the least recently used, a.
    let c = cluster
        .propose(leader, &register(t0 + 2))
        .await
        .into_client_id()
        .unwrap();
    let write = |client, stamp_ms| {
        ClientSession::new(client)
            .next_command(put("k", "v"))
            .envelope(stamp_ms)
    };
    assert_eq!(
        cluster.propose(leader, &write(a, t0 + 3)).await,
        SessionResponse::SessionExpired { client: a }
    );
    assert!(cluster
        .propose(leader, &write(b, t0 + 4))
        .await
        .into_result()
        .is_ok());
    // Time moves past c's deadline (b was active later): c expires, b does not.
    let later = t0 + 2 + 60_001;
    assert_eq!(
        cluster.propose(leader, &write(c, later)).await,
        SessionResponse::SessionExpired { client: c }
    );
    cluster.settle(leader).await;
    let tables: BTreeSet<_> = (1..=3)
        .map(|id| cluster.observed(id).lock().table.clone())
        .collect();
    assert_eq!(tables.len(), 1, "every replica decided the same");
    let (_, bytes) = tables.into_iter().next().unwrap();
    let table = actraft::session::SessionTable::decode(&bytes, config).unwrap();
    assert!(table.contains(b) && !table.contains(a) && !table.contains(c));
    for id in 1..=3 {
        assert_eq!(
            cluster.observed(id).times_applied("put k v"),
            1,
            "only b's write was applied"
        );
    }
}
