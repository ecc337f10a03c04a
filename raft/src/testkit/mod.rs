//! Reusable test support (cargo feature `testkit`): the deterministic simulator and its
//! Figure 3 checker.

pub mod sim;
pub mod storage;
pub mod storage_bench;
pub mod transport;
