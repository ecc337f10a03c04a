//! A follower far behind catches up by snapshot; or, with `--restart`, a follower
//! restarts on a long history of its own. Three KV nodes (the example's state machine).
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin catchup -- --entries 1000000
//! cargo run --release -p actraft-benches --bin catchup -- --transport quic
//! cargo run --release -p actraft-benches --features rocks --bin catchup -- --storage rocks
//! cargo run --release -p actraft-benches --features rocks --bin catchup -- \
//!     --restart --storage rocks --entries 10000000
//! ```
//!
//! The last line printed is the result:
//! `catchup: entries=<n> transport=<t> storage=<s> snapshot_mb=<x> secs=<x>`, or with
//! `--restart`: `restart: entries=<n> storage=<s> secs=<x>`. The line before it says how
//! long the writes took and when the restarted node was running.

use actraft_benches::catchup::{run, CatchupConfig, Mode};
use actraft_benches::cli::BackendArgs;
use clap::Parser;

/// Catch a follower up by snapshot, or restart one on a long history.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Entries written while the follower is down (or, with `--restart`, before it
    /// restarts).
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Measure a restart on the node's own history instead of a catch-up.
    #[arg(long)]
    restart: bool,
    /// Distinct keys the puts cycle over (default: one key per put for a catch-up,
    /// 100 000 for a restart).
    #[arg(long)]
    keys: Option<u64>,
    /// Bytes per value.
    #[arg(long, default_value_t = 48)]
    value_bytes: usize,
    /// Closed-loop writers while loading.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    #[command(flatten)]
    backend: BackendArgs,
}

fn main() {
    let args = Args::parse();
    let mut cfg = if args.restart {
        CatchupConfig::restart(args.entries, args.backend.storage)
    } else {
        CatchupConfig::catchup(args.entries, args.backend.transport, args.backend.storage)
    };
    cfg.transport = args.backend.transport;
    cfg.data_dir = args.backend.data_dir;
    cfg.value_bytes = args.value_bytes;
    cfg.clients = args.clients.max(1);
    if args.keys.is_some() {
        cfg.keys = args.keys;
    }
    actraft_benches::cli::main("catchup", || async move {
        let r = run(&cfg).await?;
        #[allow(clippy::print_stdout)]
        {
            println!(
                "{}-detail: load_secs={:.1} target_index={} node_started_secs={:.3} snapshot_mb={:.1}",
                if r.mode == Mode::Catchup { "catchup" } else { "restart" },
                r.load_secs,
                r.target_index,
                r.start_secs,
                r.snapshot_mb
            );
        }
        Ok(r.line())
    });
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        super::Args::command().debug_assert();
    }
}
