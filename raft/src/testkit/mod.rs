//! Reusable test support (cargo feature `testkit`): the deterministic simulator and its
//! Figure 3 checker, and a linearizability checker for key-value histories
//! ([`linearizability`]).

pub mod linearizability;
pub mod sim;
pub mod storage;
pub mod storage_bench;
pub mod transport;

/// The seeded generator the core draws its election timeouts from, for simulations,
/// tests and benches that want their own randomness to replay from a seed as the core's
/// does (crash points, fault schedules).
pub use crate::core::rng::SplitMix64;
