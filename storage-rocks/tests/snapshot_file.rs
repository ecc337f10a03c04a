//! The file snapshot store: round trip, atomic replacement, and torn or corrupt files
//! refused at open with a typed error.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};

use actraft::core::LogId;
use actraft::snapshot::{read_all, write_snapshot, VecChunks};
use actraft::{SnapshotError, SnapshotMeta, SnapshotStore};
use actraft_storage_rocks::{FileSnapshotStore, SnapshotFileError};
use bytes::Bytes;

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_included: LogId::new(3, index),
        membership: actraft::ClusterConfig::bootstrap([1, 2, 3]),
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn store_one(store: &FileSnapshotStore, index: u64, bytes: &[u8]) {
    let mut source = VecChunks::new(bytes.chunks(1000).map(Bytes::copy_from_slice));
    let written = write_snapshot(store, meta(index), &mut source, 1000).unwrap();
    assert_eq!(written, bytes.len() as u64);
}

fn read_latest(store: &FileSnapshotStore) -> (SnapshotMeta, Vec<u8>) {
    let (meta, mut chunks) = store.open_latest().unwrap().expect("a snapshot");
    (meta, read_all(chunks.as_mut()).unwrap())
}

#[test]
fn round_trip_survives_reopen_and_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snaps");
    let store = FileSnapshotStore::open(&path).unwrap();
    assert_eq!(store.latest().unwrap(), None);
    assert!(store.open_latest().unwrap().is_none());
    let first = data(10_000, 1);
    store_one(&store, 10, &first);
    assert_eq!(read_latest(&store), (meta(10), first.clone()));
    drop(store);

    let store = FileSnapshotStore::open(&path).unwrap();
    assert_eq!(read_latest(&store), (meta(10), first));
    let second = data(25_000, 2);
    store_one(&store, 20, &second);
    drop(store);
    let store = FileSnapshotStore::open(&path).unwrap();
    assert_eq!(read_latest(&store), (meta(20), second.clone()));
    assert_eq!(store.size(), second.len() as u64);
    // Only the committed file is left.
    let names: Vec<_> = fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["snapshot".to_string()]);
}

#[test]
fn uncommitted_writer_and_leftover_temp_files_leave_the_old_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(dir.path()).unwrap();
    let old = data(3_000, 7);
    store_one(&store, 5, &old);
    let mut writer = store.begin(meta(9)).unwrap();
    writer.write_chunk(&data(500, 9)).unwrap();
    drop(writer);
    assert_eq!(read_latest(&store), (meta(5), old.clone()));
    // A crash mid-write leaves a temporary file: open removes it.
    fs::write(dir.path().join("snapshot.tmp.42"), b"half a snapshot").unwrap();
    drop(store);
    let store = FileSnapshotStore::open(dir.path()).unwrap();
    assert!(!dir.path().join("snapshot.tmp.42").exists());
    assert_eq!(read_latest(&store), (meta(5), old));
}

#[test]
fn older_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(dir.path()).unwrap();
    store_one(&store, 50, b"fifty");
    let err = store.begin(meta(49)).unwrap().commit().unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::Stale {
                index: 49,
                stored: 50
            }
        ),
        "{err}"
    );
    assert_eq!(read_latest(&store).0, meta(50));
}

fn corrupt_at_open(edit: impl FnOnce(&std::path::Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(dir.path()).unwrap();
    store_one(&store, 8, &data(5_000, 3));
    drop(store);
    edit(&dir.path().join("snapshot"));
    match FileSnapshotStore::open(dir.path()) {
        Err(SnapshotFileError::Corrupt { reason, .. }) => reason,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn flip_byte(path: &std::path::Path, at: u64) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(at)).unwrap();
    std::io::Read::read_exact(&mut file, &mut byte).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0x40]).unwrap();
    file.sync_all().unwrap();
}

