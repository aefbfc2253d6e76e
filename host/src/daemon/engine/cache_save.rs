//! Saving build caches (DESIGN §16): before hibernate and delete, and on `clauderon cache save`.
//! Only while the agent is idle and no build runs (a tar of a `target/` being written would be
//! inconsistent), skipped when the store already has the exact key (entries are immutable),
//! one writer per key (a lock per store and key; the plugin's store replaces an entry whole,
//! so the last complete save wins and a half-written one is never visible), then the store is
//! trimmed to its size cap, least recently used entries first.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::AgentState;
use crate::api::CacheSaveOutcome;
use crate::cache::{Plan, gc, probe};
use crate::plugins::ops::{self, CacheDeleteRequest, CacheSaveRequest, Instance};
use crate::plugins::{Capabilities, PluginClient};
use crate::session::SessionId;
use crate::store::{CacheEntryRecord, CacheStoreRecord, SessionRecord};

use super::super::error::EngineError;
use super::cache_restore::{store_instance, transport_text};
use super::{Engine, sandbox_exec};

/// How long a save before hibernate or delete waits for a running build to end.
const BUSY_WAIT: Duration = Duration::from_secs(20);
/// How often it looks again.
const BUSY_POLL: Duration = Duration::from_secs(2);

/// What asked for a save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveTrigger {
    /// The session is about to hibernate.
    Hibernate,
    /// The session is about to be deleted (its agent was stopped already).
    Delete,
    /// `clauderon cache save` (`POST /api/sessions/{ref}/cache/save`).
    Request,
}

impl SaveTrigger {
    fn what(self) -> &'static str {
        match self {
            SaveTrigger::Hibernate => "before hibernating",
            SaveTrigger::Delete => "before deleting",
            SaveTrigger::Request => "on request",
        }
    }
}

impl Engine {
    /// Saves a session's build caches before hibernate or delete; problems are warnings (the
    /// hibernate or delete goes on).
    pub(super) async fn save_caches_before(self: &Arc<Self>, id: SessionId, trigger: SaveTrigger) {
        match self.save_caches(id, trigger).await {
            Ok(_) => {}
            Err(e) => {
                self.warn(
                    id,
                    format!("build caches were not saved {}: {e}", trigger.what()),
                )
                .await;
            }
        }
    }

