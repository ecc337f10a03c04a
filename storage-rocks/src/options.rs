//! The few RocksDB settings that matter for a Raft log, with defaults suited to it.

use rocksdb::{DBCompressionType, DBRecoveryMode, LogLevel, Options};

/// How RocksDB compresses the files it flushes from memory (the write-ahead log itself
/// is never compressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// LZ4: cheap on the CPU, and Raft commands (text, small records) often shrink well.
    #[default]
    Lz4,
    /// No compression: for payloads that are already compressed or encrypted.
    None,
}

/// Settings of a [`RocksStorage`](crate::RocksStorage).
///
/// The defaults suit a Raft log: a write-ahead log synced on every write (always on; it
/// is what makes a write durable), LZ4 compression of flushed files, and memtables
/// bounded at 4 × 16 MiB so memory stays predictable whatever the write rate.
///
/// ```
/// use actraft_storage_rocks::{Compression, RocksOptions};
///
/// let options = RocksOptions {
///     compression: Compression::None,
///     ..RocksOptions::default()
/// };
/// assert_eq!(options.write_buffer_size, 16 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksOptions {
    /// Compression of flushed files. Default: [`Compression::Lz4`].
    pub compression: Compression,
    /// Size of one memtable, the in-memory buffer of recent writes, in bytes. Larger
    /// memtables flush less often; smaller ones flush sooner, so a write waits less for a
    /// free one. Default: 16 MiB.
    pub write_buffer_size: usize,
    /// How many memtables (one being written, the others being flushed) may exist per
    /// column family: with `write_buffer_size` it bounds the memory used by writes.
    /// Writes stall when all are full, rather than using more memory; from four on,
    /// RocksDB first slows writes down when all but one are full, which spreads a
    /// disk's backlog over many writes instead of stopping them all. Default: 4.
    pub max_write_buffer_number: i32,
    /// Size of the write-ahead log, in bytes, at which RocksDB flushes memtables so old
    /// log files can be deleted: it bounds both disk use and recovery time after a
    /// crash. Default: 256 MiB.
    pub max_total_wal_size: u64,
    /// Create the store when the directory does not exist or is empty. When `false`,
    /// opening such a directory fails. Default: `true`.
    pub create_if_missing: bool,
    /// Background threads RocksDB uses for flushes and compactions. Default: 2.
    pub background_jobs: i32,
    /// The node id the storage's metrics are labelled with (`node`; see
    /// `actraft::metrics`). Default: `None`, an empty label.
    pub metrics_node: Option<actraft::core::NodeId>,
}

impl Default for RocksOptions {
    fn default() -> Self {
        Self {
            compression: Compression::default(),
            write_buffer_size: 16 << 20,
            max_write_buffer_number: 4,
            max_total_wal_size: 256 << 20,
            create_if_missing: true,
            background_jobs: 2,
            metrics_node: None,
        }
    }
}

impl RocksOptions {
    /// The RocksDB options for the database as a whole.
    pub(crate) fn db_options(&self) -> Options {
        let mut opts = self.cf_options();
        opts.create_if_missing(self.create_if_missing);
        opts.create_missing_column_families(self.create_if_missing);
        opts.set_max_total_wal_size(self.max_total_wal_size);
        opts.set_max_background_jobs(self.background_jobs);
        // Replay the write-ahead log up to the first torn record: what a killed process
        // or a lost machine left half-written is dropped, everything before it is kept.
        opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        // RocksDB's own info log: keep it small, it is for debugging only.
        opts.set_log_level(LogLevel::Warn);
        opts.set_max_log_file_size(1 << 20);
        opts.set_keep_log_file_num(2);
        opts
    }

    /// The options of each column family.
    pub(crate) fn cf_options(&self) -> Options {
        let mut opts = Options::default();
        opts.set_compression_type(match self.compression {
            Compression::Lz4 => DBCompressionType::Lz4,
            Compression::None => DBCompressionType::None,
        });
        opts.set_write_buffer_size(self.write_buffer_size);
        opts.set_max_write_buffer_number(self.max_write_buffer_number);
        opts
    }
}
