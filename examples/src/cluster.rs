//! An in-process cluster harness: N nodes over the in-memory transport, each with a
//! [`RecordingMachine`], on one arbiter or several, with helpers to wait for leaders,
//! propose through whoever leads, crash and restart nodes, and check agreement.
//!
//! Generic over the storage so the same scenarios run on memory and on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Arbiter, ArbiterHandle};
use actraft::core::{Config, Event, LogIndex, NodeId, Role, Status, Term};
use actraft::snapshot::MemSnapshotStore;
use actraft::{ClientError, LogStorage, NodeBuilder, RaftHandle, StartError, Transport};
use actraft_storage_mem::MemStorage;
use actraft_transport_mem::MemRouter;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::select_all;
use futures_util::FutureExt;
use thiserror::Error;

use crate::recording::{check_agreement, AppliedLog, NoopMachine, RecordingMachine};

/// Opens each node's storage: empty the first time, what the node persisted afterwards.
#[async_trait(?Send)]
pub trait StorageProvider: 'static {
    /// Opens node `id`'s storage.
    async fn open(&mut self, id: NodeId) -> Result<Box<dyn LogStorage>, String>;

    /// Node `id`'s snapshot store, as durable as its storage (the same one again after a
    /// restart). With one, nodes snapshot and compact by the configured policy.
    fn snapshots(&mut self, id: NodeId) -> Result<SnapshotStores, String>;
}

/// A node's snapshot store, of whichever kind its storage goes with.
#[derive(Debug, Clone)]
pub enum SnapshotStores {
    /// Kept in memory, beside a memory storage.
    Mem(MemSnapshotStore),
    /// Files beside a RocksDB store.
    #[cfg(feature = "rocks")]
    File(actraft_storage_rocks::FileSnapshotStore),
}

impl SnapshotStores {
    /// Gives `builder` this store.
    pub fn install(self, builder: NodeBuilder) -> NodeBuilder {
        match self {
            Self::Mem(store) => builder.snapshot_store(store),
            #[cfg(feature = "rocks")]
            Self::File(store) => builder.snapshot_store(store),
        }
    }
}

/// Makes each node's transport.
pub trait TransportProvider: 'static {
    /// The transport for node `id` (called again when the node restarts).
    fn transport(&mut self, id: NodeId) -> Result<Box<dyn Transport>, String>;
}

impl TransportProvider for MemRouter {
    fn transport(&mut self, id: NodeId) -> Result<Box<dyn Transport>, String> {
        Ok(Box::new(MemRouter::transport(self, id)))
    }
}

/// In-memory storages that outlive their nodes.
#[derive(Debug, Default, Clone)]
pub struct MemStorages {
    stores: BTreeMap<NodeId, MemStorage>,
    snapshots: BTreeMap<NodeId, MemSnapshotStore>,
}

impl MemStorages {
    /// Node `id`'s storage, opening it (empty) if needed.
    pub fn get(&mut self, id: NodeId) -> MemStorage {
        self.stores
            .entry(id)
            .or_insert_with(|| MemStorage::for_node(id))
            .clone()
    }
}

#[async_trait(?Send)]
impl StorageProvider for MemStorages {
    async fn open(&mut self, id: NodeId) -> Result<Box<dyn LogStorage>, String> {
        Ok(Box::new(self.get(id)))
    }

    fn snapshots(&mut self, id: NodeId) -> Result<SnapshotStores, String> {
        Ok(SnapshotStores::Mem(
            self.snapshots.entry(id).or_default().clone(),
        ))
    }
}

/// Where the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Every node on the caller's arbiter: one thread, no thread hops between nodes.
    Shared,
    /// One arbiter (thread) per node.
    PerNode,
    /// Nodes spread round-robin over this many arbiters.
    Threads(usize),
}

/// Why a cluster operation failed.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// A node failed to start.
    #[error("node {id} failed to start: {source}")]
    Start {
        /// The node.
        id: NodeId,
        /// Why.
        #[source]
        source: StartError,
    },
    /// The condition did not hold in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    /// A storage or transport could not be opened.
    #[error("node {id}: {message}")]
    Backend {
        /// The node.
        id: NodeId,
        /// What failed.
        message: String,
    },
    /// A client request failed for good.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The chosen backend is not in this build.
    #[error(transparent)]
    NotBuilt(#[from] crate::backend::BackendError),
}