#[test]
fn torn_snapshot_refused_at_open() {
    for keep in [0u64, 5, 30, 2_000, 5_040] {
        let reason = corrupt_at_open(|path| {
            let file = OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(keep).unwrap();
        });
        assert!(
            reason.contains("torn") || reason.contains("shorter") || reason.contains("magic"),
            "keep {keep}: {reason}"
        );
    }
}

#[test]
fn flipped_bits_refused_at_open() {
    // In the metadata, in the data, in the trailer.
    let meta_reason = corrupt_at_open(|path| flip_byte(path, 14));
    assert!(meta_reason.contains("metadata"), "{meta_reason}");
    let data_reason = corrupt_at_open(|path| flip_byte(path, 2_000));
    assert!(data_reason.contains("data checksum"), "{data_reason}");
    let end_reason = corrupt_at_open(|path| {
        let len = fs::metadata(path).unwrap().len();
        flip_byte(path, len - 1)
    });
    assert!(end_reason.contains("end marker"), "{end_reason}");
}

#[test]
fn corruption_after_open_caught_while_reading() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(dir.path()).unwrap();
    store_one(&store, 8, &data(5_000, 3));
    flip_byte(&dir.path().join("snapshot"), 3_000);
    let (_, mut chunks) = store.open_latest().unwrap().unwrap();
    let err = read_all(chunks.as_mut()).unwrap_err();
    assert!(matches!(err, SnapshotError::Corrupt(_)), "{err}");
}

#[test]
fn beside_names_a_sibling_directory() {
    let path = FileSnapshotStore::beside("/var/lib/svc/raft");
    assert_eq!(
        path,
        std::path::PathBuf::from("/var/lib/svc/raft.snapshots")
    );
}

/// A file in format version 1 (a plain member list) is still read, as a stable
/// configuration of those voters; a joint configuration with addresses round-trips in
/// the current format.
#[test]
fn reads_format_v1_and_round_trips_a_joint_configuration() {
    use actraft::snapshot::crc32c;
    use actraft::{ClusterConfig, Membership};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snaps");
    fs::create_dir_all(&path).unwrap();
    let mut meta_bytes = Vec::new();
    meta_bytes.extend_from_slice(&5u64.to_be_bytes());
    meta_bytes.extend_from_slice(&2u64.to_be_bytes());
    meta_bytes.extend_from_slice(&2u32.to_be_bytes());
    meta_bytes.extend_from_slice(&1u64.to_be_bytes());
    meta_bytes.extend_from_slice(&2u64.to_be_bytes());
    let payload = b"state";
    let mut file = Vec::new();
    file.extend_from_slice(b"ACTRSNP1");
    file.extend_from_slice(&(meta_bytes.len() as u32).to_be_bytes());
    file.extend_from_slice(&meta_bytes);
    file.extend_from_slice(&crc32c(0, &meta_bytes).to_be_bytes());
    file.extend_from_slice(payload);
    file.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    file.extend_from_slice(&crc32c(0, payload).to_be_bytes());
    file.extend_from_slice(b"ACTREND1");
    fs::write(path.join("snapshot"), file).unwrap();
    let store = FileSnapshotStore::open(&path).unwrap();
    let (meta, data) = read_latest(&store);
    assert_eq!(meta.last_included, LogId::new(2, 5));
    assert_eq!(meta.membership, ClusterConfig::bootstrap([1, 2]));
    assert_eq!(data, payload);

    let joint = SnapshotMeta {
        last_included: LogId::new(4, 30),
        membership: ClusterConfig::Joint {
            old: Membership::new([1, 2, 3], [4]).with_address(4, "10.0.0.4:7000"),
            new: Membership::new([2, 3, 4], []).with_address(4, "10.0.0.4:7000"),
        },
    };
    let mut source = VecChunks::new([Bytes::from_static(b"x")]);
    write_snapshot(&store, joint.clone(), &mut source, 1000).unwrap();
    drop(store);
    let store = FileSnapshotStore::open(&path).unwrap();
    assert_eq!(read_latest(&store).0, joint);
}
