//! Runs every benchmark configuration and writes the report.
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin report            # several minutes
//! cargo run --release -p actraft-benches --bin report -- --quick # under a minute
//! ```
//!
//! Writes `target/actraft-report/{report.json, report.md, election-cdf.svg, append.svg}`
//! under the workspace (or `--out DIR`).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use actraft_benches::init_tracing;
use actraft_benches::report::{self, Budget};

#[actix_rt::main]
async fn main() {
    init_tracing();
    let mut budget = Budget::Full;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/actraft-report");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => budget = Budget::Quick,
            "--out" => match args.next() {
                Some(dir) => out = dir.into(),
                None => {
                    eprintln!("report: --out needs a directory");
                    std::process::exit(2);
                }
            },
            _ => {
                eprintln!("usage: report [--quick] [--out DIR]");
                std::process::exit(2);
            }
        }
    }
    let report = report::run(budget, |line| println!("{line}")).await;
    if let Err(e) = report::write(&report, &out) {
        eprintln!("report: {e}");
        std::process::exit(1);
    }
    println!("wrote {}", out.join("report.md").display());
}
