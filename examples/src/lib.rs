//! Shared pieces of the actraft examples and cluster tests: an in-process cluster
//! harness ([`cluster`]), a replicated key-value state machine ([`kv`]) and a state
//! machine that records what it applies ([`recording`]).
#![warn(missing_docs)]

pub mod backend;
pub mod cluster;
pub mod kv;
pub mod kv_service;
pub mod load;
pub mod quic;
pub mod recording;
pub mod rocks;
pub mod scenarios;
pub mod walkthrough;

/// The README's code examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
