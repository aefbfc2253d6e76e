//! The create flow (DESIGN §9): validate everything first, insert `creating`, then in the
//! background plugin `create` → `clone_repo` → start the agent → `running`; any failure
//! deletes what was made and marks the session failed with the reason.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::{FieldError, ValidCreate};
use crate::plugins::ops::{self, CloneRepoRequest, CreateRequest};
use crate::plugins::{Capabilities, PluginClient, labels};
use crate::session::{CpuLimit, Event, SessionId, SessionName};
use crate::store::{NewSession, SessionRecord};

use super::super::error::EngineError;
use super::{Engine, git};

/// The workspace of a backend whose plugin declares none (plugin API before 1.1).
const FALLBACK_WORKSPACE: &str = "workspace";

impl Engine {
    /// Validates `req`, inserts the session (`creating`) and starts the create flow in the
    /// background. Nothing is made when validation fails.
    pub async fn create(self: &Arc<Self>, req: ValidCreate) -> Result<SessionRecord, EngineError> {
        let repo = req.repo.clone();
        // Both answers name the field, so a form shows them by the repository.
        let bad_repo = |message: String| {
            EngineError::Invalid(FieldError {
                field: "repo",
                for_flag: message.replace("\"repo\"", "--repo"),
                message,
            })
        };
        if !repo.is_dir() {
            return Err(bad_repo(format!(
                "\"repo\" {} is not a directory on this machine",
                repo.display()
            )));
        }
        let info = git::inspect(&repo).await.map_err(bad_repo)?;
        let client = self.backends().select(req.backend.as_deref())?;
        let need = if req.options.print {
            Capabilities::LIFECYCLE | Capabilities::REMOTE_CLONE | Capabilities::EXEC
        } else {
            Capabilities::LIFECYCLE | Capabilities::REMOTE_CLONE | Capabilities::ATTACH
        };
        if !client.capabilities().contains(need) {
            let missing: Vec<&str> = Capabilities(need.0 & !client.capabilities().0).names();
            return Err(EngineError::BadRequest(format!(
                "backend `{}` cannot run sessions: it lacks {}",
                client.name(),
                missing.join(", ")
            )));
        }
        let repo_text = repo.to_string_lossy().into_owned();
        let name = match req.name {
            Some(n) => n,
            None => {
                self.store()
                    .unique_name(SessionName::from_repo(&repo_text))
                    .await?
            }
        };
        let id = SessionId::new();
        let rec = self
            .recorder()
            .insert(NewSession {
                id,
                branch: Some(format!("clauderon/{name}")),
                name,
                backend: client.name().to_owned(),
                repository: repo_text,
                prompt: req.prompt.clone(),
                options: req.options.clone(),
            })
            .await?;
        self.spawn_create(rec.clone(), Some(info));
        Ok(rec)
    }

    /// Runs the create flow for a `creating` session in a background task (`info`: what
    /// validation already read from the repository, else it is read again).
    pub(super) fn spawn_create(self: &Arc<Self>, rec: SessionRecord, info: Option<git::RepoInfo>) {
        let engine = Arc::clone(self);
        let rt = self.runtime(rec.id);
        let task = tokio::spawn(async move {
            let rt = engine.runtime(rec.id);
            let _op = rt.op_lock.lock().await;
            let id = rec.id;
            if let Err(e) = engine.create_flow(rec, info).await {
                engine.fail(id, &e.to_string()).await;
            }
        });
        *super::lock(&rt.create_task) = Some(task.abort_handle());
    }

