//! The deterministic simulator over many seeds.
//!
//! `ACTRAFT_SIM_SEEDS=<n>` sets how many seeds run (default 300, quick enough for CI);
//! `ACTRAFT_SIM_SEED=<n>` replays one seed exactly. Seeds run in parallel, one thread
//! per core.
#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use actraft::testkit::sim::{run_seed, SimReport};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}"))
    })
}

#[test]
fn simulation() {
    let seeds: Vec<u64> = match env_u64("ACTRAFT_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("ACTRAFT_SIM_SEEDS").unwrap_or(300)).collect(),
    };
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let totals = Mutex::new((0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64));
    let snapshots = Mutex::new((0u64, 0u64));
    let log_reads = AtomicU64::new(0);
    let one_way = Mutex::new((0u64, 0u64, 0u64));
    let memberships = Mutex::new((0u64, 0u64));
    let failures: Mutex<Vec<SimReport>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(k) else { break };
                let report = run_seed(seed);
                {
                    let mut t = totals.lock().unwrap();
                    t.0 += report.steps;
                    t.1 += report.elections;
                    t.2 += report.committed;
                    t.3 += report.replies;
                    t.4 += report.transfers.0;
                    t.5 += report.transfers.1;
                    t.6 += report.reads_ok;
                    t.7 += report.reads_failed;
                    let mut s = snapshots.lock().unwrap();
                    s.0 += report.snapshots.0;
                    s.1 += report.snapshots.1;
                    log_reads.fetch_add(report.log_reads, Ordering::Relaxed);
                    let mut o = one_way.lock().unwrap();
                    o.0 += report.one_way_cuts;
                    o.1 += report.liveness_cut.0;
                    o.2 += report.liveness_cut.1;
                    let mut m = memberships.lock().unwrap();
                    m.0 += report.memberships.0;
                    m.1 += report.memberships.1;
                }
                if report.failure.is_some() {
                    failures.lock().unwrap().push(report);
                }
            });
        }
    });
    let (steps, elections, committed, replies, transfers, handed_over, reads_ok, reads_failed) =
        *totals.lock().unwrap();
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|r| r.seed);
    for report in &failures {
        let failure = report.failure.as_ref().expect("failed report");
        println!("seed {} broke: {}", report.seed, failure.property);
        println!(
            "  replay: ACTRAFT_SIM_SEED={} cargo test -p actraft --release --test simulation",
            report.seed
        );
        for line in &failure.trace {
            println!("  {line}");
        }
    }
    println!(
        "simulation: {} seeds, {} steps, {} elections, {} entries committed, {} client answers checked, {} reads checked ({} refused), {} violations",
        seeds.len(),
        steps,
        elections,
        committed,
        replies,
        reads_ok,
        reads_failed,
        failures.len()
    );
    println!("simulation: {transfers} leadership transfers asked, {handed_over} handed over");
    let (taken, installed) = *snapshots.lock().unwrap();
    println!(
        "simulation: {taken} snapshots taken, {installed} installed from a leader (each checked against the committed prefix)"
    );
    println!(
        "simulation: {} reads of stored entries behind a leader's in-memory window",
        log_reads.load(Ordering::Relaxed)
    );
    let (cuts, live_cut, live_healed) = *one_way.lock().unwrap();
    println!(
        "simulation: {cuts} one-way cuts; {live_cut} liveness phases with a node cut one way ({live_healed} healed when a configuration change left the others no majority)"
    );
    let (asked, completed) = *memberships.lock().unwrap();
    println!("simulation: {asked} membership changes asked, {completed} completed");
    println!("simulation took {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} seeds broke a property",
        failures.len()
    );
}
