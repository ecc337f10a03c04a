//! Storage backends side by side, on the same work, through the public generic
//! functions of `actraft::testkit::storage_bench` (so a user can measure their own
//! backend the same way), plus the raw RocksDB ceiling: the same entries written straight
//! to RocksDB in synced batches of the same size.

#[cfg(feature = "rocks")]
use std::time::Instant;

use actraft::testkit::storage_bench::{
    append_throughput, read_range, save_hard_state, truncate_suffix, AppendSpec, Measurement,
};
use actraft::LogStorage;
use actraft_storage_mem::MemStorage;
#[cfg(feature = "rocks")]
use actraft_storage_rocks::{RocksOptions, RocksStorage};
use serde::Serialize;

use crate::BenchError;

/// One storage measurement.
#[derive(Debug, Clone, Serialize)]
pub struct StorageResult {
    /// Storage name (`mem`, `rocks`, or `rocksdb-raw` for the ceiling).
    pub storage: String,
    /// What was measured.
    pub operation: String,
    /// Entries per operation.
    pub batch: usize,
    /// Bytes per entry.
    pub payload: usize,
    /// Concurrent writers.
    pub writers: usize,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Entries per second.
    pub entries_per_sec: f64,
}

impl StorageResult {
    fn from(
        storage: &str,
        operation: &str,
        batch: usize,
        payload: usize,
        writers: usize,
        m: &Measurement,
    ) -> Self {
        Self {
            storage: storage.into(),
            operation: operation.into(),
            batch,
            payload,
            writers,
            ops_per_sec: m.ops_per_sec(),
            entries_per_sec: m.entries_per_sec(),
        }
    }

    /// One line for progress output.
    pub fn line(&self) -> String {
        format!(
            "storage: {} {} batch={} payload={} writers={} ops_per_sec={:.0} entries_per_sec={:.0}",
            self.storage,
            self.operation,
            self.batch,
            self.payload,
            self.writers,
            self.ops_per_sec,
            self.entries_per_sec
        )
    }
}

fn storage_error(e: actraft::StorageError) -> BenchError {
    BenchError::Io(std::io::Error::other(e.to_string()))
}

/// Measures one backend: appends of 1, 16 and 256 entries (64 B and 4 KiB), range reads,
/// suffix truncation and hard-state saves.
pub async fn measure_backend<S: LogStorage + ?Sized>(
    name: &str,
    storage: &S,
    quick: bool,
) -> Result<Vec<StorageResult>, BenchError> {
    let mut out = Vec::new();
    let disk = name != "mem";
    for payload in [64, 4096] {
        for batch in [1, 16, 256] {
            let bytes_per_write = (batch * payload).max(1);
            let budget: usize = match (quick, disk) {
                (true, true) => 256 << 10,
                (true, false) => 4 << 20,
                (false, true) => 8 << 20,
                (false, false) => 64 << 20,
            };
            let writes = (budget / bytes_per_write).clamp(if disk { 20 } else { 200 }, 20_000);
            let spec = AppendSpec::new(batch, payload).writes_per_writer(writes);
            let m = append_throughput(storage, &spec)
                .await
                .map_err(storage_error)?;
            out.push(StorageResult::from(name, "append", batch, payload, 1, &m));
        }
    }
    // 16 writers appending single entries at once: a storage that groups writes shows it
    // here (actraft's own storages do not; the node groups its writes itself).
    let writes = if quick { 20 } else { 200 };
    let spec = AppendSpec::new(1, 64).writers(16).writes_per_writer(writes);
    let m = append_throughput(storage, &spec)
        .await
        .map_err(storage_error)?;
    out.push(StorageResult::from(name, "append", 1, 64, 16, &m));
    let m = read_range(storage, 256, if quick { 200 } else { 2_000 })
        .await
        .map_err(storage_error)?;
    out.push(StorageResult::from(name, "read range", 256, 64, 1, &m));
    let m = truncate_suffix(storage, 64, 64, if quick { 20 } else { 200 })
        .await
        .map_err(storage_error)?;
    out.push(StorageResult::from(name, "truncate suffix", 64, 64, 1, &m));
    let m = save_hard_state(storage, if quick { 20 } else { 200 })
        .await
        .map_err(storage_error)?;
    out.push(StorageResult::from(name, "save hard state", 0, 0, 1, &m));
    Ok(out)
}

