//! Shared pieces of the actraft examples and cluster tests: an in-process cluster
//! harness ([`cluster`]), a replicated key-value state machine ([`kv`]) and a state
//! machine that records what it applies ([`recording`]).
//!
//! The `rocks` feature (off by default) adds RocksDB storage (`rocks`) and the KV service
//! example; without it everything here builds with nothing but a Rust toolchain.
#![warn(missing_docs)]

pub mod backend;
pub mod cluster;
pub mod kv;
pub mod kv_admin;
pub mod kv_client;
pub mod kv_map;
pub mod kv_process;
pub mod kv_service;
pub mod kv_snapshot;
pub mod kv_status;
pub mod kv_tls;
pub mod kv_wire;
pub mod load;
pub mod metrics_http;
pub mod quic;
pub mod recording;
#[cfg(feature = "rocks")]
pub mod rocks;
pub mod scenarios;
pub mod walkthrough;

/// Installs a quiet `tracing` subscriber for a demo or tool: warnings and errors only,
/// unless `RUST_LOG` says otherwise. Logs go to standard error, so they never mix with a
/// program's output.
///
/// Colours (ANSI codes) only when standard error is a terminal and `NO_COLOR` is unset
/// or empty, so logs redirected to a file stay plain text.
pub fn init_tracing() {
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_ansi(colour)
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
