//! Criterion bench: append throughput, one iteration per committed entry, over clients
//! (1, 16, 256), payloads (64 B, 4 KiB), transport × storage, and 3 vs 5 members.
//!
//! ```sh
//! cargo bench -p actraft-benches --bench append
//! cargo bench -p actraft-benches --bench append -- --test   # run each case once
//! ```

use std::time::Duration;

use actraft_benches::throughput::{run, ThroughputConfig};
use actraft_benches::{StorageKind, TransportKind};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn measure(c: &mut Criterion, group: &str, cfg: ThroughputConfig) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(200));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    let id = format!(
        "members={}/clients={}/payload={}/{}/{}",
        cfg.members, cfg.clients, cfg.payload, cfg.transport, cfg.storage
    );
    g.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter_custom(|iters| {
            let mut cfg = cfg.clone();
            cfg.ops = iters.max(1);
            cfg.ceilings = false; // only the run's time is read
            let result = actix_rt::System::new()
                .block_on(run(&cfg))
                .expect("throughput benchmark runs");
            Duration::from_secs_f64(result.secs)
        })
    });
    g.finish();
}

fn backends(c: &mut Criterion) {
    for (transport, storage) in [
        (TransportKind::Mem, StorageKind::Mem),
        (TransportKind::Quic, StorageKind::Mem),
        (TransportKind::Mem, StorageKind::Rocks),
        (TransportKind::Quic, StorageKind::Rocks),
    ]
    .into_iter()
    .filter(|(_, storage)| storage.is_built())
    {
        for payload in [64, 4096] {
            for clients in [1, 16, 256] {
                let mut cfg = ThroughputConfig::new(3, clients, 1, payload);
                cfg.transport = transport;
                cfg.storage = storage;
                measure(c, "append/backend", cfg);
            }
        }
    }
}

fn members(c: &mut Criterion) {
    for members in [3, 5] {
        measure(
            c,
            "append/members",
            ThroughputConfig::new(members, 256, 1, 64),
        );
    }
}

criterion_group!(benches, backends, members);
criterion_main!(benches);
