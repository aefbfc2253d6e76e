//! `config.toml`: loading with file:line:column errors, the effective view, backend tables.
//!
//! Host tables (`default_backend`, `[plugins.<name>]`, `[server]`, `[agent]`, `[secrets]`)
//! reject unknown keys. Every other top-level table belongs to a backend plugin and is kept as
//! JSON data; [`Config::backend_config`] checks it against the schema the plugin declares.

mod agent;
mod cache;
mod proxy;
pub mod render;
mod schema;
mod source;

pub use agent::{AgentConfig, AgentPreset, DEFAULT_START_GRACE, Resume, SandboxFile};
pub use cache::{CacheConfig, parse_age, parse_size};
pub use proxy::{OnePasswordConfig, ProxyConfig};
pub use schema::{BackendSchema, ConfigKey, KeyType, SchemaError, SecretDecl};

use crate::home::Home;
use crate::secrets::Secret;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The API's default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3030";

/// Host tables: every other top-level key must be a backend table, so no plugin may be named
/// like one of these (the loader refuses such a plugin).
pub const HOST_KEYS: [&str; 8] = [
    "default_backend",
    "plugins",
    "server",
    "agent",
    "secrets",
    "proxy",
    "sessions",
    "cache",
];

/// Errors from reading a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is malformed, has an unknown key or a value of the wrong type.
    #[error("{file}:{line}:{column}: {}{message}", key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The dotted key path, when the error is about a key or its value.
        key: Option<String>,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// `[plugins.<name>]`: where to load a plugin from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin library (relative paths are relative to the home directory).
    pub path: PathBuf,
}

/// `[server]`: the daemon's API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerConfig {
    /// Listen address; loopback only (the API is local).
    pub listen: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3030)),
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    listen: Option<toml::Spanned<String>>,
}

/// The file form of `[sessions]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsFile {
    hibernation_timeout: Option<toml::Spanned<String>>,
    keep_events: Option<toml::Spanned<i64>>,
    keep_output: Option<toml::Spanned<String>>,
    keep_deleted_events: Option<toml::Spanned<String>>,
}

/// `[sessions]`: defaults for every session.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionsConfig {
    /// Idle time before a session hibernates when its create sets none (`30m`, `90s`; `never`
    /// is `Some(None)`); unset: the backend's declared default.
    pub hibernation_timeout: Option<Option<std::time::Duration>>,
    /// How much of each session's event log the daemon keeps (`keep_events`, `keep_output`,
    /// `keep_deleted_events`).
    pub retention: crate::store::Retention,
}

/// An idle time as config and the API write it: a duration (`30m`, `90s`) or `never` (`None`).
pub fn parse_idle(v: &str) -> Result<Option<std::time::Duration>, String> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    match humantime::parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(Some(d)),
        _ => Err(format!(
            "`{v}` is not an idle time; expected a duration such as 30m or 90s, or never"
        )),
    }
}

/// `[proxy]`: where the daemon's credential proxy listens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProxyServerConfig {
    /// Listen address; loopback only. Port 0 (the default) picks a free port on the first
    /// start and reuses it afterwards while it is free (running agents keep their address).
    pub listen: SocketAddr,
}

impl Default for ProxyServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// The whole file as serde sees it; backend tables fall into `backends`.
#[derive(Debug, Default, serde::Deserialize)]
struct RawConfig {
    default_backend: Option<toml::Spanned<String>>,
    #[serde(default)]
    plugins: BTreeMap<String, PluginConfig>,
    server: Option<ServerFile>,
    proxy: Option<ServerFile>,
    sessions: Option<SessionsFile>,
    cache: Option<cache::CacheFile>,
    agent: Option<agent::AgentFile>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(flatten)]
    backends: BTreeMap<String, toml::Value>,
}

