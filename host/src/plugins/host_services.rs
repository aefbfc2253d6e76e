//! The services the host hands to each plugin's `init`: secrets (only the ones the plugin
//! declared), events routed to the call that emitted them, and log forwarding into tracing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use abi_stable::std_types::{ROption, RResult, RStr, RString};
use async_ffi::{FfiFuture, FutureExt as _};
use clauderon_plugin_api::ffi::{FfiHostServices, FfiPluginError};
use clauderon_plugin_api::{ErrorKind, PluginError, SecretDecl};
use tokio::sync::mpsc::UnboundedSender;
use tracing::level_filters::LevelFilter;

/// Where the host finds secret values for plugins. The full resolver lives in
/// `clauderon::secrets`; [`EnvSecretLookup`] is the environment-only fallback.
pub trait SecretLookup: Send + Sync {
    /// The value of `secret` (declared by `plugin`), `Ok(None)` when unset, `Err` with a message
    /// a user can act on when the lookup itself failed. Never put the value in the error.
    fn lookup(&self, plugin: &str, secret: &SecretDecl) -> Result<Option<String>, String>;
}

/// Reads secrets only from the environment variable each declaration names.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvSecretLookup;

impl SecretLookup for EnvSecretLookup {
    fn lookup(&self, _plugin: &str, secret: &SecretDecl) -> Result<Option<String>, String> {
        let Some(var) = &secret.env else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                "environment variable {var} (secret `{}`) is not valid UTF-8",
                secret.name
            )),
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
        // Resolved synchronously: the future is polled on the plugin's runtime, where host
        // tokio types would not work.
        let result = match self.secret_value(name.as_str()) {
            Ok(v) => RResult::ROk(v.map(RString::from).into()),
            Err(e) => RResult::RErr(e.into()),
        };
        async move { result }.into_ffi()
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

    fn services() -> HostServices {
        HostServices {
            plugin: "p".into(),
            declared: vec![SecretDecl {
                name: "k".into(),
                env: Some("CLAUDERON_TEST_HOST_SERVICES_SECRET".into()),
                config_key: None,
                description: String::new(),
            }],
            secrets: Arc::new(EnvSecretLookup),
            events: EventRouter::default(),
        }
    }

    #[test]
    fn undeclared_secrets_are_refused() {
        let err = services().secret_value("other").unwrap_err();
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert!(err.message.contains("did not declare"));
    }

    #[test]
    fn declared_secret_unset_is_none() {
        assert_eq!(services().secret_value("k").unwrap(), None);
    }
}
