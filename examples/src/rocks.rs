//! RocksDB storages for in-process clusters: each node keeps its log in its own store
//! under one data directory, so a killed node restarts from what it made durable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actraft::core::NodeId;
use actraft::LogStorage;
use actraft_storage_rocks::{CloseWaiter, OpenError, RocksOptions, RocksStorage};
use async_trait::async_trait;
use tempfile::TempDir;

use crate::cluster::{ClusterError, StorageProvider};

/// How long [`RocksStorages`] waits for a killed node's store to close before giving up.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// How long dropping [`RocksStorages`] blocks waiting for the stores to close.
const DROP_WAIT: Duration = Duration::from_millis(500);

/// Opens node `id`'s store in `<dir>/node-<id>`.
///
/// A node's store closes when the node's actor has dropped it, on the actor's thread;
/// the provider waits for that before it reopens the store for a restarted node, and
/// before it removes a temporary directory.
pub struct RocksStorages {
    dir: PathBuf,
    options: RocksOptions,
    /// The last store opened for each node.
    opened: BTreeMap<NodeId, CloseWaiter>,
    /// The temporary directory, when the provider made one: removed on drop.
    temp: Option<TempDir>,
}

impl std::fmt::Debug for RocksStorages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStorages")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl RocksStorages {
    /// Stores under `dir`, kept after the cluster stops (start a cluster on the same
    /// directory again and its nodes come back with their logs).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            options: RocksOptions::default(),
            opened: BTreeMap::new(),
            temp: None,
        }
    }

    /// Stores in a new temporary directory, removed when the provider (and so the
    /// cluster owning it) is dropped.
    pub fn temporary() -> std::io::Result<Self> {
        let temp = tempfile::Builder::new().prefix("actraft-").tempdir()?;
        Ok(Self {
            dir: temp.path().to_owned(),
            options: RocksOptions::default(),
            opened: BTreeMap::new(),
            temp: Some(temp),
        })
    }

    /// Sets the RocksDB options of every store.
    pub fn options(mut self, options: RocksOptions) -> Self {
        self.options = options;
        self
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Node `id`'s store directory.
    pub fn node_dir(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }
}

#[async_trait(?Send)]
impl StorageProvider for RocksStorages {
    async fn open(&mut self, id: NodeId) -> Result<Box<dyn LogStorage>, String> {
        let path = self.node_dir(id);
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        // A killed node's actor is gone once `Cluster::kill` returns, but a write it had
        // in flight may hold the store a little longer (at most one sync).
        if let Some(previous) = self.opened.get(&id) {
            while !previous.is_closed() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        loop {
            match RocksStorage::open(&path, self.options.clone()).await {
                Ok(storage) => {
                    self.opened.insert(id, storage.close_waiter());
                    return Ok(Box::new(storage));
                }
                Err(OpenError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn snapshots(&mut self, id: NodeId) -> Result<crate::cluster::SnapshotStores, String> {
        let dir = actraft_storage_rocks::FileSnapshotStore::beside(self.node_dir(id));
        actraft_storage_rocks::FileSnapshotStore::open(dir)
            .map(crate::cluster::SnapshotStores::File)
            .map_err(|e| e.to_string())
    }
}

impl Drop for RocksStorages {
    fn drop(&mut self) {
        // The cluster has told its nodes to stop; their stores close once the nodes'
        // actors have dropped them, on the nodes' threads. Remove a temporary directory
        // only after that, so nothing writes into it while it is being removed. Nodes
        // on this very thread (`Placement::Shared`) cannot stop while we block, so wait
        // here only briefly and leave the rest to a background thread.
        let waiters: Vec<CloseWaiter> = std::mem::take(&mut self.opened).into_values().collect();
        let deadline = std::time::Instant::now() + DROP_WAIT;
        let all_closed = waiters
            .iter()
            .all(|w| w.wait_timeout(deadline.saturating_duration_since(std::time::Instant::now())));
        if all_closed {
            return; // `temp` is removed right after this
        }
        let temp = self.temp.take();
        let dir = self.dir.clone();
        std::thread::spawn(move || {
            if !waiters.iter().all(|w| w.wait_timeout(CLOSE_WAIT)) {
                tracing::warn!(dir = %dir.display(), "a store is still open; removing anyway");
            }
            drop(temp);
        });
    }
}

/// A provider opening each node's RocksDB store under `data_dir` (a temporary
/// directory, removed with the cluster, when `None`).
pub fn provider(data_dir: Option<PathBuf>) -> Result<RocksStorages, ClusterError> {
    match data_dir {
        Some(dir) => Ok(RocksStorages::in_dir(dir)),
        None => RocksStorages::temporary().map_err(|e| ClusterError::Backend {
            id: 0,
            message: format!("cannot create a temporary data directory: {e}"),
        }),
    }
}
