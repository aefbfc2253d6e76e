//! The create flow (DESIGN §9): validate everything first, insert `creating`, then in the
//! background plugin `create` → `clone_repo` → start the agent → `running`; any failure
//! deletes what was made and marks the session failed with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::plugins::ops::{self, CloneRepoRequest, CreateRequest};
use crate::plugins::{Capabilities, PluginClient, labels};
use crate::session::{Event, SessionId, SessionName, SessionOptions};
use crate::store::{NewSession, SessionRecord};

use super::super::error::EngineError;
use super::{Engine, git};

/// Where the repository goes inside the sandbox unless the backend's config says otherwise
/// (`workspace` in its table).
pub const DEFAULT_WORKSPACE: &str = "/home/sprite/workspace";

/// The body of `POST /api/sessions`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The backend plugin (default: `default_backend`).
    #[serde(default)]
    pub backend: Option<String>,
    /// The repository: an absolute path on the host.
    pub repo: String,
    /// The agent's initial prompt.
    pub prompt: String,
    /// The session name (default: derived from the repository, made unique).
    #[serde(default)]
    pub name: Option<String>,
    /// The options, validated like the CLI flags.
    #[serde(default)]
    pub options: SessionOptions,
}

impl CreateSession {
    /// Parses and validates a request body; the error says which field is wrong and how.
    pub fn parse(body: &[u8]) -> Result<Self, EngineError> {
        let req: Self = serde_json::from_slice(body).map_err(|e| {
            EngineError::BadRequest(format!(
                "invalid create request: {e}; expected {{\"repo\": \"/abs/path\", \"prompt\": \
                 \"...\", \"backend\"?, \"name\"?, \"options\"?}}"
            ))
        })?;
        if req.prompt.trim().is_empty() {
            return Err(EngineError::BadRequest(
                "\"prompt\" is empty; give the agent something to do".into(),
            ));
        }
        if !Path::new(&req.repo).is_absolute() {
            return Err(EngineError::BadRequest(format!(
                "\"repo\" must be an absolute path on the host, got `{}`",
                req.repo.chars().take(200).collect::<String>()
            )));
        }
        if let Some(n) = &req.name {
            SessionName::new(n).map_err(|e| EngineError::BadRequest(e.to_string()))?;
        }
        Ok(req)
    }
}

impl Engine {
    /// Validates `req`, inserts the session (`creating`) and starts the create flow in the
    /// background. Nothing is made when validation fails.
    pub async fn create(
        self: &Arc<Self>,
        req: CreateSession,
    ) -> Result<SessionRecord, EngineError> {
        let repo = PathBuf::from(&req.repo);
        if !repo.is_dir() {
            return Err(EngineError::BadRequest(format!(
                "\"repo\" {} is not a directory on this machine",
                repo.display()
            )));
        }
        let info = git::inspect(&repo).await.map_err(EngineError::BadRequest)?;
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
        let name = match &req.name {
            Some(n) => SessionName::new(n).map_err(|e| EngineError::BadRequest(e.to_string()))?,
            None => {
                self.store()
                    .unique_name(SessionName::from_repo(&req.repo))
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
                repository: req.repo.clone(),
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
            let _: Result<ops::Empty, _> = self
                .plugin_call(
                    id,
                    &client,
                    ops::DELETE,
                    &ops::InstanceRequest { instance: old },
                )
                .await;
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
        ]);
        let req = CreateRequest {
            session_id: id.to_string(),
            name: rec.name.to_string(),
            labels,
            env: BTreeMap::new(),
            cpu_limit: rec.options.cpu_limit.map(f64::from),
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
            let made: ops::InstanceResponse = engine
                .plugin_call(id, &plugin, ops::CREATE, &req)
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
            let deleted: Result<ops::Empty, _> = self
                .plugin_call(
                    id,
                    &client,
                    ops::DELETE,
                    &ops::InstanceRequest {
                        instance: instance.clone(),
                    },
                )
                .await;
            match deleted {
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
        let cloned: ops::CloneRepoResponse = self
            .plugin_call(
                id,
                client,
                ops::CLONE_REPO,
                &CloneRepoRequest {
                    instance: instance.clone(),
                    url: info.origin_url.clone(),
                    branch,
                    dest: dest.clone(),
                    local_path: Some(rec.repository.clone()),
                    base_commit: Some(info.head.clone()),
                    base_branch: info.branch.clone(),
                    depth: None,
                },
            )
            .await
            .map_err(|e| EngineError::backend(client.name(), ops::CLONE_REPO, e))?;
        // Every store write is a synced commit: write only what changed.
        if cloned.instance != *instance {
            *instance = cloned.instance;
            self.save_instance(id, instance).await?;
        }
        self.proxy_prepare(rec, client, instance, "create").await?;
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
        self.arm_idle_timer(id, &rec);
        Ok(())
    }

    /// The workspace path inside the sandbox for a backend.
    pub(super) fn workspace_for(&self, backend: &str) -> String {
        self.config()
            .backend_table(backend)
            .and_then(|t| t.get("workspace"))
            .and_then(|v| v.as_str())
            .unwrap_or(DEFAULT_WORKSPACE)
            .to_owned()
    }
}
