//! Opening: typed refusals of what is not an actraft store this build reads, and
//! reopening right after the last handle is dropped.

use actraft::core::HardState;
use actraft::testkit::storage::entries;
use actraft::{LogId, LogStorage};
use actraft_storage_rocks::layout::{ENTRIES_CF, HARD_STATE_KEY, META_CF, VERSION_KEY};
use actraft_storage_rocks::{Corruption, OpenError, RocksOptions, RocksStorage};

async fn open(path: &std::path::Path) -> Result<RocksStorage, OpenError> {
    RocksStorage::open(path, RocksOptions::default()).await
}

#[tokio::test]
async fn a_second_open_of_a_held_store_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).await.unwrap();
    let err = open(dir.path()).await.unwrap_err();
    assert!(matches!(err, OpenError::Locked { .. }), "{err:?}");
    drop(first);
    open(dir.path())
        .await
        .expect("open once the holder is gone");
}

#[tokio::test]
async fn reopening_right_after_drop_keeps_in_flight_writes() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20u64 {
        let s = open(dir.path()).await.unwrap();
        let last = s.state().await.unwrap().last.index;
        assert_eq!(last, round * 10, "round {round}");
        // Queued but never awaited: the store still makes it durable before closing.
        let pending = s.append(entries(last + 1, last + 10, 1, 32));
        drop(pending);
        drop(s);
    }
}

#[tokio::test]
async fn a_file_or_a_foreign_directory_is_not_actraft() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"hello").unwrap();
    let err = open(&file).await.unwrap_err();
    assert!(matches!(err, OpenError::NotActraft { .. }), "{err:?}");
    let err = open(dir.path()).await.unwrap_err();
    assert!(matches!(err, OpenError::NotActraft { .. }), "{err:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello", "left untouched");
}

#[tokio::test]
async fn a_foreign_rocksdb_database_is_not_actraft() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        let db = rocksdb::DB::open(&opts, dir.path()).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let err = open(dir.path()).await.unwrap_err();
    assert!(matches!(err, OpenError::NotActraft { .. }), "{err:?}");

    // Our column families, with data, but no identity marker.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), [ENTRIES_CF, META_CF]).unwrap();
        db.put_cf(&db.cf_handle(ENTRIES_CF).unwrap(), b"k", b"v")
            .unwrap();
    }
    let err = open(dir.path()).await.unwrap_err();
    assert!(matches!(err, OpenError::NotActraft { .. }), "{err:?}");
}

#[tokio::test]
async fn another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).await.unwrap());
    {
        let db = rocksdb::DB::open_cf(
            &rocksdb::Options::default(),
            dir.path(),
            [ENTRIES_CF, META_CF],
        )
        .unwrap();
        db.put_cf(
            &db.cf_handle(META_CF).unwrap(),
            VERSION_KEY,
            99u32.to_be_bytes(),
        )
        .unwrap();
    }
    let err = open(dir.path()).await.unwrap_err();
    assert!(
        matches!(err, OpenError::UnsupportedVersion { found: 99, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn corrupt_hard_state_is_a_typed_corruption() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).await.unwrap());
    {
        let db = rocksdb::DB::open_cf(
            &rocksdb::Options::default(),
            dir.path(),
            [ENTRIES_CF, META_CF],
        )
        .unwrap();
        db.put_cf(&db.cf_handle(META_CF).unwrap(), HARD_STATE_KEY, [7u8; 5])
            .unwrap();
    }
    let err = open(dir.path()).await.unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::Corrupt {
                reason: Corruption::BadLength {
                    what: "hard state",
                    len: 5
                },
                ..
            }
        ),
        "{err:?}"
    );
    // As the trait reports it: fatal, with the typed cause as its source.
    let err = actraft::StorageError::from(err);
    assert!(err.is_fatal());
    let actraft::StorageError::Corrupt(source) = &err else {
        panic!("expected Corrupt, got {err:?}");
    };
    let open_error = source.downcast_ref::<OpenError>().expect("the open error");
    assert!(matches!(open_error, OpenError::Corrupt { .. }));
}

#[tokio::test]
async fn missing_store_without_create() {
    let dir = tempfile::tempdir().unwrap();
    let options = RocksOptions {
        create_if_missing: false,
        ..RocksOptions::default()
    };
    let err = RocksStorage::open(dir.path().join("none"), options)
        .await
        .unwrap_err();
    assert!(matches!(err, OpenError::Missing(_)), "{err:?}");
}

#[tokio::test]
async fn an_interrupted_creation_is_created_again() {
    let dir = tempfile::tempdir().unwrap();
    // What RocksDB leaves when the process dies before `CURRENT` is written.
    std::fs::write(dir.path().join("LOCK"), b"").unwrap();
    std::fs::write(dir.path().join("MANIFEST-000001"), b"torn").unwrap();
    let s = open(dir.path()).await.expect("created");
    assert_eq!(s.state().await.unwrap().last, LogId::default());
}

/// A RocksDB database as a creation interrupted after `CURRENT` leaves it: with the
/// column families `cfs` (besides the default one), and no key.
fn interrupted_creation(path: &std::path::Path, cfs: &[&str]) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    drop(rocksdb::DB::open_cf(&opts, path, cfs).unwrap());
}

#[tokio::test]
async fn a_creation_interrupted_before_our_column_families_is_finished() {
    for cfs in [&[][..], &[ENTRIES_CF][..], &[META_CF][..]] {
        let dir = tempfile::tempdir().unwrap();
        interrupted_creation(dir.path(), cfs);
        let s = open(dir.path())
            .await
            .unwrap_or_else(|e| panic!("with {cfs:?}: {e}"));
        assert_eq!(s.state().await.unwrap().last, LogId::default());
        s.append(entries(1, 3, 1, 8)).await.unwrap();
        drop(s);
        let s = open(dir.path()).await.expect("reopened");
        assert_eq!(s.state().await.unwrap().last, LogId::new(1, 3), "{cfs:?}");
    }
}

#[tokio::test]
async fn an_interrupted_creation_without_create_if_missing_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    interrupted_creation(dir.path(), &[]);
    let options = RocksOptions {
        create_if_missing: false,
        ..RocksOptions::default()
    };
    let err = RocksStorage::open(dir.path(), options).await.unwrap_err();
    assert!(matches!(err, OpenError::Missing(_)), "{err:?}");
}

#[tokio::test]
async fn a_foreign_database_without_our_column_families_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), [ENTRIES_CF]).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let before = files(dir.path());
    let err = open(dir.path()).await.unwrap_err();
    assert!(matches!(err, OpenError::NotActraft { .. }), "{err:?}");
    assert_eq!(
        files(dir.path()),
        before,
        "no file written, added or removed"
    );
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
    assert_eq!(cfs, ["default", ENTRIES_CF], "no column family added");
}

/// Every file of `dir` with its contents.
fn files(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_nested_path_is_created_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/node-1");
    let s = open(&path).await.unwrap();
    let hs = HardState {
        current_term: 3,
        voted_for: Some(2),
    };
    s.save_hard_state(hs).await.unwrap();
    drop(s);
    // `open_blocking`, from a thread outside the runtime, as a tool would call it.
    let s = tokio::task::spawn_blocking(move || {
        RocksStorage::open_blocking(path, RocksOptions::default())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(s.state().await.unwrap().hard_state, hs);
}
