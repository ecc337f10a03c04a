//! Linearizability of a replicated key-value store under faults, for every read mode.
//!
//! A 3-node cluster (in-memory transport and storage) applies `put` commands; concurrent
//! clients write unique values and read keys back, while a fault schedule isolates the
//! leader, crashes and restarts it, transfers leadership and cuts a follower off. Every
//! invocation and answer goes into a [`History`], checked at the end against a register
//! per key. Reads go through the log, or through a read index on the leader
//! ([`ReadMode::Index`]), on the leader's lease ([`ReadMode::Lease`], leases on), or on any
//! node ([`ReadMode::Follower`]).
//!
//! Each run stops once the fault schedule went round at least once and the history holds
//! `ACTRAFT_LINZ_OPS` operations (default 600; one round of faults records several
//! thousand on the in-memory transport). A last test reads nodes' local state with no
//! barrier and checks that the checker rejects the history.
//!
//! Each run prints the number of operations checked (`--nocapture` shows it).
#![allow(clippy::print_stdout)]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actraft::testkit::linearizability::History;
use actraft::testkit::SplitMix64;
use actraft::{ClientError, NodeId, RaftHandle, ReadMode, Role};
use actraft_examples::cluster::{fast_config, Cluster, ClusterOptions};
use actraft_examples::kv::KvCommand;
use actraft_examples::recording::AppliedLog;
use actraft_examples::scenarios::{settle, WAIT};
use bytes::Bytes;
use tokio::sync::watch;

/// How reads are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// `get` through the log.
    Log,
    /// A read barrier in this mode.
    Barrier(ReadMode),
    /// No barrier at all: any node's local state (not linearizable, to show the check
    /// catches it).
    Local,
}

const KEYS: u64 = 16;
const CLIENTS: u64 = 5;
const OP_TIMEOUT: Duration = Duration::from_millis(500);

type Nodes = Vec<(RaftHandle, AppliedLog)>;

