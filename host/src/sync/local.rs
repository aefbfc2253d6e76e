//! The host's worktree as an [`Endpoint`]: the same replica code the sandbox's helper runs
//! (git's ignores, compare-and-swap writes through a staged rename), on the blocking pool.

use std::sync::{Arc, Mutex};

use clauderon_sync::{ApplyError, Entry, Probe, Replica, Scan};

use super::cycle::{Change, Endpoint, EndpointError};

/// The local worktree.
#[derive(Debug, Clone)]
pub struct LocalEndpoint {
    root: std::path::PathBuf,
    replica: Arc<Mutex<Replica>>,
}

impl LocalEndpoint {
    /// The worktree at `root` with `extra` ignore patterns.
    pub fn new(root: std::path::PathBuf, extra: &[String]) -> LocalEndpoint {
        LocalEndpoint {
            replica: Arc::new(Mutex::new(Replica::new(root.clone(), extra))),
            root,
        }
    }

    /// The worktree.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Replica) -> R + Send + 'static,
    ) -> Result<R, EndpointError> {
        let r = Arc::clone(&self.replica);
        tokio::task::spawn_blocking(move || {
            let mut g = r.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut g)
        })
        .await
        .map_err(|e| EndpointError(format!("the local scan stopped: {e}")))
    }
}

impl Endpoint for LocalEndpoint {
    async fn scan(&mut self) -> Result<Scan, EndpointError> {
        self.with(|r| r.scan())
            .await?
            .map_err(|e| EndpointError(format!("cannot scan the local worktree: {e}")))
    }

    async fn probe(&mut self, paths: Vec<String>) -> Result<Vec<Probe>, EndpointError> {
        self.with(move |r| r.probe(&paths)).await
    }

    async fn read(
        &mut self,
        items: Vec<(String, Entry)>,
    ) -> Result<Vec<Result<Vec<u8>, ApplyError>>, EndpointError> {
        self.with(move |r| items.iter().map(|(p, e)| r.read(p, e)).collect())
            .await
    }

    async fn apply(
        &mut self,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<(), ApplyError>>, EndpointError> {
        self.with(move |r| changes.iter().map(|c| r.apply(c)).collect())
            .await
    }
}
