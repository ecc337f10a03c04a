//! The power-loss test of the snapshot store: a writer in a child process commits
//! snapshots, one after another, into a [`FileSnapshotStore`] kept on a file system that
//! forgets what was not synced; the power is cut at random moments (during start-up,
//! while a snapshot is streamed in, during its commit), and the store is reopened.
//!
//! Snapshot K covers log index K + 1 and holds bytes that are a function of the seed
//! and K, of a random length up to a few hundred KiB, written in random-size chunks. The
//! writer prints `durable K` once snapshot K's commit returned. After each cut the store
//! must open, and its latest snapshot must be one that was committed, at least the last
//! one reported durable, with exactly that snapshot's bytes (a torn or mixed snapshot
//! fails its checksum and counts as lost). The next writer goes on from there.
//!
//! The last line is `power-loss: snapshots cycles=<n> acknowledged=<n> lost=<n>`.
//!
//! ```sh
//! cargo test --release -p actraft-storage-rocks --test snapshot_power_loss     # 8 cycles
//! ACTRAFT_POWERLOSS_CYCLES=500 cargo test --release -p actraft-storage-rocks --test snapshot_power_loss
//! ```
#![allow(clippy::print_stdout)]

mod support {
    pub mod log_model;
    pub mod power_cycle;
}

use std::path::Path;
use std::time::Instant;

use actraft::snapshot::{read_all, SnapshotMeta, SnapshotStore};
use actraft::LogId;
use actraft_storage_rocks::FileSnapshotStore;
use actraft_testfs::{CutReport, Mount};

use support::log_model::Rng;
use support::power_cycle::{self, cut_during_writer, env_u64, Cut};

const NAME: &str = "snapshot_power_loss";
const CHILD_ENV: &str = "ACTRAFT_SNAPSHOT_POWERLOSS_CHILD";
const CYCLES_ENV: &str = "ACTRAFT_POWERLOSS_CYCLES";
const SEED_ENV: &str = "ACTRAFT_POWERLOSS_SEED";
const DEFAULT_CYCLES: usize = 8;
const MAX_LEN: u64 = 384 << 10;

/// Where snapshot `k` sits in the log.
fn meta(k: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_included: LogId::new(1 + k / 16, k + 1),
        membership: actraft::ClusterConfig::bootstrap([1, 2, 3]),
    }
}

/// Snapshot `k`'s bytes.
fn data(seed: u64, k: u64) -> Vec<u8> {
    let mut rng = Rng(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let len = rng.below(MAX_LEN) as usize;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// The writer: commits snapshots `start, start + 1, ...` until killed (or until the file
/// system fails under it, after the power cut).
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [dir, seed, start] = parts[..] else {
        panic!("bad child spec {spec:?}");
    };
    let (seed, start): (u64, u64) = (seed.parse().unwrap(), start.parse().unwrap());
    let store = FileSnapshotStore::open(dir).expect("the writer opens the store");
    println!("open");
    let mut chunks = Rng(seed ^ start);
    for k in start.. {
        let bytes = data(seed, k);
        let mut writer = store.begin(meta(k)).expect("begin a snapshot");
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + 1 + chunks.below(64 << 10) as usize).min(bytes.len());
            writer.write_chunk(&bytes[at..end]).expect("write a chunk");
            at = end;
        }
        writer.commit().expect("commit a snapshot");
        println!("durable {k}");
    }
}

/// What the reopened store holds: the number of its latest snapshot, or an error that
/// says why it is not an intact snapshot the writer committed.
fn reopen(dir: &Path, seed: u64) -> Result<Option<u64>, String> {
    let store = FileSnapshotStore::open(dir).map_err(|e| format!("refused to open: {e}"))?;
    let Some((meta, mut chunks)) = store.open_latest().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let k = meta.last_included.index - 1;
    if meta != self::meta(k) {
        return Err(format!("metadata {meta:?} is no snapshot the writer made"));
    }
    let bytes = read_all(chunks.as_mut()).map_err(|e| format!("snapshot {k}: {e}"))?;
    if bytes != data(seed, k) {
        return Err(format!("snapshot {k} holds other bytes"));
    }
    Ok(Some(k))
}

fn parent(mount: Mount) {
    let cycles = env_u64(CYCLES_ENV).map_or(DEFAULT_CYCLES, |n| n as usize);
    let seed = power_cycle::seed(SEED_ENV);
    println!("{NAME}: {cycles} power cuts, seed {seed} (replay with {SEED_ENV}={seed})");
    let dir = mount.path().join("snapshots");
    let mut rng = Rng(seed);
    let (mut next, mut acknowledged, mut lost) = (0u64, 0u64, 0u64);
    let mut cut_total = CutReport::default();
    let mut mount = Some(mount);
    let started = Instant::now();
    for cycle in 0..cycles {
        let spec = format!("{}|{seed}|{next}", dir.display());
        let Cut {
            mount: m,
            last_durable,
            tear,
            report,
        } = cut_during_writer(mount.take().expect("mounted"), CHILD_ENV, spec, &mut rng);
        mount = Some(m);
        cut_total += report;
        let must = last_durable.map_or(next, |k| k + 1);
        acknowledged += must - next;
        let missing = match reopen(&dir, seed) {
            // An older snapshot than one reported durable, or none at all.
            Ok(found) if found.map_or(0, |k| k + 1) < must && must > 0 => Some(format!(
                "the latest snapshot is {found:?}, but {} was reported durable",
                must - 1
            )),
            Ok(found) => {
                next = found.map_or(0, |k| k + 1).max(next);
                None
            }
            Err(e) => Some(e),
        };
        if let Some(detail) = missing {
            lost += 1;
            println!(
                "{NAME}: cycle {cycle}, seed {seed}: after the power cut ({tear:?}, \
                 {report:?}): {detail}"
            );
            println!(
                "power-loss: snapshots cycles={} acknowledged={acknowledged} lost={lost}",
                cycle + 1
            );
            panic!("an acknowledged snapshot was lost; seed {seed}");
        }
    }
    println!(
        "{NAME}: {cycles} power cuts in {:.1} s; the cuts dropped {} unsynced bytes in {} \
         files, tore {} writes and lost {} names; {next} snapshots committed",
        started.elapsed().as_secs_f64(),
        cut_total.bytes_dropped,
        cut_total.files_reverted,
        cut_total.torn_writes,
        cut_total.names_lost,
    );
    drop(mount);
    println!("power-loss: snapshots cycles={cycles} acknowledged={acknowledged} lost={lost}");
}

fn main() {
    power_cycle::main(NAME, CHILD_ENV, child, parent);
}