/// The ceiling (with the `rocks` feature): `writes` synced RocksDB write batches of `batch` entries of `payload`
/// bytes each, keyed by big-endian index, on the caller's thread.
#[cfg(feature = "rocks")]
pub fn raw_rocksdb(
    batch: usize,
    payload: usize,
    writes: usize,
) -> Result<StorageResult, BenchError> {
    let elapsed = synced_writes(batch, payload, writes, None)?;
    Ok(StorageResult {
        storage: "rocksdb-raw".into(),
        operation: "append".into(),
        batch,
        payload,
        writers: 1,
        ops_per_sec: writes as f64 / elapsed,
        entries_per_sec: (writes * batch) as f64 / elapsed,
    })
}

/// The ceiling of nodes that share one disk (with the `rocks` feature): `writers`
/// RocksDB databases, each in a temporary directory of its own (so on one disk) and
/// written by a thread of its own with `writes` synced batches of `batch` entries, all
/// at once, as the nodes of a one-machine cluster write their logs. Returns the entries
/// per second of one writer (the mean of all): what a cluster whose every node syncs
/// every batch can commit at best when their syncs share the disk.
#[cfg(feature = "rocks")]
pub fn raw_rocksdb_shared(
    writers: usize,
    batch: usize,
    payload: usize,
    writes: usize,
) -> Result<f64, BenchError> {
    let writers = writers.max(1);
    let start = std::sync::Arc::new(std::sync::Barrier::new(writers));
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || synced_writes(batch, payload, writes, Some(&*start)))
        })
        .collect();
    let mut sum = 0.0;
    for t in threads {
        let elapsed = t
            .join()
            .map_err(|_| BenchError::Usage("a raw RocksDB writer panicked".into()))??;
        sum += (writes * batch) as f64 / elapsed;
    }
    Ok(sum / writers as f64)
}

/// Opens a RocksDB database in a temporary directory and writes `writes` synced batches
/// of `batch` entries of `payload` bytes, keyed by big-endian index; the clock starts
/// once `start` lets every writer go. Returns the seconds the writes took.
#[cfg(feature = "rocks")]
fn synced_writes(
    batch: usize,
    payload: usize,
    writes: usize,
    start: Option<&std::sync::Barrier>,
) -> Result<f64, BenchError> {
    let dir = tempfile::tempdir()?;
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    let db = rocksdb::DB::open(&opts, dir.path()).map_err(std::io::Error::other)?;
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    let value = vec![0xA5u8; payload + 16];
    let mut index = 1u64;
    if let Some(start) = start {
        start.wait();
    }
    let started = Instant::now();
    for _ in 0..writes {
        let mut wb = rocksdb::WriteBatch::default();
        for _ in 0..batch {
            wb.put(index.to_be_bytes(), &value);
            index += 1;
        }
        db.write_opt(wb, &sync).map_err(std::io::Error::other)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Runs every storage measurement: memory, and with the `rocks` feature RocksDB and the
/// raw RocksDB ceiling.
pub async fn run_all(quick: bool) -> Result<Vec<StorageResult>, BenchError> {
    #[allow(unused_mut)] // only the `rocks` feature adds to it
    let mut out = measure_backend("mem", &MemStorage::new(), quick).await?;
    #[cfg(feature = "rocks")]
    out.extend(run_rocks(quick).await?);
    Ok(out)
}

/// RocksDB through `RocksStorage`, then the raw ceiling.
#[cfg(feature = "rocks")]
async fn run_rocks(quick: bool) -> Result<Vec<StorageResult>, BenchError> {
    let dir = tempfile::tempdir()?;
    let rocks = RocksStorage::open(dir.path().join("log"), RocksOptions::default())
        .await
        .map_err(std::io::Error::other)?;
    let mut out = measure_backend("rocks", &rocks, quick).await?;
    drop(rocks);
    for batch in [1, 16, 256] {
        let writes = if quick { 50 } else { 500 };
        out.push(raw_rocksdb(batch, 64, writes)?);
    }
    Ok(out)
}
