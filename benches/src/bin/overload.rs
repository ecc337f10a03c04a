//! Overload: 10× the clients that saturate a 3-node mem/mem cluster, for a minute. The
//! node must push back with `Busy` rather than queue without bound.
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin overload -- --clients 4096 --secs 60
//! ```
//!
//! The last line printed is the result:
//! `overload: members=3 clients=<n> secs=<x> ops_per_sec=<x> busy=<n> p99_us=<x>
//! rss_mb_start=<x> rss_mb_max=<x> elections=<n>`; the line before it gives the
//! saturated throughput of the baseline (`baseline_clients` closed-loop clients).

use std::time::Duration;

use actraft_benches::overload::{run, OverloadConfig};
use clap::Parser;

/// Overload a 3-node in-memory cluster and check that it pushes back.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Clients in the overload phase.
    #[arg(long, default_value_t = 4096)]
    clients: usize,
    /// Proposals each overload client keeps in flight.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Seconds of overload (the first `--warmup` of them are not counted).
    #[arg(long, default_value_t = 60.0)]
    secs: f64,
    /// Seconds before memory and throughput are measured.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Closed-loop clients of the saturated baseline.
    #[arg(long, default_value_t = 256)]
    baseline_clients: usize,
    /// Seconds of baseline.
    #[arg(long, default_value_t = 10.0)]
    baseline_secs: f64,
    /// Bytes per command.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Node threads (arbiters).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Milliseconds a client refused with `Busy` waits at most before its first retry
    /// (a random wait below it; it doubles at each refusal in a row).
    #[arg(long, default_value_t = 1)]
    backoff_ms: u64,
    /// The bound on that doubling, in milliseconds.
    #[arg(long, default_value_t = 64)]
    max_backoff_ms: u64,
}

fn main() {
    let args = Args::parse();
    let cfg = OverloadConfig {
        members: args.members,
        clients: args.clients,
        window: args.window.max(1),
        secs: args.secs,
        warmup_secs: args.warmup,
        baseline_clients: args.baseline_clients.max(1),
        baseline_secs: args.baseline_secs,
        payload: args.payload,
        threads: args.threads.max(1),
        backoff: Duration::from_millis(args.backoff_ms),
        max_backoff: Duration::from_millis(args.max_backoff_ms),
    };
    actraft_benches::cli::main("overload", || async move {
        let result = run(&cfg).await?;
        #[allow(clippy::print_stdout)]
        {
            println!("{}", result.baseline_line());
        }
        Ok(result.line())
    });
}
