//! Opening a store: telling an actraft store from anything else, creating a new one, and
//! recovering the log's bounds and hard state.

use std::path::{Path, PathBuf};

use actraft::core::LogId;
use actraft::LogState;
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use crate::error::{Corruption, OpenError};
use crate::layout::{self, ENTRIES_CF, META_CF};
use crate::options::RocksOptions;

/// An open store and what it holds.
pub(crate) struct Opened {
    pub(crate) db: DB,
    pub(crate) state: LogState,
}

/// What the directory holds before RocksDB touches it.
enum Found {
    /// Nothing (or only what an interrupted creation left): create a store.
    Nothing,
    /// A RocksDB database with our column families (the identity marker tells whether
    /// it is ours).
    Database,
}

/// Files RocksDB writes while it creates a database, before `CURRENT` exists. A
/// directory holding only these is a creation that was interrupted (by a crash), not
/// somebody else's data.
fn is_rocksdb_file(name: &str) -> bool {
    matches!(name, "LOCK" | "LOG" | "IDENTITY")
        || name.starts_with("LOG.old.")
        || name.starts_with("MANIFEST-")
        || name.starts_with("OPTIONS-")
        || name.ends_with(".log")
        || name.ends_with(".dbtmp")
}

/// Refuses what `path` holds unless it is a store, or nothing (then, with
/// `create_if_missing`, readies the directory for a new one).
fn inspect(path: &Path, options: &RocksOptions) -> Result<(), OpenError> {
    let io = |e: std::io::Error| OpenError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let not_actraft = |reason: &str| OpenError::NotActraft {
        path: path.to_owned(),
        reason: reason.into(),
    };
    let found = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Found::Nothing,
        Err(e) => return Err(io(e)),
        Ok(meta) if !meta.is_dir() => return Err(not_actraft("not a directory")),
        Ok(_) => {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(path).map_err(io)? {
                names.push(
                    entry
                        .map_err(io)?
                        .file_name()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            if names.iter().any(|n| n == "CURRENT") {
                judge_database(path, options)?
            } else if names.iter().all(|n| is_rocksdb_file(n)) {
                Found::Nothing
            } else {
                return Err(not_actraft("the directory holds other files"));
            }
        }
    };
    if matches!(found, Found::Nothing) {
        if !options.create_if_missing {
            return Err(OpenError::Missing(path.to_owned()));
        }
        create_dir_durably(path).map_err(io)?;
    }
    Ok(())
}

/// Creates directory `path` and its missing parents, and syncs the directory holding
/// each one: a new name in a directory survives a power cut only once that directory is
/// synced, and RocksDB syncs only the store's own directory. Without this, a machine
/// that loses power soon after a store is created can come back without the store's
/// directory, and with it everything the store acknowledged.
pub(crate) fn create_dir_durably(path: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(path);
    while let Some(dir) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(dir);
        at = dir.parent();
    }
    std::fs::create_dir_all(path)?;
    // The parent of `path` is synced even when `path` existed: an interrupted creation
    // may have made it without syncing its parent.
    let mut parents: Vec<&Path> = std::iter::once(path)
        .chain(missing)
        .map(|dir| match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        })
        .collect();
    parents.dedup();
    for parent in parents {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Opens (or creates) the store at `path`.
pub(crate) fn open(path: &Path, options: &RocksOptions) -> Result<Opened, OpenError> {
    inspect(path, options)?;
    let rocks = |e| OpenError::from_rocks(path.to_owned(), e);
    let descriptors =
        [ENTRIES_CF, META_CF].map(|name| ColumnFamilyDescriptor::new(name, options.cf_options()));
    let db = DB::open_cf_descriptors(&options.db_options(), path, descriptors).map_err(rocks)?;
    let state = check_identity(&db, path).and_then(|()| recover(&db, path))?;
    tracing::debug!(path = %path.display(), ?state, "opened RocksDB log storage");
    Ok(Opened { db, state })
}

/// Judges the RocksDB database at `path` by its column families, before opening it
/// (opening with missing column families would add them to somebody else's database):
/// ours, or a creation that a crash or power cut interrupted after RocksDB made the
/// database with its default column family and before it added ours (nothing to keep:
/// the creation is finished), or not actraft's.
fn judge_database(path: &Path, options: &RocksOptions) -> Result<Found, OpenError> {
    let rocks = |e| OpenError::from_rocks(path.to_owned(), e);
    let not_actraft = |reason: String| OpenError::NotActraft {
        path: path.to_owned(),
        reason,
    };
    let cfs = DB::list_cf(&Options::default(), path).map_err(rocks)?;
    if let Some(other) = cfs
        .iter()
        .find(|c| ![ENTRIES_CF, META_CF, "default"].contains(&c.as_str()))
    {
        return Err(not_actraft(format!(
            "a RocksDB database with a foreign column family {other:?}"
        )));
    }
    let Some(missing) = [ENTRIES_CF, META_CF]
        .into_iter()
        .find(|cf| !cfs.iter().any(|c| c == cf))
    else {
        return Ok(Found::Database);
    };
    // Read-only, with the store's own options (its write-ahead log is read as opening
    // it would): nothing is written to a database that may not be ours.
    let db = DB::open_cf_for_read_only(&options.db_options(), path, &cfs, false).map_err(rocks)?;
    if !holds_no_key(&db, &cfs).map_err(rocks)? {
        return Err(not_actraft(format!(
            "a RocksDB database without the {missing:?} column family"
        )));
    }
    tracing::info!(
        path = %path.display(),
        missing,
        "finishing the creation of a RocksDB log storage that was interrupted"
    );
    Ok(Found::Nothing)
}

/// True when none of the column families `names` of `db` holds a key.
fn holds_no_key(db: &DB, names: &[impl AsRef<str>]) -> Result<bool, rocksdb::Error> {
    for name in names {
        let cf = db
            .cf_handle(name.as_ref())
            .expect("opened with this column family");
        let mut it = db.raw_iterator_cf(&cf);
        it.seek_to_first();
        let any = it.valid();
        it.status()?;
        if any {
            return Ok(false);
        }
    }
    Ok(true)
}

fn corrupt(path: &Path, reason: Corruption) -> OpenError {
    OpenError::Corrupt {
        path: path.to_owned(),
        reason,
    }
}

/// Checks the identity marker and the format version; marks a new store as ours.
fn check_identity(db: &DB, path: &Path) -> Result<(), OpenError> {
    let meta = db
        .cf_handle(META_CF)
        .expect("opened with this column family");
    let rocks = |e| OpenError::from_rocks(path.to_owned(), e);
    match db.get_pinned_cf(&meta, layout::MAGIC_KEY).map_err(rocks)? {
        Some(magic) if &*magic == layout::MAGIC => {}
        Some(_) => {
            return Err(OpenError::NotActraft {
                path: path.to_owned(),
                reason: "the identity marker is not actraft's".into(),
            })
        }
        // Empty: new, or created by a process that died before marking it.
        None if holds_no_key(db, &[ENTRIES_CF, META_CF]).map_err(rocks)? => {
            let mut batch = WriteBatch::default();
            batch.put_cf(&meta, layout::MAGIC_KEY, layout::MAGIC);
            let version = layout::encode_version(layout::FORMAT_VERSION);
            batch.put_cf(&meta, layout::VERSION_KEY, version);
            let mut sync = WriteOptions::default();
            sync.set_sync(true);
            db.write_opt(batch, &sync).map_err(rocks)?;
            tracing::info!(path = %path.display(), "created a new RocksDB log storage");
        }
        None => {
            return Err(OpenError::NotActraft {
                path: path.to_owned(),
                reason: "a RocksDB database with data but no actraft identity marker".into(),
            })
        }
    }
    let version = db
        .get_pinned_cf(&meta, layout::VERSION_KEY)
        .map_err(rocks)?
        .ok_or_else(|| corrupt(path, Corruption::NoVersion))?;
    let found = layout::decode_version(&version).map_err(|e| corrupt(path, e))?;
    if !layout::SUPPORTED_VERSIONS.contains(&found) {
        return Err(OpenError::UnsupportedVersion {
            path: path.to_owned(),
            found,
            supported: layout::SUPPORTED_VERSIONS,
        });
    }
    Ok(())
}

/// Reads the hard state, the prefix and the last entry's id.
fn recover(db: &DB, path: &Path) -> Result<LogState, OpenError> {
    let meta = db
        .cf_handle(META_CF)
        .expect("opened with this column family");
    let entries = db
        .cf_handle(ENTRIES_CF)
        .expect("opened with this column family");
    let rocks = |e| OpenError::from_rocks(PathBuf::from(path), e);
    let hard_state = match db
        .get_pinned_cf(&meta, layout::HARD_STATE_KEY)
        .map_err(rocks)?
    {
        Some(v) => layout::decode_hard_state(&v).map_err(|e| corrupt(path, e))?,
        None => Default::default(),
    };
    let prefix = match db.get_pinned_cf(&meta, layout::PREFIX_KEY).map_err(rocks)? {
        Some(v) => layout::decode_log_id(&v).map_err(|e| corrupt(path, e))?,
        None => LogId::default(),
    };
    let mut it = db.raw_iterator_cf(&entries);
    it.seek_to_first();
    let first = match it.key() {
        Some(key) => Some(layout::decode_entry_key(key).map_err(|e| corrupt(path, e))?),
        None => None,
    };
    it.status().map_err(rocks)?;
    if let Some(first) = first {
        if first != prefix.index + 1 {
            return Err(corrupt(
                path,
                Corruption::Misplaced {
                    first,
                    expected: prefix.index + 1,
                },
            ));
        }
    }
    it.seek_to_last();
    let last = match (it.key(), it.value()) {
        (Some(key), Some(value)) => {
            let index = layout::decode_entry_key(key).map_err(|e| corrupt(path, e))?;
            let term = layout::decode_entry_term(value).map_err(|e| corrupt(path, e))?;
            LogId::new(term, index)
        }
        _ => prefix,
    };
    it.status().map_err(rocks)?;
    Ok(LogState {
        hard_state,
        prefix,
        last,
    })
}
