//! Criterion bench: election latency after a leader crash (§9.3), per timeout range,
//! transport, storage and cluster size. One iteration is one leader crash; the time
//! reported is the time without a leader.
//!
//! ```sh
//! cargo bench -p actraft-benches --bench election
//! cargo bench -p actraft-benches --bench election -- --test   # run each case once
//! ```

use std::time::Duration;

use actraft_benches::election::{run, ElectionConfig};
use actraft_benches::{StorageKind, TransportKind};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn measure(c: &mut Criterion, group: &str, cfg: ElectionConfig) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(3));
    let id = format!(
        "nodes={}/{}..{}ms/{}/{}",
        cfg.nodes,
        cfg.timeout.0.as_millis(),
        cfg.timeout.1.as_millis(),
        cfg.transport,
        cfg.storage
    );
    g.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter_custom(|iters| {
            let mut cfg = cfg.clone();
            cfg.trials = iters as usize;
            let result = actix_rt::System::new()
                .block_on(run(&cfg))
                .expect("election benchmark runs");
            Duration::from_secs_f64(result.latencies_ms.iter().sum::<f64>() / 1e3)
        })
    });
    g.finish();
}

fn timeout_ranges(c: &mut Criterion) {
    for (a, b) in [(12, 24), (25, 50), (50, 100), (150, 300)] {
        measure(c, "election/timeout", ElectionConfig::new(5, a, b, 1));
    }
}

fn backends(c: &mut Criterion) {
    for transport in [TransportKind::Mem, TransportKind::Quic] {
        for storage in StorageKind::ALL.into_iter().filter(|s| s.is_built()) {
            let mut cfg = ElectionConfig::new(5, 12, 24, 1);
            cfg.transport = transport;
            cfg.storage = storage;
            measure(c, "election/backend", cfg);
        }
    }
}

fn cluster_sizes(c: &mut Criterion) {
    for nodes in [3, 5, 7] {
        measure(c, "election/size", ElectionConfig::new(nodes, 150, 300, 1));
    }
}

criterion_group!(benches, timeout_ranges, backends, cluster_sizes);
criterion_main!(benches);
