//! A 3-node Raft cluster over QUIC on loopback: it elects a leader, commits, survives
//! its leader's endpoint shutting down, and takes the old leader back.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actraft::core::{Config, NodeId, Role};
use actraft::{LogIndex, NodeBuilder, RaftHandle, StateMachine};
use actraft_storage_mem::MemStorage;
use bytes::Bytes;
use common::{Layout, WAIT};

/// Records every command it applies.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(LogIndex, Bytes)>>>);

impl StateMachine for Recorder {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        self.0.lock().unwrap().push((index, command.clone()));
        command.clone()
    }
}

impl Recorder {
    fn commands(&self) -> Vec<Bytes> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }
}

const MEMBERS: [NodeId; 3] = [1, 2, 3];

fn config() -> Config {
    Config::with_election_range(Duration::from_millis(100), Duration::from_millis(200))
}

async fn start(
    id: NodeId,
    transport: actraft_transport_quic::QuicTransport,
    storage: &MemStorage,
    recorder: &Recorder,
) -> RaftHandle {
    NodeBuilder::new(id, MEMBERS.to_vec())
        .config(config())
        .seed(id)
        .start(storage.clone(), transport, recorder.clone())
        .await
        .expect("node starts")
}

/// Waits until a majority of `nodes` agree on one leader in one term.
async fn agreed_leader(nodes: &[RaftHandle]) -> NodeId {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut watches: Vec<_> = nodes.iter().map(RaftHandle::watch_status).collect();
    loop {
        let statuses: Vec<_> = watches.iter_mut().map(|w| *w.borrow_and_update()).collect();
        for leader in statuses.iter().filter(|s| s.role == Role::Leader) {
            let agree = statuses
                .iter()
                .filter(|s| s.term == leader.term && s.leader == Some(leader.id))
                .count();
            if agree * 2 > MEMBERS.len() {
                return leader.id;
            }
        }
        let changed =
            futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::time::timeout_at(deadline, changed)
            .await
            .expect("a leader in time")
            .0
            .expect("node alive");
    }
}

async fn propose_all(leader: &RaftHandle, tag: &str, n: usize) -> Vec<Bytes> {
    let mut sent = Vec::new();
    for i in 0..n {
        let command = Bytes::from(format!("{tag}-{i}"));
        let response = leader
            .propose_timeout(command.clone(), WAIT)
            .await
            .expect("commit");
        assert_eq!(response, command);
        sent.push(command);
    }
    sent
}

#[actix_rt::test]
async fn three_nodes_elect_commit_and_survive_the_leader_going_away() {
    common::init_tracing();
    let (layout, sockets) = Layout::bind(&MEMBERS);
    let storages: Vec<MemStorage> = MEMBERS.iter().map(|_| MemStorage::new()).collect();
    let recorders: Vec<Recorder> = MEMBERS.iter().map(|_| Recorder::default()).collect();
    let mut nodes = Vec::new();
    for (i, (id, transport)) in layout.transports(sockets).into_iter().enumerate() {
        nodes.push(start(id, transport, &storages[i], &recorders[i]).await);
    }

    let leader = agreed_leader(&nodes).await;
    let mut expected = propose_all(&nodes[leader as usize - 1], "first", 50).await;
    let commit = nodes[leader as usize - 1].status().commit_index;
    for node in &nodes {
        node.wait_for_applied(commit, WAIT).await.unwrap();
    }

    // The leader's node stops, and its endpoint with it. The other two elect a new
    // leader among themselves and keep committing.
    let old = leader as usize - 1;
    nodes[old].shutdown().await;
    let survivors: Vec<RaftHandle> = nodes.iter().filter(|n| n.id() != leader).cloned().collect();
    let new_leader = agreed_leader(&survivors).await;
    assert_ne!(new_leader, leader);
    let leader_handle = survivors.iter().find(|n| n.id() == new_leader).unwrap();
    expected.extend(propose_all(leader_handle, "second", 50).await);

    // The old leader comes back on the same address with a fresh endpoint and catches
    // up from the new leader.
    let transport = layout.rebind(leader).await.unwrap();
    let restarted_recorder = Recorder::default();
    nodes[old] = start(leader, transport, &storages[old], &restarted_recorder).await;
    expected.extend(propose_all(leader_handle, "third", 10).await);
    let commit = leader_handle.status().commit_index;
    nodes[old]
        .wait_until(WAIT, |s| {
            s.applied_index >= commit && s.leader == Some(new_leader) && s.role == Role::Follower
        })
        .await
        .expect("the old leader follows and catches up");

    for node in &nodes {
        node.wait_for_applied(commit, WAIT).await.unwrap();
    }
    let survivor_recorders: Vec<&Recorder> = recorders
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != old)
        .map(|(_, r)| r)
        .collect();
    for recorder in survivor_recorders.into_iter().chain([&restarted_recorder]) {
        let applied: Vec<Bytes> = recorder
            .commands()
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(applied, expected);
    }
    for node in &nodes {
        node.shutdown().await;
    }
}
