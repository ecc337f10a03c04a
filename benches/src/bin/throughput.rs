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
#![allow(clippy::print_stdout)]

use actraft_benches::throughput::{run, ThroughputConfig};
use actraft_benches::{init_tracing, BenchError};

fn parse() -> Result<ThroughputConfig, BenchError> {
    let mut cfg = ThroughputConfig::new(3, 256, 1_000_000, 0);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| BenchError::Usage(format!("{flag}: not a number: {v:?}")))
        };
        match flag.as_str() {
            "--members" => cfg.members = num(&value)? as usize,
            "--clients" => cfg.clients = num(&value)?.max(1) as usize,
            "--ops" => cfg.ops = num(&value)?,
            "--payload" => cfg.payload = num(&value)? as usize,
            "--threads" => cfg.threads = Some(num(&value)?.max(1) as usize),
            "--transport" => {
                cfg.transport = value
                    .parse()
                    .map_err(|e| BenchError::Usage(format!("{e}")))?
            }
            "--storage" => {
                cfg.storage = value
                    .parse()
                    .map_err(|e| BenchError::Usage(format!("{e}")))?
            }
            "--data-dir" => cfg.data_dir = Some(value.into()),
            _ => return Err(BenchError::Usage(format!("unknown flag {flag}"))),
        }
    }
    Ok(cfg)
}

#[actix_rt::main]
async fn main() {
    init_tracing();
    let result = match parse() {
        Ok(cfg) => run(&cfg).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => println!("{}", r.line()),
        Err(e) => {
            eprintln!("throughput: {e}");
            std::process::exit(1);
        }
    }
}
