//! The two-way sync of a session (DESIGN §15): the local worktree
//! (`$CLAUDERON_HOME/worktrees/<name>`, a `git worktree` of the user's repository on the
//! session branch) kept in sync with the sandbox's workspace through the plugin's
//! `sync_stream`. One task per synced session: local changes come from an inotify watcher
//! (the same one the sandbox's helper runs), the
//! sandbox's from its helper's `Changed`; each wakes a cycle ([`crate::sync::cycle`]) whose
//! state is written to the store. The helper's stream is closed after a quiet spell and never
//! opened while the session is not running, so the sync never keeps a sandbox awake nor wakes
//! it: local edits made meanwhile wait (shown as pending) for the next wake.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clauderon_sync::Entry;
use tokio::sync::{mpsc, oneshot};

use crate::api::SessionEvent;
use crate::plugins::Capabilities;
use crate::plugins::labels::config_keys;
use crate::plugins::ops::SyncStreamRequest;
use crate::session::{SessionId, Status};
use crate::store::{SessionRecord, SyncRecord};
use crate::sync::cycle::{self, CycleOptions, Kept};
use crate::sync::history::{self, HistoryInput, HistoryState};
use crate::sync::local::LocalEndpoint;
use crate::sync::remote::RemoteEndpoint;
use crate::sync::{Endpoint, Side};

use super::super::error::EngineError;
use super::Engine;

/// How long local events settle before a cycle (editors write in bursts).
const DEBOUNCE: Duration = Duration::from_millis(30);
/// While the sync cannot run, local changes are counted at most this often.
const PENDING_SETTLE: Duration = Duration::from_millis(300);

