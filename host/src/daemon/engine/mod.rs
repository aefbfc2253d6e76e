//! The session manager (DESIGN §9, §12): one concept per module, each adding its part to
//! [`Engine`]; this one holds the state every part uses (the recorder, the loaded backends, the
//! per-session runtimes).
//!
//! - `create`: the create flow; `lifecycle`: hibernate, wake, delete; `restart`; `checkpoints`;
//!   `reconcile` (daemon start) and `orphans` (`POST /api/reconcile`);
//! - the agent: `agent_start` (start, confirm, resume, re-attach), `agent_setup` (its unattended
//!   start in the sandbox), `agent_task` (the task owning its stream), `agent_state` (its hook
//!   reports);
//! - build caches: `cache_restore` (probe, plan, restore at create, the agent's cache env),
//!   `cache_save` (before hibernate and delete, on request), `cache_admin` (list, clear, the
//!   daily collection);
//! - `idle`: the hibernation timers; `proxy_link`: the credential proxy's side of a session;
//! - `plugin_calls`: typed plugin calls with their event sink; `sandbox_exec`: one short
//!   command in a sandbox; `backends`: the loaded plugins; `git`, `unpushed`: the repository;
//! - `sync`: the two-way sync of a session's local worktree with its sandbox.

mod agent_setup;
mod agent_start;
mod agent_state;
pub mod agent_task;

pub mod backends;
mod cache_admin;
mod cache_restore;
pub mod cache_save;
mod checkpoints;
mod create;
pub mod git;
pub mod idle;
mod lifecycle;
mod orphans;
pub mod plugin_calls;
pub mod proxy_link;
mod pull;
mod reconcile;
mod restart;
mod sandbox_exec;
pub mod sync;
pub mod unpushed;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use agent_task::{AgentInput, AgentOutput, LiveAgent};
pub use backends::Backends;

use crate::api::{ProgressEvent, SessionEvent};
use crate::config::Config;
use crate::installation::InstallationId;
use crate::plugins::ops::Instance;
use crate::session::{Event, SessionId, Status};
use crate::store::{SessionRecord, Store};

use super::bus::Recorder;
use super::error::EngineError;

/// The per-session runtime state (in memory only; the store holds everything durable).
#[derive(Debug)]
pub struct Runtime {
    /// Serializes lifecycle operations (create, hibernate, wake, delete, restore) on a session.
    pub op_lock: tokio::sync::Mutex<()>,
    /// Serializes starting or re-attaching the agent (two clients attaching at once).
    agent_start: tokio::sync::Mutex<()>,
    /// Held while a plugin `create` runs and its instance is stored. That call runs in a task
    /// of its own, so aborting the create flow (a delete during create) cannot drop the only
    /// handle to a sandbox the plugin made; delete waits on this before it reads the instance.
    sandbox_call: Arc<tokio::sync::Mutex<()>>,
    last_activity: Mutex<Instant>,
    attached: std::sync::atomic::AtomicUsize,
    agent: Mutex<Option<Arc<LiveAgent>>>,
    timer: Mutex<Option<tokio::task::AbortHandle>>,
    create_task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Counts the agent's hook reports (a start waits for the first one after it).
    reports: tokio::sync::watch::Sender<u64>,
    /// The session's sync task, when it syncs.
    sync: Mutex<Option<sync::SyncTask>>,
}

impl Runtime {
    fn new() -> Self {
        Self {
            op_lock: tokio::sync::Mutex::new(()),
            agent_start: tokio::sync::Mutex::new(()),
            sandbox_call: Arc::new(tokio::sync::Mutex::new(())),
            last_activity: Mutex::new(Instant::now()),
            attached: std::sync::atomic::AtomicUsize::new(0),
            agent: Mutex::new(None),
            timer: Mutex::new(None),
            create_task: Mutex::new(None),
            reports: tokio::sync::watch::Sender::new(0),
            sync: Mutex::new(None),
        }
    }

    /// How many hook reports the agent has sent so far.
    pub fn report_count(&self) -> u64 {
        *self.reports.borrow()
    }

    /// Counts one hook report.
    fn count_report(&self) {
        self.reports.send_modify(|n| *n += 1);
    }

    /// Resolves once more than `after` reports have arrived.
    pub async fn wait_first_report(&self, after: u64) {
        let mut rx = self.reports.subscribe();
        let _ = rx.wait_for(|n| *n > after).await;
    }

    /// Records activity (agent output, attached input): the idle timer starts over.
    pub fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
    }

    /// When the session last showed activity.
    pub fn last_activity(&self) -> Instant {
        *lock(&self.last_activity)
    }

    /// How many clients are attached now.
    pub fn attached(&self) -> usize {
        self.attached.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The live agent task, if one runs.
    pub fn agent(&self) -> Option<Arc<LiveAgent>> {
        lock(&self.agent).as_ref().filter(|a| !a.is_done()).cloned()
    }
}

/// Counts one attached client for as long as it lives.
#[derive(Debug)]
pub struct AttachGuard(Arc<Runtime>);

