//! RocksDB log storage for actraft.
