//! A deterministic simulator: many [`RaftCore`]s over a seeded, faulty network, checked
//! against the Figure 3 properties after every step.
//!
//! Every node runs the same [`Driver`](crate::driver::Driver) as the actix node, so the
//! seeds exercise the node's own logic too: write merging and ordering with several
//! writes in flight, reply matching, bounded applies, `Busy` answers. Every answer a
//! simulated client gets is checked against what committed.
//!
//! Everything — message delays, drops, duplicates, partitions, links cut one way,
//! crashes, disk latency, client proposals, election timeouts, the driver's bounds —
//! comes from one seed, so a failing seed replays exactly. A crashed node loses
//! everything but what its simulated disk made durable.

mod checker;
mod faults;
mod membership;
mod node;
mod snapshots;
mod trace;

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use checker::{Checker, EntryPrint, Violation};
pub use trace::TraceEvent;

use crate::core::{
    Config, Entry, Envelope, Event, HardState, InitialState, LogId, LogIndex, NodeId, RaftCore,
    ReadMode, Role,
};
use crate::driver::Limits;
use crate::snapshot::MemSnapshotStore;
use crate::storage::LogWrite;
use crate::testkit::SplitMix64;
use node::{Outcome, SimDriver, SimMachine, SimReply};

/// The knobs of one simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed for everything random in the run.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// Protocol configuration of every node.
    pub raft: Config,
    /// How long faults are injected before the liveness check starts.
    pub fault_time: Duration,
    /// Mean time between fault events (crash, restart, partition, heal).
    pub fault_interval: Duration,
    /// Probability, in parts per thousand, that a message is lost.
    pub drop_per_mille: u64,
    /// Probability, in parts per thousand, that a message is delivered twice.
    pub duplicate_per_mille: u64,
    /// Network delay range; random delays also reorder messages.
    pub delay: (Duration, Duration),
    /// Largest time a disk write takes to become durable.
    pub disk_delay_max: Duration,
    /// Mean time between client proposals.
    pub propose_interval: Duration,
    /// Mean time between linearizable reads (each on a random node, in a random mode).
    pub read_interval: Duration,
    /// Once every node is up and connected, a leader must be elected and a new proposal
    /// commit within this much simulated time.
    pub liveness_bound: Duration,
    /// Give up (as a liveness failure) after this many steps.
    pub max_steps: u64,
    /// Mean time between requests to the leader to hand over leadership (to a random
    /// member, itself and crashed nodes included, or to the best follower).
    pub transfer_interval: Duration,
    /// Nodes beyond `nodes` that start with no configuration (joining), for membership
    /// changes to add.
    pub spare_nodes: usize,
    /// Mean time between requests to the leader for a random membership change.
    pub membership_interval: Duration,
}

