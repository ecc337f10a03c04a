//! Why a store could not be opened.

use std::path::PathBuf;

use actraft::StorageError;
use thiserror::Error;

/// Why [`RocksStorage::open`](crate::RocksStorage::open) failed.
///
/// Every variant leaves the directory as it was: opening never rewrites a store it does
/// not recognize.
#[derive(Debug, Error)]
pub enum OpenError {
    /// Another process, or another handle in this process, has the store open. Two
    /// writers on one log would break every promise the log makes, so RocksDB locks it.
    /// Retry once the other user has closed it.
    #[error("{path} is in use by another process or handle")]
    Locked {
        /// The store's directory.
        path: PathBuf,
        /// RocksDB's message.
        message: String,
    },
    /// The path holds something other than an actraft store: a file, a directory with
    /// other files, or a RocksDB database without actraft's identity marker.
    #[error("{path} is not an actraft store: {reason}")]
    NotActraft {
        /// The path.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The store was written in a format this build does not read (by a newer
    /// actraft, most likely).
    #[error("{path} has format version {found}; this build reads {supported:?}")]
    UnsupportedVersion {
        /// The store's directory.
        path: PathBuf,
        /// The version stored.
        found: u32,
        /// The versions this build reads.
        supported: &'static [u32],
    },
    /// The store is an actraft store, but its metadata cannot be decoded.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// What could not be decoded.
        reason: String,
    },
    /// The directory does not exist (or is empty) and
    /// [`RocksOptions::create_if_missing`](crate::RocksOptions::create_if_missing) is off.
    #[error("{0} holds no store and creating one was not asked for")]
    Missing(PathBuf),
    /// The file system or RocksDB failed.
    #[error("opening {path} failed: {message}")]
    Io {
        /// The store's directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl OpenError {
    /// Classifies a RocksDB error raised while opening `path`.
    pub(crate) fn from_rocks(path: PathBuf, e: rocksdb::Error) -> Self {
        let message = e.into_string();
        // RocksDB reports its lock as an IO error: "lock hold by current process" in the
        // same process, "While lock file: .../LOCK: Resource temporarily unavailable"
        // from another one.
        if message.to_ascii_lowercase().contains("lock") {
            OpenError::Locked { path, message }
        } else {
            OpenError::Io { path, message }
        }
    }
}

impl From<OpenError> for StorageError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Corrupt { .. } => StorageError::Corrupt(e.to_string()),
            other => StorageError::Io(Box::new(other)),
        }
    }
}

/// A RocksDB failure on the write or read path, as the trait reports it (fatal).
pub(crate) fn io(e: rocksdb::Error) -> StorageError {
    StorageError::Io(Box::new(e))
}
