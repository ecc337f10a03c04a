//! Why a store could not be opened.

use std::path::PathBuf;

use actraft::core::LogIndex;
use actraft::StorageError;
use thiserror::Error;

/// What is wrong with stored data: the source of [`OpenError::Corrupt`] and of the
/// fatal [`StorageError::Corrupt`] this storage returns.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Corruption {
    /// A stored value or key has a length its format does not allow.
    #[error("{what} of {len} bytes")]
    BadLength {
        /// Which value or key.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// An entry's payload tag is none this build knows.
    #[error("entry {index}: bad payload tag {tag:?}")]
    BadPayloadTag {
        /// The entry.
        index: LogIndex,
        /// The tag found (`None`: the value ends before it).
        tag: Option<u8>,
    },
    /// The hard state's vote flag is neither 0 nor 1.
    #[error("hard state: bad vote flag {flag}")]
    BadVoteFlag {
        /// The flag found.
        flag: u8,
    },
    /// The store has an identity marker but no format version.
    #[error("no format version")]
    NoVersion,
    /// The first stored entry does not follow the compacted prefix.
    #[error("the log starts at {first}, expected {expected}")]
    Misplaced {
        /// The first stored index.
        first: LogIndex,
        /// The index after the compacted prefix.
        expected: LogIndex,
    },
    /// An entry inside the log's bounds is not stored: the log has a hole.
    #[error("entry {index} is missing: the log has a hole")]
    Missing {
        /// The first missing index.
        index: LogIndex,
    },
}

impl From<Corruption> for StorageError {
    fn from(c: Corruption) -> Self {
        StorageError::Corrupt(Box::new(c))
    }
}

/// Why [`RocksStorage::open`](crate::RocksStorage::open) failed. Every variant is fatal
/// for that open; the caller may retry once the cause is fixed (another process closed
/// the store, a directory was created, ...).
///
/// Every variant leaves the directory as it was: opening never rewrites a store it does
/// not recognize.
#[derive(Debug, Error)]
#[non_exhaustive]
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
    /// The store is an actraft store, but what it holds cannot be decoded or has a
    /// hole.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// What is wrong.
        #[source]
        reason: Corruption,
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
            OpenError::Corrupt { .. } => StorageError::Corrupt(Box::new(e)),
            other => StorageError::Io(Box::new(other)),
        }
    }
}

/// A RocksDB failure on the write or read path, as the trait reports it (fatal).
pub(crate) fn io(e: rocksdb::Error) -> StorageError {
    StorageError::Io(Box::new(e))
}