    /// Saves every cache of the session's plan; one outcome per cache. With
    /// [`SaveTrigger::Request`], a working agent or a running build is a conflict.
    pub async fn save_caches(
        self: &Arc<Self>,
        id: SessionId,
        trigger: SaveTrigger,
    ) -> Result<Vec<CacheSaveOutcome>, EngineError> {
        let rec = self.store().get(id).await?;
        let plan = self.store().run(move |db| db.cache_plan(id)).await?;
        let Some(plan) = plan else {
            return if trigger == SaveTrigger::Request {
                Err(EngineError::Conflict(format!(
                    "session {} keeps no build caches (create it with --build-cache)",
                    rec.name
                )))
            } else {
                Ok(Vec::new())
            };
        };
        let client = self.backends().get(&rec.backend)?;
        if !client
            .capabilities()
            .contains(Capabilities::CACHE | Capabilities::EXEC)
        {
            return Err(EngineError::Conflict(format!(
                "backend `{}` keeps no build caches",
                client.name()
            )));
        }
        let instance = Engine::instance_of(&rec)
            .ok_or_else(|| EngineError::Conflict("the session has no sandbox".into()))?;
        if trigger != SaveTrigger::Delete {
            let agent = self.store().agent(id).await?;
            if matches!(
                agent.state,
                Some(AgentState::Working | AgentState::Starting)
            ) {
                return Err(EngineError::Conflict(format!(
                    "the agent of {} is working; build caches are saved only while it is idle",
                    rec.name
                )));
            }
        }
        self.wait_for_builds(&rec, &client, &instance, &plan, trigger)
            .await?;
        let facts = self
            .probe_caches(id, &client, &instance, &plan.workspace, &plan.probe_dirs())
            .await
            .map_err(EngineError::Internal)?;
        let mut outcomes = Vec::new();
        for (item, keys) in plan.keys(&facts) {
            let label = item.cache.to_string();
            let key = match keys.map(|k| k.exact) {
                Ok(Some(k)) => k,
                Ok(None) => {
                    outcomes.push(CacheSaveOutcome::skipped(&label, None, "nothing to save"));
                    continue;
                }
                Err(why) => {
                    outcomes.push(CacheSaveOutcome::skipped(&label, None, &why));
                    continue;
                }
            };
            let outcome = self
                .save_one(&rec, &client, &instance, &plan, &label, &key, &item.paths)
                .await;
            let line = outcome.line();
            if outcome.outcome == "failed" {
                self.warn(id, line).await;
            } else {
                self.progress(id, "cache", line).await;
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Waits (before hibernate or delete) until no build runs in the sandbox; a request does
    /// not wait.
    async fn wait_for_builds(
        &self,
        rec: &SessionRecord,
        client: &PluginClient,
        instance: &Instance,
        plan: &Plan,
        trigger: SaveTrigger,
    ) -> Result<(), EngineError> {
        let deadline = tokio::time::Instant::now() + BUSY_WAIT;
        loop {
            let mut argv = vec![
                "sh".to_owned(),
                "-c".to_owned(),
                probe::BUSY.to_owned(),
                "clauderon-cache-busy".to_owned(),
            ];
            argv.extend(plan.all_paths());
            let ran = sandbox_exec::run(
                client,
                instance,
                argv,
                b"",
                Duration::from_secs(60),
                "looking for running builds",
            )
            .await?;
            let busy = ran.stdout_text();
            let busy = busy.trim();
            if busy.is_empty() {
                return Ok(());
            }
            let first = busy.lines().next().unwrap_or_default().to_owned();
            if trigger == SaveTrigger::Request || tokio::time::Instant::now() >= deadline {
                return Err(EngineError::Conflict(format!(
                    "a build is running in the sandbox of {} ({first}); build caches are saved \
                     only when none runs",
                    rec.name
                )));
            }
            self.progress(
                rec.id,
                "cache",
                format!("waiting for a running build to end before saving caches ({first})"),
            )
            .await;
            tokio::time::sleep(BUSY_POLL).await;
        }
    }

    /// The lock of one entry key of one store (one writer per key in this daemon).
    fn cache_lock(&self, store_key: &str, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = super::lock(&self.cache_locks);
        Arc::clone(locks.entry(format!("{store_key}/{key}")).or_default())
    }

    #[allow(clippy::too_many_arguments)]
    async fn save_one(
        &self,
        rec: &SessionRecord,
        client: &Arc<PluginClient>,
        instance: &Instance,
        plan: &Plan,
        label: &str,
        key: &str,
        paths: &[String],
    ) -> CacheSaveOutcome {
        let lock = self.cache_lock(&plan.store_key, key);
        let _held = lock.lock().await;
        let store_key = plan.store_key.clone();
        let found = self
            .store()
            .run(move |db| {
                let s = db.cache_store(&store_key)?;
                let e = db.cache_entries(&store_key)?;
                Ok((s, e))
            })
            .await;
        let (store, entries) = match found {
            Ok(x) => x,
            Err(e) => return CacheSaveOutcome::failed(label, Some(key), &e.to_string()),
        };
        if let Some(s) = &store
            && s.backend != rec.backend
        {
            return CacheSaveOutcome::skipped(
                label,
                Some(key),
                &format!("the project's cache lives on backend `{}`", s.backend),
            );
        }
        if store.is_some() && entries.iter().any(|e| e.key == key) {
            return CacheSaveOutcome {
                outcome: "exists".into(),
                ..CacheSaveOutcome::skipped(label, Some(key), "the exact key is cached already")
            };
        }
        self.progress(
            rec.id,
            "cache",
            format!("{label}: saving {key} into cache {}", plan.store_key),
        )
        .await;
        let req = CacheSaveRequest {
            instance: instance.clone(),
            key: key.to_owned(),
            paths: paths.to_vec(),
            store: store.as_ref().and_then(store_instance),
            store_key: Some(plan.store_key.clone()),
            store_labels: Default::default(),
            max_bytes: Some(self.config().cache.max_size),
            direct: self.config().cache.direct,
        };
        let result = self
            .plugin(rec.id, client, "cache", |c| async move {
                c.cache_save(&req).await
            })
            .await;
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                let err = EngineError::backend(client.name(), ops::CACHE_SAVE, e);
                return CacheSaveOutcome::failed(label, Some(key), &err.to_string());
            }
        };
        let now = self.cache_clock().now();
        let record = CacheStoreRecord {
            store_key: plan.store_key.clone(),
            backend: rec.backend.clone(),
            project_key: plan.project_key.clone(),
            project: plan.project.clone(),
            scope: plan.scope,
            session_name: (plan.scope == crate::session::CacheScope::Session)
                .then(|| rec.name.to_string()),
            instance_id: r.store.as_ref().map(|s| s.id.clone()),
            instance_state: r.store.as_ref().map(|s| s.state.clone()),
            created_at: store.as_ref().map_or(now, |s| s.created_at),
            last_used: store.as_ref().map_or(now, |s| s.last_used),
        };
        let entry = r.hit.then(|| CacheEntryRecord {
            store_key: plan.store_key.clone(),
            key: key.to_owned(),
            kind: label.to_owned(),
            size: r.bytes,
            created_at: now,
            last_used: now,
            base: r.base.clone(),
        });
        let written = self
            .store()
            .run(move |db| {
                if record.instance_id.is_some() {
                    db.put_cache_store(&record)?;
                }
                if let Some(e) = &entry {
                    db.put_cache_entry(e)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = written {
            return CacheSaveOutcome::failed(label, Some(key), &e.to_string());
        }
        if !r.hit {
            return CacheSaveOutcome::skipped(
                label,
                Some(key),
                r.reason.as_deref().unwrap_or("nothing was saved"),
            );
        }
        self.trim_store(rec.id, client, &plan.store_key, key).await;
        CacheSaveOutcome {
            cache: label.to_owned(),
            key: Some(key.to_owned()),
            outcome: "saved".into(),
            detail: format!(
                "{} bytes in {} ms, {}{}",
                r.bytes,
                r.elapsed_ms,
                transport_text(r.transport.as_deref()),
                r.base
                    .as_ref()
                    .map(|b| format!(", a layer over {b}"))
                    .unwrap_or_default()
            ),
            bytes: r.bytes,
            transport: r.transport.clone(),
        }
    }

    /// Drops the least recently used entries of a store over its size cap, each with the
    /// layers on it (never `keep` nor what it lies on).
    async fn trim_store(
        &self,
        id: SessionId,
        client: &Arc<PluginClient>,
        store_key: &str,
        keep: &str,
    ) {
        let sk = store_key.to_owned();
        let Ok((Some(store), entries)) = self
            .store()
            .run(move |db| Ok((db.cache_store(&sk)?, db.cache_entries(&sk)?)))
            .await
        else {
            return;
        };
        let aged: Vec<gc::Aged> = entries.iter().map(CacheEntryRecord::aged).collect();
        let drop = gc::over_cap(&aged, self.config().cache.max_size, keep);
        if drop.is_empty() {
            return;
        }
        let Some(inst) = store_instance(&store) else {
            return;
        };
        let req = CacheDeleteRequest {
            store: inst,
            keys: drop.clone(),
        };
        match self
            .plugin(id, client, "cache", |c| async move {
                c.cache_delete(&req).await
            })
            .await
        {
            Ok(_) => {
                let sk = store_key.to_owned();
                let gone = drop.clone();
                let _ = self
                    .store()
                    .run(move |db| db.remove_cache_entries(&sk, &gone))
                    .await;
                self.progress(
                    id,
                    "cache",
                    format!(
                        "cache {store_key} is over its size cap: dropped {} (least recently used)",
                        drop.join(", ")
                    ),
                )
                .await;
            }
            Err(e) => {
                self.warn(
                    id,
                    format!("cannot trim cache {store_key} to its size cap: {e}"),
                )
                .await;
            }
        }
    }
}