fn ops_target() -> usize {
    std::env::var("ACTRAFT_LINZ_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}

fn key(k: u64) -> String {
    format!("k{k}")
}

/// The value of `key` after the entries of `log` before `upto` (all of them when `None`).
fn value_in(log: &[(u64, Bytes)], key: &str, upto: Option<usize>) -> Option<u64> {
    let end = upto.unwrap_or(log.len());
    log[..end]
        .iter()
        .rev()
        .find_map(|(_, cmd)| match KvCommand::decode(cmd) {
            Some(KvCommand::Put { key: k, value }) if k == key => value.parse().ok(),
            _ => None,
        })
}

/// The running nodes that believe they lead (an isolated old leader included).
fn leaders(nodes: &Nodes) -> Vec<(RaftHandle, AppliedLog)> {
    nodes
        .iter()
        .filter(|(h, _)| h.is_running() && h.status().role == Role::Leader)
        .cloned()
        .collect()
}

/// After a node answered `Stopped`: waits until every published node runs again (the
/// test publishes after each kill and restart), within a bound. Without it, a client
/// whose node was just killed would retry on its stopped handle in a loop until the
/// kill is published, filling the history with writes of unknown outcome.
async fn wait_stopped_gone(nodes: &watch::Receiver<Nodes>) {
    let mut nodes = nodes.clone();
    let gone = async {
        while !nodes
            .borrow_and_update()
            .iter()
            .all(|(h, _)| h.is_running())
        {
            if nodes.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(50), gone).await;
}

async fn wait_change(nodes: &watch::Receiver<Nodes>) {
    let mut watches: Vec<_> = nodes
        .borrow()
        .iter()
        .map(|(h, _)| h.watch_status())
        .collect();
    if watches.is_empty() {
        let mut nodes = nodes.clone();
        let _ = tokio::time::timeout(Duration::from_millis(50), nodes.changed()).await;
        return;
    }
    let any = futures_util::future::select_all(
        watches
            .iter_mut()
            .map(|w| Box::pin(w.changed()))
            .collect::<Vec<_>>(),
    );
    let mut nodes = nodes.clone();
    tokio::select! {
        _ = any => {}
        _ = nodes.changed() => {}
        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
}

async fn client(
    id: u64,
    reads: Reads,
    history: History<String, u64>,
    nodes: watch::Receiver<Nodes>,
    stop: Rc<Cell<bool>>,
) {
    let mut rng = SplitMix64::new(0x5eed ^ id);
    let mut seq = 0u64;
    while !stop.get() {
        seq += 1;
        let k = key(rng.below(KEYS));
        let write = rng.below(2) == 0;
        let current = nodes.borrow().clone();
        let anywhere = matches!(reads, Reads::Barrier(ReadMode::Follower) | Reads::Local);
        let candidates = if !write && anywhere {
            current
                .into_iter()
                .filter(|(h, _)| h.is_running())
                .collect()
        } else {
            leaders(&current)
        };
        if candidates.is_empty() {
            wait_change(&nodes).await;
            continue;
        }
        let (node, log) = candidates[rng.below(candidates.len() as u64) as usize].clone();
        if write {
            let value = id * 1_000_000 + seq;
            let cmd = KvCommand::Put {
                key: k.clone(),
                value: value.to_string(),
            }
            .encode();
            let pending = history.write(k, value);
            match node.propose_timeout(cmd, OP_TIMEOUT).await {
                Ok(_) => pending.ok(),
                Err(
                    ClientError::NotLeader { .. }
                    | ClientError::Busy
                    | ClientError::TransferInProgress { .. },
                ) => pending.failed(),
                Err(ClientError::Stopped) => {
                    // It may have been appended before the node stopped.
                    pending.unknown();
                    wait_stopped_gone(&nodes).await;
                }
                Err(_) => pending.unknown(),
            }
            continue;
        }
        match reads {
            Reads::Log => {
                let cmd = Bytes::from(format!("get {k} c{id}-{seq}"));
                let pending = history.read(k.clone());
                match node.propose_timeout(cmd.clone(), OP_TIMEOUT).await {
                    Ok(_) => {
                        let entries = log.entries();
                        let at = entries
                            .iter()
                            .position(|(_, c)| *c == cmd)
                            .expect("the node that answered applied the read");
                        pending.returned(value_in(&entries, &k, Some(at)));
                    }
                    Err(e) => {
                        pending.failed();
                        if e == ClientError::Stopped {
                            wait_stopped_gone(&nodes).await;
                        }
                    }
                }
            }
            Reads::Barrier(mode) => {
                let pending = history.read(k.clone());
                match node.read_index_timeout(mode, OP_TIMEOUT).await {
                    Ok(index) => {
                        let applied = node.status().applied_index;
                        assert!(
                            applied >= index,
                            "node {} answered read index {index} with only {applied} applied",
                            node.id()
                        );
                        pending.returned(value_in(&log.entries(), &k, None));
                    }
                    Err(e) => {
                        pending.failed();
                        if e == ClientError::Stopped {
                            wait_stopped_gone(&nodes).await;
                        }
                    }
                }
            }
            Reads::Local => {
                let pending = history.read(k.clone());
                pending.returned(value_in(&log.entries(), &k, None));
                tokio::task::yield_now().await;
            }
        }
    }
}

fn publish(cluster: &Cluster, tx: &watch::Sender<Nodes>) {
    let nodes = cluster
        .members()
        .iter()
        .filter_map(|&id| Some((cluster.handle(id)?, cluster.applied(id)?)))
        .collect();
    let _ = tx.send(nodes);
}

async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// One round of faults: isolate the leader, crash and restart it, transfer leadership,
/// cut a follower off.
async fn fault_round(cluster: &mut Cluster, tx: &watch::Sender<Nodes>, rng: &mut SplitMix64) {
    let Ok((leader, _)) = cluster.wait_for_leader(WAIT).await else {
        return;
    };
    // An isolated leader: a new one is elected by the other two while it still believes
    // it leads.
    cluster.router().isolate(leader);
    pause(300 + rng.below(100)).await;
    cluster.router().reconnect(leader);
    pause(150).await;

    if let Ok((leader, _)) = cluster.wait_for_leader(WAIT).await {
        cluster.kill(leader).await;
        publish(cluster, tx);
        pause(150 + rng.below(100)).await;
        cluster.restart(leader).await.expect("restart");
        publish(cluster, tx);
        pause(150).await;
    }

    if let Ok((leader, _)) = cluster.wait_for_leader(WAIT).await {
        if let Some(h) = cluster.handle(leader) {
            let _ = h.transfer_leadership(None).await;
        }
        pause(150).await;
    }

    if let Ok((leader, _)) = cluster.wait_for_leader(WAIT).await {
        let others: Vec<NodeId> = cluster
            .members()
            .iter()
            .copied()
            .filter(|&m| m != leader)
            .collect();
        let follower = others[rng.below(others.len() as u64) as usize];
        cluster.router().isolate(follower);
        pause(200 + rng.below(100)).await;
        cluster.router().reconnect(follower);
        pause(100).await;
    }
}

/// Runs the clients under faults; returns the history and the number of fault rounds.
async fn record(reads: Reads, seed: u64) -> (Cluster, History<String, u64>, usize) {
    let mut config = fast_config();
    config.lease_reads = reads == Reads::Barrier(ReadMode::Lease);
    let mut cluster = Cluster::start(ClusterOptions::new(3).config(config).seed(seed))
        .await
        .unwrap();
    cluster.wait_for_leader(WAIT).await.unwrap();
    let (tx, rx) = watch::channel(Vec::new());
    publish(&cluster, &tx);

    let history: History<String, u64> = History::new();
    let stop = Rc::new(Cell::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            actix_rt::spawn(client(
                c,
                reads,
                history.client(),
                rx.clone(),
                Rc::clone(&stop),
            ))
        })
        .collect();

    let target = ops_target();
    let mut rng = SplitMix64::new(seed);
    let mut rounds = 0;
    while rounds == 0 || history.len() < target {
        fault_round(&mut cluster, &tx, &mut rng).await;
        rounds += 1;
    }
    stop.set(true);
    for c in clients {
        c.await.unwrap();
    }
    cluster.router().heal();
    settle(&cluster).await;
    cluster.check_agreement().unwrap();
    (cluster, history, rounds)
}

async fn run(reads: Reads, seed: u64) {
    let target = ops_target();
    let (cluster, history, rounds) = record(reads, seed).await;
    let ops = history.operations();
    let ok_reads = ops
        .iter()
        .filter(|o| {
            matches!(o.op, actraft::testkit::linearizability::Op::Read(_))
                && matches!(o.outcome, actraft::testkit::linearizability::Outcome::Ok(_))
        })
        .count();
    let report = history.check().unwrap_or_else(|e| panic!("{reads:?}: {e}"));
    println!(
        "linearizability reads={reads:?}: {} operations checked ({} reads answered, {} writes \
         of unknown outcome, {} recorded in all), {} keys, {} search states, {rounds} fault \
         rounds, {} leaders",
        report.operations,
        ok_reads,
        report.unknown,
        ops.len(),
        report.keys,
        report.states,
        cluster.leaders_by_term().len(),
    );
    assert!(
        ok_reads >= target / 10,
        "too few reads answered: {ok_reads}"
    );
    assert!(
        cluster.leaders_by_term().len() >= 3,
        "the faults changed the leader"
    );
}

#[actix_rt::test]
async fn reads_without_a_barrier_are_caught() {
    let (_cluster, history, _) = record(Reads::Local, 15).await;
    let e = history
        .check()
        .expect_err("local reads on a cut-off follower are stale");
    println!("linearizability reads=Local: rejected as expected: {e}");
}

#[actix_rt::test]
async fn log_reads_are_linearizable_under_faults() {
    run(Reads::Log, 11).await;
}

#[actix_rt::test]
async fn read_index_reads_are_linearizable_under_faults() {
    run(Reads::Barrier(ReadMode::Index), 12).await;
}

#[actix_rt::test]
async fn lease_reads_are_linearizable_under_faults() {
    run(Reads::Barrier(ReadMode::Lease), 13).await;
}

#[actix_rt::test]
async fn follower_reads_are_linearizable_under_faults() {
    run(Reads::Barrier(ReadMode::Follower), 14).await;
}
