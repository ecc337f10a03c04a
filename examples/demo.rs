//! The actraft demo: a 5-node cluster in one process, an election, a burst of writes, a
//! leader crash and failover, the old leader back as a follower, and a final check that
//! every node applied the same log.
//!
//! Run it with:
//!
//! ```sh
//! cargo run --release --example demo
//! cargo run --release --example demo -- --nodes 3 --writes 20000 --clients 64
//! RUST_LOG=actraft=debug cargo run --release --example demo
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use actraft_examples::backend::{start_cluster, StorageKind, TransportKind};
use actraft_examples::cluster::{ClusterOptions, Placement};
use bytes::Bytes;
use clap::Parser;
use futures_util::future::join_all;

/// A Raft cluster in one process: an election, a burst of writes, a leader crash and
/// failover, the old leader back as a follower, and a check that every node applied the
/// same log.
#[derive(Debug, Parser)]
#[command(name = "demo", version)]
struct Args {
    /// Cluster size (a failover needs at least 3 nodes).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=100))]
    nodes: u16,
    /// Writes in the burst, spread over the clients.
    #[arg(long, default_value_t = 10_000)]
    writes: usize,
    /// Concurrent clients writing the burst.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Transport between the nodes: `mem` (in-process) or `quic` (loopback, mutual TLS).
    #[arg(long, default_value_t = TransportKind::Mem)]
    transport: TransportKind,
    /// Log storage: `mem`, or `rocks` (RocksDB; needs a build with `--features rocks`).
    #[arg(long, default_value_t = StorageKind::Mem)]
    storage: StorageKind,
    /// Where RocksDB keeps the nodes' logs (a temporary directory when not given).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[actix_rt::main]
async fn main() {
    actraft_examples::init_tracing();
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let timeout = Duration::from_secs(5);
    println!(
        "starting {} nodes (transport={}, storage={}, election timeout 150..300 ms)",
        args.nodes, args.transport, args.storage
    );
    let started = Instant::now();
    let options = ClusterOptions::new(args.nodes.into()).placement(Placement::PerNode);
    let mut cluster = start_cluster(options, args.storage, args.transport, args.data_dir).await?;

    let (leader, term) = cluster.wait_for_leader(timeout).await?;
    println!(
        "node {leader} became leader in term {term} after {}",
        ms(started.elapsed())
    );

    // A burst of writes from concurrent clients.
    let burst = Instant::now();
    let clients = args.clients as usize;
    let per_client = args.writes.div_ceil(clients);
    let handle = cluster.handle(leader).ok_or("leader vanished")?;
    let results = join_all((0..clients).map(|c| {
        let handle = handle.clone();
        async move {
            let mut ok = 0usize;
            for i in 0..per_client {
                let cmd = Bytes::from(format!("put client{c}-{i} {i}"));
                if handle.propose(cmd).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }
    }))
    .await;
    let committed: usize = results.iter().sum();
    let secs = burst.elapsed().as_secs_f64();
    println!(
        "committed {committed} writes from {} clients in {}: {:.0} writes/s",
        args.clients,
        ms(burst.elapsed()),
        committed as f64 / secs
    );

    // Crash the leader and time the failover.
    let crash = Instant::now();
    cluster.kill(leader).await;
    println!("crashed the leader, node {leader}");
    let (new_leader, new_term) = cluster.wait_for_leader(timeout).await?;
    println!(
        "node {new_leader} became leader in term {new_term}: failover took {}",
        ms(crash.elapsed())
    );
    let response = cluster
        .propose(Bytes::from_static(b"put after-failover yes"), timeout)
        .await?;
    println!(
        "a write after the failover committed ({})",
        String::from_utf8_lossy(&response)
    );

    // Bring the old leader back on its storage.
    let back = cluster.restart(leader).await?;
    let status = back
        .wait_until(timeout, |s| s.leader == Some(new_leader))
        .await?;
    println!(
        "node {leader} restarted from its storage and follows node {new_leader} in term {} as a {}",
        status.term, status.role
    );

    // Everyone applies everything, and the logs agree.
    let commit = cluster
        .handle(new_leader)
        .ok_or("leader vanished")?
        .status()
        .commit_index;
    cluster.wait_for_applied(commit, timeout).await?;
    let agreed = cluster.check_agreement()?;
    println!(
        "all {} nodes applied the same {} commands (up to index {commit})",
        args.nodes,
        agreed.len()
    );
    cluster.shutdown_all().await;
    println!("done in {}", ms(started.elapsed()));
    Ok(())
}
