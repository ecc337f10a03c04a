//! Shared pieces of the actraft examples and cluster tests: an in-process cluster
//! harness ([`cluster`]), a replicated key-value state machine ([`kv`]) and a state
//! machine that records what it applies ([`recording`]).
#![warn(missing_docs)]

pub mod backend;
pub mod cluster;
pub mod kv;
pub mod kv_service;
pub mod kv_snapshot;
pub mod load;
pub mod quic;
pub mod recording;
pub mod rocks;
pub mod scenarios;
pub mod walkthrough;

/// Installs a quiet `tracing` subscriber for a demo or tool: warnings and errors only,
/// unless `RUST_LOG` says otherwise. Logs go to standard error, so they never mix with a
/// program's output.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// The README's code examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
