//! Command-line pieces shared by the benchmark binaries (clap): the backend flags, the
//! timeout-range value, and the runner that prints a binary's one-line result.

use std::path::PathBuf;
use std::time::Duration;

use crate::{BenchError, StorageKind, TransportKind};

/// The flags choosing where a benchmark's cluster runs.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Transport between the nodes: `mem` (in-process) or `quic` (loopback, mutual TLS).
    #[arg(long, default_value_t = TransportKind::Mem)]
    pub transport: TransportKind,
    /// Log storage: `mem`, or `rocks` (RocksDB; needs a build with `--features rocks`).
    #[arg(long, default_value_t = StorageKind::Mem)]
    pub storage: StorageKind,
    /// Where RocksDB keeps the nodes' logs (a temporary directory when not given).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Parses `MIN..MAX` (whole milliseconds, `0 < MIN < MAX`) for clap.
pub fn range_ms(s: &str) -> Result<(Duration, Duration), String> {
    crate::parse_range_ms(s).map_err(|e| e.to_string())
}

/// Runs a benchmark binary: quiet tracing, then `run`, printing its one-line result last
/// or the error (exit status 1).
pub fn main<F, Fut>(name: &str, run: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<String, BenchError>>,
{
    crate::init_tracing();
    match actix_rt::System::new().block_on(run()) {
        Ok(line) => {
            #[allow(clippy::print_stdout)]
            {
                println!("{line}");
            }
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_ranges_parse_and_bad_ones_say_why() {
        assert_eq!(
            range_ms("12..24"),
            Ok((Duration::from_millis(12), Duration::from_millis(24)))
        );
        assert!(range_ms("24..12").unwrap_err().contains("empty range"));
        assert!(range_ms("0..12").unwrap_err().contains("empty range"));
        assert!(range_ms("12-24").unwrap_err().contains("MIN..MAX"));
        assert!(range_ms("a..24").unwrap_err().contains("not a number"));
    }
}
