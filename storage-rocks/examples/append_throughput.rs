//! Durable append throughput of the RocksDB storage: batches of 1, 16 and 256 entries of
//! 64 bytes from one writer (one sync per write), then batch-1 writes from 1 to 64
//! concurrent writers to show group commit, then reads, truncations and hard-state
//! saves. Each measurement runs on a fresh store in a temporary directory.
//!
//! ```sh
//! cargo run --release -p actraft-storage-rocks --example append_throughput
//! cargo run --release -p actraft-storage-rocks --example append_throughput -- --dir /mnt/disk --writes 5000
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use actraft::testkit::storage_bench::{self, AppendSpec, Measurement};
use actraft_storage_rocks::{RocksOptions, RocksStorage, StorageStats};

const PAYLOAD: usize = 64;

struct Args {
    dir: Option<PathBuf>,
    writes: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: None,
        writes: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--dir" => args.dir = Some(value.into()),
            "--writes" => args.writes = value.parse().expect("--writes N"),
            _ => {
                eprintln!("usage: append_throughput [--dir DIR] [--writes N]");
                std::process::exit(2);
            }
        }
    }
    args
}

/// A fresh store in its own temporary directory (under `parent` when given).
async fn fresh(parent: &Option<PathBuf>) -> (tempfile::TempDir, RocksStorage) {
    let dir = match parent {
        Some(p) => tempfile::tempdir_in(p),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory");
    let storage = RocksStorage::open(dir.path(), RocksOptions::default())
        .await
        .expect("open the store");
    (dir, storage)
}

async fn append(args: &Args, spec: AppendSpec) -> (Measurement, StorageStats) {
    let (_dir, storage) = fresh(&args.dir).await;
    let m = storage_bench::append_throughput(&storage, &spec)
        .await
        .expect("append");
    (m, storage.stats())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let place = args
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .display()
        .to_string();
    println!("RocksDB durable appends of {PAYLOAD}-byte entries in {place}");
    println!("\none writer, one write in flight (each write synced before the next)");
    println!("batch   writes/s    entries/s     MB/s  mean write");
    for batch in [1, 16, 256] {
        let writes = if batch == 256 {
            args.writes / 4
        } else {
            args.writes
        };
        let spec = AppendSpec::new(batch, PAYLOAD).writes_per_writer(writes.max(1));
        let (m, _) = append(&args, spec).await;
        println!(
            "{batch:>5} {:>10.0} {:>12.0} {:>8.1} {:>8.1} µs",
            m.ops_per_sec(),
            m.entries_per_sec(),
            m.bytes_per_sec() / 1e6,
            m.mean_op_time().as_secs_f64() * 1e6
        );
    }

    println!("\ngroup commit: batch 1, concurrent writers on one store");
    println!("writers    entries/s   writes per sync");
    for writers in [1, 4, 16, 64] {
        let per_writer = (args.writes * 2 / writers).max(50);
        let spec = AppendSpec::new(1, PAYLOAD)
            .writers(writers)
            .writes_per_writer(per_writer);
        let (m, stats) = append(&args, spec).await;
        println!(
            "{writers:>7} {:>12.0} {:>17.1}",
            m.entries_per_sec(),
            stats.writes as f64 / stats.syncs.max(1) as f64
        );
    }

    let (_dir, storage) = fresh(&args.dir).await;
    let spec = AppendSpec::new(256, PAYLOAD).writes_per_writer(400);
    storage_bench::append_throughput(&storage, &spec)
        .await
        .expect("fill");
    let reads = storage_bench::read_range(&storage, 256, 2000)
        .await
        .expect("read");
    let truncations = storage_bench::truncate_suffix(&storage, 16, PAYLOAD, 500)
        .await
        .expect("truncate");
    let saves = storage_bench::save_hard_state(&storage, 1000)
        .await
        .expect("hard state");
    println!("\nother operations");
    println!(
        "read 256 entries      {:>10.0} reads/s ({:.0} entries/s)",
        reads.ops_per_sec(),
        reads.entries_per_sec()
    );
    println!(
        "truncate 16 entries   {:>10.0} truncations/s",
        truncations.ops_per_sec()
    );
    println!(
        "save the hard state   {:>10.0} saves/s",
        saves.ops_per_sec()
    );
}
