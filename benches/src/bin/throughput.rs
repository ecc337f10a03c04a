//! Append throughput of a cluster under K concurrent clients.
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin throughput -- --members 3 --clients 256 \
//!     --ops 1000000 --payload 0 --transport mem --storage mem [--threads N] \
//!     [--client-placement same|other]
//! cargo run --release -p actraft-benches --bin throughput -- --help
//! ```
//!
//! The last line printed is the result:
//! `throughput: members=.. clients=.. payload=.. transport=.. storage=.. ops=.. secs=..
//! ops_per_sec=.. p50_us=.. p99_us=.. threads=.. placement=..`, followed on RocksDB by
//! `ceiling_ops_per_sec=..` (the same entries written straight to RocksDB in synced
//! batches of the leader's batch size, measured after the run) and on QUIC by
//! `mb_per_sec=.. ceiling_mb_per_sec=.. fan_out_ceiling_mb_per_sec=.. ceiling_rtt_us=..`
//! (replication payload to all followers; the same bytes pushed through one raw QUIC
//! stream on loopback after the run; through one raw stream to each of as many
//! receivers as there are followers, from one sender thread, as a leader sends; and the
//! median round trip of a 64-byte message over raw QUIC on loopback, the floor under a
//! commit's latency over QUIC).

use actraft_benches::cli::{self, BackendArgs};
use actraft_benches::throughput::{run, ClientPlacement, ThroughputConfig};
use clap::Parser;

/// Append throughput: K clients proposing back to back through the leader; entries
/// committed and applied per second, and each commit's latency as a client sees it.
/// Prints one result line.
#[derive(Debug, Parser)]
#[command(name = "throughput", version)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    members: u16,
    /// Concurrent clients.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    clients: u64,
    /// Total proposals.
    #[arg(long, default_value_t = 1_000_000)]
    ops: u64,
    /// Bytes per command (0: empty commands).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    payload: usize,
    /// Threads for the nodes (default: one per node); clients run on a thread of their own.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    /// Where the clients run: `same` is the leader's arbiter (no thread hop between
    /// client and node), `other` a thread of their own.
    #[arg(long, value_enum, default_value_t = ClientPlacement::Other)]
    client_placement: ClientPlacement,
    #[command(flatten)]
    backend: BackendArgs,
}

impl Args {
    fn config(self) -> ThroughputConfig {
        let mut cfg = ThroughputConfig::new(
            usize::from(self.members),
            self.clients as usize,
            self.ops,
            self.payload,
        );
        cfg.threads = self.threads.map(|n| n as usize);
        cfg.transport = self.backend.transport;
        cfg.storage = self.backend.storage;
        cfg.data_dir = self.backend.data_dir;
        cfg.placement = self.client_placement;
        cfg
    }
}

fn main() {
    let cfg = Args::parse().config();
    cli::main("throughput", || async move { Ok(run(&cfg).await?.line()) });
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use clap::Parser;

    use super::{Args, ClientPlacement};

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_become_the_configuration() {
        let cfg = Args::try_parse_from([
            "throughput",
            "--members",
            "5",
            "--clients",
            "16",
            "--ops",
            "1000",
            "--payload",
            "64",
            "--threads",
            "2",
            "--client-placement",
            "same",
        ])
        .unwrap()
        .config();
        assert_eq!(
            (cfg.members, cfg.clients, cfg.ops, cfg.payload),
            (5, 16, 1000, 64)
        );
        assert_eq!(cfg.threads, Some(2));
        assert_eq!(cfg.placement, ClientPlacement::Same);
        let defaults = Args::try_parse_from(["throughput"]).unwrap().config();
        assert_eq!(
            (defaults.members, defaults.clients, defaults.ops),
            (3, 256, 1_000_000)
        );
        assert_eq!(defaults.threads, None);
        assert_eq!(defaults.placement, ClientPlacement::Other);
        let e = Args::try_parse_from(["throughput", "--clients", "0"]).unwrap_err();
        assert!(e.to_string().contains("--clients"), "{e}");
    }
}
