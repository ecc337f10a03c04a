//! The node's hold on its storage, and the signal that it let go.

use tokio::sync::watch;

/// Owns a node's storage and says when it is dropped, so that a handle can wait until
/// the node has released its storage before the same storage is opened again.
pub(crate) struct StorageHolder<S> {
    storage: Option<S>,
    released: watch::Sender<bool>,
}

impl<S> StorageHolder<S> {
    pub(crate) fn new(storage: S) -> (Self, watch::Receiver<bool>) {
        let (released, rx) = watch::channel(false);
        (
            Self {
                storage: Some(storage),
                released,
            },
            rx,
        )
    }

    pub(crate) fn get(&self) -> &S {
        self.storage.as_ref().expect("present until dropped")
    }
}

impl<S> Drop for StorageHolder<S> {
    fn drop(&mut self) {
        // Drop the storage first (closing files, joining its threads), then tell.
        drop(self.storage.take());
        self.released.send_replace(true);
    }
}

/// Waits until the storage behind `rx` is released.
pub(crate) async fn wait_released(mut rx: watch::Receiver<bool>) {
    // An error means the holder is gone, which happens only after it sent `true`.
    let _ = rx.wait_for(|released| *released).await;
}
