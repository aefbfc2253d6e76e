//! The one resolver for every named secret; see the module docs for the precedence.

use super::onepassword::{self, OpError};
use super::{Secret, valid_secret_name};
use crate::config::{BackendSchema, Config, OnePasswordConfig, ProxyConfig};
use crate::home::Home;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The largest secret file accepted.
const MAX_FILE: u64 = 64 * 1024;

/// Secrets the host itself knows, with their environment variables and descriptions. Backend
/// secrets come from the plugin's declaration; an undeclared name still resolves, with its
/// upper-cased name as the environment variable.
const BUILTIN: [(&str, &[&str], &str); 2] = [
    (
        "anthropic_api_key",
        &["ANTHROPIC_API_KEY"],
        "Anthropic API key for the agent, injected by the credential proxy",
    ),
    (
        "github_token",
        &["GITHUB_TOKEN", "GH_TOKEN"],
        "GitHub token for git and gh, injected by the credential proxy",
    ),
];

/// Where a resolved secret came from (never its value).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable.
    Env {
        /// Its name.
        var: String,
    },
    /// A file under `secrets/`.
    File {
        /// The file.
        path: PathBuf,
    },
    /// A reference in proxy.toml `[onepassword.credentials]`.
    OnePassword {
        /// The `op://` reference.
        reference: String,
    },
    /// A literal in config.toml.
    ConfigLiteral {
        /// `file:line [table] key`.
        location: String,
    },
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env { var } => write!(f, "env {var}"),
            Self::File { path } => write!(f, "file {}", path.display()),
            Self::OnePassword { reference } => write!(f, "1password {reference}"),
            Self::ConfigLiteral { location } => write!(f, "config literal {location}"),
        }
    }
}

/// A secret and where it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The value.
    pub secret: Secret,
    /// Its source.
    pub source: SecretSource,
    /// The `op://` reference it was read through, when the source held a reference.
    pub via_reference: Option<String>,
}

/// What the resolver knows about one secret name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretSpec {
    /// The name.
    pub name: String,
    /// Environment variables, first set wins.
    pub env: Vec<String>,
    /// The backend whose table may hold a literal, and the key.
    pub config_key: Option<(String, String)>,
    /// One line for listings.
    pub description: String,
}

/// Why a secret could not be resolved. Messages name the file or source and the fix, never
/// the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not a valid secret name.
    #[error("`{0}` is not a secret name (lowercase letters, digits and `_`, e.g. github_token)")]
    BadName(String),
    /// A secret file that group or others can read.
    #[error(
        "secret file {path} is accessible by group or others (mode {mode:04o}), so it is ignored; \
         it must be readable only by you. Fix: chmod 600 {path}"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secrets directory that others can write to (they could swap a secret).
    #[error(
        "secrets directory {path} is writable by group or others (mode {mode:04o}); \
         Fix: chmod 700 {path}"
    )]
    DirPermissions {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret file owned by someone else.
    #[error(
        "secret file {path} is owned by uid {uid}, not by you; refusing it. Fix: chown $(id -u) {path}"
    )]
    WrongOwner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// A secret file that cannot be read.
    #[error("cannot read secret file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A secret source that holds an empty value.
    #[error("secret `{name}` from {from} is empty; put the value in it or remove it")]
    Empty {
        /// The secret.
        name: String,
        /// Where.
        from: SecretSource,
    },
    /// 1Password failed.
    #[error(transparent)]
    OnePassword(#[from] OpError),
}

/// One row of `config credentials`: a name, where its value would come from, and a preview.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialStatus {
    /// The secret's name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Where the value came from, if any source had one.
    pub source: Option<SecretSource>,
    /// A redacted preview of the value.
    pub preview: Option<String>,
    /// Why resolving failed, if it did.
    pub error: Option<String>,
}

