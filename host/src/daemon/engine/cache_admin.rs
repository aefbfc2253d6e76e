//! Build-cache housekeeping (DESIGN §16): `GET /api/caches` (every cache with its entries and
//! its store's state at the backend), `POST /api/caches/clear` (a cache, an entry, or every
//! cache of a project) and the collection that deletes entries unused for `[cache] max_age`
//! (and a store once it is empty, e.g. its cache sprite), run by the daemon at most once a day
//! by the cache clock ([`crate::cache::Clock`], which tests shift).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::{CacheCleared, CacheEntryView, CacheGcReport, CacheList, CacheView, ClearedCache};
use crate::cache::{gc, keys};
use crate::plugins::Capabilities;
use crate::plugins::ops::{CacheDeleteRequest, InstanceRequest, InstanceStatus};
use crate::store::{CacheEntryRecord, CacheStoreRecord};

use super::super::error::EngineError;
use super::Engine;
use super::cache_restore::store_instance;

/// The housekeeping value holding the time of the last collection.
const LAST_GC: &str = "last_gc";
/// How often the daemon looks whether a collection is due.
const GC_CHECK: Duration = Duration::from_secs(3600);

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl Engine {
    /// Every cache with its entries and its store's state at the backend (`status`, which
    /// does not wake a sleeping store).
    pub async fn list_caches(&self) -> Result<CacheList, EngineError> {
        let (stores, entries) = self
            .store()
            .run(|db| Ok((db.cache_stores()?, db.all_cache_entries()?)))
            .await?;
        let mut caches = Vec::new();
        for s in stores {
            let mine: Vec<&CacheEntryRecord> = entries
                .iter()
                .filter(|e| e.store_key == s.store_key)
                .collect();
            let mut types: Vec<String> = mine.iter().map(|e| e.kind.clone()).collect();
            types.sort();
            types.dedup();
            let state = self.store_state(&s).await;
            caches.push(CacheView {
                key: s.store_key.clone(),
                project: s.project.clone(),
                scope: s.scope,
                session: s.session_name.clone(),
                backend: s.backend.clone(),
                types,
                size: mine.iter().map(|e| e.size).sum(),
                last_used: rfc3339(s.last_used),
                instance: s.instance_id.clone(),
                state,
                entries: mine
                    .iter()
                    .map(|e| CacheEntryView {
                        key: e.key.clone(),
                        kind: e.kind.clone(),
                        size: e.size,
                        created_at: rfc3339(e.created_at),
                        last_used: rfc3339(e.last_used),
                        base: e.base.clone(),
                    })
                    .collect(),
            });
        }
        Ok(CacheList { caches })
    }

    /// The state of a store's instance at its backend, as a word.
    async fn store_state(&self, s: &CacheStoreRecord) -> String {
        let Some(instance) = store_instance(s) else {
            return "none".into();
        };
        let Ok(client) = self.backends().get(&s.backend) else {
            return "unknown (backend not loaded)".into();
        };
        if !client.capabilities().contains(Capabilities::LIFECYCLE) {
            return "unknown".into();
        }
        match client.status(&InstanceRequest { instance }).await {
            Ok(r) => match r.status {
                InstanceStatus::Running => "running",
                InstanceStatus::Hibernated => "hibernated",
                InstanceStatus::Stopped => "stopped",
                InstanceStatus::Creating => "creating",
                InstanceStatus::Gone => "gone",
                InstanceStatus::Unknown => "unknown",
            }
            .into(),
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// Removes a cache (`key` names one: its entries and its backend store go), an entry
    /// (`key` names one), or every cache of the project at `project`.
    pub async fn clear_caches(
        &self,
        key: Option<&str>,
        project: Option<&str>,
    ) -> Result<CacheCleared, EngineError> {
        let (stores, entries) = self
            .store()
            .run(|db| Ok((db.cache_stores()?, db.all_cache_entries()?)))
            .await?;
        let mut removed = Vec::new();
        match (key, project) {
            (Some(k), None) => {
                if let Some(s) = stores.iter().find(|s| s.store_key == k) {
                    removed.push(self.drop_store(s).await?);
                } else {
                    let hits: Vec<&CacheEntryRecord> =
                        entries.iter().filter(|e| e.key == k).collect();
                    if hits.is_empty() {
                        return Err(EngineError::NotFound(format!(
                            "no build cache and no entry has the key `{k}`; `clauderon cache \
                             list` shows them"
                        )));
                    }
                    for e in hits {
                        if let Some(s) = stores.iter().find(|s| s.store_key == e.store_key) {
                            // The layers on it go too: they cannot be restored without it.
                            let aged: Vec<gc::Aged> = entries
                                .iter()
                                .filter(|x| x.store_key == s.store_key)
                                .map(CacheEntryRecord::aged)
                                .collect();
                            let gone = gc::with_layers(&aged, std::slice::from_ref(&e.key));
                            removed.extend(self.drop_entries(s, &gone).await?);
                        }
                    }
                }
            }
            (None, Some(p)) => {
                let path = std::path::Path::new(p);
                let info = super::git::inspect(path)
                    .await
                    .map_err(EngineError::BadRequest)?;
                let root = super::git::root_commit(path).await;
                let proj =
                    keys::Project::of(&info.origin_url, root.as_deref()).ok_or_else(|| {
                        EngineError::BadRequest(format!(
                            "{p} has neither an origin nor a root commit"
                        ))
                    })?;
                let mine: Vec<&CacheStoreRecord> = stores
                    .iter()
                    .filter(|s| s.project_key == proj.key)
                    .collect();
                if mine.is_empty() {
                    return Err(EngineError::NotFound(format!(
                        "no build cache for the project of {p} ({})",
                        proj.display
                    )));
                }
                for s in mine {
                    removed.push(self.drop_store(s).await?);
                }
            }
            _ => {
                return Err(EngineError::BadRequest(
                    "give either a cache or entry key, or a project path".into(),
                ));
            }
        }
        Ok(CacheCleared { removed })
    }

    /// Deletes a whole store at its backend and forgets it; a backend failure is reported in
    /// the outcome (the index forgets it anyway, so a lost store cannot block the user).
    async fn drop_store(&self, s: &CacheStoreRecord) -> Result<ClearedCache, EngineError> {
        let outcome = self.delete_at_backend(s, Vec::new()).await;
        let sk = s.store_key.clone();
        self.store()
            .run(move |db| db.remove_cache_store(&sk))
            .await?;
        Ok(ClearedCache {
            cache: s.store_key.clone(),
            key: None,
            outcome,
        })
    }

    /// Deletes `keys` of a store (all of it when empty) at its backend: `removed`, or why the
    /// backend failed.
    async fn delete_at_backend(&self, s: &CacheStoreRecord, keys: Vec<String>) -> String {
        let Some(store) = store_instance(s) else {
            return "removed".to_owned();
        };
        let result = match self.backends().get(&s.backend) {
            Ok(client) => client
                .cache_delete(&CacheDeleteRequest { store, keys })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => "removed".to_owned(),
            Err(e) => format!("backend failed: {e}"),
        }
    }

    /// Deletes entries of a store at its backend and forgets them.
    async fn drop_entries(
        &self,
        s: &CacheStoreRecord,
        keys: &[String],
    ) -> Result<Vec<ClearedCache>, EngineError> {
        let outcome = self.delete_at_backend(s, keys.to_vec()).await;
        let (sk, gone) = (s.store_key.clone(), keys.to_vec());
        self.store()
            .run(move |db| db.remove_cache_entries(&sk, &gone))
            .await?;
        Ok(keys
            .iter()
            .map(|k| ClearedCache {
                cache: s.store_key.clone(),
                key: Some(k.clone()),
                outcome: outcome.clone(),
            })
            .collect())
    }

    /// Deletes entries unused for `[cache] max_age` at `now`, and every store left without
    /// entries (its backend instance too); records when it ran.
    pub async fn collect_caches(&self, now: OffsetDateTime) -> Result<CacheGcReport, EngineError> {
        let max_age = time::Duration::try_from(self.config().cache.max_age)
            .unwrap_or(time::Duration::days(30));
        let (stores, entries) = self
            .store()
            .run(|db| Ok((db.cache_stores()?, db.all_cache_entries()?)))
            .await?;
        let mut removed = Vec::new();
        for s in &stores {
            let aged: Vec<gc::Aged> = entries
                .iter()
                .filter(|e| e.store_key == s.store_key)
                .map(CacheEntryRecord::aged)
                .collect();
            let old = gc::expired(&aged, now, max_age);
            let empty_and_idle = aged.is_empty() && now - s.last_used >= max_age;
            if (!old.is_empty() && old.len() == aged.len()) || empty_and_idle {
                tracing::info!(cache = %s.store_key, "collecting an unused build cache");
                let mut r = self.drop_store(s).await?;
                r.outcome = format!(
                    "{} (unused for {})",
                    r.outcome,
                    humantime::format_duration(self.config().cache.max_age)
                );
                removed.push(r);
            } else if !old.is_empty() {
                removed.extend(self.drop_entries(s, &old).await?);
            }
        }
        let at = rfc3339(now);
        let stamp = at.clone();
        self.store()
            .run(move |db| db.set_cache_meta(LAST_GC, &stamp))
            .await?;
        Ok(CacheGcReport { at, removed })
    }

    /// Collects now if the last collection is a day old or more (by the cache clock).
    pub async fn collect_caches_if_due(&self) -> Result<Option<CacheGcReport>, EngineError> {
        let now = self.cache_clock().now();
        let last = self
            .store()
            .run(|db| db.cache_meta(LAST_GC))
            .await?
            .and_then(|s| OffsetDateTime::parse(&s, &Rfc3339).ok());
        if !gc::due(last, now) {
            return Ok(None);
        }
        self.collect_caches(now).await.map(Some)
    }

    /// The daemon's collector: looks every hour, collects at most once a day.
    pub fn spawn_cache_collector(self: &Arc<Self>) {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                match engine.collect_caches_if_due().await {
                    Ok(Some(r)) if !r.removed.is_empty() => {
                        for c in &r.removed {
                            tracing::info!(cache = %c.cache, key = ?c.key, "{}", c.outcome);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "build-cache collection failed"),
                }
                tokio::time::sleep(GC_CHECK).await;
            }
        });
    }
}