impl SimConfig {
    /// The standard configuration for `seed`: 3, 5 or 7 nodes (by seed), every fault on.
    pub fn for_seed(seed: u64) -> Self {
        let nodes = [3, 5, 7][(seed % 3) as usize];
        // Leases on half of the seeds; the other half exercise lease reads falling back
        // to a round. Snapshots at small, seed-dependent intervals (off on a quarter of
        // the seeds), in chunks of a few bytes, so that compaction and InstallSnapshot
        // happen often.
        let mix = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let raft = Config {
            lease_reads: seed % 4 >= 2,
            snapshot_after_entries: [0, 5, 17, 60][(mix % 4) as usize],
            snapshot_after_bytes: 0,
            snapshot_keep_entries: [0, 3, 20][(mix / 4 % 3) as usize],
            max_snapshot_chunk_bytes: [7, 16, 64][(mix / 12 % 3) as usize],
            max_inflight_snapshot_chunks: [1, 2, 4][(mix / 36 % 3) as usize],
            // A window of a few entries on two thirds of the seeds: lagging followers
            // are then caught up from entries read back from the disk.
            log_window_entries: [2, 10, 8192][(mix / 108 % 3) as usize],
            ..Config::default()
        };
        Self {
            seed,
            nodes,
            raft,
            fault_time: Duration::from_secs(3),
            fault_interval: Duration::from_millis(250),
            drop_per_mille: 50,
            duplicate_per_mille: 20,
            delay: (Duration::from_millis(1), Duration::from_millis(12)),
            disk_delay_max: Duration::from_millis(4),
            propose_interval: Duration::from_millis(25),
            read_interval: Duration::from_millis(20),
            liveness_bound: Duration::from_secs(5),
            max_steps: 2_000_000,
            transfer_interval: Duration::from_millis(300),
            spare_nodes: 2,
            membership_interval: Duration::from_millis(400),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub steps: u64,
    /// Leaders elected.
    pub elections: u64,
    /// Entries known committed at the end.
    pub committed: u64,
    /// Client answers checked against what committed.
    pub replies: u64,
    /// Leadership transfers asked for, and how many ended with a new leader known to
    /// the old one.
    pub transfers: (u64, u64),
    /// Membership changes asked for, and how many completed (each checked to name a
    /// committed stable configuration).
    pub memberships: (u64, u64),
    /// Reads answered with a read index, each checked against the committed prefix at
    /// the time it was issued.
    pub reads_ok: u64,
    /// Reads refused with a typed error.
    pub reads_failed: u64,
    /// Snapshots written by snapshot jobs, and snapshots installed from a leader (each
    /// checked against the fold of the committed prefix).
    pub snapshots: (u64, u64),
    /// Reads of stored entries behind a leader's in-memory window, answered from the
    /// simulated disk.
    pub log_reads: u64,
    /// One-way cuts made during the fault phase.
    pub one_way_cuts: u64,
    /// Whether the liveness phase ran with a node cut one way (1 or 0), and whether that
    /// cut was healed early because a configuration change left the other nodes no
    /// majority (1 or 0).
    pub liveness_cut: (u64, u64),
    /// The first property broken, if any, with the tail of the trace.
    pub failure: Option<SimFailure>,
}

/// A broken property and how the run got there.
#[derive(Debug, Clone)]
pub struct SimFailure {
    /// What was broken.
    pub property: String,
    /// The last events before it, oldest first.
    pub trace: Vec<String>,
}

#[derive(Debug)]
enum Action {
    /// Boxed: an envelope with a snapshot's configuration is far larger than the rest.
    Deliver(Box<Envelope>),
    WriteDone {
        node: usize,
        incarnation: u64,
    },
    Propose,
    Read,
    Fault,
    Restart {
        node: usize,
    },
    StartLiveness,
    Transfer,
    Membership,
    SnapshotWritten {
        node: usize,
        incarnation: u64,
        job: u64,
    },
    LogRead {
        node: usize,
        incarnation: u64,
        read: crate::core::LogRead,
    },
    RestoreDecoded {
        node: usize,
        incarnation: u64,
        job: u64,
    },
}

#[derive(Debug, Default)]
struct Disk {
    hard: HardState,
    /// The compacted prefix: `entries` start right after it.
    prefix: LogId,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct SimNode {
    id: NodeId,
    driver: Option<SimDriver>,
    disk: Disk,
    /// Writes handed to the disk, durable in this order.
    writes: VecDeque<(crate::driver::WriteId, LogWrite)>,
    last_write_done: Duration,
    incarnation: u64,
    group: u32,
    was_leader: bool,
    snapshots: snapshots::SimSnapshots,
    /// The nodes its transport would reach ([`crate::driver::Output::links`]); `None`
    /// before the first list or after an empty one (anyone).
    links: Option<BTreeSet<NodeId>>,
}

/// One simulated cluster. Build it with [`Simulation::new`] and call [`Simulation::run`].
#[derive(Debug)]
pub struct Simulation {
    cfg: SimConfig,
    rng: SplitMix64,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    actions: Vec<Option<Action>>,
    free: Vec<usize>,
    nodes: Vec<SimNode>,
    /// Links cut one way, as `(sender, recipient)` node positions.
    one_way: BTreeSet<(usize, usize)>,
    /// The node left cut one way through the liveness phase, if any.
    liveness_cut: Option<usize>,
    one_way_cuts: u64,
    liveness_cut_stats: (u64, u64),
    members: Vec<NodeId>,
    checker: Checker,
    trace: trace::Trace,
    steps: u64,
    faults_on: bool,
    next_command: u64,
    liveness: Option<Liveness>,
    limits: Limits,
    outcomes: Rc<RefCell<Vec<Outcome>>>,
    replies: u64,
    transfers: (u64, u64),
    memberships: (u64, u64),
    reads_ok: u64,
    reads_failed: u64,
    snapshots_taken: u64,
    snapshots_installed: u64,
    log_reads: u64,
}

impl SimNode {
    fn core(&self) -> Option<&RaftCore> {
        self.driver.as_ref().map(|d| d.core())
    }

    fn is_leader(&self) -> bool {
        self.core().is_some_and(|c| c.role() == Role::Leader)
    }
}

#[derive(Debug)]
struct Liveness {
    deadline: Duration,
    proposal: Option<(usize, LogId)>,
}

impl Simulation {
    /// A fresh cluster for `cfg`: every node a follower with an empty log.
    pub fn new(cfg: SimConfig) -> Self {
        let members: Vec<NodeId> = (1..=(cfg.nodes + cfg.spare_nodes) as u64).collect();
        let mut rng = SplitMix64::new(cfg.seed);
        let limits = node::limits_for(&mut rng);
        let mut sim = Self {
            rng,
            limits,
            outcomes: Rc::new(RefCell::new(Vec::new())),
            replies: 0,
            transfers: (0, 0),
            memberships: (0, 0),
            reads_ok: 0,
            reads_failed: 0,
            snapshots_taken: 0,
            snapshots_installed: 0,
            log_reads: 0,
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            actions: Vec::new(),
            free: Vec::new(),
            nodes: Vec::new(),
            one_way: BTreeSet::new(),
            liveness_cut: None,
            one_way_cuts: 0,
            liveness_cut_stats: (0, 0),
            members: members.clone(),
            checker: Checker::new(),
            trace: trace::Trace::new(64),
            steps: 0,
            faults_on: true,
            next_command: 0,
            liveness: None,
            cfg,
        };
        for &id in &members {
            sim.nodes.push(SimNode {
                id,
                driver: None,
                disk: Disk::default(),
                writes: VecDeque::new(),
                last_write_done: Duration::ZERO,
                incarnation: 0,
                group: 0,
                was_leader: false,
                snapshots: Default::default(),
                links: None,
            });
        }
        for i in 0..sim.nodes.len() {
            sim.boot(i).expect("a fresh node boots");
        }
        sim
    }

    /// Node `i`'s entries `from..=to`: from its disk behind the core's in-memory window
    /// (the driver may have applied and dropped them from memory before the events
    /// reporting their commit are checked), from memory after it.
    fn entries_of(&self, i: usize, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        let Some(core) = self.nodes[i].core() else {
            return Vec::new();
        };
        let window = core.log_prefix().index;
        let disk = &self.nodes[i].disk;
        let mut out: Vec<Entry> = disk
            .entries
            .iter()
            .filter(|e| e.index >= from && e.index <= to.min(window))
            .cloned()
            .collect();
        out.extend_from_slice(core.log_entries(from.max(window + 1), to));
        out
    }

    /// Runs the fault phase, then the liveness phase, checking after every step.
    pub fn run(mut self) -> SimReport {
        let result = self.run_inner();
        SimReport {
            seed: self.cfg.seed,
            steps: self.steps,
            elections: self.checker.elections(),
            committed: self.checker.committed_len(),
            replies: self.replies,
            transfers: self.transfers,
            memberships: self.memberships,
            reads_ok: self.reads_ok,
            reads_failed: self.reads_failed,
            snapshots: (self.snapshots_taken, self.snapshots_installed),
            log_reads: self.log_reads,
            one_way_cuts: self.one_way_cuts,
            liveness_cut: self.liveness_cut_stats,
            failure: result.err().map(|property| SimFailure {
                property,
                trace: self.trace.render(),
            }),
        }
    }

    fn run_inner(&mut self) -> Result<(), String> {
        let first_fault = self.jitter(self.cfg.fault_interval);
        self.schedule(first_fault, Action::Fault);
        let first_proposal = self.jitter(self.cfg.propose_interval);
        self.schedule(first_proposal, Action::Propose);
        let first_read = self.jitter(self.cfg.read_interval);
        self.schedule(first_read, Action::Read);
        self.schedule(self.cfg.fault_time, Action::StartLiveness);
        let first_transfer = self.jitter(self.cfg.transfer_interval);
        self.schedule(first_transfer, Action::Transfer);
        let first_change = self.jitter(self.cfg.membership_interval);
        self.schedule(first_change, Action::Membership);
        loop {
            self.steps += 1;
            if self.steps > self.cfg.max_steps {
                return Err(format!("liveness: no progress after {} steps", self.steps));
            }
            let timer = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.driver.as_ref().map(|d| (d.next_deadline(), i)))
                .min();
            let queued = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let fire_timer = match (timer, queued) {
                (Some((t, _)), Some(q)) => t <= q,
                (Some(_), None) => true,
                _ => false,
            };
            if fire_timer {
                let (t, i) = timer.expect("checked above");
                self.now = self.now.max(t);
                self.trace.push(
                    self.now,
                    TraceEvent::Timer {
                        node: self.nodes[i].id,
                    },
                );
                if let Some(driver) = self.nodes[i].driver.as_mut() {
                    driver.tick(t);
                }
                self.process(i)?;
            } else {
                let Some(Reverse((t, _, slot))) = self.queue.pop() else {
                    return Err("liveness: nothing left to simulate".into());
                };
                self.now = self.now.max(t);
                let action = self.actions[slot].take().expect("scheduled action");
                self.free.push(slot);
                self.act(action)?;
            }
            if let Some(done) = self.check_liveness()? {
                return done;
            }
        }
    }

    fn check_liveness(&mut self) -> Result<Option<Result<(), String>>, String> {
        // A no-op outside the liveness phase, which alone has a cut of its own.
        self.keep_liveness_cut();
        let Some(live) = self.liveness.as_mut() else {
            return Ok(None);
        };
        if self.now > live.deadline {
            let leaders: Vec<_> = self
                .nodes
                .iter()
                .filter_map(|n| n.core().map(|c| c.status()))
                .map(|s| format!("{}:{}@{}", s.id, s.role, s.term))
                .zip(self.nodes.iter().filter_map(|n| n.core()))
                .map(|(s, c)| {
                    format!(
                        "{s}[snap {:?} stored {} window {} voters {:?}{} cfg@{} last {} commit {}]",
                        c.snapshot_point(),
                        c.stored_prefix(),
                        c.log_prefix().index,
                        c.membership().voters(),
                        if c.membership().is_joint() {
                            " joint"
                        } else {
                            ""
                        },
                        c.membership_index(),
                        c.status().last_log,
                        c.status().commit_index
                    )
                })
                .collect();
            return Err(format!(
                "liveness: no leader committed a new proposal within {:?} of healing (nodes {})",
                self.cfg.liveness_bound,
                leaders.join(" ")
            ));
        }
        if let Some((i, id)) = live.proposal {
            let core = self.nodes[i].core();
            match core {
                Some(c) if c.status().role == Role::Leader => {
                    let committed = c.status().commit_index >= id.index;
                    // Applied entries may have left the in-memory window: read the disk.
                    if committed
                        && self
                            .entries_of(i, id.index, id.index)
                            .first()
                            .map(|e| e.term)
                            == Some(id.term)
                    {
                        return Ok(Some(Ok(())));
                    }
                    return Ok(None);
                }
                _ => {
                    if let Some(live) = self.liveness.as_mut() {
                        live.proposal = None;
                    }
                }
            }
        }
        let leader = self.nodes.iter().position(SimNode::is_leader);
        if let Some(i) = leader {
            let cmd = self.command();
            let reply = SimReply::new(self.nodes[i].id, cmd.clone(), &self.outcomes);
            let driver = self.nodes[i].driver.as_mut().expect("leader is up");
            let before = driver.core().status().last_log;
            driver.propose(cmd, reply);
            let after = driver.core().status().last_log;

            if after != before {
                if let Some(live) = self.liveness.as_mut() {
                    live.proposal = Some((i, after));
                }
            }
            self.process(i)?;
        }
        Ok(None)
    }

    fn command(&mut self) -> Bytes {
        self.next_command += 1;
        Bytes::copy_from_slice(&self.next_command.to_be_bytes())
    }

    fn jitter(&mut self, mean: Duration) -> Duration {
        let nanos = mean.as_nanos() as u64 * 2;
        self.now + Duration::from_nanos(self.rng.below(nanos.max(1)))
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.rng.below(1000) < per_mille
    }

    fn schedule(&mut self, at: Duration, action: Action) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.actions[s] = Some(action);
                s
            }
            None => {
                self.actions.push(Some(action));
                self.actions.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    fn index_of(&self, id: NodeId) -> usize {
        (id - 1) as usize
    }

    fn boot(&mut self, i: usize) -> Result<(), String> {
        self.nodes[i].incarnation += 1;
        self.nodes[i].snapshots.crashed();
        let (machine, snapshot, log_prefix, entries) = self.recover(i)?;
        let node = &mut self.nodes[i];
        let point = snapshot
            .as_ref()
            .map(|m| m.last_included)
            .unwrap_or_default();
        let state = InitialState {
            hard_state: node.disk.hard,
            log_prefix,
            entries,
            applied_index: point.index,
            snapshot: point,
            membership: snapshot
                .as_ref()
                .map(|m| m.membership.clone())
                .filter(|c| !c.voters().is_empty()),
        };
        let seed = self
            .cfg
            .seed
            .wrapping_mul(31)
            .wrapping_add(node.incarnation);
        // Spare nodes join: they have no bootstrap configuration.
        let bootstrap: Vec<NodeId> = if node.id as usize <= self.cfg.nodes {
            (1..=self.cfg.nodes as u64).collect()
        } else {
            Vec::new()
        };
        let mut core = RaftCore::new(node.id, bootstrap, self.cfg.raft.clone(), state, seed)
            .expect("valid simulated node");
        // A node boots at the current time: shift its clock by ticking once.
        core.tick(self.now);
        let driver = self
            .new_driver(core, machine)
            .with_latest_snapshot(snapshot);
        let node = &mut self.nodes[i];
        node.driver = Some(driver);
        node.was_leader = false;
        node.links = None;
        Ok(())
    }

    fn act(&mut self, action: Action) -> Result<(), String> {
        match action {
            Action::Deliver(env) => {
                let env = *env;
                let i = self.index_of(env.to);
                let from = self.index_of(env.from);
                if self.nodes[i].driver.is_none() || self.nodes[i].group != self.nodes[from].group {
                    return Ok(());
                }
                self.trace.push(
                    self.now,
                    TraceEvent::Deliver {
                        from: env.from,
                        to: env.to,
                        kind: env.message.kind(),
                        term: env.message.term(),
                    },
                );
                let now = self.now;
                let driver = self.nodes[i].driver.as_mut().expect("node is up");
                match driver.receive(now, env) {
                    // A node outside the receiver's configuration (removed, or not yet
                    // known to it) is refused like a lost message.
                    Ok(()) | Err(crate::core::StepError::UnknownPeer { .. }) => {}
                    Err(e) => return Err(format!("step refused: {e}")),
                }
                self.process(i)
            }
            Action::WriteDone { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation {
                    return Ok(()); // the write died with its node
                }
                self.write_done(node)
            }
            Action::Propose => {
                let next = self.jitter(self.cfg.propose_interval);
                if self.liveness.is_none() {
                    self.schedule(next, Action::Propose);
                }
                let leader = self.nodes.iter().position(SimNode::is_leader);
                let i = match leader {
                    Some(i) if !self.chance(100) => i,
                    _ => self.rng.below(self.nodes.len() as u64) as usize,
                };
                let cmd = self.command();
                let reply = SimReply::new(self.nodes[i].id, cmd.clone(), &self.outcomes);
                if let Some(driver) = self.nodes[i].driver.as_mut() {
                    driver.propose(cmd, reply);
                    self.trace.push(
                        self.now,
                        TraceEvent::Propose {
                            node: self.nodes[i].id,
                        },
                    );
                }
                self.process(i)
            }
            Action::Read => {
                let next = self.jitter(self.cfg.read_interval);
                if self.liveness.is_none() {
                    self.schedule(next, Action::Read);
                }
                let leader = self.nodes.iter().position(SimNode::is_leader);
                let i = match leader {
                    Some(i) if self.chance(500) => i,
                    _ => self.rng.below(self.nodes.len() as u64) as usize,
                };
                let mode = [ReadMode::Index, ReadMode::Lease, ReadMode::Follower]
                    [self.rng.below(3) as usize];
                let floor = self.checker.committed_len();
                let reply = SimReply::read(self.nodes[i].id, floor, &self.outcomes);
                let now = self.now;
                if let Some(driver) = self.nodes[i].driver.as_mut() {
                    driver.read(now, mode, reply);
                }
                self.process(i)
            }
            Action::Fault => {
                if self.faults_on {
                    let next = self.jitter(self.cfg.fault_interval);
                    self.schedule(next, Action::Fault);
                    self.inject_fault();
                }
                Ok(())
            }
            Action::Restart { node } => {
                if self.nodes[node].driver.is_none() {
                    self.restart(node)?;
                }
                Ok(())
            }
            Action::Transfer => {
                if self.liveness.is_none() {
                    let next = self.jitter(self.cfg.transfer_interval);
                    self.schedule(next, Action::Transfer);
                }
                let Some(i) = self.nodes.iter().position(SimNode::is_leader) else {
                    return Ok(());
                };
                let n = self.nodes.len() as u64;
                let to = match self.rng.below(3) {
                    0 => None,
                    _ => Some(1 + self.rng.below(n)),
                };
                self.trace.push(
                    self.now,
                    TraceEvent::Transfer {
                        node: self.nodes[i].id,
                        to,
                    },
                );
                let now = self.now;
                let driver = self.nodes[i].driver.as_mut().expect("leader is up");
                driver.transfer_leadership(now, to, None);
                self.transfers.0 += 1;
                self.process(i)
            }
            Action::Membership => self.membership_action(),
            Action::SnapshotWritten {
                node,
                incarnation,
                job,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return Ok(()); // the job died with its node: a crash mid-write
                }
                self.snapshot_written(node, job)
            }
            Action::LogRead {
                node,
                incarnation,
                read,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return Ok(()); // the read died with its node
                }
                self.log_read(node, read);
                self.process(node)
            }
            Action::RestoreDecoded {
                node,
                incarnation,
                job,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return Ok(()); // the decoding died with its node
                }
                self.restore_decoded(node, job)
            }
            Action::StartLiveness => {
                self.faults_on = false;
                self.trace.push(self.now, TraceEvent::Heal);
                for n in &mut self.nodes {
                    n.group = 0;
                }
                self.one_way.clear();
                for i in 0..self.nodes.len() {
                    if self.nodes[i].driver.is_none() {
                        self.restart(i)?;
                    }
                }
                if self.cfg.seed % 4 == 1 {
                    self.cut_through_liveness();
                }
                self.cfg.drop_per_mille = 0;
                self.cfg.duplicate_per_mille = 0;
                self.liveness = Some(Liveness {
                    deadline: self.now + self.cfg.liveness_bound,
                    proposal: None,
                });
                Ok(())
            }
        }
    }

    fn observe_events(&mut self, i: usize, events: &[Event]) -> Result<(), String> {
        let id = self.nodes[i].id;
        for event in events {
            match *event {
                Event::RoleChanged { role, term } => {
                    self.trace.push(
                        self.now,
                        TraceEvent::Role {
                            node: id,
                            role,
                            term,
                        },
                    );
                    if role == Role::Leader {
                        let core = self.nodes[i].core().expect("node is up");
                        if !core.can_campaign() {
                            return Err(format!(
                                "Election: node {id} won term {term} without a vote in its configuration {:?}",
                                core.membership()
                            ));
                        }
                        let last = core.status().last_log.index;
                        // Entries behind the compacted prefix are committed; the
                        // checker vouched for them when the snapshot was restored.
                        // Entries behind the in-memory window are read from the disk.
                        let prefix = core.stored_prefix();
                        let mut terms: Vec<_> = (1..=prefix)
                            .map(|i| self.checker.committed_term(i).unwrap_or(0))
                            .collect();
                        terms.extend(self.entries_of(i, prefix + 1, last).iter().map(|e| e.term));
                        self.nodes[i].was_leader = true;
                        self.checker
                            .leader_elected(id, term, &terms)
                            .map_err(|v| v.to_string())?;
                    } else if self.nodes[i].was_leader {
                        self.nodes[i].was_leader = false;
                        self.checker.stepped_down(id);
                    }
                }
                Event::Committed { index } => {
                    let core = self.nodes[i].core().expect("node is up");
                    let status = core.status();
                    // A leader removed by the entry it commits steps down in the same
                    // batch: its commit still counts.
                    if status.role != Role::Leader && !self.nodes[i].was_leader {
                        continue;
                    }
                    let from = self.checker.committed_len() + 1;
                    let entries = self.entries_of(i, from, index);
                    for e in &entries {
                        self.checker
                            .committed(e, status.term)
                            .map_err(|v| v.to_string())?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Runs `seed` with the standard configuration.
pub fn run_seed(seed: u64) -> SimReport {
    Simulation::new(SimConfig::for_seed(seed)).run()
}