/// After this long without a change the helper's stream is closed (default 60 s,
/// `CLAUDERON_SYNC_QUIET_MS` overrides it, for tests).
fn quiet_spell() -> Duration {
    std::env::var("CLAUDERON_SYNC_QUIET_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis)
}

/// A command for a session's sync task.
#[derive(Debug)]
pub enum SyncCmd {
    /// Something may have changed (a wake, agent activity): run a cycle if possible.
    Nudge,
    /// The next cycle reconciles as a new epoch (after a checkpoint restore); ends a hold.
    NewEpoch,
    /// Hold between two cycles (the sandbox's files are about to be replaced): the stream is
    /// closed, the next cycle is marked a new epoch, and none runs until `NewEpoch`. Answers
    /// once held.
    Hold(oneshot::Sender<()>),
    /// One cycle now; answers when it finished.
    Once(oneshot::Sender<Result<(), String>>),
    /// The next cycle may propagate a mass deletion.
    ConfirmDeletions,
    /// Close the helper's stream (the session hibernates).
    Pause,
    /// Stop or start the sync between two cycles; answers once it took effect.
    SetRunning(bool, oneshot::Sender<()>),
    /// Diverged history: the other side's branch follows `take`'s (done by the next cycle).
    TakeHistory {
        /// The side whose commits win.
        take: Side,
        /// The answer, once a cycle ran.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Resolve a held conflict (done by the task, so no cycle's write can undo it).
    Resolve {
        /// The path.
        path: String,
        /// The side whose version wins.
        take: Side,
        /// The answer.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// The live part of a session's sync (the store holds the durable part).
#[derive(Debug, Default, Clone)]
pub struct LiveSync {
    /// Whether the helper's stream is open.
    pub connected: bool,
    /// Local paths changed since the last agreed state.
    pub pending_local: usize,
    /// The last cycle's error, if it failed.
    pub last_error: Option<String>,
    /// Cycles completed since the daemon started this sync (a burst of edits should cost a
    /// few, an unchanged tree none).
    pub cycles: u64,
}

/// The handle to a running sync task.
#[derive(Debug)]
pub struct SyncTask {
    tx: mpsc::UnboundedSender<SyncCmd>,
    task: tokio::task::AbortHandle,
    /// Its live state.
    pub live: Arc<std::sync::Mutex<LiveSync>>,
}

impl Drop for SyncTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Runs `git` with `args` in `dir` (blocking pool), returning trimmed stdout.
pub(super) async fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let (dir, args): (PathBuf, Vec<String>) = (
        dir.to_path_buf(),
        args.iter().map(|s| (*s).to_owned()).collect(),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(&args)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

impl Engine {
    /// Where a session's local worktree goes.
    pub fn sync_worktree_path(&self, name: &str) -> PathBuf {
        self.config().home_root().join("worktrees").join(name)
    }

    /// Where a session's conflict store is.
    pub fn sync_conflict_dir(&self, id: SessionId) -> PathBuf {
        self.config()
            .home_root()
            .join("sync")
            .join(id.to_string())
            .join("conflicts")
    }

    /// Where the local side keeps its hash cache between daemon runs.
    fn sync_stamps_file(&self, id: SessionId) -> PathBuf {
        self.config()
            .home_root()
            .join("sync")
            .join(id.to_string())
            .join("stamps")
    }

    /// Whether a new session of `backend` syncs: its `--sync`/`--no-sync`, else the backend
    /// table's `sync` key.
    pub fn sync_wanted(&self, rec: &SessionRecord) -> bool {
        rec.options.sync.unwrap_or_else(|| {
            self.config()
                .backend_table(&rec.backend)
                .and_then(|t| t.get(config_keys::SYNC))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        })
    }

    fn sync_ignore(&self, backend: &str) -> Vec<String> {
        self.config()
            .backend_table(backend)
            .and_then(|t| t.get(config_keys::SYNC_IGNORE))
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Makes the local worktree of a new synced session at `commit` (the commit the sandbox
    /// cloned) on the session branch, records the sync and starts it.
    pub(super) async fn sync_setup(
        self: &Arc<Self>,
        rec: &SessionRecord,
        commit: &str,
    ) -> Result<(), EngineError> {
        let client = self.backends().get(&rec.backend)?;
        if !client.capabilities().contains(Capabilities::SYNC_STREAM) {
            return Err(EngineError::BadRequest(format!(
                "backend `{}` cannot sync a local worktree (it has no sync_stream); create \
                 the session without --sync",
                client.name()
            )));
        }
        let path = self.sync_worktree_path(rec.name.as_str());
        let branch = session_branch(rec);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                EngineError::Internal(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let p = path.display().to_string();
        let made = git(
            Path::new(&rec.repository),
            &["worktree", "add", "-q", "-b", &branch, &p, commit],
        )
        .await;
        if let Err(e) = made {
            // The branch exists already (an earlier session of this name): use it as it is.
            git(
                Path::new(&rec.repository),
                &["worktree", "add", "-q", &p, &branch],
            )
            .await
            .map_err(|e2| {
                EngineError::Internal(format!("cannot make the local worktree {p}: {e}; {e2}"))
            })?;
        }
        self.store()
            .put_sync_record(
                rec.id,
                SyncRecord {
                    worktree: p.clone(),
                    running: true,
                    paused: None,
                    agreed_head: Some(commit.to_owned()),
                    last_sync_at: None,
                    ..SyncRecord::default()
                },
            )
            .await?;
        self.progress(rec.id, "sync", format!("syncing the local worktree {p}"))
            .await;
        self.sync_spawn(rec.id);
        Ok(())
    }

    /// Starts a session's sync task if it syncs and none runs.
    pub fn sync_spawn(self: &Arc<Self>, id: SessionId) {
        let rt = self.runtime(id);
        let mut slot = super::lock(&rt.sync);
        if slot.is_some() {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let live = Arc::new(std::sync::Mutex::new(LiveSync::default()));
        let engine = Arc::clone(self);
        let l2 = Arc::clone(&live);
        let task = tokio::spawn(async move { engine.sync_loop(id, rx, l2).await }).abort_handle();
        *slot = Some(SyncTask { tx, task, live });
    }

    /// Marks the next cycle a new epoch.
    async fn sync_mark_epoch(&self, id: SessionId) {
        if let Ok(mut st) = self.store().sync_state(id).await {
            st.new_epoch = true;
            let _ = self.store().put_sync_state(id, st).await;
        }
    }

    /// Holds a synced session's sync between two cycles (before its sandbox's files are
    /// replaced); `SyncCmd::NewEpoch` ends the hold. Nothing for a session that does not sync.
    pub(super) async fn sync_hold(&self, id: SessionId) {
        let (tx, rx) = oneshot::channel();
        if self.sync_send(id, SyncCmd::Hold(tx)) {
            let _ = tokio::time::timeout(Duration::from_secs(600), rx).await;
        }
    }

    /// Sends a command to a session's sync task (nothing when it has none).
    pub fn sync_send(&self, id: SessionId, cmd: SyncCmd) -> bool {
        let rt = self.runtime(id);
        let slot = super::lock(&rt.sync);
        slot.as_ref().is_some_and(|t| t.tx.send(cmd).is_ok())
    }

    /// The live state of a session's sync task.
    pub fn sync_live(&self, id: SessionId) -> Option<LiveSync> {
        let rt = self.runtime(id);
        let slot = super::lock(&rt.sync);
        slot.as_ref()
            .map(|t| t.live.lock().map(|g| g.clone()).unwrap_or_default())
    }

    /// Stops a session's sync task.
    pub fn sync_stop_task(&self, id: SessionId) {
        let rt = self.runtime(id);
        super::lock(&rt.sync).take();
    }

    /// Removes a deleted session's sync: the task, the worktree (its branch stays), the rows.
    pub(super) async fn sync_remove(&self, rec: &SessionRecord) {
        self.sync_stop_task(rec.id);
        let Ok(Some(s)) = self.store().sync_record(rec.id).await else {
            return;
        };
        if let Err(e) = git(
            Path::new(&rec.repository),
            &["worktree", "remove", "--force", &s.worktree],
        )
        .await
        {
            tracing::warn!(session = %rec.id, "cannot remove the worktree {}: {e}", s.worktree);
        }
        let _ = self.store().remove_sync(rec.id).await;
        // The conflict store beside it stays when it holds anything: it may hold the only copy
        // of a version (`delete` says where it is). An empty one goes, and so does the
        // session's directory when nothing else is left in it.
        let _ = std::fs::remove_file(self.sync_stamps_file(rec.id));
        let conflicts = self.sync_conflict_dir(rec.id);
        if clauderon_sync::watch::holds_no_file(&conflicts) {
            let _ = std::fs::remove_dir_all(&conflicts);
        }
        if let Some(dir) = conflicts.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }

    fn keep_version(dir: &Path, k: &Kept<'_>) -> Result<(), String> {
        store_version(dir, side_dir(k.side), k.path, k.entry, k.bytes)
    }

    async fn sync_loop(
        self: Arc<Self>,
        id: SessionId,
        mut rx: mpsc::UnboundedReceiver<SyncCmd>,
        live: Arc<std::sync::Mutex<LiveSync>>,
    ) {
        let set_live = |f: &dyn Fn(&mut LiveSync)| {
            if let Ok(mut g) = live.lock() {
                f(&mut g);
            }
        };
        let Ok(Some(srec)) = self.store().sync_record(id).await else {
            return;
        };
        let Ok(rec) = self.store().get(id).await else {
            return;
        };
        let root = PathBuf::from(&srec.worktree);
        let extra = self.sync_ignore(&rec.backend);
        let mut local = LocalEndpoint::new(root.clone(), &extra, Some(self.sync_stamps_file(id)));
        let (ltx, mut lrx) = mpsc::unbounded_channel::<()>();
        // The worktree's own git directory (inside the user's repository): a commit, reset or
        // checkout rewrites its `HEAD` reflog, which wakes history sync.
        let wt_git = {
            let r = root.clone();
            tokio::task::spawn_blocking(move || clauderon_sync::history::git_dir(&r).ok())
                .await
                .ok()
                .flatten()
        };
        // The worktree is watched where it holds synced paths (each local scan says where), so
        // a build in `target/` or an install in `node_modules/` wakes nothing, and opening a
        // file (our own reads, editors, git) is no event at all. In the worktree's git
        // directory only `HEAD` (and its reflog) counts: a commit or checkout there.
        let git_dirs: BTreeSet<PathBuf> = wt_git
            .iter()
            .flat_map(|g| [g.clone(), g.join("logs")])
            .collect();
        let _stop_watch = match clauderon_sync::watch::Watcher::new() {
            Ok(w) => {
                let mut first = git_dirs.clone();
                first.insert(root.clone());
                w.set_dirs(&first);
                local = local.with_watcher(w.clone(), git_dirs.clone());
                let stop = w.stop_on_drop();
                let (root, git_dirs) = (root.clone(), git_dirs.clone());
                std::thread::spawn(move || {
                    w.run_filtered(
                        move |dir, name| {
                            if git_dirs.contains(dir) {
                                name == "HEAD"
                            } else {
                                !(dir == root.as_path() && name == ".git")
                            }
                        },
                        move || {
                            let _ = ltx.send(());
                        },
                    )
                });
                Some(stop)
            }
            Err(e) => {
                self.warn(id, format!("sync: no local watcher: {e}")).await;
                None
            }
        };
        let conflict_dir = self.sync_conflict_dir(id);
        let mut remote: Option<RemoteEndpoint> = None;
        let mut dirty = true;
        let mut opts = CycleOptions::default();
        let mut waiters: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
        let mut take: Option<(Side, oneshot::Sender<Result<(), String>>)> = None;
        let history = HistoryTarget::of(&rec);
        let mut held = false;
        let mut last_activity = Instant::now();
        let mut backoff = Duration::from_millis(200);
        // While the sync cannot run, local changes are counted at most every `PENDING_SETTLE`,
        // not once per event: a build or a checkout would otherwise rescan the tree back to
        // back.
        let mut recount_at: Option<Instant> = None;
        // The last wake-up was a user's command, not a file event: no debounce.
        let mut commanded = false;
        loop {
            let running =
                matches!(self.store().get(id).await, Ok(r) if r.status == Status::Running);
            let srec = match self.store().sync_record(id).await {
                Ok(Some(s)) => s,
                _ => return,
            };
            let can_sync = running && srec.running && !held;
            if (dirty || !waiters.is_empty() || take.is_some()) && can_sync {
                // Events settle first; a command (start, once, resolve) runs at once.
                if !std::mem::take(&mut commanded) {
                    tokio::time::sleep(DEBOUNCE).await;
                }
                while lrx.try_recv().is_ok() {}
                if remote.is_none() {
                    match self.sync_connect(id, &extra).await {
                        Ok(r) => {
                            remote = Some(r);
                            set_live(&|l| l.connected = true);
                        }
                        Err(e) => {
                            set_live(&|l| l.last_error = Some(e.clone()));
                            for w in waiters.drain(..) {
                                let _ = w.send(Err(e.clone()));
                            }
                            if let Some((_, w)) = take.take() {
                                let _ = w.send(Err(e.clone()));
                            }
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                            continue;
                        }
                    }
                }
                let Some(r) = remote.as_mut() else { continue };
                let taking = take.take();
                let result = self
                    .sync_cycle(
                        id,
                        &srec,
                        &mut local,
                        r,
                        Cycle {
                            opts,
                            conflict_dir: &conflict_dir,
                            history: &history,
                            take: taking.as_ref().map(|t| t.0),
                        },
                    )
                    .await;
                if let Some((_, w)) = taking {
                    let _ = w.send(match &result {
                        Ok(_) => match self.store().sync_record(id).await {
                            Ok(Some(r)) if r.history == HistoryState::InStep => Ok(()),
                            Ok(Some(r)) => Err(r
                                .history_reason
                                .unwrap_or_else(|| "history is not in step".into())),
                            _ => Err("the sync is gone".into()),
                        },
                        Err(e) => Err(e.clone()),
                    });
                }
                last_activity = Instant::now();
                match result {
                    Ok(changed) => {
                        backoff = Duration::from_millis(200);
                        dirty = changed;
                        opts = CycleOptions::default();
                        set_live(&|l| {
                            l.last_error = None;
                            l.pending_local = 0;
                            l.cycles += 1;
                        });
                        if !changed {
                            for w in waiters.drain(..) {
                                let _ = w.send(Ok(()));
                            }
                        }
                    }
                    Err(e) => {
                        // The stream is gone: reconnect and reconcile (nothing is lost: the
                        // ancestor moved only for what was applied).
                        tracing::warn!(session = %id, "sync: {e}; reconnecting");
                        remote = None;
                        set_live(&|l| {
                            l.connected = false;
                            l.last_error = Some(e.clone());
                        });
                        dirty = true;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
                continue;
            }
            if !can_sync {
                commanded = false;
                let why = if srec.running {
                    "the session is not running; wake it first"
                } else {
                    "the sync is stopped; `clauderon sync NAME --start`"
                };
                for w in waiters.drain(..) {
                    let _ = w.send(Err(why.to_owned()));
                }
                if let Some((_, w)) = take.take() {
                    let _ = w.send(Err(why.to_owned()));
                }
                if let Some(r) = remote.take() {
                    r.close().await;
                    set_live(&|l| l.connected = false);
                }
                if dirty {
                    let now = Instant::now();
                    let at = *recount_at.get_or_insert(now + PENDING_SETTLE);
                    if at <= now {
                        // Count what waits for the sandbox; nothing is sent, nothing wakes it.
                        while lrx.try_recv().is_ok() {}
                        let pending = match (local.scan().await, self.store().sync_state(id).await)
                        {
                            (Ok(scan), Ok(st)) => cycle::pending(&st.ancestor, &scan.entries),
                            _ => 0,
                        };
                        set_live(&|l| l.pending_local = pending);
                        dirty = false;
                        recount_at = None;
                    }
                }
            } else {
                recount_at = None;
            }
            let quiet_at = last_activity + quiet_spell();
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return };
                    commanded = !matches!(cmd, SyncCmd::Nudge | SyncCmd::Pause);
                    match cmd {
                        SyncCmd::Nudge => dirty = true,
                        SyncCmd::NewEpoch => {
                            self.sync_mark_epoch(id).await;
                            remote = None;
                            held = false;
                            dirty = true;
                        }
                        SyncCmd::Hold(reply) => {
                            self.sync_mark_epoch(id).await;
                            if let Some(r) = remote.take() {
                                r.close().await;
                            }
                            set_live(&|l| l.connected = false);
                            held = true;
                            let _ = reply.send(());
                        }
                        SyncCmd::Once(w) => waiters.push(w),
                        SyncCmd::TakeHistory { take: side, reply } => take = Some((side, reply)),
                        SyncCmd::ConfirmDeletions => {
                            opts.allow_mass_deletion = true;
                            dirty = true;
                        }
                        SyncCmd::Resolve { path, take, reply } => {
                            let done = match self.store().sync_state(id).await {
                                Ok(mut st) => match crate::sync::resolve::resolve(&mut st, &path, take) {
                                    Ok(()) => self
                                        .store()
                                        .put_sync_state(id, st)
                                        .await
                                        .map_err(|e| e.to_string()),
                                    Err(e) => Err(e.to_string()),
                                },
                                Err(e) => Err(e.to_string()),
                            };
                            let _ = reply.send(done);
                            dirty = true;
                        }
                        SyncCmd::SetRunning(on, reply) => {
                            if let Ok(Some(mut r)) = self.store().sync_record(id).await {
                                r.running = on;
                                if on {
                                    r.paused = None;
                                }
                                let _ = self.store().put_sync_record(id, r).await;
                            }
                            if !on && let Some(r) = remote.take() {
                                r.close().await;
                                set_live(&|l| l.connected = false);
                            }
                            let _ = reply.send(());
                            dirty = true;
                        }
                        SyncCmd::Pause => {
                            if let Some(r) = remote.take() {
                                r.close().await;
                            }
                            set_live(&|l| l.connected = false);
                        }
                    }
                }
                Some(()) = lrx.recv() => {
                    tracing::trace!(session = %id, "sync: a local change");
                    dirty = true;
                }
                r = async { match remote.as_mut() { Some(r) => r.wait_changed().await, None => std::future::pending().await } } => {
                    match r {
                        Ok(()) => {
                            tracing::trace!(session = %id, "sync: a change in the sandbox");
                            dirty = true;
                        }
                        Err(e) => {
                            tracing::warn!(session = %id, "sync: {e}; reconnecting");
                            remote = None;
                            set_live(&|l| l.connected = false);
                            dirty = true;
                        }
                    }
                }
                () = async {
                    if let Some(t) = recount_at {
                        tokio::time::sleep_until(t.into()).await;
                    }
                }, if recount_at.is_some() => {}
                () = tokio::time::sleep_until(quiet_at.into()), if remote.is_some() => {
                    if let Some(r) = remote.take() {
                        r.close().await;
                    }
                    set_live(&|l| l.connected = false);
                }
            }
        }
    }

    async fn sync_connect(
        &self,
        id: SessionId,
        extra: &[String],
    ) -> Result<RemoteEndpoint, String> {
        let rec = self.store().get(id).await.map_err(|e| e.to_string())?;
        let client = self
            .backends()
            .get(&rec.backend)
            .map_err(|e| e.to_string())?;
        let instance = Engine::instance_of(&rec).ok_or("the session has no sandbox")?;
        let req = SyncStreamRequest {
            instance,
            root: self.workspace_for(&rec.backend),
            exclude: extra.to_vec(),
            watch: true,
        };
        let (_, stream) = client
            .sync_stream(&req)
            .await
            .map_err(|e| format!("starting the sync helper: {}", e.message))?;
        RemoteEndpoint::connect(stream).await.map_err(|e| e.0)
    }

    /// One cycle with its bookkeeping; `Ok(true)` when another cycle should follow.
    async fn sync_cycle(
        &self,
        id: SessionId,
        srec: &SyncRecord,
        local: &mut LocalEndpoint,
        remote: &mut RemoteEndpoint,
        cy: Cycle<'_>,
    ) -> Result<bool, String> {
        let (opts, conflict_dir) = (cy.opts, cy.conflict_dir);
        let started = Instant::now();
        let mut state = self
            .store()
            .sync_state(id)
            .await
            .map_err(|e| e.to_string())?;
        let dir = conflict_dir.to_path_buf();
        let mut keep = move |k: Kept<'_>| Engine::keep_version(&dir, &k);
        let loaded = started.elapsed();
        let before = state.clone();
        let result = cycle::run(&mut state, local, remote, opts, &mut keep).await;
        let ran = started.elapsed();
        // What was applied is recorded even when the stream broke midway. This loop is the
        // only writer of the state while it runs, so what it loaded is what is stored.
        self.store()
            .put_sync_state_since(id, before, state)
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(
            session = %id,
            load_ms = loaded.as_millis() as u64,
            save_ms = (started.elapsed() - ran).as_millis() as u64,
            "sync state"
        );
        let report = result.map_err(|e| e.0)?;
        // Re-read: `sync --stop/--start` may have changed the record during the cycle.
        let mut rec = match self.store().sync_record(id).await {
            Ok(Some(r)) => r,
            _ => srec.clone(),
        };
        let before = rec.clone();
        rec.paused = report.paused.clone();
        rec.last_sync_at = Some(now_ms());
        // The commits, once the files are done (a paused cycle leaves them too).
        let mut again = false;
        let heads_differ = report.local_head != report.remote_head
            || rec.agreed_head != report.local_head
            || rec.history != HistoryState::InStep;
        if report.paused.is_none() && (heads_differ || cy.take.is_some()) {
            let h = history::step(
                HistoryInput {
                    worktree: local.root().to_path_buf(),
                    branch: cy.history.branch.clone(),
                    keep_ref: cy.history.keep_ref.clone(),
                    agreed: rec.agreed_head.clone(),
                    local: report.local_head.clone(),
                    remote: report.remote_head.clone(),
                    take: cy.take,
                },
                remote,
            )
            .await
            .map_err(|e| e.0)?;
            if h.state == HistoryState::Diverged
                && rec.history != HistoryState::Diverged
                && let Some(why) = &h.reason
            {
                self.warn(id, format!("sync: {why}")).await;
            }
            if h.to_local || h.to_remote {
                tracing::info!(session = %id, to_local = h.to_local, to_sprite = h.to_remote, "history sync");
            }
            again = h.raced || h.to_local || h.to_remote;
            rec.agreed_head = h.agreed;
            rec.history = h.state;
            rec.history_reason = h.reason;
        }
        if rec != before {
            let _ = self.store().put_sync_record(id, rec).await;
        }
        if let Some(why) = &report.paused
            && srec.paused.as_ref() != Some(why)
        {
            self.warn(
                id,
                format!(
                    "sync paused: {why}; `clauderon sync NAME --confirm-deletions` propagates \
                     it, `clauderon sync NAME --restore` brings the files back from the other side"
                ),
            )
            .await;
        }
        for c in &report.conflicts {
            let stored = conflict_dir.display().to_string();
            for (side, e, b) in [
                (Side::Local, &c.conflict.local, &c.local),
                (Side::Remote, &c.conflict.remote, &c.remote),
            ] {
                if let Some(b) = b
                    && let Err(err) =
                        store_version(conflict_dir, side_dir(side), &c.conflict.path, e, b)
                {
                    self.warn(id, format!("sync: cannot store a conflict version: {err}"))
                        .await;
                }
            }
            self.emit(
                id,
                SessionEvent::SyncConflict {
                    path: c.conflict.path.clone(),
                    stored,
                },
            )
            .await;
        }
        for (side, p) in &report.kept {
            self.warn(
                id,
                format!(
                    "sync: {p} ({} version) gave way to a directory on the other side; it is kept \
                     in {}",
                    side.name(),
                    conflict_dir.join(side_dir(*side)).join(p).display()
                ),
            )
            .await;
        }
        for (p, why) in report.failed.iter().take(5) {
            tracing::warn!(session = %id, "sync: {p}: {why}");
        }
        if report.changed() {
            tracing::info!(
                session = %id,
                to_local = report.to_local,
                to_sprite = report.to_remote,
                "sync cycle"
            );
        }
        Ok(report.paused.is_none() && (report.changed() || report.raced > 0 || again))
    }
}

/// One cycle's settings.
struct Cycle<'a> {
    opts: CycleOptions,
    conflict_dir: &'a Path,
    history: &'a HistoryTarget,
    take: Option<Side>,
}

/// Which branch history sync keeps in step, and where the sandbox's head is kept locally.
#[derive(Debug, Clone)]
struct HistoryTarget {
    branch: String,
    keep_ref: String,
}

impl HistoryTarget {
    fn of(rec: &SessionRecord) -> HistoryTarget {
        HistoryTarget {
            branch: session_branch(rec),
            keep_ref: format!("refs/clauderon/sprite/{}", rec.name),
        }
    }
}

/// The local branch of a session's commits: its `--branch`, else `clauderon/<name>`.
pub(super) fn session_branch(rec: &SessionRecord) -> String {
    rec.branch
        .clone()
        .unwrap_or_else(|| format!("clauderon/{}", rec.name))
}

/// Whether `p` is inside the worktree's git directory.
/// The side a user names: `local`, or `sprite` (also `remote`, `sandbox`).
fn side_of(take: &str) -> Result<Side, EngineError> {
    match take {
        "local" => Ok(Side::Local),
        "sprite" | "remote" | "sandbox" => Ok(Side::Remote),
        other => Err(EngineError::BadRequest(format!(
            "take `{other}`: say `local` or `sprite`"
        ))),
    }
}

fn side_dir(side: Side) -> &'static str {
    side.name()
}

/// Writes one version into the conflict store (`<dir>/<side>/<path>`; a link as a link).
fn store_version(
    dir: &Path,
    side: &str,
    path: &str,
    e: &Entry,
    bytes: &[u8],
) -> Result<(), String> {
    clauderon_sync::check_path(path).map_err(|e| e.0)?;
    let full = dir.join(side).join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let _ = std::fs::remove_file(&full);
    match e {
        Entry::Link { target } => std::os::unix::fs::symlink(target, &full),
        Entry::File { .. } => std::fs::write(&full, bytes),
    }
    .map_err(|e| format!("{}: {e}", full.display()))
}

impl Engine {
    /// The sync of a session as the API shows it.
    pub async fn sync_view(&self, id: SessionId) -> Result<crate::api::SyncView, EngineError> {
        let srec = self.store().sync_record(id).await?.ok_or_else(|| {
            EngineError::Conflict(
                "the session has no synced worktree (create it with --sync)".into(),
            )
        })?;
        let rec = self.store().get(id).await?;
        let (synced, conflicts) = self.store().sync_summary(id).await?;
        let live = self.sync_live(id).unwrap_or_default();
        let state = if !srec.running {
            "stopped"
        } else if srec.paused.is_some() || rec.status != Status::Running {
            "paused"
        } else if !conflicts.is_empty() {
            "conflicts"
        } else if live.connected {
            "watching"
        } else {
            "idle"
        };
        let reason = srec.paused.clone().or_else(|| {
            (srec.running && rec.status != Status::Running)
                .then(|| format!("the session is {}", rec.status))
        });
        let last_sync = srec.last_sync_at.and_then(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
        });
        Ok(crate::api::SyncView {
            state: state.to_owned(),
            reason,
            worktree: srec.worktree.clone(),
            pending_local: live.pending_local,
            synced,
            conflicts: conflicts
                .values()
                .map(|c| crate::api::SyncConflictView {
                    path: c.path.clone(),
                    local: c.local.describe(),
                    sprite: c.remote.describe(),
                })
                .collect(),
            conflict_store: self.sync_conflict_dir(id).display().to_string(),
            last_sync,
            agreed_head: srec.agreed_head.clone(),
            history: srec.history.name().to_owned(),
            history_reason: srec.history_reason.clone(),
            last_error: live.last_error,
            cycles: live.cycles,
        })
    }

    /// Starts, stops, runs once, confirms a mass deletion or restores (a new epoch).
    pub async fn sync_action(
        self: &Arc<Self>,
        id: SessionId,
        action: crate::api::SyncAction,
    ) -> Result<crate::api::SyncView, EngineError> {
        use crate::api::SyncAction;
        let mut srec = self.store().sync_record(id).await?.ok_or_else(|| {
            EngineError::Conflict(
                "the session has no synced worktree (create it with --sync)".into(),
            )
        })?;
        match action {
            SyncAction::Start | SyncAction::Stop => {
                // Through the task: it takes effect between two cycles, never inside one.
                self.sync_spawn(id);
                let (tx, rx) = oneshot::channel();
                if self.sync_send(id, SyncCmd::SetRunning(action == SyncAction::Start, tx)) {
                    let _ = tokio::time::timeout(Duration::from_secs(600), rx).await;
                } else {
                    srec.running = action == SyncAction::Start;
                    self.store().put_sync_record(id, srec).await?;
                }
            }
            SyncAction::ConfirmDeletions | SyncAction::Restore => {
                srec.paused = None;
                srec.running = true;
                self.store().put_sync_record(id, srec).await?;
                self.sync_spawn(id);
                self.sync_send(
                    id,
                    if action == SyncAction::Restore {
                        SyncCmd::NewEpoch
                    } else {
                        SyncCmd::ConfirmDeletions
                    },
                );
            }
            SyncAction::Once => {
                self.sync_ask(id, SyncCmd::Once)
                    .await
                    .map_err(|e| EngineError::Conflict(format!("sync: {e}")))?;
            }
        }
        self.sync_view(id).await
    }

    /// Resolves a held conflict by taking `take` (`local` or `sprite`), then syncs.
    pub async fn sync_resolve(
        self: &Arc<Self>,
        id: SessionId,
        path: &str,
        take: &str,
    ) -> Result<crate::api::SyncView, EngineError> {
        let side = side_of(take)?;
        self.sync_ask(id, |reply| SyncCmd::Resolve {
            path: path.to_owned(),
            take: side,
            reply,
        })
        .await
        .map_err(EngineError::BadRequest)?;
        self.sync_view(id).await
    }

    /// Diverged history: the other side's branch follows `take`'s (`local` or `sprite`), by
    /// the next cycle; the commits of the side given up stay in its reflog (and the sprite's
    /// in the local repository under `refs/clauderon/sprite/NAME`).
    pub async fn sync_take_history(
        self: &Arc<Self>,
        id: SessionId,
        take: &str,
    ) -> Result<crate::api::SyncView, EngineError> {
        let side = side_of(take)?;
        if self.store().sync_record(id).await?.is_none() {
            return Err(EngineError::Conflict(
                "the session has no synced worktree (create it with --sync)".into(),
            ));
        }
        self.sync_ask(id, |reply| SyncCmd::TakeHistory { take: side, reply })
            .await
            .map_err(|e| EngineError::Conflict(format!("history sync: {e}")))?;
        self.sync_view(id).await
    }

    /// Sends the task a command that answers, and waits for the answer.
    async fn sync_ask(
        self: &Arc<Self>,
        id: SessionId,
        cmd: impl FnOnce(oneshot::Sender<Result<(), String>>) -> SyncCmd,
    ) -> Result<(), String> {
        self.sync_spawn(id);
        let (tx, rx) = oneshot::channel();
        self.sync_send(id, cmd(tx));
        match tokio::time::timeout(Duration::from_secs(600), rx).await {
            Ok(Ok(r)) => r,
            _ => Err("the sync task did not answer within 600 s".into()),
        }
    }
}
