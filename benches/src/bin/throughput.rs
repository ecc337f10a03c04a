//! Append throughput of a cluster under K concurrent clients.
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin throughput -- --members 3 --clients 256 \
//!     --ops 1000000 --payload 0 --transport mem --storage mem [--threads N]
//! ```
//!
//! The last line printed is the result:
//! `throughput: members=.. clients=.. payload=.. transport=.. storage=.. ops=.. secs=..
//! ops_per_sec=.. p50_us=.. p99_us=.. threads=..`

use actraft_benches::cli::{self, flags};
use actraft_benches::throughput::{run, ThroughputConfig};
use actraft_benches::BenchError;

fn parse() -> Result<ThroughputConfig, BenchError> {
    let mut cfg = ThroughputConfig::new(3, 256, 1_000_000, 0);
    for f in flags()? {
        match f.name.as_str() {
            "--members" => cfg.members = f.num()? as usize,
            "--clients" => cfg.clients = f.num()?.max(1) as usize,
            "--ops" => cfg.ops = f.num()?,
            "--payload" => cfg.payload = f.num()? as usize,
            "--threads" => cfg.threads = Some(f.num()?.max(1) as usize),
            "--transport" => cfg.transport = f.transport()?,
            "--storage" => cfg.storage = f.storage()?,
            "--data-dir" => cfg.data_dir = Some(f.value.into()),
            _ => return Err(f.unknown()),
        }
    }
    Ok(cfg)
}

fn main() {
    cli::main("throughput", || async { Ok(run(&parse()?).await?.line()) });
}
