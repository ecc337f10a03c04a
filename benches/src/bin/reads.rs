//! Read throughput by read path on a 3-node cluster: through the log, by a read index,
//! on the leader's lease, on the followers; and a 90/10 read/write mix.
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin reads -- --clients 256 --transport mem --storage mem --secs 3
//! cargo run --release -p actraft-benches --features rocks --bin reads -- --clients 1 --storage rocks
//! ```
//!
//! Prints one line per mode,
//! `reads: members=3 clients=.. transport=.. storage=.. mode=log|index|lease|follower ops_per_sec=.. p50_us=.. p99_us=..`,
//! then the mix:
//! `reads_mix: .. read_share=.. read_ops_per_sec=.. write_ops_per_sec=.. write_ops_per_sec_alone=.. write_cost_pct=.. rounds=..`
//! (writers alone and in the mix measured in turn, `--mix-rounds` times; medians).

use std::time::Duration;

use actraft_benches::cli::{self, BackendArgs};
use actraft_benches::reads::{run, Mode, ReadsConfig};
use clap::Parser;

/// Reads per second and their latency, for each read path, on a 3-node cluster reading
/// 64-byte values; then writers alone and writers among readers (90/10 by operations: nine reads per write).
#[derive(Debug, Parser)]
#[command(name = "reads", version)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    clients: u64,
    /// Seconds each mode is measured.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// The modes measured, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "log,index,lease,follower"
    )]
    modes: Vec<Mode>,
    /// Leave out the read/write mix.
    #[arg(long)]
    no_mix: bool,
    /// Rounds of the mix, each measuring the writers alone and then among the readers
    /// for `--secs` each; the mix line has the medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    mix_rounds: u64,
    #[command(flatten)]
    backend: BackendArgs,
}

impl Args {
    fn config(self) -> Result<ReadsConfig, String> {
        if !(self.secs.is_finite() && self.secs > 0.0 && self.secs <= 3600.0) {
            return Err(format!(
                "--secs: expected 0 < SECS <= 3600, got {}",
                self.secs
            ));
        }
        let mut cfg = ReadsConfig::new(self.clients as usize, Duration::from_secs_f64(self.secs));
        cfg.modes = self.modes;
        cfg.mix = !self.no_mix;
        cfg.mix_rounds = self.mix_rounds as usize;
        cfg.transport = self.backend.transport;
        cfg.storage = self.backend.storage;
        cfg.data_dir = self.backend.data_dir;
        Ok(cfg)
    }
}

fn main() {
    let cfg = Args::parse().config().unwrap_or_else(|e| {
        eprintln!("reads: {e}");
        std::process::exit(2);
    });
    cli::main("reads", || async move { Ok(run(&cfg).await?.lines()) });
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Args, Mode};

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_become_the_configuration() {
        let cfg = Args::try_parse_from([
            "reads",
            "--clients",
            "8",
            "--modes",
            "index,lease",
            "--no-mix",
            "--mix-rounds",
            "5",
        ])
        .unwrap()
        .config()
        .unwrap();
        assert_eq!(cfg.clients, 8);
        assert_eq!(cfg.modes, vec![Mode::Index, Mode::Lease]);
        assert!(!cfg.mix);
        assert_eq!(cfg.mix_rounds, 5);
        let defaults = Args::try_parse_from(["reads"]).unwrap().config().unwrap();
        assert_eq!(defaults.modes.len(), 4);
        assert_eq!(defaults.clients, 256);
        assert!(defaults.mix);
        assert_eq!(defaults.mix_rounds, 3);
        assert!(Args::try_parse_from(["reads", "--secs", "0"])
            .unwrap()
            .config()
            .is_err());
        assert!(Args::try_parse_from(["reads", "--modes", "stale"]).is_err());
    }
}