/// Resolves named secrets in the documented order: environment, `secrets/<name>`, 1Password,
/// config literal.
#[derive(Debug, Clone)]
pub struct SecretResolver {
    home: Home,
    config: Config,
    onepassword: OnePasswordConfig,
    env: BTreeMap<String, String>,
    declared: BTreeMap<String, SecretSpec>,
    declared_by: BTreeMap<String, BTreeSet<String>>,
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

impl SecretResolver {
    /// A resolver over `home`'s files, `config`'s literals and `proxy`'s references, reading
    /// the process environment (captured now).
    pub fn new(home: Home, config: &Config, proxy: &ProxyConfig) -> Self {
        Self {
            home,
            config: config.clone(),
            onepassword: proxy.onepassword.clone(),
            env: std::env::vars().collect(),
            declared: BTreeMap::new(),
            declared_by: BTreeMap::new(),
        }
    }

    /// Replaces the captured environment (tests; also the `op` child's `PATH` comes from it).
    pub fn with_env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = env;
        self
    }

    /// Adds the secrets backend `backend` declares in its schema.
    pub fn declare(&mut self, backend: &str, schema: &BackendSchema) {
        for s in &schema.secrets {
            self.declared_by
                .entry(s.name.clone())
                .or_default()
                .insert(backend.to_string());
            self.declared.insert(
                s.name.clone(),
                SecretSpec {
                    name: s.name.clone(),
                    env: vec![s.env.clone().unwrap_or_else(|| s.name.to_ascii_uppercase())],
                    config_key: s.config_key.clone().map(|k| (backend.to_string(), k)),
                    description: s.description.clone(),
                },
            );
        }
    }

    /// Whether `backend` declared secret `name`: host services hand a plugin only the secrets
    /// it declared.
    pub fn is_declared_by(&self, backend: &str, name: &str) -> bool {
        self.declared_by
            .get(name)
            .is_some_and(|b| b.contains(backend))
    }

    /// What the resolver knows about `name` (declared, built in, or the generic rule).
    pub fn spec(&self, name: &str) -> SecretSpec {
        if let Some(s) = self.declared.get(name) {
            return s.clone();
        }
        if let Some((n, env, d)) = BUILTIN.iter().find(|(n, _, _)| *n == name) {
            return SecretSpec {
                name: n.to_string(),
                env: env.iter().map(|s| s.to_string()).collect(),
                config_key: None,
                description: d.to_string(),
            };
        }
        SecretSpec {
            name: name.to_string(),
            env: vec![name.to_ascii_uppercase()],
            config_key: None,
            description: String::new(),
        }
    }

