//! The services the host hands to each plugin's `init`: secrets (only the ones the plugin
//! declared), events routed to the call that emitted them, and log forwarding into tracing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use abi_stable::std_types::{ROption, RResult, RStr, RString};
use async_ffi::{FfiFuture, FutureExt as _};
use clauderon_plugin_api::ffi::{FfiHostServices, FfiPluginError};
use clauderon_plugin_api::{ErrorKind, PluginError, SecretDecl};
use tokio::sync::mpsc::UnboundedSender;
use tracing::level_filters::LevelFilter;

use crate::config::BackendSchema;
use crate::secrets::SecretResolver;

/// Where the host finds secret values for plugins ([`ResolverSecrets`] in the host: the full
/// resolver, environment first).
pub trait SecretLookup: Send + Sync {
    /// The value of `secret` (declared by `plugin`), `Ok(None)` when unset, `Err` with a message
    /// a user can act on when the lookup itself failed. Never put the value in the error.
    /// May block (a 1Password read); the host calls it off the plugin's runtime.
    fn lookup(&self, plugin: &str, secret: &SecretDecl) -> Result<Option<String>, String>;
}

/// Secrets through the host's [`SecretResolver`] (environment, `secrets/<name>`, 1Password,
/// config literal). Each plugin's declaration is registered with the resolver on first use,
/// so the declared environment variable and config key apply.
#[derive(Debug, Clone)]
pub struct ResolverSecrets {
    resolver: Arc<RwLock<SecretResolver>>,
}

impl ResolverSecrets {
    /// Wraps a resolver.
    pub fn new(resolver: SecretResolver) -> Self {
        Self {
            resolver: Arc::new(RwLock::new(resolver)),
        }
    }

