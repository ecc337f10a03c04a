//! A client load for cluster tests and demos: clients proposing unique commands back to
//! back to whichever node leads, recording every command acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actraft::{RaftHandle, Role};
use bytes::Bytes;
use tokio::sync::watch;

/// Clients proposing unique commands back to back to whichever node leads, recording
/// every command acknowledged.
pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Bytes>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` clients proposing to the leader among `nodes` (update the
    /// channel when nodes restart).
    pub fn start(clients: usize, nodes: watch::Receiver<Vec<RaftHandle>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|c| {
                let (stop, acked, nodes) = (stop.clone(), acked.clone(), nodes.clone());
                actix_rt::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let handles = nodes.borrow().clone();
                        let leader = handles
                            .iter()
                            .filter(|h| h.status().role == Role::Leader)
                            .max_by_key(|h| h.status().term)
                            .cloned();
                        let Some(leader) = leader else {
                            let mut n = nodes.clone();
                            let _ =
                                tokio::time::timeout(Duration::from_millis(20), n.changed()).await;
                            continue;
                        };
                        let cmd = Bytes::from(format!("c{c}-{i}"));
                        i += 1;
                        match leader
                            .propose_timeout(cmd.clone(), Duration::from_secs(2))
                            .await
                        {
                            Ok(_) => acked.lock().unwrap().push(cmd),
                            Err(_) => tokio::task::yield_now().await,
                        }
                    }
                })
            })
            .collect();
        Self { stop, acked, tasks }
    }

    /// Stops the clients and returns every command acknowledged.
    pub async fn finish(self) -> Vec<Bytes> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}
