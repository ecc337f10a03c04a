//! Snapshots in the simulator: the simulated state machine snapshots a fold of what it
//! applied, snapshot jobs take simulated time (a crash loses the one in progress),
//! InstallSnapshot chunks are read and written through the same [`ChunkReader`] and
//! [`ChunkWriter`] the node uses, over a [`MemSnapshotStore`] that survives crashes, and
//! a restarted node recovers from its latest snapshot as the node does. Every restored
//! state is checked against the fold of the committed prefix it claims to cover.

use crate::driver::{ChunkReader, ChunkWriter, RestoreJob, SnapshotJob};
use crate::snapshot::{read_all, write_snapshot, SnapshotMeta, SnapshotStore, VecChunks};
use crate::{SnapshotChunks, SnapshotError};

use super::checker::Checker;
use super::*;

/// Length of the simulated state machine's snapshot: fold, last index, and filler
/// derived from the fold, so that a snapshot spans several small chunks.
const SNAPSHOT_LEN: usize = 40;

/// What a simulated node keeps for snapshots: the store is its disk (it survives
/// crashes); the rest is lost with the node.
#[derive(Debug, Default)]
pub(super) struct SimSnapshots {
    pub(super) store: MemSnapshotStore,
    readers: std::collections::BTreeMap<NodeId, ChunkReader>,
    writer: ChunkWriter,
    jobs: Vec<(u64, SnapshotJob)>,
    next_job: u64,
    /// Received snapshots being decoded "off the node's thread" (in simulated time).
    restores: Vec<(u64, RestoreJob)>,
}

impl SimSnapshots {
    /// A crash: everything but the store is gone.
    pub(super) fn crashed(&mut self) {
        self.readers.clear();
        self.writer = ChunkWriter::new();
        self.jobs.clear();
        self.restores.clear();
    }
}

/// The simulated state machine's state: the chain of the prints of every entry it
/// reflects, and the last index.
pub(super) fn encode_state(fold: u64, last: LogIndex) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SNAPSHOT_LEN);
    bytes.extend_from_slice(&fold.to_be_bytes());
    bytes.extend_from_slice(&last.to_be_bytes());
    for i in 0..(SNAPSHOT_LEN - 16) as u64 {
        bytes.push((fold ^ i.wrapping_mul(0x9E37)) as u8);
    }
    bytes
}

pub(super) fn snapshot_source(fold: u64, last: LogIndex) -> Box<dyn SnapshotChunks> {
    let bytes = encode_state(fold, last);
    Box::new(VecChunks::new(
        bytes
            .chunks(9)
            .map(Bytes::copy_from_slice)
            .collect::<Vec<_>>(),
    ))
}

pub(super) fn decode_state(
    meta: &SnapshotMeta,
    chunks: &mut dyn SnapshotChunks,
) -> Result<u64, SnapshotError> {
    let bytes = read_all(chunks)?;
    let bad = |what: &str| {
        Err(SnapshotError::Malformed(format!(
            "simulated snapshot: {what}"
        )))
    };
    if bytes.len() != SNAPSHOT_LEN {
        return bad("wrong length");
    }
    let fold = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let last = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if last != meta.last_included.index {
        return bad("last index differs from the metadata");
    }
    if bytes != encode_state(fold, last) {
        return bad("filler does not match");
    }
    Ok(fold)
}

