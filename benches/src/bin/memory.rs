//! Memory over time: a 3-node mem/mem cluster at 256 closed-loop clients with 64-byte
//! commands, snapshotting by the default policy; resident memory sampled every second.
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin memory -- --secs 600
//! ```
//!
//! Writes `memory.csv` (the samples) and `memory.svg` into the report directory
//! (`target/actraft-report` in the workspace, or `--out DIR`). The last line printed is
//! the result: `memory: members=3 clients=256 secs=<x> entries=<n> snapshots=<n>
//! rss_mb_start=<x> rss_mb_max=<x> rss_mb_end=<x>`, with `rss_mb_start` taken after
//! `--warmup` seconds.
//!
//! glibc's malloc gives every thread that allocates an arena of its own and returns
//! little of it, which shows as a slow RSS climb that is not memory the nodes hold; run
//! with `MALLOC_ARENA_MAX=2` to measure the nodes rather than the arenas.

use std::path::PathBuf;

use actraft_benches::memory::{run, svg, MemoryConfig};
use clap::Parser;

/// Run a 3-node in-memory cluster under steady load and watch its memory.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Closed-loop clients.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 600.0)]
    secs: f64,
    /// Seconds before `rss_mb_start` is taken.
    #[arg(long, default_value_t = 10.0)]
    warmup: f64,
    /// Bytes per command.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Node threads (arbiters).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where to write memory.csv and memory.svg (default: `target/actraft-report` in
    /// the workspace).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let cfg = MemoryConfig {
        members: args.members,
        clients: args.clients.max(1),
        secs: args.secs,
        warmup_secs: args.warmup,
        payload: args.payload,
        threads: args.threads.max(1),
    };
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/actraft-report")
    });
    actraft_benches::cli::main("memory", || async move {
        let result = run(&cfg).await?;
        std::fs::create_dir_all(&out)?;
        std::fs::write(out.join("memory.csv"), result.csv())?;
        std::fs::write(out.join("memory.svg"), svg(std::slice::from_ref(&result)))?;
        Ok(result.line())
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
