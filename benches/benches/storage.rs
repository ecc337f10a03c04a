//! Criterion bench: storage backends on the same work, through the public generic
//! functions of `actraft::testkit::storage_bench`: appends of 1, 16 and 256 entries of
//! 64 B and 4 KiB, range reads, suffix truncation and hard-state saves, on memory and on
//! RocksDB (with the `rocks` feature). One iteration is one operation.
//!
//! ```sh
//! cargo bench -p actraft-benches --bench storage
//! cargo bench -p actraft-benches --features rocks --bench storage   # RocksDB too
//! cargo bench -p actraft-benches --bench storage -- --test   # run each case once
//! ```
//!
//! To measure your own backend the same way, call those functions on it.

use std::time::Duration;

use actraft::testkit::storage_bench::{
    append_throughput, read_range, save_hard_state, truncate_suffix, AppendSpec,
};
use actraft::LogStorage;
use actraft_storage_mem::MemStorage;
#[cfg(feature = "rocks")]
use actraft_storage_rocks::{RocksOptions, RocksStorage};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

fn bench_backend<S: LogStorage>(c: &mut Criterion, name: &str, storage: &S) {
    let mut g = c.benchmark_group(format!("storage/{name}"));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(200));
    g.measurement_time(Duration::from_secs(2));
    for payload in [64usize, 4096] {
        for batch in [1usize, 16, 256] {
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(
                BenchmarkId::new("append", format!("{batch}x{payload}B")),
                |b| {
                    b.iter_custom(|iters| {
                        let spec =
                            AppendSpec::new(batch, payload).writes_per_writer(iters as usize);
                        block_on(append_throughput(storage, &spec))
                            .expect("append")
                            .elapsed
                    })
                },
            );
        }
    }
    g.throughput(Throughput::Elements(256));
    g.bench_function("read 256", |b| {
        b.iter_custom(|iters| {
            block_on(read_range(storage, 256, iters as usize))
                .expect("read")
                .elapsed
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("truncate 64", |b| {
        b.iter_custom(|iters| {
            block_on(truncate_suffix(storage, 64, 64, iters as usize))
                .expect("truncate")
                .elapsed
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("save hard state", |b| {
        b.iter_custom(|iters| {
            block_on(save_hard_state(storage, iters as usize))
                .expect("save")
                .elapsed
        })
    });
    g.finish();
}

fn backends(c: &mut Criterion) {
    bench_backend(c, "mem", &MemStorage::new());
    #[cfg(feature = "rocks")]
    rocks(c);
}

/// RocksDB, with the `rocks` feature.
#[cfg(feature = "rocks")]
fn rocks(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rocks = block_on(RocksStorage::open(
        dir.path().join("log"),
        RocksOptions::default(),
    ))
    .expect("RocksDB opens");
    bench_backend(c, "rocks", &rocks);
}

criterion_group!(benches, backends);
criterion_main!(benches);