/// Settings of a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How many nodes (ids 1..=nodes).
    pub nodes: usize,
    /// Protocol configuration of every node.
    pub config: Config,
    /// Seed for election timeouts and the router's faults.
    pub seed: u64,
    /// Thread placement.
    pub placement: Placement,
    /// Record every applied command (for agreement checks). Benchmarks turn it off, so
    /// the state machine does no work at all.
    pub record: bool,
    /// What a leader's graceful shutdown waits at most for its hand-over
    /// ([`NodeBuilder::transfer_on_shutdown`]; default the node's).
    pub transfer_on_shutdown: Option<Duration>,
}

impl ClusterOptions {
    /// `nodes` nodes with the default configuration, one arbiter per node.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            config: Config::default(),
            seed: 1,
            placement: Placement::PerNode,
            record: true,
            transfer_on_shutdown: Some(actraft::node::DEFAULT_SHUTDOWN_TRANSFER),
        }
    }

    /// Sets how long a leader's graceful shutdown waits at most for its hand-over
    /// (`None`: no hand-over).
    pub fn transfer_on_shutdown(mut self, bound: Option<Duration>) -> Self {
        self.transfer_on_shutdown = bound;
        self
    }

    /// Turns recording of applied commands on or off.
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// Sets the protocol configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the placement.
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }
}

struct Slot {
    handle: Option<RaftHandle>,
    logs: Vec<AppliedLog>,
    arbiter: Option<ArbiterHandle>,
    incarnation: u64,
}

/// A running in-process cluster.
pub struct Cluster {
    router: Option<MemRouter>,
    storages: Box<dyn StorageProvider>,
    transports: Box<dyn TransportProvider>,
    options: ClusterOptions,
    members: Vec<NodeId>,
    /// Nodes started with [`Cluster::start_joining`]: they restart as joining nodes.
    joining: BTreeSet<NodeId>,
    slots: BTreeMap<NodeId, Slot>,
    arbiters: Vec<Arbiter>,
    leaders: Arc<Mutex<BTreeMap<Term, BTreeSet<NodeId>>>>,
}

impl Cluster {
    /// Starts a cluster on the in-memory transport and in-memory storage.
    pub async fn start(options: ClusterOptions) -> Result<Self, ClusterError> {
        Self::start_with(options, MemStorages::default()).await
    }

    /// Starts a cluster on the in-memory transport and storage and waits for a leader
    /// that a majority acknowledges. Returns the cluster, the leader and its term.
    pub async fn start_with_leader(
        options: ClusterOptions,
        timeout: Duration,
    ) -> Result<(Self, NodeId, Term), ClusterError> {
        let cluster = Self::start(options).await?;
        let (leader, term) = cluster.wait_for_leader(timeout).await?;
        Ok((cluster, leader, term))
    }

    /// Starts a cluster on the in-memory transport, opening storage from `storages`.
    pub async fn start_with(
        options: ClusterOptions,
        storages: impl StorageProvider,
    ) -> Result<Self, ClusterError> {
        let router = MemRouter::with_seed(options.seed);
        Self::start_on(options, storages, router.clone(), Some(router)).await
    }

