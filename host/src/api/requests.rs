//! Request bodies, and the one validation of a create: the daemon's handler and the CLI (before
//! it sends anything) both run [`CreateSession::validate`]; the engine takes only the
//! [`ValidCreate`] it returns. Errors name the field (`repo`, `options.cpu_limit`); the CLI says
//! the same naming its flag.

use std::path::{Path, PathBuf};

use crate::session::{OptionError, SessionName, SessionOptions};

/// The body of `POST /api/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The backend plugin (default: `default_backend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The repository: an absolute path on the host.
    pub repo: String,
    /// The agent's initial prompt.
    pub prompt: String,
    /// The session name (default: derived from the repository, made unique).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The options (JSON decoding checks them like the CLI's flags).
    #[serde(default)]
    pub options: SessionOptions,
}

/// A create request whose every value is well-formed (what the repository holds is the
/// engine's to check).
#[derive(Debug, Clone)]
pub struct ValidCreate {
    /// The backend plugin, when named.
    pub backend: Option<String>,
    /// The repository (absolute).
    pub repo: PathBuf,
    /// The prompt (not blank).
    pub prompt: String,
    /// The name, when given.
    pub name: Option<SessionName>,
    /// The options.
    pub options: SessionOptions,
}

/// A request value that is wrong: which field, and what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The field's path (`repo`, `prompt`, `name`, `options.cpu_limit`).
    pub field: &'static str,
    /// What is wrong and what is accepted (it names the field).
    pub message: String,
    /// The same, naming the CLI flag.
    pub for_flag: String,
}

impl FieldError {
    fn new(field: &'static str, flag: &str, what: impl std::fmt::Display) -> Self {
        Self {
            field,
            message: format!("invalid value for {field}: {what}"),
            for_flag: format!("invalid value for {flag}: {what}"),
        }
    }
}

impl From<OptionError> for FieldError {
    fn from(e: OptionError) -> Self {
        Self {
            field: e.field.path(),
            message: e.to_string(),
            for_flag: e.for_flag(),
        }
    }
}

impl CreateSession {
    /// The first option value in a create body that does not decode, as a field error
    /// (`options.cpu_limit`), so a body the JSON decoder refused still gets its field named.
    pub fn bad_option_in(body: &[u8]) -> Option<FieldError> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let options = v.get("options")?.as_object()?;
        crate::session::OptionField::ALL.into_iter().find_map(|f| {
            let value = options.get(f.key())?;
            let one = serde_json::json!({ f.key(): value });
            let e = serde_json::from_value::<SessionOptions>(one).err()?;
            let message = e.to_string();
            Some(FieldError {
                field: f.path(),
                for_flag: message.replace(f.path(), f.flag()),
                message,
            })
        })
    }

    /// Checks every value; the first bad one is the error.
    pub fn validate(self) -> Result<ValidCreate, FieldError> {
        if self.prompt.trim().is_empty() {
            return Err(FieldError::new(
                "prompt",
                "--prompt",
                "the prompt is empty; say what the agent should do",
            ));
        }
        if !Path::new(&self.repo).is_absolute() {
            return Err(FieldError::new(
                "repo",
                "--repo",
                format!(
                    "`{}` is not an absolute path on the host",
                    self.repo.chars().take(200).collect::<String>()
                ),
            ));
        }
        let name = self
            .name
            .as_deref()
            .map(SessionName::new)
            .transpose()
            .map_err(|e| FieldError::new("name", "--name", e))?;
        if let Some(b) = &self.backend
            && b.trim().is_empty()
        {
            return Err(FieldError::new(
                "backend",
                "--backend",
                "the backend name is empty",
            ));
        }
        Ok(ValidCreate {
            backend: self.backend,
            repo: PathBuf::from(self.repo),
            prompt: self.prompt,
            name,
            options: self.options,
        })
    }
}

/// The body of `POST /api/sessions/{ref}/restart` (optional).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartRequest {
    /// Start a new conversation with the session's prompt instead of resuming.
    #[serde(default)]
    pub fresh: bool,
}

/// The body of `POST /api/sessions/{ref}/checkpoints`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    /// Why it was taken.
    #[serde(default)]
    pub comment: String,
}

/// The body of `POST /api/reconcile`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// The backend to ask (default: `default_backend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Destroy the orphans instead of only listing them.
    #[serde(default)]
    pub delete: bool,
}

/// The body of `POST /api/caches/clear`: a cache's key, one entry's key, or a project (every
/// cache of the repository at that path, both scopes).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheClearRequest {
    /// A cache's key (`p-…`, `s-…`) or an entry's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A repository on this machine (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(repo: &str, prompt: &str, name: Option<&str>) -> CreateSession {
        CreateSession {
            backend: None,
            repo: repo.into(),
            prompt: prompt.into(),
            name: name.map(str::to_owned),
            options: SessionOptions::default(),
        }
    }

    #[test]
    fn validation_names_the_field_and_the_flag() {
        assert!(req("/r", "go", Some("ok-name")).validate().is_ok());
        for (r, field, flag) in [
            (req("/r", "  ", None), "prompt", "--prompt"),
            (req("rel/path", "go", None), "repo", "--repo"),
            (req("/r", "go", Some("Bad Name")), "name", "--name"),
        ] {
            let e = r.validate().unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.message.contains(field), "{e}");
            assert!(e.for_flag.contains(flag), "{}", e.for_flag);
        }
        let e: FieldError = crate::session::RawOptions {
            cpu_limit: Some("0"),
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .into();
        assert_eq!(e.field, "options.cpu_limit");
        assert!(e.message.contains("for options.cpu_limit"), "{e}");
        assert!(e.for_flag.contains("for --cpu-limit"), "{}", e.for_flag);
    }

    #[test]
    fn a_body_with_a_bad_option_names_it() {
        let e = CreateSession::bad_option_in(
            br#"{"repo":"/r","prompt":"p","options":{"model":"m","memory_limit":"2X"}}"#,
        )
        .unwrap();
        assert_eq!(e.field, "options.memory_limit");
        assert!(e.message.contains("`2X`"), "{e}");
        assert!(e.for_flag.contains("--memory-limit"), "{}", e.for_flag);
        assert!(CreateSession::bad_option_in(br#"{"options":{"cpu_limit":2}}"#).is_none());
        assert!(CreateSession::bad_option_in(b"not json").is_none());
    }
}

/// `POST /api/sessions/{ref}/sync`: what to do with a session's two-way sync (DESIGN §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncAction {
    /// Start (or resume) it.
    Start,
    /// Stop it (the worktree stays; nothing is sent either way).
    Stop,
    /// One full reconcile now; answers once it finished.
    Once,
    /// A paused mass deletion is propagated.
    ConfirmDeletions,
    /// A new epoch: files missing on one side come back from the other, nothing is deleted.
    Restore,
}

/// The body of `POST /api/sessions/{ref}/sync`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncRequest {
    /// The action.
    pub action: SyncAction,
}

/// The body of `POST /api/sessions/{ref}/pull` (`{}` for the default branch).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PullRequest {
    /// The local branch to fetch into (default `clauderon/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// The body of `POST /api/sessions/{ref}/sync/history`: diverged history follows one side.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TakeHistoryRequest {
    /// `local` or `sprite`: whose commits the other side's branch takes.
    pub take: String,
}

/// The body of `POST /api/sessions/{ref}/sync/resolve`: take one side's version of a held path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolveRequest {
    /// The path, relative to the worktree.
    pub path: String,
    /// `local` or `sprite`.
    pub take: String,
}
