//! Build caches at create (DESIGN §16): before the agent starts, the sandbox is probed, the
//! session's cache plan is made and kept, and each cache is filled from the project's store
//! (its exact key, else the newest entry matching its restore prefixes) through the plugin's
//! `cache_restore`. Nothing here can fail a create: a missing, unusable or damaged cache is a
//! cold start with a warning.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Plan, keys, kinds, probe};
use crate::plugins::ops::{self, CacheRestoreRequest, Instance};
use crate::plugins::{Capabilities, PluginClient};
use crate::session::SessionId;
use crate::store::{CacheStoreRecord, SessionRecord};

use super::super::error::EngineError;
use super::{Engine, git, sandbox_exec};

/// How long the probe may take.
const PROBE_LIMIT: Duration = Duration::from_secs(120);

impl Engine {
    /// Fills the session's build caches before its agent starts; every problem becomes a
    /// warning (the build starts cold), never a failed create.
    pub(super) async fn restore_caches(
        self: &Arc<Self>,
        rec: &SessionRecord,
        client: &Arc<PluginClient>,
        instance: &Instance,
        info: &git::RepoInfo,
    ) {
        if rec.options.build_cache.is_empty() {
            return;
        }
        if let Err(why) = self
            .restore_caches_or_fail(rec, client, instance, info)
            .await
        {
            self.warn(rec.id, format!("build caches: {why}; building cold"))
                .await;
        }
    }

    async fn restore_caches_or_fail(
        self: &Arc<Self>,
        rec: &SessionRecord,
        client: &Arc<PluginClient>,
        instance: &Instance,
        info: &git::RepoInfo,
    ) -> Result<(), String> {
        let id = rec.id;
        let need = Capabilities::CACHE | Capabilities::EXEC;
        if !client.capabilities().contains(need) {
            return Err(format!(
                "backend `{}` keeps no build caches (it lacks the cache capability)",
                client.name()
            ));
        }
        let root = git::root_commit(std::path::Path::new(&rec.repository)).await;
        let project = keys::Project::of(&info.origin_url, root.as_deref())
            .ok_or("the repository has neither an origin nor a root commit to key caches by")?;
        let workspace = self.workspace_for(&rec.backend);
        let dirs: Vec<String> = rec
            .options
            .build_cache
            .iter()
            .filter_map(|c| match c {
                crate::session::BuildCache::Dir(d) => Some(d.clone()),
                _ => None,
            })
            .collect();
        self.progress(id, "cache", "probing the sandbox for build caches")
            .await;
        let facts = self
            .probe_caches(id, client, instance, &workspace, &dirs)
            .await?;
        let plan = Plan {
            store_key: keys::store_key(&project.key, rec.options.cache_scope, &rec.name),
            project_key: project.key,
            project: project.display,
            scope: rec.options.cache_scope,
            branch: info.branch.clone().unwrap_or_else(|| "detached".into()),
            items: rec
                .options
                .build_cache
                .iter()
                .map(|c| kinds::item(c, &facts, &workspace))
                .collect(),
            workspace,
        };
        let stored = plan.clone();
        self.store()
            .run(move |db| db.set_cache_plan(id, &stored))
            .await
            .map_err(|e| e.to_string())?;
        let store_key = plan.store_key.clone();
        let store = self
            .store()
            .run(move |db| db.cache_store(&store_key))
            .await
            .map_err(|e| e.to_string())?;
        let store = match store {
            Some(s) if s.backend == rec.backend => s,
            Some(s) => {
                return Err(format!(
                    "the project's cache {} lives on backend `{}`, not `{}`",
                    s.store_key, s.backend, rec.backend
                ));
            }
            None => {
                self.progress(
                    id,
                    "cache",
                    format!(
                        "no build cache yet for {} ({} scope, cache {}); the first save fills it",
                        plan.project, plan.scope, plan.store_key
                    ),
                )
                .await;
                return Ok(());
            }
        };
        let store_key = store.store_key.clone();
        let entries = self
            .store()
            .run(move |db| db.cache_entries(&store_key))
            .await
            .map_err(|e| e.to_string())?;
        let known: Vec<(String, i64)> = entries
            .iter()
            .map(|e| {
                (
                    e.key.clone(),
                    (e.created_at.unix_timestamp_nanos() / 1_000_000) as i64,
                )
            })
            .collect();
        for (item, k) in plan.keys(&facts) {
            let label = item.cache.to_string();
            let k = match k {
                Ok(k) => k,
                Err(why) => {
                    self.warn(id, format!("build cache {label} is not used: {why}"))
                        .await;
                    continue;
                }
            };
            let Some(chosen) = keys::choose(k.exact.as_deref(), &k.prefixes, &known) else {
                self.progress(
                    id,
                    "cache",
                    format!(
                        "{label}: no cached entry matches {} (a cold build; it is saved later)",
                        k.exact.as_deref().unwrap_or(&k.prefixes.join(" or "))
                    ),
                )
                .await;
                continue;
            };
            self.restore_one(rec, client, instance, &store, &label, chosen, &item.paths)
                .await;
        }
        Ok(())
    }