    /// Every secret name worth listing: built in, declared, and any found in `secrets/`,
    /// `[onepassword.credentials]` or `[secrets]`.
    pub fn names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = BUILTIN.iter().map(|(n, _, _)| n.to_string()).collect();
        names.extend(self.declared.keys().cloned());
        names.extend(self.onepassword.credentials.keys().cloned());
        names.extend(self.config.literal_secret_names().map(str::to_string));
        if let Ok(rd) = std::fs::read_dir(self.home.secrets_dir()) {
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str()
                    && valid_secret_name(n)
                {
                    names.insert(n.to_string());
                }
            }
        }
        names.into_iter().collect()
    }

    /// The secret `name` from the first source that has it, or `None` if no source does.
    /// A source that has it but is unusable (a world-readable file, a failing `op`) is an
    /// error, not a fall-through: the user meant that source.
    pub async fn resolve(&self, name: &str) -> Result<Option<Resolved>, SecretError> {
        if !valid_secret_name(name) {
            return Err(SecretError::BadName(name.chars().take(64).collect()));
        }
        let spec = self.spec(name);
        for var in &spec.env {
            if let Some(v) = self.env.get(var).filter(|v| !v.is_empty()) {
                let source = SecretSource::Env { var: var.clone() };
                return self
                    .finish(name, Secret::new(v.clone()), source)
                    .await
                    .map(Some);
            }
        }
        let path = self.home.secret_file(name);
        if let Some(v) = read_secret_file(&self.home.secrets_dir(), &path)? {
            let source = SecretSource::File { path };
            if v.is_empty() {
                return Err(SecretError::Empty {
                    name: name.into(),
                    from: source,
                });
            }
            return self.finish(name, Secret::new(v), source).await.map(Some);
        }
        if let Some(reference) = self.onepassword.credentials.get(name) {
            let secret = onepassword::read(&self.onepassword, &self.env, name, reference).await?;
            return Ok(Some(Resolved {
                secret,
                source: SecretSource::OnePassword {
                    reference: reference.clone(),
                },
                via_reference: Some(reference.clone()),
            }));
        }
        let literal = match (self.config.literal_secret(name), &spec.config_key) {
            (Some(s), _) => Some((s.clone(), self.config.literal_location(name))),
            (None, Some((backend, key))) => self.config.backend_literal(backend, key),
            (None, None) => None,
        };
        if let Some((secret, location)) = literal {
            tracing::warn!(
                secret = name,
                location = %location,
                "using a secret written in config.toml; prefer secrets/{name} (chmod 600), an \
                 environment variable or 1Password"
            );
            let source = SecretSource::ConfigLiteral { location };
            if secret.expose().is_empty() {
                return Err(SecretError::Empty {
                    name: name.into(),
                    from: source,
                });
            }
            return self.finish(name, secret, source).await.map(Some);
        }
        Ok(None)
    }

    /// A value that is itself an `op://` reference is read through 1Password.
    async fn finish(
        &self,
        name: &str,
        secret: Secret,
        source: SecretSource,
    ) -> Result<Resolved, SecretError> {
        let value = secret.expose();
        if value.starts_with("op://") {
            let reference = value.trim().to_string();
            let secret = onepassword::read(&self.onepassword, &self.env, name, &reference).await?;
            return Ok(Resolved {
                secret,
                source,
                via_reference: Some(reference),
            });
        }
        Ok(Resolved {
            secret,
            source,
            via_reference: None,
        })
    }

    /// Resolves every name in [`SecretResolver::names`] for `config credentials`.
    pub async fn credentials(&self) -> Vec<CredentialStatus> {
        let mut out = Vec::new();
        for name in self.names() {
            let description = self.spec(&name).description;
            let row = match self.resolve(&name).await {
                Ok(Some(r)) => CredentialStatus {
                    name,
                    description,
                    preview: Some(r.secret.preview()),
                    source: Some(r.source),
                    error: None,
                },
                Ok(None) => CredentialStatus {
                    name,
                    description,
                    source: None,
                    preview: None,
                    error: None,
                },
                Err(e) => CredentialStatus {
                    name,
                    description,
                    source: None,
                    preview: None,
                    error: Some(e.to_string()),
                },
            };
            out.push(row);
        }
        out
    }
}

/// Reads a secret file the way ssh reads a private key: `fstat` on the open file, refused if
/// group or others have any access or someone else owns it. `None` if it does not exist.
fn read_secret_file(dir: &Path, path: &Path) -> Result<Option<String>, SecretError> {
    let read_err = |reason: String| SecretError::Read {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SecretError::Read {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            });
        }
        Ok(m) if m.mode() & 0o022 != 0 => {
            return Err(SecretError::DirPermissions {
                path: dir.to_path_buf(),
                mode: m.mode() & 0o7777,
            });
        }
        Ok(_) => {}
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| read_err(e.to_string()))?;
    if !meta.is_file() {
        return Err(read_err("not a regular file".into()));
    }
    if meta.uid() != euid() {
        return Err(SecretError::WrongOwner {
            path: path.to_path_buf(),
            uid: meta.uid(),
        });
    }
    if meta.mode() & 0o077 != 0 {
        return Err(SecretError::Permissions {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o7777,
        });
    }
    if meta.len() > MAX_FILE {
        return Err(read_err(
            "larger than 64 KiB; that is not a credential".into(),
        ));
    }
    let mut buf = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut buf)
        .map_err(|e| read_err(format!("{e} (a secret file holds UTF-8 text)")))?;
    // Editors end files with a newline; it is never part of the secret.
    let trimmed_len = buf.trim_end_matches(['\n', '\r']).len();
    buf.truncate(trimmed_len);
    Ok(Some(buf))
}

#[cfg(test)]
mod tests;