    /// A copy of the resolver with every declaration registered so far.
    pub fn resolver(&self) -> SecretResolver {
        self.resolver
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl SecretLookup for ResolverSecrets {
    fn lookup(&self, plugin: &str, secret: &SecretDecl) -> Result<Option<String>, String> {
        let resolver = {
            let mut r = self
                .resolver
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !r.is_declared_by(plugin, &secret.name) {
                let schema = BackendSchema {
                    config_keys: Vec::new(),
                    secrets: vec![crate::config::SecretDecl {
                        name: secret.name.clone(),
                        env: secret.env.clone(),
                        config_key: secret.config_key.clone(),
                        description: secret.description.clone(),
                    }],
                };
                r.declare(plugin, &schema);
            }
            r.clone()
        };
        // The resolver is async (1Password runs `op` with a timeout); this runs on a thread of
        // its own (see `HostServices::secret`), so a private current-thread runtime is safe.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                format!(
                    "cannot start a runtime to resolve secret `{}`: {e}",
                    secret.name
                )
            })?;
        match rt.block_on(resolver.resolve(&secret.name)) {
            Ok(Some(r)) => Ok(Some(r.secret.expose().to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Routes events a plugin emits to the host call (by request id) that is waiting for them.
#[derive(Clone, Default)]
pub(crate) struct EventRouter {
    routes: Arc<Mutex<HashMap<String, UnboundedSender<serde_json::Value>>>>,
}

impl EventRouter {
    pub(crate) fn register(&self, request_id: &str, tx: UnboundedSender<serde_json::Value>) {
        if let Ok(mut r) = self.routes.lock() {
            r.insert(request_id.to_owned(), tx);
        }
    }

    pub(crate) fn unregister(&self, request_id: &str) {
        if let Ok(mut r) = self.routes.lock() {
            r.remove(request_id);
        }
    }

    fn route(&self, request_id: &str, event: serde_json::Value) -> bool {
        let tx = self
            .routes
            .lock()
            .ok()
            .and_then(|r| r.get(request_id).cloned());
        tx.is_some_and(|tx| tx.send(event).is_ok())
    }
}

/// The host-services object for one plugin.
pub(crate) struct HostServices {
    pub(crate) plugin: String,
    pub(crate) declared: Vec<SecretDecl>,
    pub(crate) secrets: Arc<dyn SecretLookup>,
    pub(crate) events: EventRouter,
}

impl HostServices {
    fn clone_for_lookup(&self) -> HostServices {
        HostServices {
            plugin: self.plugin.clone(),
            declared: self.declared.clone(),
            secrets: Arc::clone(&self.secrets),
            events: self.events.clone(),
        }
    }

    fn secret_value(&self, name: &str) -> Result<Option<String>, PluginError> {
        let Some(decl) = self.declared.iter().find(|d| d.name == name) else {
            return Err(PluginError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "plugin `{}` asked for secret `{name}`, which it did not declare; a plugin may \
                     only read the secrets listed in its info",
                    self.plugin
                ),
            ));
        };
        self.secrets
            .lookup(&self.plugin, decl)
            .map_err(|m| PluginError::new(ErrorKind::Unavailable, m))
    }
}

impl FfiHostServices for HostServices {
    fn host_version(&self) -> RString {
        env!("CARGO_PKG_VERSION").into()
    }

    fn secret(&self, name: RStr<'_>) -> FfiFuture<RResult<ROption<RString>, FfiPluginError>> {
        // Resolved on a thread of its own (a 1Password read may take seconds) and awaited
        // through a runtime-agnostic channel: the future is polled on the plugin's runtime,
        // where host tokio types would not work.
        let (tx, rx) = futures::channel::oneshot::channel();
        let this = self.clone_for_lookup();
        let name = name.as_str().to_owned();
        let spawned = std::thread::Builder::new()
            .name("clauderon-secret".into())
            .spawn(move || {
                let _ = tx.send(this.secret_value(&name));
            });
        async move {
            let result = match spawned {
                Err(e) => Err(PluginError::new(
                    ErrorKind::Internal,
                    format!("cannot start a thread to resolve a secret: {e}"),
                )),
                Ok(_) => rx.await.unwrap_or_else(|_| {
                    Err(PluginError::new(
                        ErrorKind::Internal,
                        "the secret lookup ended without an answer",
                    ))
                }),
            };
            match result {
                Ok(v) => RResult::ROk(v.map(RString::from).into()),
                Err(e) => RResult::RErr(e.into()),
            }
        }
        .into_ffi()
    }

    fn emit(&self, request_id: RStr<'_>, event_json: RStr<'_>) {
        let event = serde_json::from_str(event_json.as_str())
            .unwrap_or_else(|_| serde_json::Value::String(event_json.as_str().to_owned()));
        if !self.events.route(request_id.as_str(), event) {
            tracing::debug!(plugin = %self.plugin, request_id = %request_id, "unrouted plugin event");
        }
    }

    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>, fields_json: RStr<'_>) {
        let plugin = self.plugin.as_str();
        let target = target.as_str();
        let fields = fields_json.as_str();
        let fields = if fields == "{}" { "" } else { fields };
        match level {
            1 => tracing::error!(plugin, plugin_target = target, "{message} {fields}"),
            2 => tracing::warn!(plugin, plugin_target = target, "{message} {fields}"),
            3 => tracing::info!(plugin, plugin_target = target, "{message} {fields}"),
            4 => tracing::debug!(plugin, plugin_target = target, "{message} {fields}"),
            _ => tracing::trace!(plugin, plugin_target = target, "{message} {fields}"),
        }
    }

    fn max_log_level(&self) -> u8 {
        match LevelFilter::current() {
            LevelFilter::OFF => 0,
            LevelFilter::ERROR => 1,
            LevelFilter::WARN => 2,
            LevelFilter::INFO => 3,
            LevelFilter::DEBUG => 4,
            _ => 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ProxyConfig};
    use crate::home::Home;

    fn services(home: &std::path::Path, env: &[(&str, &str)]) -> HostServices {
        let home = Home::new(home);
        let config = Config::parse(&home.config_file(), String::new(), home.root()).unwrap();
        let resolver = SecretResolver::new(home, &config, &ProxyConfig::default()).with_env(
            env.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        HostServices {
            plugin: "p".into(),
            declared: vec![
                serde_json::from_value::<SecretDecl>(serde_json::json!({
                    "name": "k",
                    "env": "CLAUDERON_TEST_HOST_SERVICES_SECRET",
                    "description": "",
                }))
                .unwrap(),
            ],
            secrets: Arc::new(ResolverSecrets::new(resolver)),
            events: EventRouter::default(),
        }
    }

    #[test]
    fn undeclared_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = services(dir.path(), &[]).secret_value("other").unwrap_err();
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert!(err.message.contains("did not declare"));
    }

    #[test]
    fn declared_secret_unset_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(services(dir.path(), &[]).secret_value("k").unwrap(), None);
    }

    #[test]
    fn declared_env_wins_over_the_file_and_a_bad_file_is_an_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = secrets.join("k");
        std::fs::write(&file, "from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = [("CLAUDERON_TEST_HOST_SERVICES_SECRET", "from-env")];
        assert_eq!(
            services(dir.path(), &env)
                .secret_value("k")
                .unwrap()
                .as_deref(),
            Some("from-env")
        );
        assert_eq!(
            services(dir.path(), &[])
                .secret_value("k")
                .unwrap()
                .as_deref(),
            Some("from-file")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = services(dir.path(), &[]).secret_value("k").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message.contains("chmod 600"), "{}", err.message);
        assert!(!err.message.contains("from-file"));
    }
}