/// The loaded `config.toml` (defaults when the file does not exist). Its Debug output omits
/// the file text and backend values, which may hold literal secrets.
#[derive(Clone)]
pub struct Config {
    file: PathBuf,
    /// The file's text, kept to locate errors found later (backend validation).
    text: String,
    home_root: PathBuf,
    default_backend: Option<String>,
    plugins: BTreeMap<String, PluginConfig>,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[sessions]`.
    pub sessions: SessionsConfig,
    /// `[cache]`.
    pub cache: CacheConfig,
    /// `[proxy]`: the credential proxy's listener.
    pub proxy: ProxyServerConfig,
    /// `[agent]`, with the preset applied.
    pub agent: AgentConfig,
    literal_secrets: BTreeMap<String, Secret>,
    backends: BTreeMap<String, serde_json::Value>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("file", &self.file)
            .field("default_backend", &self.default_backend)
            .field("plugins", &self.plugins)
            .field("server", &self.server)
            .field("sessions", &self.sessions)
            .field("cache", &self.cache)
            .field("proxy", &self.proxy)
            .field("agent", &self.agent)
            .field("literal_secrets", &self.literal_secrets)
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Whether `s` is a valid plugin/backend name: lowercase letters, digits, `_` and `-`.
pub fn valid_plugin_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

impl Config {
    /// Loads `config.toml` from `home`; a missing file means all defaults.
    pub fn load(home: &Home) -> Result<Self, ConfigError> {
        let file = home.config_file();
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let mut c = Self::parse(&file, text, home.root())?;
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&file).map_or(0, |m| m.permissions().mode());
                if !c.literal_secrets.is_empty() && mode & 0o077 != 0 {
                    c.warnings.push(format!(
                        "{f} holds secrets and is readable by others (mode {m:04o}); run: chmod 600 {f}",
                        f = file.display(),
                        m = mode & 0o7777
                    ));
                }
                Ok(c)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Self::parse(&file, String::new(), home.root())
            }
            Err(source) => Err(ConfigError::Read { file, source }),
        }
    }

    /// Parses config text as if read from `file`; `home_root` anchors relative plugin paths.
    pub fn parse(file: &Path, text: String, home_root: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(&text).map_err(|e| source::from_toml(file, &text, &e))?;
        let at = |path: &[&str], at_key: bool, msg: String| {
            source::error_at_path(file, &text, path, at_key, msg)
        };
        let at_span = |span: std::ops::Range<usize>, key: &str, msg: String| {
            source::error_at(file, &text, span.start, Some(key.to_string()), msg)
        };

        let default_backend = match raw.default_backend {
            Some(s) if !valid_plugin_name(s.get_ref()) => {
                return Err(at_span(
                    s.span(),
                    "default_backend",
                    "a backend name is lowercase letters, digits, `_` and `-` (e.g. \"sprites\")"
                        .into(),
                ));
            }
            Some(s) => Some(s.into_inner()),
            None => None,
        };
        for name in raw.plugins.keys() {
            if !valid_plugin_name(name) {
                return Err(at(
                    &["plugins", name],
                    true,
                    "a plugin name is lowercase letters, digits, `_` and `-`".into(),
                ));
            }
        }
        let mut plugins = raw.plugins;
        let user_home = std::env::var_os("HOME").map(PathBuf::from);
        for p in plugins.values_mut() {
            if let (Ok(rest), Some(h)) = (p.path.strip_prefix("~"), &user_home) {
                p.path = h.join(rest);
            } else if p.path.is_relative() {
                p.path = home_root.join(&p.path);
            }
        }

        let mut server = ServerConfig::default();
        if let Some(listen) = raw.server.and_then(|s| s.listen) {
            let addr: SocketAddr = listen.get_ref().parse().map_err(|_| {
                at_span(
                    listen.span(),
                    "server.listen",
                    "expected an address with a port, e.g. \"127.0.0.1:3030\"".into(),
                )
            })?;
            if !addr.ip().is_loopback() {
                return Err(at_span(
                    listen.span(),
                    "server.listen",
                    "the API listens on loopback only (127.0.0.1 or [::1]); it is not meant to \
                     be reachable from other machines"
                        .into(),
                ));
            }
            server.listen = addr;
        }

        let mut proxy = ProxyServerConfig::default();
        if let Some(listen) = raw.proxy.and_then(|s| s.listen) {
            let addr: SocketAddr = listen.get_ref().parse().map_err(|_| {
                at_span(
                    listen.span(),
                    "proxy.listen",
                    "expected an address with a port, e.g. \"127.0.0.1:18080\" (port 0: any \
                     free port)"
                        .into(),
                )
            })?;
            if !addr.ip().is_loopback() {
                return Err(at_span(
                    listen.span(),
                    "proxy.listen",
                    "the credential proxy listens on loopback only (127.0.0.1 or [::1]): \
                     sandboxes reach it through the backend's tunnel, never over the network"
                        .into(),
                ));
            }
            proxy.listen = addr;
        }

        let mut sessions = SessionsConfig::default();
        let raw_sessions = raw.sessions.unwrap_or_default();
        if let Some(t) = raw_sessions.hibernation_timeout {
            sessions.hibernation_timeout = Some(
                parse_idle(t.get_ref())
                    .map_err(|e| at_span(t.span(), "sessions.hibernation_timeout", e))?,
            );
        }
        if let Some(n) = raw_sessions.keep_events {
            sessions.retention.max_events = u64::try_from(*n.get_ref())
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    at_span(
                        n.span(),
                        "sessions.keep_events",
                        format!(
                            "`{}` is not a number of events; expected a positive integer such as 10000",
                            n.get_ref()
                        ),
                    )
                })?;
        }
        if let Some(s) = raw_sessions.keep_output {
            sessions.retention.max_output_bytes = parse_size(s.get_ref())
                .map_err(|e| at_span(s.span(), "sessions.keep_output", e))?;
        }
        if let Some(d) = raw_sessions.keep_deleted_events {
            sessions.retention.deleted_for = humantime::parse_duration(d.get_ref().trim())
                .map_err(|_| {
                    at_span(
                        d.span(),
                        "sessions.keep_deleted_events",
                        format!(
                            "`{}` is not a duration; expected one such as 7d or 12h",
                            d.get_ref()
                        ),
                    )
                })?;
        }

        let mut cache = CacheConfig::default();
        if let Some(c) = raw.cache {
            if let Some(a) = c.max_age {
                cache.max_age =
                    parse_age(a.get_ref()).map_err(|e| at_span(a.span(), "cache.max_age", e))?;
            }
            if let Some(m) = c.max_size {
                cache.max_size =
                    parse_size(m.get_ref()).map_err(|e| at_span(m.span(), "cache.max_size", e))?;
            }
            if let Some(d) = c.direct {
                cache.direct = d;
            }
        }

        let agent = Self::agent_from(raw.agent.unwrap_or_default(), home_root, &at_span)?;

        let mut warnings = Vec::new();
        let mut literal_secrets = BTreeMap::new();
        for (name, value) in raw.secrets {
            if !crate::secrets::valid_secret_name(&name) {
                return Err(at(
                    &["secrets", &name],
                    true,
                    "a secret name is lowercase letters, digits and `_` (e.g. github_token)".into(),
                ));
            }
            let (line, _) = source::spans_of(&text, &["secrets", &name])
                .map_or((0, 0), |(k, _)| source::line_col(&text, k.start));
            warnings.push(format!(
                "{}:{line}: secret `{name}` is written in config.toml; prefer {} (chmod 600), \
                 an environment variable or 1Password",
                file.display(),
                crate::home::Home::new(home_root)
                    .secret_file(&name)
                    .display()
            ));
            literal_secrets.insert(name, Secret::new(value));
        }

        let mut backends = BTreeMap::new();
        for (name, value) in raw.backends {
            let toml::Value::Table(_) = value else {
                return Err(at(
                    &[&name],
                    true,
                    format!(
                        "unknown key `{name}`; top-level keys are {} or a backend table such as [sprites]",
                        HOST_KEYS.join(", ")
                    ),
                ));
            };
            if !valid_plugin_name(&name) {
                return Err(at(
                    &[&name],
                    true,
                    "a backend table is named after its plugin: lowercase letters, digits, `_` and `-`"
                        .into(),
                ));
            }
            backends.insert(name, toml_to_json(&value));
        }

        Ok(Self {
            file: file.to_path_buf(),
            text,
            home_root: home_root.to_path_buf(),
            default_backend,
            plugins,
            server,
            sessions,
            cache,
            proxy,
            agent,
            literal_secrets,
            backends,
            warnings,
        })
    }

    fn agent_from(
        f: agent::AgentFile,
        home_root: &Path,
        at_span: &dyn Fn(std::ops::Range<usize>, &str, String) -> ConfigError,
    ) -> Result<AgentConfig, ConfigError> {
        let preset = match &f.preset {
            None => AgentPreset::Claude,
            Some(p) => match p.get_ref().as_str() {
                "claude" => AgentPreset::Claude,
                "codex" => AgentPreset::Codex,
                "custom" => AgentPreset::Custom,
                _ => {
                    return Err(at_span(
                        p.span(),
                        "agent.preset",
                        "unknown preset; expected \"claude\", \"codex\" or \"custom\"".into(),
                    ));
                }
            },
        };
        let mut a = AgentConfig::preset(preset);
        match f.command {
            Some(c) if c.get_ref().is_empty() || c.get_ref()[0].trim().is_empty() => {
                return Err(at_span(
                    c.span(),
                    "agent.command",
                    "the command is empty; give the program and its arguments, e.g. [\"claude\"]"
                        .into(),
                ));
            }
            Some(c) => a.command = c.into_inner(),
            None if preset == AgentPreset::Custom => {
                return Err(at_span(
                    f.preset.map_or(0..0, |p| p.span()),
                    "agent.command",
                    "preset \"custom\" needs `command = [\"program\", ...]` in [agent]".into(),
                ));
            }
            None => {}
        }
        for (value, key, placeholder, slot) in [
            (
                f.prompt_args,
                "agent.prompt_args",
                "{prompt}",
                &mut a.prompt_args,
            ),
            (
                f.model_args,
                "agent.model_args",
                "{model}",
                &mut a.model_args,
            ),
            (
                f.resume_args,
                "agent.resume_args",
                "{resume}",
                &mut a.resume_args,
            ),
        ] {
            if let Some(v) = value {
                if !v.get_ref().iter().any(|s| s.contains(placeholder)) {
                    return Err(at_span(
                        v.span(),
                        key,
                        format!("must contain {placeholder} where the value goes"),
                    ));
                }
                *slot = v.into_inner();
            }
        }
        if let Some(v) = f.plan_args {
            a.plan_args = v;
        }
        if let Some(v) = f.print_args {
            a.print_args = v;
        }
        if let Some(v) = f.continue_args {
            a.continue_args = v;
        }
        if let Some(g) = f.start_grace {
            a.start_grace = humantime::parse_duration(g.get_ref().trim()).map_err(|_| {
                at_span(
                    g.span(),
                    "agent.start_grace",
                    format!(
                        "`{}` is not a duration; expected one such as 3s or 500ms (0s: trust the start)",
                        g.get_ref()
                    ),
                )
            })?;
        }
        for (sandbox_path, host) in f.files.map(toml::Spanned::into_inner).unwrap_or_default() {
            let span = host.span();
            let host_path = home_root.join(host.into_inner());
            if sandbox_path.trim().is_empty() || sandbox_path.contains('\0') {
                return Err(at_span(
                    span,
                    "agent.files",
                    "expected `\"<path in the sandbox>\" = \"<file on this machine>\"`".into(),
                ));
            }
            if !host_path.is_file() {
                return Err(at_span(
                    span,
                    &format!("agent.files.{sandbox_path}"),
                    format!(
                        "{} is not a file on this machine (relative paths are relative to {})",
                        host_path.display(),
                        home_root.display()
                    ),
                ));
            }
            a.files.push(agent::SandboxFile {
                sandbox_path,
                host_path,
            });
        }
        Ok(a)
    }

    /// The file this config was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// `default_backend`, if set.
    pub fn default_backend(&self) -> Option<&str> {
        self.default_backend.as_deref()
    }

    /// `[plugins.<name>] path`: `~/` expanded, relative paths made absolute against the
    /// clauderon home directory.
    pub fn plugin_path(&self, name: &str) -> Option<&Path> {
        self.plugins.get(name).map(|p| p.path.as_path())
    }

    /// Every `[plugins.<name>]` entry.
    pub fn plugins(&self) -> &BTreeMap<String, PluginConfig> {
        &self.plugins
    }

    /// A backend's table as written (JSON), unvalidated; `None` if the file has none.
    pub fn backend_table(&self, name: &str) -> Option<&serde_json::Value> {
        self.backends.get(name)
    }

    /// Names of every backend table in the file.
    pub fn backend_names(&self) -> impl Iterator<Item = &str> {
        self.backends.keys().map(String::as_str)
    }

    /// Warnings found while loading (e.g. literal secrets); the caller decides where they go.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The literal `[secrets] <name>` value, if any.
    pub fn literal_secret(&self, name: &str) -> Option<&Secret> {
        self.literal_secrets.get(name)
    }

    /// Names written in `[secrets]`.
    pub fn literal_secret_names(&self) -> impl Iterator<Item = &str> {
        self.literal_secrets.keys().map(String::as_str)
    }

    /// A literal secret in backend `name`'s table under `key` (the plugin declared it), with
    /// the warning it deserves.
    pub fn backend_literal(&self, backend: &str, key: &str) -> Option<(Secret, String)> {
        let v = self.backends.get(backend)?.get(key)?.as_str()?;
        let line = source::spans_of(&self.text, &[backend, key])
            .map_or(0, |(k, _)| source::line_col(&self.text, k.start).0);
        Some((
            Secret::new(v.to_string()),
            format!("{}:{line} [{backend}] {key}", self.file.display()),
        ))
    }

    /// Where a `[secrets]` literal was written, as `file:line [secrets] name`.
    pub fn literal_location(&self, name: &str) -> String {
        let line = source::spans_of(&self.text, &["secrets", name])
            .map_or(0, |(k, _)| source::line_col(&self.text, k.start).0);
        format!("{}:{line} [secrets] {name}", self.file.display())
    }

    /// Checks backend `name`'s table against the schema its plugin declares and returns the
    /// JSON the plugin receives: declared defaults filled in, secret keys removed (a plugin
    /// asks the host for secrets by name). Unknown keys and wrong types are located errors.
    pub fn backend_config(
        &self,
        name: &str,
        schema: &BackendSchema,
    ) -> Result<serde_json::Value, ConfigError> {
        let empty = serde_json::Map::new();
        let table = self
            .backends
            .get(name)
            .and_then(|v| v.as_object())
            .unwrap_or(&empty);
        let mut out = serde_json::Map::new();
        for (key, value) in table {
            if schema.secret_for_key(key).is_some() {
                if !value.is_string() {
                    return Err(source::error_at_path(
                        &self.file,
                        &self.text,
                        &[name, key],
                        false,
                        "a secret is a string",
                    ));
                }
                continue;
            }
            let Some(decl) = schema.key(key) else {
                let mut accepted: Vec<&str> = schema
                    .config_keys
                    .iter()
                    .map(|k| k.name.as_str())
                    .chain(
                        schema
                            .secrets
                            .iter()
                            .filter_map(|s| s.config_key.as_deref()),
                    )
                    .collect();
                accepted.sort_unstable();
                let list = if accepted.is_empty() {
                    "it takes no keys".to_string()
                } else {
                    format!("accepted keys: {}", accepted.join(", "))
                };
                return Err(source::error_at_path(
                    &self.file,
                    &self.text,
                    &[name, key],
                    true,
                    format!("unknown key `{key}` for the {name} backend; {list}"),
                ));
            };
            if !decl.kind.accepts(value) {
                return Err(source::error_at_path(
                    &self.file,
                    &self.text,
                    &[name, key],
                    false,
                    format!("expected {} ({})", decl.kind, decl.description),
                ));
            }
            out.insert(key.clone(), value.clone());
        }
        for k in &schema.config_keys {
            if let (false, Some(d)) = (out.contains_key(&k.name), &k.default) {
                out.insert(k.name.clone(), d.clone());
            }
        }
        Ok(serde_json::Value::Object(out))
    }

    /// Refuses a backend table that no known plugin claims (a typo such as `[sprties]`), with
    /// its location and the known names. `known` is every plugin name discovery found.
    pub fn check_backend_tables(&self, known: &[&str]) -> Result<(), ConfigError> {
        for name in self.backends.keys() {
            if !known.contains(&name.as_str()) {
                let list = if known.is_empty() {
                    "no plugins were found".to_string()
                } else {
                    format!("known plugins: {}", known.join(", "))
                };
                return Err(source::error_at_path(
                    &self.file,
                    &self.text,
                    &[name],
                    true,
                    format!("no plugin named `{name}` claims this table; {list}"),
                ));
            }
        }
        Ok(())
    }

    /// The home directory this config belongs to.
    pub fn home_root(&self) -> &Path {
        &self.home_root
    }
}

#[cfg(test)]
mod tests;
