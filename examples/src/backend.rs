//! Choosing a storage and a transport by name, as the demo's and benches' flags do.

use std::path::PathBuf;
use std::str::FromStr;

use crate::cluster::{Cluster, ClusterError, ClusterOptions, MemStorages};
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

/// A backend name that is not known.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {name:?} (expected one of: {expected})")]
pub struct UnknownBackend {
    what: &'static str,
    name: String,
    expected: &'static str,
}

impl FromStr for StorageKind {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mem" => Ok(Self::Mem),
            "rocks" => Ok(Self::Rocks),
            _ => Err(UnknownBackend {
                what: "storage",
                name: s.into(),
                expected: "mem, rocks",
            }),
        }
    }
}

impl FromStr for TransportKind {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mem" => Ok(Self::Mem),
            "quic" => Ok(Self::Quic),
            _ => Err(UnknownBackend {
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
/// when `None`).
pub async fn start_cluster(
    options: ClusterOptions,
    storage: StorageKind,
    transport: TransportKind,
    data_dir: Option<PathBuf>,
) -> Result<Cluster, ClusterError> {
    let router = MemRouter::with_seed(options.seed);
    match (storage, transport) {
        (StorageKind::Mem, TransportKind::Mem) => {
            Cluster::start_on(
                options,
                MemStorages::default(),
                router.clone(),
                Some(router),
            )
            .await
        }
        (StorageKind::Rocks, TransportKind::Mem) => {
            let storages = crate::rocks::provider(data_dir)?;
            Cluster::start_on(options, storages, router.clone(), Some(router)).await
        }
        (StorageKind::Mem, TransportKind::Quic) => {
            let transports = crate::quic::provider(options.nodes)?;
            Cluster::start_on(options, MemStorages::default(), transports, None).await
        }
        (StorageKind::Rocks, TransportKind::Quic) => {
            let storages = crate::rocks::provider(data_dir)?;
            let transports = crate::quic::provider(options.nodes)?;
            Cluster::start_on(options, storages, transports, None).await
        }
    }
}