    async fn create_flow(
        self: &Arc<Self>,
        rec: SessionRecord,
        info: Option<git::RepoInfo>,
    ) -> Result<(), EngineError> {
        let id = rec.id;
        let client = self.backends().get(&rec.backend)?;
        let info = match info {
            Some(i) => i,
            None => git::inspect(&PathBuf::from(&rec.repository))
                .await
                .map_err(EngineError::BadRequest)?,
        };
        // A leftover sandbox from an interrupted create (daemon restart) is removed first.
        if let Some(old) = Engine::instance_of(&rec) {
            self.progress(
                id,
                "create",
                "removing the sandbox of an interrupted create",
            )
            .await;
            // Best effort: a sandbox already gone is fine, and create makes a new one anyway.
            let _ = self.delete_sandbox(id, &client, old).await;
            self.store().set_instance(id, None, None).await?;
        }
        self.progress(
            id,
            "create",
            format!("creating the sandbox on `{}`", client.name()),
        )
        .await;
        let labels = BTreeMap::from([
            (labels::MARKER.to_owned(), labels::MARKER_VALUE.to_owned()),
            (labels::SESSION.to_owned(), id.to_string()),
            (
                labels::INSTALLATION.to_owned(),
                self.installation().as_str().to_owned(),
            ),
        ]);
        let req = CreateRequest {
            session_id: id.to_string(),
            name: rec.name.to_string(),
            labels,
            env: BTreeMap::new(),
            cpu_limit: rec.options.cpu_limit.map(CpuLimit::as_f64),
            memory_limit_mib: rec.options.memory_limit.map(|m| m.mebibytes()),
        };
        // The plugin call and the store write of its instance run in a task of their own that
        // a delete cannot abort (see `Runtime::sandbox_call`): a sandbox made is always known.
        let held = Arc::clone(&self.runtime(id).sandbox_call)
            .lock_owned()
            .await;
        let engine = Arc::clone(self);
        let plugin = Arc::clone(&client);
        let mut instance = tokio::spawn(async move {
            let _held = held;
            let made = engine
                .plugin(
                    id,
                    &plugin,
                    "create",
                    |c| async move { c.create(&req).await },
                )
                .await
                .map_err(|e| EngineError::backend(plugin.name(), ops::CREATE, e))?;
            engine.save_instance(id, &made.instance).await?;
            Ok::<_, EngineError>(made.instance)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("the create call did not finish: {e}")))??;
        let result = self
            .clone_and_start(&client, &rec, &info, &mut instance)
            .await;
        if let Err(e) = result {
            self.proxy_forget(id);
            self.progress(id, "delete", "removing the sandbox after the failure")
                .await;
            match self.delete_sandbox(id, &client, instance.clone()).await {
                Ok(_) => self.store().set_instance(id, None, None).await?,
                Err(de) => {
                    tracing::warn!(session = %id, error = %de, "cannot delete the sandbox of a failed create");
                }
            }
            return Err(e);
        }
        Ok(())
    }

    async fn clone_and_start(
        self: &Arc<Self>,
        client: &Arc<PluginClient>,
        rec: &SessionRecord,
        info: &git::RepoInfo,
        instance: &mut ops::Instance,
    ) -> Result<(), EngineError> {
        let id = rec.id;
        let dest = self.workspace_for(client.name());
        let branch = rec.branch.clone();
        self.progress(
            id,
            "clone",
            format!(
                "cloning {} at {} into {dest}",
                rec.repository,
                &info.head[..info.head.len().min(12)]
            ),
        )
        .await;
        let req = CloneRepoRequest {
            instance: instance.clone(),
            url: info.origin_url.clone(),
            branch,
            dest: dest.clone(),
            local_path: Some(rec.repository.clone()),
            base_commit: Some(info.head.clone()),
            base_branch: info.branch.clone(),
            depth: None,
        };
        let cloned = self
            .plugin(
                id,
                client,
                "clone",
                |c| async move { c.clone_repo(&req).await },
            )
            .await
            .map_err(|e| EngineError::backend(client.name(), ops::CLONE_REPO, e))?;
        // Every store write is a synced commit: write only what changed.
        if cloned.instance != *instance {
            *instance = cloned.instance;
            self.save_instance(id, instance).await?;
        }
        self.proxy_prepare(rec, client, instance, "create").await?;
        self.restore_caches(rec, client, instance, info).await;
        if self.sync_wanted(rec) {
            let commit = cloned.commit.clone().unwrap_or_else(|| info.head.clone());
            self.sync_setup(rec, &commit).await?;
        }
        let rec = self.store().get(id).await?;
        self.progress(id, "agent", "starting the agent").await;
        let agent = self.start_agent(&rec, None).await?;
        if !rec.options.print
            && let Err(e) = self.confirm_start(id, &agent).await
        {
            // The sandbox stays (the clone is done): `clauderon restart` can start the agent
            // again once the cause is fixed.
            self.fail(id, &e.to_string()).await;
            return Ok(());
        }
        self.set_status(id, Event::Created, None).await?;
        self.sync_send(id, super::sync::SyncCmd::Nudge);
        self.arm_idle_timer(id, &rec);
        Ok(())
    }

    /// The workspace path inside the sandbox for a backend: the directory its plugin declares,
    /// else the sandbox user's home (`~/workspace`) for a plugin that declares none.
    pub(super) fn workspace_for(&self, backend: &str) -> String {
        self.backends()
            .get(backend)
            .ok()
            .and_then(|c| c.workspace().map(str::to_owned))
            .unwrap_or_else(|| FALLBACK_WORKSPACE.to_owned())
    }
}
