//! Choosing a storage and a transport by name, as the demo's and benches' flags do.

use std::path::PathBuf;
use std::str::FromStr;

use crate::cluster::{Cluster, ClusterError, ClusterOptions, MemStorages, StorageProvider};
use actraft_transport_mem::MemRouter;

/// A log storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// `actraft-storage-mem`.
    Mem,
    /// `actraft-storage-rocks`.
    Rocks,
}

/// A transport backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// `actraft-transport-mem`.
    Mem,
    /// `actraft-transport-quic`, over loopback.
    Quic,
}

/// A backend name the flags cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend at all.
    #[error("unknown {what} {name:?} (expected one of: {expected})")]
    Unknown {
        /// `storage` or `transport`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// The names that are known.
        expected: &'static str,
    },
    /// The backend exists but this build leaves it out: RocksDB needs the `rocks` cargo
    /// feature (and libclang and a C++ compiler to build it).
    #[error("storage \"rocks\" is not in this build: rebuild with `--features rocks` (needs libclang and a C++ compiler)")]
    RocksNotBuilt,
}

impl StorageKind {
    /// Every storage, available in this build or not.
    pub const ALL: [StorageKind; 2] = [StorageKind::Mem, StorageKind::Rocks];

    /// Whether this build has the storage (RocksDB needs the `rocks` feature).
    pub const fn is_built(self) -> bool {
        match self {
            Self::Mem => true,
            Self::Rocks => cfg!(feature = "rocks"),
        }
    }

    /// `Ok(self)` when this build has the storage, the reason otherwise.
    pub fn check_built(self) -> Result<Self, BackendError> {
        if self.is_built() {
            Ok(self)
        } else {
            Err(BackendError::RocksNotBuilt)
        }
    }
}

impl FromStr for StorageKind {
    type Err = BackendError;
    /// Parses `mem` or `rocks`; `rocks` is refused, with how to get it, by a build
    /// without the `rocks` feature.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mem" => Ok(Self::Mem),
            "rocks" => Self::Rocks.check_built(),
            _ => Err(BackendError::Unknown {
                what: "storage",
                name: s.into(),
                expected: "mem, rocks",
            }),
        }
    }
}

impl FromStr for TransportKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mem" => Ok(Self::Mem),
            "quic" => Ok(Self::Quic),
            _ => Err(BackendError::Unknown {
                what: "transport",
                name: s.into(),
                expected: "mem, quic",
            }),
        }
    }
}

impl std::fmt::Display for StorageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mem => "mem",
            Self::Rocks => "rocks",
        })
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mem => "mem",
            Self::Quic => "quic",
        })
    }
}

/// Starts an in-process cluster on the chosen backends. `data_dir` is where a disk
/// storage keeps its files (a temporary directory, removed when the cluster is dropped,
/// when `None`). A storage this build leaves out fails with
/// [`ClusterError::NotBuilt`].
pub async fn start_cluster(
    options: ClusterOptions,
    storage: StorageKind,
    transport: TransportKind,
    data_dir: Option<PathBuf>,
) -> Result<Cluster, ClusterError> {
    match storage.check_built()? {
        StorageKind::Mem => {
            let _ = data_dir; // memory keeps no files
            on_transport(options, MemStorages::default(), transport).await
        }
        #[cfg(feature = "rocks")]
        StorageKind::Rocks => {
            let storages = crate::rocks::provider(data_dir)?;
            on_transport(options, storages, transport).await
        }
        #[cfg(not(feature = "rocks"))]
        StorageKind::Rocks => Err(BackendError::RocksNotBuilt.into()),
    }
}

/// Starts a cluster on `storages` and the chosen transport (with its in-memory router
/// for fault injection on `mem`).
pub async fn on_transport(
    options: ClusterOptions,
    storages: impl StorageProvider + 'static,
    transport: TransportKind,
) -> Result<Cluster, ClusterError> {
    match transport {
        TransportKind::Mem => {
            let router = MemRouter::with_seed(options.seed);
            Cluster::start_on(options, storages, router.clone(), Some(router)).await
        }
        TransportKind::Quic => {
            let transports = crate::quic::provider(options.nodes)?;
            Cluster::start_on(options, storages, transports, None).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for t in [TransportKind::Mem, TransportKind::Quic] {
            assert_eq!(t.to_string().parse::<TransportKind>(), Ok(t));
        }
        assert_eq!("mem".parse::<StorageKind>(), Ok(StorageKind::Mem));
        let e = "disk".parse::<StorageKind>().unwrap_err();
        assert!(e.to_string().contains("expected one of: mem, rocks"), "{e}");
        assert!("tcp".parse::<TransportKind>().is_err());
    }

    #[test]
    fn rocks_parses_only_in_a_build_that_has_it() {
        let parsed = "rocks".parse::<StorageKind>();
        if cfg!(feature = "rocks") {
            assert_eq!(parsed, Ok(StorageKind::Rocks));
        } else {
            let e = parsed.unwrap_err();
            assert_eq!(e, BackendError::RocksNotBuilt);
            assert!(e.to_string().contains("--features rocks"), "{e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        assert_eq!(StorageKind::Rocks.is_built(), cfg!(feature = "rocks"));
        assert!(StorageKind::Mem.is_built());
    }

    #[actix_rt::test]
    async fn a_cluster_on_a_storage_left_out_says_how_to_get_it() {
        if cfg!(feature = "rocks") {
            return; // RocksDB clusters are tested in tests/rocks_cluster.rs
        }
        let e = start_cluster(
            ClusterOptions::new(3),
            StorageKind::Rocks,
            TransportKind::Mem,
            None,
        )
        .await
        .err()
        .expect("no RocksDB in this build");
        assert!(
            matches!(e, ClusterError::NotBuilt(BackendError::RocksNotBuilt)),
            "{e}"
        );
    }
}
