//! Runs every benchmark configuration and writes the report.
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin report            # several minutes
//! cargo run --release -p actraft-benches --bin report -- --quick # about a minute
//! ```
//!
//! Writes `target/actraft-report/{report.json, report.md, election-cdf.svg, append.svg}`
//! under the workspace (or `--out DIR`).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use actraft_benches::init_tracing;
use actraft_benches::report::{self, Budget};
use clap::Parser;

/// Runs every benchmark configuration (election latency, append throughput, storage
/// backends) and writes report.json, report.md, election-cdf.svg and append.svg.
#[derive(Debug, Parser)]
#[command(name = "report", version)]
struct Args {
    /// A reduced set that finishes in about a minute, instead of every configuration.
    #[arg(long)]
    quick: bool,
    /// Where to write the report (default: `target/actraft-report` in the workspace).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[actix_rt::main]
async fn main() {
    let args = Args::parse();
    init_tracing();
    let budget = if args.quick {
        Budget::Quick
    } else {
        Budget::Full
    };
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/actraft-report")
    });
    let report = report::run(budget, |line| println!("{line}")).await;
    if let Err(e) = report::write(&report, &out) {
        eprintln!("report: {e}");
        std::process::exit(1);
    }
    println!("wrote {}", out.join("report.md").display());
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        super::Args::command().debug_assert();
    }
}
