//! The node under overload and at its edges, through the public API: bounded queues
//! answer `Busy` or drop and count, a leader that steps down answers its waiting
//! proposals at once, `submit` says where an entry went.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actraft::core::Message;
use actraft::{
    ClientError, Config, Inbox, Limits, LogIndex, NodeBuilder, RaftHandle, Role, StateMachine,
    Transport, TransportError,
};
use actraft_storage_mem::MemStorage;
use actraft_transport_mem::{FilterAction, MemRouter};
use bytes::Bytes;
use futures_util::future::join_all;

const WAIT: Duration = Duration::from_secs(10);

/// Answers every command with the command itself.
struct Echo;

impl StateMachine for Echo {
    fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
        command.clone()
    }
}

fn config() -> Config {
    Config::with_election_range(Duration::from_millis(60), Duration::from_millis(120))
}

async fn cluster(router: &MemRouter, config: Config, limits: Limits) -> Vec<RaftHandle> {
    let members = vec![1, 2, 3];
    let mut nodes = Vec::new();
    for &id in &members {
        let node = NodeBuilder::new(id, members.clone())
            .config(config.clone())
            .limits(limits.clone())
            .seed(id)
            .start(MemStorage::new(), router.transport(id), Echo)
            .await
            .unwrap();
        nodes.push(node);
    }
    nodes
}

async fn leader(nodes: &[RaftHandle]) -> RaftHandle {
    let id = nodes[0].wait_for_leader(WAIT).await.unwrap();
    let leader = nodes.iter().find(|n| n.id() == id).unwrap().clone();
    leader
        .wait_until(WAIT, |s| s.role == Role::Leader && s.commit_index > 0)
        .await
        .unwrap();
    leader
}

#[actix_rt::test]
async fn submit_reports_the_entry_then_its_response() {
    let router = MemRouter::new();
    let nodes = cluster(&router, config(), Limits::default()).await;
    let leader = leader(&nodes).await;
    let before = leader.status().last_log;
    let submitted = leader.submit("hello").await.unwrap();
    assert_eq!(submitted.id.index, before.index + 1);
    assert_eq!(submitted.id.term, leader.status().term);
    assert_eq!(submitted.response().await.unwrap(), "hello");
    let follower = nodes.iter().find(|n| n.id() != leader.id()).unwrap();
    assert!(matches!(
        follower.submit("x").await,
        Err(ClientError::NotLeader { leader: Some(_) })
    ));
}

#[actix_rt::test]
async fn a_leader_that_cannot_commit_answers_busy_then_outcome_unknown() {
    let router = MemRouter::new();
    let config = Config {
        max_uncommitted_entries: 8,
        ..config()
    };
    let nodes = cluster(&router, config, Limits::default()).await;
    let leader = leader(&nodes).await;
    let id = leader.id();
    // The leader still sends, but hears no acknowledgement: nothing more commits.
    router.add_filter(move |env| match env.message {
        Message::AppendEntriesReply(_) if env.to == id => FilterAction::Drop,
        _ => FilterAction::Pass,
    });
    let mut waiting = Vec::new();
    for i in 0..8 {
        waiting.push(leader.submit(format!("w{i}")).await.unwrap());
    }
    assert_eq!(
        leader.submit("one too many").await.unwrap_err(),
        ClientError::Busy,
        "the uncommitted tail is full"
    );
    assert!(leader.counters().proposals_busy >= 1);
    // CheckQuorum makes it step down; its waiting proposals are answered then, not
    // when the cluster repairs its log.
    for w in waiting {
        let id = w.id;
        let got = tokio::time::timeout(WAIT, w.response()).await.unwrap();
        assert_eq!(
            got,
            Err(ClientError::OutcomeUnknown {
                index: id.index,
                term: id.term
            })
        );
    }
    assert_ne!(leader.status().role, Role::Leader);
    router.clear_faults();
}

#[actix_rt::test]
async fn a_full_proposal_queue_answers_busy() {
    let router = MemRouter::new();
    let limits = Limits {
        max_queued_proposals: 4,
        ..Limits::default()
    };
    let nodes = cluster(&router, config(), limits).await;
    let leader = leader(&nodes).await;
    // The first poll of `join_all` queues all ten before the node (on this thread) runs:
    // four fit, six find the queue full.
    let results = join_all((0..10).map(|i| leader.propose(format!("q{i}")))).await;
    let busy = results
        .iter()
        .filter(|r| **r == Err(ClientError::Busy))
        .count();
    assert_eq!(busy, 6, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
    assert_eq!(
        leader.propose("later").await.unwrap(),
        "later",
        "room again"
    );
}

/// A transport that hands its inbox to the test and sends nothing.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Inbox>>>);

impl Transport for Capture {
    fn start(&self, inbox: Inbox) -> Result<(), TransportError> {
        *self.0.lock().unwrap() = Some(inbox);
        Ok(())
    }

    fn send(&self, _envelope: actraft::core::Envelope) -> Result<(), TransportError> {
        Ok(())
    }
}

#[actix_rt::test]
async fn a_flood_of_peer_messages_is_dropped_and_counted() {
    let capture = Capture::default();
    let limits = Limits {
        max_inbound_messages: 8,
        ..Limits::default()
    };
    let node = NodeBuilder::new(1, vec![1, 2, 3])
        .config(config())
        .limits(limits)
        .start(MemStorage::new(), capture.clone(), Echo)
        .await
        .unwrap();
    let inbox = capture.0.lock().unwrap().clone().unwrap();
    let heartbeat = |term| actraft::core::Envelope {
        from: 2,
        to: 1,
        message: Message::AppendEntries(actraft::core::AppendRequest {
            term,
            prev_log: actraft::LogId::default(),
            entries: Vec::new(),
            leader_commit: 0,
            read_round: 0,
        }),
    };
    // The node shares this thread, so it drains nothing while the flood lasts.
    for _ in 0..1000 {
        assert!(inbox.deliver(heartbeat(1)), "the node is running");
    }
    node.wait_until(WAIT, |s| s.leader == Some(2))
        .await
        .unwrap();
    let counters = node.counters();
    assert_eq!(counters.inbound_dropped, 1000 - 8);
    assert_eq!(counters.messages_received, 8);
    // It keeps serving: a newer leader is followed.
    assert!(inbox.deliver(heartbeat(5)));
    node.wait_until(WAIT, |s| s.term == 5).await.unwrap();
    node.kill().await;
    assert!(
        !inbox.deliver(heartbeat(6)),
        "a stopped node refuses delivery"
    );
}
