//! Planned leader change: on a running cluster, the time from the leadership transfer
//! call until every node knows the new leader.
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin transfer -- --trials 200 --transport mem
//! ```
//!
//! The last line printed is the result:
//! `transfer: nodes=.. transport=.. storage=.. trials=.. mean_ms=.. p99_ms=.. max_ms=..`
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use actraft::core::Config;
use actraft_benches::stats::LatencyHistogram;
use actraft_examples::backend::{start_cluster, StorageKind, TransportKind};
use actraft_examples::cluster::ClusterOptions;
use clap::Parser;

/// Planned leader change latency.
#[derive(Debug, Parser)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Transfers measured.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Transport: mem or quic.
    #[arg(long, default_value = "mem")]
    transport: TransportKind,
    /// Storage: mem or rocks.
    #[arg(long, default_value = "mem")]
    storage: StorageKind,
}

const WAIT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let system = actix_rt::System::new();
    let samples = system.block_on(run(&args))?;
    let s = samples.summary_ms();
    println!(
        "transfer: nodes={} transport={} storage={} trials={} mean_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        args.nodes, args.transport, args.storage, s.count, s.mean, s.p99, s.max
    );
    Ok(())
}

async fn run(args: &Args) -> Result<LatencyHistogram, Box<dyn std::error::Error>> {
    let options = ClusterOptions::new(args.nodes).config(Config::default());
    let cluster = start_cluster(options, args.storage, args.transport, None).await?;
    let mut samples = LatencyHistogram::new();
    for _ in 0..args.trials {
        let (leader, _) = cluster.wait_for_leader(WAIT).await?;
        cluster
            .wait_for(WAIT, "every node to know the leader", |s| {
                s.iter().all(|s| s.leader == Some(leader))
            })
            .await?;
        let handle = cluster.handle(leader).ok_or("leader is gone")?;
        let start = Instant::now();
        let new = handle.transfer_leadership(None).await?;
        cluster
            .wait_for(WAIT, "every node to know the new leader", |s| {
                s.iter().all(|s| s.leader == Some(new))
            })
            .await?;
        samples.record(start.elapsed());
    }
    Ok(samples)
}
