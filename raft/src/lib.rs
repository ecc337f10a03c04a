//! actraft: Raft consensus for replicated services.
#![warn(missing_docs)]

pub mod core;

#[cfg(feature = "testkit")]
pub mod testkit;
