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

use std::time::Duration;

use actraft_benches::cli::{self, flags};
use actraft_benches::election::{run, ElectionConfig};
use actraft_benches::{parse_range_ms, BenchError};

fn parse() -> Result<ElectionConfig, BenchError> {
    let mut cfg = ElectionConfig::new(5, 150, 300, 100);
    for f in flags()? {
        match f.name.as_str() {
            "--nodes" => cfg.nodes = f.num()? as usize,
            "--timeout-ms" => cfg.timeout = parse_range_ms(&f.value)?,
            "--heartbeat-ms" => cfg.heartbeat = Some(Duration::from_millis(f.num()?)),
            "--trials" => cfg.trials = f.num()?.max(1) as usize,
            "--seed" => cfg.seed = f.num()?,
            "--transport" => cfg.transport = f.transport()?,
            "--storage" => cfg.storage = f.storage()?,
            "--data-dir" => cfg.data_dir = Some(f.value.into()),
            _ => return Err(f.unknown()),
        }
    }
    Ok(cfg)
}

fn main() {
    cli::main("election", || async { Ok(run(&parse()?).await?.line()) });
}