impl Simulation {
    /// Executes the snapshot work of node `i`'s output: jobs (written after a simulated
    /// delay), compactions, chunks to send and chunks received.
    pub(super) fn execute_snapshots(&mut self, i: usize) -> Result<(), String> {
        let id = self.nodes[i].id;
        let Some(driver) = self.nodes[i].driver.as_mut() else {
            return Ok(());
        };
        let out = driver.output();
        let jobs = std::mem::take(&mut out.snapshots);
        let compactions = std::mem::take(&mut out.compactions);
        let sends = std::mem::take(&mut out.snapshot_sends);
        let chunks = std::mem::take(&mut out.install_chunks);
        let reads = std::mem::take(&mut out.log_reads);
        let restores = std::mem::take(&mut out.restores);
        for job in restores {
            let delay = self.disk_delay(4);
            let (job_id, incarnation) = self.next_job(i);
            self.nodes[i].snapshots.restores.push((job_id, job));
            self.schedule(
                self.now + delay,
                Action::RestoreDecoded {
                    node: i,
                    incarnation,
                    job: job_id,
                },
            );
        }
        for read in reads {
            // Read later, from the disk as it is then: compaction may come first.
            let delay = self.disk_delay(1);
            let incarnation = self.nodes[i].incarnation;
            self.schedule(
                self.now + delay,
                Action::LogRead {
                    node: i,
                    incarnation,
                    read,
                },
            );
        }
        for job in jobs {
            let delay = self.disk_delay(4);
            let (job_id, incarnation) = self.next_job(i);
            self.nodes[i].snapshots.jobs.push((job_id, job));
            self.schedule(
                self.now + delay,
                Action::SnapshotWritten {
                    node: i,
                    incarnation,
                    job: job_id,
                },
            );
        }
        for upto in compactions {
            let disk = &mut self.nodes[i].disk;
            let last = disk.prefix.index + disk.entries.len() as u64;
            if upto > disk.prefix.index && upto <= last {
                let n = (upto - disk.prefix.index) as usize;
                let term = disk.entries[n - 1].term;
                disk.entries.drain(..n);
                disk.prefix = LogId::new(term, upto);
            }
        }
        for send in sends {
            let node = &mut self.nodes[i];
            let reader = node.snapshots.readers.entry(send.to).or_default();
            match reader.read(&node.snapshots.store, id, &send) {
                Ok(Some(env)) => self.send(env),
                Ok(None) => {}
                Err(e) => return Err(format!("node {id}: reading a snapshot chunk: {e}")),
            }
        }
        for chunk in chunks {
            let node = &mut self.nodes[i];
            let progress = node.snapshots.writer.write(&node.snapshots.store, &chunk);
            if let Some(driver) = node.driver.as_mut() {
                driver.install_progress(&chunk.meta, progress);
            }
            self.check_restored(i)?;
        }
        Ok(())
    }

    /// Answers a read of stored entries from node `i`'s disk as it is now.
    pub(super) fn log_read(&mut self, i: usize, read: crate::core::LogRead) {
        let disk = &self.nodes[i].disk;
        let last = disk.prefix.index + disk.entries.len() as u64;
        let result = if read.from <= disk.prefix.index {
            Err(crate::StorageError::Compacted {
                index: read.from,
                prefix: disk.prefix.index,
            })
        } else if read.to > last || read.from > read.to {
            Err(crate::StorageError::OutOfRange {
                from: read.from,
                to: read.to,
                last,
            })
        } else {
            let start = (read.from - disk.prefix.index - 1) as usize;
            let end = (read.to - disk.prefix.index) as usize;
            Ok(disk.entries[start..end].to_vec())
        };
        self.log_reads += 1;
        if let Some(driver) = self.nodes[i].driver.as_mut() {
            driver.log_read_done(read, result);
        }
    }

    /// A restored state machine must equal the fold of the committed prefix.
    pub(super) fn check_restored(&mut self, i: usize) -> Result<(), String> {
        let id = self.nodes[i].id;
        let Some(driver) = self.nodes[i].driver.as_mut() else {
            return Ok(());
        };
        if let Some((index, fold)) = driver.state_machine_mut().restored.take() {
            self.snapshots_installed += 1;
            // The log itself is checked as the disk holds it: a follower whose log holds
            // the snapshot's last entry keeps the entries after it, and one whose log
            // does not is reset by a write (`reset_to`) that the checker follows.
            self.checker
                .restored(id, index, fold)
                .map_err(|v| format!("{v} (restored from a snapshot)"))?;
        }
        Ok(())
    }