impl Drop for AttachGuard {
    fn drop(&mut self) {
        self.0
            .attached
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.touch();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The daemon's session engine. Shared as `Arc<Engine>` by routes and background tasks.
#[derive(Debug)]
pub struct Engine {
    recorder: Recorder,
    backends: Backends,
    config: Config,
    default_idle: Option<std::time::Duration>,
    installation: InstallationId,
    runtimes: Mutex<HashMap<SessionId, Arc<Runtime>>>,
    proxy: std::sync::OnceLock<Arc<proxy_link::SessionProxy>>,
    /// One lock per build-cache store and key: one writer per key.
    cache_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The clock build-cache ages are measured with.
    clock: crate::cache::Clock,
}

impl Engine {
    /// An engine over the store (wrapped in `recorder`), the loaded backends and the config;
    /// `default_idle` is the idle time of sessions that set none (see [`Engine::idle_timeout`]);
    /// `installation` labels every sandbox it creates, `clock` is the one build-cache ages are
    /// measured with.
    pub async fn new(
        recorder: Recorder,
        backends: Backends,
        config: Config,
        default_idle: Option<std::time::Duration>,
        installation: InstallationId,
        clock: crate::cache::Clock,
    ) -> Result<Arc<Self>, EngineError> {
        Ok(Arc::new(Self {
            recorder,
            backends,
            config,
            default_idle,
            installation,
            runtimes: Mutex::new(HashMap::new()),
            proxy: std::sync::OnceLock::new(),
            cache_locks: Mutex::new(HashMap::new()),
            clock,
        }))
    }

    /// The clock build-cache ages are measured with.
    pub fn cache_clock(&self) -> crate::cache::Clock {
        self.clock
    }

    /// The event recorder (store + live bus).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The session store.
    pub fn store(&self) -> &Store {
        self.recorder.store()
    }

    /// The loaded backends.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// This home's installation id (a label on every sandbox the engine creates).
    pub fn installation(&self) -> &InstallationId {
        &self.installation
    }

    /// The configuration the daemon started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The runtime of a session (made on first use).
    pub fn runtime(&self, id: SessionId) -> Arc<Runtime> {
        Arc::clone(
            lock(&self.runtimes)
                .entry(id)
                .or_insert_with(|| Arc::new(Runtime::new())),
        )
    }

    /// Drops the in-memory runtime of a session (after delete).
    pub(super) fn forget_runtime(&self, id: SessionId) {
        lock(&self.runtimes).remove(&id);
    }

    /// Marks one client attached until the guard drops.
    pub fn attach_guard(&self, id: SessionId) -> AttachGuard {
        let rt = self.runtime(id);
        rt.attached
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        rt.touch();
        AttachGuard(rt)
    }

    /// The session a user means by `query` (name or unique id prefix).
    pub async fn find(&self, query: &str) -> Result<SessionRecord, EngineError> {
        Ok(self.store().find(query).await?)
    }

    /// Appends an event and publishes it; failures are logged, never fatal (the engine keeps
    /// going when only the log could not be written).
    pub async fn emit(&self, id: SessionId, event: SessionEvent) {
        let (kind, data) = event.into_parts();
        if let Err(e) = self.recorder.append(id, &kind, data).await {
            tracing::warn!(session = %id, kind, error = %e, "cannot record an event");
        }
    }

    /// Records a `progress` event.
    pub async fn progress(&self, id: SessionId, stage: &str, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(session = %id, stage, "{message}");
        self.emit(
            id,
            SessionEvent::Progress(ProgressEvent::new(stage, message)),
        )
        .await;
    }

    /// Records a warning for the user (a `log` event) and logs it.
    pub(super) async fn warn(&self, id: SessionId, message: String) {
        tracing::warn!(session = %id, "{message}");
        self.emit(
            id,
            SessionEvent::Log {
                level: "warn".into(),
                message,
            },
        )
        .await;
    }

    /// Applies a status event (and publishes it).
    pub async fn set_status(
        &self,
        id: SessionId,
        event: Event,
        reason: Option<String>,
    ) -> Result<Status, EngineError> {
        Ok(self.recorder.status(id, event, reason).await?.to)
    }

    /// Marks a session failed with `reason` (logged when even that is impossible).
    pub async fn fail(&self, id: SessionId, reason: &str) {
        tracing::warn!(session = %id, "session failed: {reason}");
        self.emit(
            id,
            SessionEvent::Error {
                message: reason.to_owned(),
            },
        )
        .await;
        if let Err(e) = self
            .set_status(id, Event::Failed, Some(reason.to_owned()))
            .await
        {
            tracing::warn!(session = %id, error = %e, "cannot mark the session failed");
        }
    }

    /// The stored instance of a session, if its sandbox exists.
    pub fn instance_of(rec: &SessionRecord) -> Option<Instance> {
        rec.instance_id.as_ref().map(|id| Instance {
            id: id.clone(),
            state: rec
                .instance_state
                .clone()
                .unwrap_or(serde_json::Value::Null),
        })
    }

    /// Stores the instance a plugin returned.
    pub async fn save_instance(&self, id: SessionId, inst: &Instance) -> Result<(), EngineError> {
        self.store()
            .set_instance(id, Some(inst.id.clone()), Some(inst.state.clone()))
            .await?;
        Ok(())
    }

    /// Detaches every live agent (the agents keep running in their sandboxes) before exit.
    pub async fn shutdown(&self) {
        let rts: Vec<Arc<Runtime>> = lock(&self.runtimes).values().cloned().collect();
        for rt in rts {
            if let Some(t) = lock(&rt.timer).take() {
                t.abort();
            }
            if let Some(a) = rt.agent() {
                a.detach().await;
            }
        }
    }
}
