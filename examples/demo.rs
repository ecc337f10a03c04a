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

use std::time::{Duration, Instant};

use actraft_examples::backend::{start_cluster, StorageKind, TransportKind};
use actraft_examples::cluster::{ClusterOptions, Placement};
use bytes::Bytes;
use futures_util::future::join_all;

struct Args {
    nodes: usize,
    writes: usize,
    clients: usize,
    transport: TransportKind,
    storage: StorageKind,
    data_dir: Option<std::path::PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: demo [--nodes N] [--writes N] [--clients N] [--transport mem|quic] [--storage mem|rocks] [--data-dir DIR]"
    );
    std::process::exit(2)
}

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("demo: {e}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        nodes: 5,
        writes: 10_000,
        clients: 32,
        transport: TransportKind::Mem,
        storage: StorageKind::Mem,
        data_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let number = || value.parse::<usize>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--nodes" => args.nodes = number(),
            "--writes" => args.writes = number(),
            "--clients" => args.clients = number().max(1),
            "--transport" => args.transport = value.parse().unwrap_or_else(|e| fail(e)),
            "--storage" => args.storage = value.parse().unwrap_or_else(|e| fail(e)),
            "--data-dir" => args.data_dir = Some(value.into()),
            _ => usage(),
        }
    }
    if args.nodes < 3 {
        eprintln!("demo: a failover needs at least 3 nodes");
        std::process::exit(2);
    }
    args
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[actix_rt::main]
async fn main() {
    actraft_examples::init_tracing();
    let args = parse_args();
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
    let options = ClusterOptions::new(args.nodes).placement(Placement::PerNode);
    let mut cluster = start_cluster(options, args.storage, args.transport, args.data_dir).await?;

    let (leader, term) = cluster.wait_for_leader(timeout).await?;
    println!(
        "node {leader} became leader in term {term} after {}",
        ms(started.elapsed())
    );

    // A burst of writes from concurrent clients.
    let burst = Instant::now();
    let per_client = args.writes.div_ceil(args.clients);
    let handle = cluster.handle(leader).ok_or("leader vanished")?;
    let results = join_all((0..args.clients).map(|c| {
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