    /// A snapshot job of node `i` finished writing (unless the node crashed since).
    pub(super) fn snapshot_written(&mut self, i: usize, job: u64) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let Some(pos) = node.snapshots.jobs.iter().position(|(j, _)| *j == job) else {
            return Ok(());
        };
        let (_, mut job) = node.snapshots.jobs.remove(pos);
        let meta = job.meta.clone();
        let result = write_snapshot(&node.snapshots.store, meta.clone(), job.source.as_mut(), 16)
            .map(|_| ());
        if result.is_ok() {
            self.snapshots_taken += 1;
        }
        if let Some(driver) = node.driver.as_mut() {
            driver.snapshot_done(meta, result);
        }
        self.process(i)
    }

    /// A random delay of up to `times` the disk's longest.
    fn disk_delay(&mut self, times: u64) -> Duration {
        let max = self.cfg.disk_delay_max.as_nanos() as u64 * times;
        Duration::from_nanos(self.rng.below(max + 1))
    }

    /// A new snapshot job id on node `i`, and the node's incarnation (a job dies with it).
    fn next_job(&mut self, i: usize) -> (u64, u64) {
        let node = &mut self.nodes[i];
        let id = node.snapshots.next_job;
        node.snapshots.next_job += 1;
        (id, node.incarnation)
    }

    /// A received snapshot finished decoding: node `i`'s driver swaps it in.
    pub(super) fn restore_decoded(&mut self, i: usize, job: u64) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let Some(pos) = node.snapshots.restores.iter().position(|(j, _)| *j == job) else {
            return Ok(());
        };
        let (_, job) = node.snapshots.restores.remove(pos);
        let (meta, result) = job.run();
        if let Some(driver) = node.driver.as_mut() {
            driver.restore_done(&meta, result);
        }
        self.check_restored(i)?;
        self.process(i)
    }

    /// What node `i` recovers at boot, as the node does: the state machine restored from
    /// the latest snapshot, and the log after it (the stored log is reset first when it
    /// does not hold the snapshot's last entry: the node stopped between committing a
    /// received snapshot and resetting its log).
    pub(super) fn recover(
        &mut self,
        i: usize,
    ) -> Result<(SimMachine, Option<SnapshotMeta>, LogId, Vec<Entry>), String> {
        let id = self.nodes[i].id;
        let node = &mut self.nodes[i];
        let mut machine = SimMachine {
            // Two thirds of the seeds decode received snapshots "off the node's thread".
            decode_off_thread: !(self.cfg.seed / 3).is_multiple_of(3),
            ..SimMachine::default()
        };
        let Some((meta, mut chunks)) = node
            .snapshots
            .store
            .open_latest()
            .map_err(|e| e.to_string())?
        else {
            return Ok((machine, None, node.disk.prefix, node.disk.entries.clone()));
        };
        let point = meta.last_included;
        let fold = decode_state(&meta, chunks.as_mut()).map_err(|e| e.to_string())?;
        machine.set_state(fold, point.index);
        let disk = &mut node.disk;
        let stored_term = if point.index == disk.prefix.index {
            Some(disk.prefix.term)
        } else if point.index > disk.prefix.index {
            disk.entries
                .get((point.index - disk.prefix.index - 1) as usize)
                .map(|e| e.term)
        } else {
            None
        };
        if point.index < disk.prefix.index {
            return Err(format!(
                "node {id}: snapshot {point:?} is behind the compacted log {:?}",
                disk.prefix
            ));
        }
        let entries = if stored_term != Some(point.term) {
            disk.prefix = point;
            disk.entries.clear();
            Vec::new()
        } else {
            disk.entries[(point.index - disk.prefix.index) as usize..].to_vec()
        };
        self.checker
            .restored(id, point.index, fold)
            .map_err(|v| format!("{v} (restarted from a snapshot)"))?;
        Ok((machine, Some(meta), point, entries))
    }
}

impl SimMachine {
    pub(super) fn fold_in(&mut self, entry: &Entry) {
        self.fold = Checker::fold_entry(self.fold, entry);
        self.last = entry.index;
    }

    pub(super) fn set_state(&mut self, fold: u64, last: LogIndex) {
        self.fold = fold;
        self.last = last;
    }
}
