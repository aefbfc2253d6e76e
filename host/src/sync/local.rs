//! The host's worktree as an [`Endpoint`]: the same replica code the sandbox's helper runs
//! (git's ignores, compare-and-swap writes through a staged rename), on the blocking pool.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clauderon_sync::watch::Watcher;
use clauderon_sync::{ApplyError, Entry, Probe, Replica, Scan};

use super::cycle::{Change, Endpoint, EndpointError};

/// How often at most the hash cache is written while the sync runs.
const STAMPS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The local worktree.
#[derive(Debug, Clone)]
pub struct LocalEndpoint {
    root: std::path::PathBuf,
    replica: Arc<Mutex<Replica>>,
    /// Kept on the directories each scan finds synced paths in, plus `extra` (git's).
    watch: Option<(Watcher, BTreeSet<PathBuf>)>,
}

impl LocalEndpoint {
    /// The worktree at `root` with `extra` ignore patterns, keeping its hash cache in
    /// `stamps` between daemon runs.
    pub fn new(
        root: std::path::PathBuf,
        extra: &[String],
        stamps: Option<std::path::PathBuf>,
    ) -> LocalEndpoint {
        let mut replica = Replica::new(root.clone(), extra);
        if let Some(file) = stamps {
            replica = replica.with_stamps_file(file);
        }
        LocalEndpoint {
            replica: Arc::new(Mutex::new(replica)),
            root,
            watch: None,
        }
    }

    /// Points `watcher` after every scan at the directories holding synced paths (so
    /// `target/` and `node_modules/` wake nothing), plus `extra`.
    pub fn with_watcher(mut self, watcher: Watcher, extra: BTreeSet<PathBuf>) -> LocalEndpoint {
        self.watch = Some((watcher, extra));
        self
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
        let watch = self.watch.clone();
        self.with(move |r| {
            let scan = r.scan();
            // Best effort: the cache only spares a restarted daemon some hashing.
            let _ = r.save_stamps(STAMPS_EVERY);
            if let (Ok(s), Some((w, extra))) = (&scan, watch) {
                let mut dirs = r.dirs_of(&s.entries);
                dirs.extend(extra);
                w.set_dirs(&dirs);
            }
            scan
        })
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
        self.with(move |r| r.apply_all(&changes)).await
    }
}
