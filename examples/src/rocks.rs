//! RocksDB storages for in-process clusters.

use std::path::PathBuf;

use crate::cluster::{ClusterError, StorageProvider};

/// A provider opening each node's RocksDB store under `data_dir` (a temporary
/// directory when `None`).
pub fn provider(data_dir: Option<PathBuf>) -> Result<impl StorageProvider, ClusterError> {
    let _ = data_dir;
    Err::<crate::cluster::MemStorages, _>(ClusterError::Backend {
        id: 0,
        message: "the RocksDB storage is not built yet".into(),
    })
}