    /// Starts a cluster on any storage and transport. `router` is the in-memory router
    /// behind `transports`, when there is one, for fault injection.
    pub async fn start_on(
        options: ClusterOptions,
        storages: impl StorageProvider,
        transports: impl TransportProvider,
        router: Option<MemRouter>,
    ) -> Result<Self, ClusterError> {
        let members: Vec<NodeId> = (1..=options.nodes as u64).collect();
        let arbiter_count = match options.placement {
            Placement::Shared => 0,
            Placement::PerNode => options.nodes,
            Placement::Threads(n) => n.max(1),
        };
        let arbiters: Vec<Arbiter> = (0..arbiter_count).map(|_| Arbiter::new()).collect();
        let slots = members
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let arbiter = (!arbiters.is_empty()).then(|| arbiters[i % arbiters.len()].handle());
                (
                    id,
                    Slot {
                        handle: None,
                        logs: Vec::new(),
                        arbiter,
                        incarnation: 0,
                    },
                )
            })
            .collect();
        let mut cluster = Self {
            router,
            storages: Box::new(storages),
            transports: Box::new(transports),
            options,
            members: members.clone(),
            joining: BTreeSet::new(),
            slots,
            arbiters,
            leaders: Arc::default(),
        };
        for id in members {
            cluster.restart(id).await?;
        }
        Ok(cluster)
    }

    /// The in-memory router linking the nodes: inject faults through it.
    ///
    /// # Panics
    ///
    /// When the cluster runs on another transport.
    pub fn router(&self) -> &MemRouter {
        self.router
            .as_ref()
            .expect("fault injection needs the in-memory transport")
    }

    /// Every member id.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// Node `id`'s handle, while it runs.
    pub fn handle(&self, id: NodeId) -> Option<RaftHandle> {
        self.slots.get(&id).and_then(|s| s.handle.clone())
    }

    /// Handles of every running node.
    pub fn live(&self) -> Vec<RaftHandle> {
        self.slots
            .values()
            .filter_map(|s| s.handle.clone())
            .collect()
    }

    /// Statuses of every running node.
    pub fn statuses(&self) -> Vec<Status> {
        self.live().iter().map(RaftHandle::status).collect()
    }

    /// Every node that was leader, by term, as the nodes reported it.
    pub fn leaders_by_term(&self) -> BTreeMap<Term, BTreeSet<NodeId>> {
        self.leaders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What node `id`'s current incarnation applied.
    pub fn applied(&self, id: NodeId) -> Option<AppliedLog> {
        self.slots.get(&id).and_then(|s| s.logs.last().cloned())
    }

    /// Checks that no two nodes (in any incarnation) applied different commands at one
    /// index and that none applied out of order or twice. Returns the agreed log.
    pub fn check_agreement(&self) -> Result<BTreeMap<LogIndex, Bytes>, String> {
        check_agreement(self.slots.iter().flat_map(|(id, s)| {
            s.logs
                .iter()
                .enumerate()
                .map(move |(k, log)| (format!("node {id} (run {k})"), log))
        }))
    }

    /// Starts a new node `id` that joins the cluster ([`NodeBuilder::joining`]): it
    /// waits, with no configuration, until a leader adds it. It counts as a member of
    /// the harness from then on (for [`members`](Self::members), restarts, checks).
    pub async fn start_joining(&mut self, id: NodeId) -> Result<RaftHandle, ClusterError> {
        if !self.slots.contains_key(&id) {
            let arbiter = (!self.arbiters.is_empty())
                .then(|| self.arbiters[id as usize % self.arbiters.len()].handle());
            self.slots.insert(
                id,
                Slot {
                    handle: None,
                    logs: Vec::new(),
                    arbiter,
                    incarnation: 0,
                },
            );
            self.members.push(id);
            self.joining.insert(id);
        }
        self.restart(id).await
    }

    /// Starts node `id` (again) on its storage, with a fresh state machine.
    pub async fn restart(&mut self, id: NodeId) -> Result<RaftHandle, ClusterError> {
        let storage = self
            .storages
            .open(id)
            .await
            .map_err(|message| ClusterError::Backend { id, message })?;
        let transport = self
            .transports
            .transport(id)
            .map_err(|message| ClusterError::Backend { id, message })?;
        let slot = self.slots.get_mut(&id).expect("a member");
        slot.incarnation += 1;
        let log = AppliedLog::default();
        let snapshots = self
            .storages
            .snapshots(id)
            .map_err(|message| ClusterError::Backend { id, message })?;
        let builder = if self.joining.contains(&id) {
            NodeBuilder::joining(id)
        } else {
            NodeBuilder::new(id, (1..=self.options.nodes as u64).collect())
        };
        let builder = builder
            .config(self.options.config.clone())
            .transfer_on_shutdown(self.options.transfer_on_shutdown)
            .seed(self.options.seed.wrapping_mul(1_000_003) ^ (id << 20) ^ slot.incarnation);
        let mut builder = snapshots.install(builder);
        if let Some(arbiter) = &slot.arbiter {
            builder = builder.arbiter(arbiter.clone());
        }
        let handle = if self.options.record {
            builder
                .start(storage, transport, RecordingMachine::new(log.clone()))
                .await
        } else {
            builder.start(storage, transport, NoopMachine).await
        }
        .map_err(|source| ClusterError::Start { id, source })?;
        let mut events = handle.subscribe();
        let leaders = Arc::clone(&self.leaders);
        actix_rt::spawn(async move {
            while let Ok(e) = events.recv().await {
                if let Event::RoleChanged {
                    role: Role::Leader,
                    term,
                } = e.event
                {
                    let mut map = leaders.lock().unwrap_or_else(|e| e.into_inner());
                    map.entry(term).or_default().insert(e.node);
                }
            }
        });
        slot.logs.push(log);
        slot.handle = Some(handle.clone());
        Ok(handle)
    }

    /// Crashes node `id`: it stops at once, keeping only what its storage made durable.
    /// Returns once it has stopped.
    pub async fn kill(&mut self, id: NodeId) {
        if let Some(handle) = self.slots.get_mut(&id).and_then(|s| s.handle.take()) {
            handle.kill();
            let mut status = handle.watch_status();
            while status.changed().await.is_ok() {}
        }
    }

    /// Stops node `id` gracefully.
    pub async fn shutdown(&mut self, id: NodeId) {
        if let Some(handle) = self.slots.get_mut(&id).and_then(|s| s.handle.take()) {
            handle.shutdown().await;
        }
    }

    /// Stops every node gracefully.
    pub async fn shutdown_all(&mut self) {
        for id in self.members.clone() {
            self.shutdown(id).await;
        }
    }

    /// Waits until `pred` holds over the statuses of the running nodes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &'static str,
        mut pred: impl FnMut(&[Status]) -> bool,
    ) -> Result<Vec<Status>, ClusterError> {
        let mut watches: Vec<_> = self.live().iter().map(RaftHandle::watch_status).collect();
        let wait = async {
            loop {
                let statuses: Vec<Status> =
                    watches.iter_mut().map(|w| *w.borrow_and_update()).collect();
                if pred(&statuses) {
                    return statuses;
                }
                let changes = watches.iter_mut().map(|w| w.changed().boxed_local());
                let (result, _, _) = select_all(changes).await;
                if result.is_err() {
                    // A node stopped; keep watching the others.
                    watches.retain(|w| w.has_changed().is_ok());
                    if watches.is_empty() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClusterError::Timeout(timeout, what))
    }

    /// Waits for a leader that a majority of the cluster, among the nodes `among`,
    /// acknowledges in the same term. Returns (leader, term).
    pub async fn wait_for_leader_among(
        &self,
        among: &[NodeId],
        timeout: Duration,
    ) -> Result<(NodeId, Term), ClusterError> {
        let quorum = self.members.len() / 2 + 1;
        let among: BTreeSet<NodeId> = among.iter().copied().collect();
        let mut found = None;
        self.wait_for(timeout, "a leader", |statuses| {
            let set: Vec<&Status> = statuses.iter().filter(|s| among.contains(&s.id)).collect();
            for leader in set.iter().filter(|s| s.role == Role::Leader) {
                let agree = set
                    .iter()
                    .filter(|s| s.term == leader.term && s.leader == Some(leader.id))
                    .count();
                if agree >= quorum {
                    found = Some((leader.id, leader.term));
                    return true;
                }
            }
            false
        })
        .await?;
        Ok(found.expect("set when the predicate held"))
    }

    /// Waits for a leader acknowledged by a majority of the running nodes.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(NodeId, Term), ClusterError> {
        let live: Vec<NodeId> = self.live().iter().map(RaftHandle::id).collect();
        self.wait_for_leader_among(&live, timeout).await
    }

    /// Waits until every running node has applied up to `index`.
    pub async fn wait_for_applied(
        &self,
        index: LogIndex,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        self.wait_for(timeout, "every node to apply", |s| {
            s.iter().all(|s| s.applied_index >= index)
        })
        .await
        .map(|_| ())
    }

    /// Proposes `command` through the current leader, following redirects and retrying
    /// after leader changes until `timeout`. A retry after
    /// [`ClientError::LeadershipLost`] or [`ClientError::OutcomeUnknown`] can apply a
    /// command twice: use unique commands.
    pub async fn propose(&self, command: Bytes, timeout: Duration) -> Result<Bytes, ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut target = None;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(ClusterError::Timeout(timeout, "a proposal to commit"));
            }
            let id = match target.take() {
                Some(id) => id,
                None => self.wait_for_leader(remaining).await?.0,
            };
            let Some(handle) = self.handle(id) else {
                continue;
            };
            match handle.propose_timeout(command.clone(), remaining).await {
                Ok(response) => return Ok(response),
                Err(ClientError::NotLeader { leader }) => {
                    target = leader.filter(|l| Some(*l) != Some(id));
                    if target.is_none() {
                        // No better idea yet: wait for the next status change.
                        let _ = self
                            .wait_for(remaining, "a leader change", |s| {
                                s.iter().any(|s| s.role == Role::Leader && s.id != id)
                            })
                            .await;
                    }
                }
                Err(
                    ClientError::LeadershipLost { .. }
                    | ClientError::OutcomeUnknown { .. }
                    | ClientError::Busy
                    | ClientError::Stopped,
                ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for slot in self.slots.values_mut() {
            if let Some(h) = slot.handle.take() {
                h.kill();
            }
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// A configuration with short timeouts (50–100 ms elections, 10 ms heartbeats), for
/// tests and demos that want elections to be quick.
pub fn fast_config() -> Config {
    Config::with_election_range(Duration::from_millis(50), Duration::from_millis(100))
}

/// Convenience: the id and term of the node that leads according to `statuses`.
pub fn leader_of(statuses: &[Status]) -> Option<(NodeId, Term)> {
    statuses
        .iter()
        .filter(|s| s.role == Role::Leader)
        .max_by_key(|s| s.term)
        .map(|s| (s.id, s.term))
}
