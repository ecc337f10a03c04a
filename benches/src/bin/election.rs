//! Election latency after a leader crash, as the Raft paper measures it (§9.3).
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin election -- --nodes 5 --timeout-ms 12..24 \
//!     --trials 1000 --transport mem --storage mem
//! cargo run --release -p actraft-benches --bin election -- --help
//! ```
//!
//! The last line printed is the result:
//! `election: nodes=.. timeout=..ms transport=.. storage=.. trials=.. mean=..ms p50=..ms
//! p90=..ms p99=..ms max=..ms multi_term=..% floor=..ms`

use std::time::Duration;

use actraft_benches::cli::{self, range_ms, BackendArgs};
use actraft_benches::election::{run, ElectionConfig};
use clap::Parser;

/// Election latency after a leader crash, as the Raft paper measures it (§9.3): the
/// leader crashes at a uniformly random point of its heartbeat interval; the latency is
/// the time until every survivor knows the same new leader. Prints one result line.
#[derive(Debug, Parser)]
#[command(name = "election", version)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=100))]
    nodes: u16,
    /// Election timeout range `MIN..MAX`, in milliseconds.
    #[arg(long, value_name = "MIN..MAX", default_value = "150..300", value_parser = range_ms)]
    timeout_ms: (Duration, Duration),
    /// Heartbeat interval in milliseconds (default: a quarter of MIN).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_ms: Option<u64>,
    /// Leader crashes to measure.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    trials: u64,
    /// Seed for the crash offsets and election timeouts.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    backend: BackendArgs,
}

impl Args {
    fn config(self) -> ElectionConfig {
        let mut cfg = ElectionConfig::new(usize::from(self.nodes), 0, 0, self.trials as usize);
        cfg.timeout = self.timeout_ms;
        cfg.heartbeat = self.heartbeat_ms.map(Duration::from_millis);
        cfg.seed = self.seed;
        cfg.transport = self.backend.transport;
        cfg.storage = self.backend.storage;
        cfg.data_dir = self.backend.data_dir;
        cfg
    }
}

fn main() {
    let cfg = Args::parse().config();
    cli::main("election", || async move { Ok(run(&cfg).await?.line()) });
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use clap::Parser;
    use std::time::Duration;

    use super::Args;
    use actraft_benches::TransportKind;

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_become_the_configuration() {
        let cfg = Args::try_parse_from([
            "election",
            "--nodes",
            "7",
            "--timeout-ms",
            "12..24",
            "--trials",
            "3",
            "--heartbeat-ms",
            "2",
            "--transport",
            "quic",
            "--seed",
            "9",
        ])
        .unwrap()
        .config();
        assert_eq!(cfg.nodes, 7);
        assert_eq!(
            cfg.timeout,
            (Duration::from_millis(12), Duration::from_millis(24))
        );
        assert_eq!(cfg.trials, 3);
        assert_eq!(cfg.heartbeat, Some(Duration::from_millis(2)));
        assert_eq!(cfg.transport, TransportKind::Quic);
        assert_eq!(cfg.seed, 9);
        let defaults = Args::try_parse_from(["election"]).unwrap().config();
        assert_eq!(defaults.nodes, 5);
        assert_eq!(defaults.timeout.1, Duration::from_millis(300));
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let err = |args: &[&str]| Args::try_parse_from(args).unwrap_err().to_string();
        assert!(err(&["election", "--timeout-ms", "24..12"]).contains("empty range"));
        assert!(err(&["election", "--nodes", "2"]).contains("--nodes"));
        assert!(err(&["election", "--trials", "many"]).contains("--trials"));
        assert!(err(&["election", "--transport", "tcp"]).contains("expected one of: mem, quic"));
    }
}
