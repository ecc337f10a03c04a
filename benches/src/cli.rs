//! Command-line flags shared by the benchmark binaries: `--flag value` pairs.

use crate::{BenchError, StorageKind, TransportKind};

/// One `--flag value` pair.
#[derive(Debug, Clone)]
pub struct Flag {
    /// The flag, with its dashes.
    pub name: String,
    /// Its value, as given.
    pub value: String,
}

impl Flag {
    /// The value as a whole number.
    pub fn num(&self) -> Result<u64, BenchError> {
        self.value.parse().map_err(|_| {
            BenchError::Usage(format!("{}: not a number: {:?}", self.name, self.value))
        })
    }

    /// The value as a transport name.
    pub fn transport(&self) -> Result<TransportKind, BenchError> {
        self.value
            .parse()
            .map_err(|e| BenchError::Usage(format!("{e}")))
    }

    /// The value as a storage name.
    pub fn storage(&self) -> Result<StorageKind, BenchError> {
        self.value
            .parse()
            .map_err(|e| BenchError::Usage(format!("{e}")))
    }

    /// The error for a flag the binary does not know.
    pub fn unknown(&self) -> BenchError {
        BenchError::Usage(format!("unknown flag {}", self.name))
    }
}

/// The `--flag value` pairs of this process's arguments.
pub fn flags() -> Result<Vec<Flag>, BenchError> {
    let mut out = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(name) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| BenchError::Usage(format!("{name} needs a value")))?;
        out.push(Flag { name, value });
    }
    Ok(out)
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
