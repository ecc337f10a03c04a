//! The `Transport` conformance suite of `actraft::testkit`, on `MemTransport`: plain, with
//! jitter (which reorders messages), and inside an actix system.

use std::time::Duration;

use actraft::core::NodeId;
use actraft::testkit::transport::{self, TransportFactory};
use actraft::TransportError;
use actraft_transport_mem::{MemRouter, MemTransport};
use async_trait::async_trait;

/// One router per cluster; `restart` asks the current router for a fresh transport.
struct MemFactory {
    router: MemRouter,
    delay: Option<(Duration, Duration)>,
}

impl MemFactory {
    fn new() -> Self {
        Self {
            router: MemRouter::new(),
            delay: None,
        }
    }

    fn with_delay(min: Duration, max: Duration) -> Self {
        Self {
            delay: Some((min, max)),
            ..Self::new()
        }
    }
}

#[async_trait]
impl TransportFactory for MemFactory {
    type Transport = MemTransport;

    async fn create(
        &mut self,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, MemTransport)>, TransportError> {
        self.router = MemRouter::with_seed(ids.len() as u64);
        if let Some((min, max)) = self.delay {
            self.router.set_delay(min, max);
        }
        Ok(ids
            .iter()
            .map(|&id| (id, self.router.transport(id)))
            .collect())
    }

    async fn restart(&mut self, id: NodeId) -> Result<MemTransport, TransportError> {
        Ok(self.router.transport(id))
    }

    async fn join(&mut self, id: NodeId) -> Result<(MemTransport, String), TransportError> {
        // Every transport of the router is reachable by its id: no address needed.
        Ok((self.router.transport(id), String::new()))
    }
}

#[tokio::test]
async fn suite() {
    transport::run_suite(MemFactory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_with_jitter() {
    let factory = MemFactory::with_delay(Duration::ZERO, Duration::from_millis(3));
    transport::run_suite(factory).await;
}

#[actix_rt::test]
async fn suite_inside_actix() {
    let factory = MemFactory::with_delay(Duration::from_micros(100), Duration::from_millis(2));
    transport::run_suite(factory).await;
}

#[tokio::test]
async fn cases_one_by_one() {
    let mut factory = MemFactory::new();
    transport::two_nodes(&mut factory).await;
    transport::unknown_peer(&mut factory).await;
    transport::membership(&mut factory).await;
}

/// A transport that ignores its member list fails the membership case.
struct Deaf(MemFactory);

#[async_trait]
impl TransportFactory for Deaf {
    type Transport = Broken;

    async fn create(&mut self, ids: &[NodeId]) -> Result<Vec<(NodeId, Broken)>, TransportError> {
        let made = self.0.create(ids).await?;
        Ok(made
            .into_iter()
            .map(|(id, inner)| (id, Broken::new(inner, Fault::IgnoreMembers)))
            .collect())
    }

    async fn restart(&mut self, id: NodeId) -> Result<Broken, TransportError> {
        Ok(Broken::new(self.0.restart(id).await?, Fault::IgnoreMembers))
    }

    async fn join(&mut self, id: NodeId) -> Result<(Broken, String), TransportError> {
        let (inner, address) = self.0.join(id).await?;
        Ok((Broken::new(inner, Fault::IgnoreMembers), address))
    }
}

#[tokio::test]
#[should_panic(expected = "expected UnknownPeer(3)")]
async fn the_suite_catches_a_transport_ignoring_its_members() {
    transport::membership(&mut Deaf(MemFactory::new())).await;
}

/// A deliberately broken transport: the suite must catch it.
struct Broken {
    inner: MemTransport,
    fault: Fault,
    own_inbox: std::sync::Mutex<Option<actraft::Inbox>>,
}

impl Broken {
    fn new(inner: MemTransport, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            own_inbox: std::sync::Mutex::new(None),
        }
    }
}

#[derive(Clone, Copy)]
enum Fault {
    /// Accepts every message and delivers none.
    BlackHole,
    /// Bumps the term of every message.
    Alter,
    /// Delivers every message, unaltered, to the sender's own inbox.
    Misroute,
    /// Works, but never learns its member list.
    IgnoreMembers,
}

impl actraft::Transport for Broken {
    fn start(&self, inbox: actraft::Inbox) -> Result<(), TransportError> {
        *self.own_inbox.lock().unwrap() = Some(inbox.clone());
        self.inner.start(inbox)
    }

    fn send(&self, mut envelope: actraft::core::Envelope) -> Result<(), TransportError> {
        use actraft::core::Message;
        match self.fault {
            Fault::BlackHole => return Ok(()),
            Fault::Alter => match &mut envelope.message {
                Message::RequestVote(m) | Message::PreVote(m) => m.term += 1,
                Message::RequestVoteReply(m) | Message::PreVoteReply(m) => m.term += 1,
                Message::AppendEntries(m) => m.term += 1,
                Message::AppendEntriesReply(m) => m.term += 1,
                Message::TimeoutNow(m) => m.term += 1,
                Message::ReadIndex(m) => m.term += 1,
                Message::ReadIndexReply(m) => m.term += 1,
                Message::InstallSnapshot(m) => m.term += 1,
                Message::InstallSnapshotReply(m) => m.term += 1,
            },
            Fault::IgnoreMembers => {}
            Fault::Misroute => {
                if let Some(own) = self.own_inbox.lock().unwrap().as_ref() {
                    own.deliver(envelope);
                }
                return Ok(());
            }
        }
        self.inner.send(envelope)
    }

    fn stop(&self) {
        self.inner.stop();
    }

    fn set_members(&self, members: &[actraft::Member]) {
        if !matches!(self.fault, Fault::IgnoreMembers) {
            self.inner.set_members(members);
        }
    }
}

struct BrokenFactory(MemFactory, Fault);

#[async_trait]
impl TransportFactory for BrokenFactory {
    type Transport = Broken;

    async fn create(&mut self, ids: &[NodeId]) -> Result<Vec<(NodeId, Broken)>, TransportError> {
        let fault = self.1;
        let made = self.0.create(ids).await?;
        Ok(made
            .into_iter()
            .map(|(id, inner)| (id, Broken::new(inner, fault)))
            .collect())
    }

    async fn restart(&mut self, id: NodeId) -> Result<Broken, TransportError> {
        Ok(Broken::new(self.0.restart(id).await?, self.1))
    }

    async fn join(&mut self, id: NodeId) -> Result<(Broken, String), TransportError> {
        let (inner, address) = self.0.join(id).await?;
        Ok((Broken::new(inner, self.1), address))
    }
}

// Paused clock: the suite's 10 s wait elapses at once once everything is idle.
#[tokio::test(start_paused = true)]
#[should_panic(expected = "case `two_nodes`: timed out")]
async fn the_suite_catches_a_black_hole() {
    transport::run_suite(BrokenFactory(MemFactory::new(), Fault::BlackHole)).await;
}

#[tokio::test]
#[should_panic(expected = "never sent (altered?)")]
async fn the_suite_catches_altered_messages() {
    transport::run_suite(BrokenFactory(MemFactory::new(), Fault::Alter)).await;
}

#[tokio::test]
#[should_panic(expected = "addressed to another node")]
async fn the_suite_catches_misrouted_messages() {
    transport::run_suite(BrokenFactory(MemFactory::new(), Fault::Misroute)).await;
}