    /// Runs the probe in the sandbox (in the workspace) and parses its facts.
    pub(super) async fn probe_caches(
        &self,
        id: SessionId,
        client: &PluginClient,
        instance: &Instance,
        workspace: &str,
        dirs: &[String],
    ) -> Result<probe::Facts, String> {
        let mut argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            probe::SCRIPT.to_owned(),
            "clauderon-cache-probe".to_owned(),
            workspace.to_owned(),
        ];
        argv.extend(dirs.iter().cloned());
        let ran = sandbox_exec::run(
            client,
            instance,
            argv,
            b"",
            PROBE_LIMIT,
            "probing the sandbox for build caches",
        )
        .await
        .map_err(|e| e.to_string())?;
        let facts = probe::Facts::parse(&ran.stdout_text()).ok_or_else(|| {
            format!(
                "the sandbox's probe said nothing usable (exit {}): {}",
                ran.code,
                ran.stderr_brief()
            )
        })?;
        tracing::debug!(session = %id, ?facts, "build-cache probe");
        Ok(facts)
    }

    /// Restores entry `key` of `store` into the sandbox; the outcome is an event, and the index
    /// follows it (used now, or forgotten when damaged or gone).
    #[allow(clippy::too_many_arguments)]
    async fn restore_one(
        &self,
        rec: &SessionRecord,
        client: &Arc<PluginClient>,
        instance: &Instance,
        store: &CacheStoreRecord,
        label: &str,
        key: &str,
        paths: &[String],
    ) {
        let id = rec.id;
        let Some(store_instance) = store_instance(store) else {
            self.warn(
                id,
                format!(
                    "build cache {label}: cache {} has no backend instance yet",
                    store.store_key
                ),
            )
            .await;
            return;
        };
        self.progress(
            id,
            "cache",
            format!("{label}: restoring {key} from cache {}", store.store_key),
        )
        .await;
        let req = CacheRestoreRequest {
            instance: instance.clone(),
            key: key.to_owned(),
            store: Some(store_instance),
            paths: paths.to_vec(),
            direct: self.config().cache.direct,
        };
        let result = self
            .plugin(id, client, "cache", |c| async move {
                c.cache_restore(&req).await
            })
            .await;
        let (store_key, entry) = (store.store_key.clone(), key.to_owned());
        match result {
            Ok(r) if r.hit => {
                let now = self.cache_clock().now();
                let _ = self
                    .store()
                    .run(move |db| db.touch_cache_entry(&store_key, &entry, now))
                    .await;
                self.progress(
                    id,
                    "cache",
                    format!(
                        "{label}: restored {key} ({} bytes in {} ms, {})",
                        r.bytes,
                        r.elapsed_ms,
                        transport_text(r.transport.as_deref())
                    ),
                )
                .await;
            }
            Ok(r) => {
                let why = r.reason.unwrap_or_else(|| "the entry is not there".into());
                // A damaged entry, or one the store no longer has, is forgotten, so the next
                // save writes it again; so is each entry the plugin removed with it (the
                // layers over a damaged one, or a damaged base of this one).
                let mut gone = r.removed;
                if !gone.contains(&entry) {
                    gone.push(entry);
                }
                let _ = self
                    .store()
                    .run(move |db| db.remove_cache_entries(&store_key, &gone))
                    .await;
                self.warn(id, format!("build cache {label}: {why}; building cold"))
                    .await;
            }
            Err(e) => {
                let err = EngineError::backend(client.name(), ops::CACHE_RESTORE, e);
                self.warn(id, format!("build cache {label}: {err}; building cold"))
                    .await;
            }
        }
    }

    /// The environment a session's agent gets from its cache plan (none without one).
    pub(super) async fn cache_env(
        &self,
        id: SessionId,
    ) -> std::collections::BTreeMap<String, String> {
        match self.store().run(move |db| db.cache_plan(id)).await {
            Ok(Some(plan)) => plan.env(),
            Ok(None) => Default::default(),
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "cannot read the cache plan");
                Default::default()
            }
        }
    }
}

/// The backend instance of a store, once a save made one.
pub(super) fn store_instance(s: &CacheStoreRecord) -> Option<Instance> {
    s.instance_id.as_ref().map(|id| Instance {
        id: id.clone(),
        state: s.instance_state.clone().unwrap_or(serde_json::Value::Null),
    })
}

/// How bytes travelled, for a person.
pub(super) fn transport_text(t: Option<&str>) -> &'static str {
    match t {
        Some("direct") => "directly between the store and the sandbox",
        Some("relay") => "relayed through this machine",
        _ => "transport unknown",
    }
}
