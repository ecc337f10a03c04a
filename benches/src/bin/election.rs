//! Election latency after a leader crash, as the Raft paper measures it (§9.3).
//!
//! ```sh
//! cargo run --release -p actraft-benches --bin election -- --nodes 5 --timeout-ms 12..24 \
//!     --trials 1000 --transport mem --storage mem
//! ```
//!
//! The last line printed is the result:
//! `election: nodes=.. timeout=..ms transport=.. storage=.. trials=.. mean=..ms p50=..ms
//! p90=..ms p99=..ms max=..ms multi_term=..% floor=..ms`
#![allow(clippy::print_stdout)]

use actraft_benches::election::{run, ElectionConfig};
use actraft_benches::{init_tracing, parse_range_ms, BenchError};

fn parse() -> Result<ElectionConfig, BenchError> {
    let mut cfg = ElectionConfig::new(5, 150, 300, 100);
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
            "--nodes" => cfg.nodes = num(&value)? as usize,
            "--timeout-ms" => cfg.timeout = parse_range_ms(&value)?,
            "--heartbeat-ms" => {
                cfg.heartbeat = Some(std::time::Duration::from_millis(num(&value)?))
            }
            "--trials" => cfg.trials = num(&value)?.max(1) as usize,
            "--seed" => cfg.seed = num(&value)?,
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
            eprintln!("election: {e}");
            std::process::exit(1);
        }
    }
}
