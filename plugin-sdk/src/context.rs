//! What the SDK hands to author code: the host services (as [`HostContext`]), the per-call
//! [`CallContext`], and the redacting [`Secret`] type.

use clauderon_plugin_api::export::HostServices;
use clauderon_plugin_api::{ErrorKind, PluginError};

/// A secret value. `Debug` and `Display` print `[redacted]`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value. Never log it or put it in an error.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The host's services, as handed to [`crate::Plugin::init`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HostContext {
    services: HostServices,
}

impl HostContext {
    pub(crate) fn new(services: HostServices) -> HostContext {
        HostContext { services }
    }

    pub(crate) fn services(&self) -> &HostServices {
        &self.services
    }

    /// The host's version.
    pub fn host_version(&self) -> String {
        self.services.host_version()
    }

    /// Looks up a secret this plugin declared; `Ok(None)` when it is not set.
    pub async fn secret(&self, name: &str) -> Result<Option<Secret>, PluginError> {
        Ok(self.services.secret(name).await?.map(Secret))
    }

    /// A call context with this request id (the SDK makes one per call).
    pub(crate) fn call(&self, request_id: String) -> CallContext {
        CallContext {
            host: self.clone(),
            request_id,
        }
    }
}

/// The context of one operation call: its request id, progress/events, secrets.
#[derive(Clone, Debug)]
pub struct CallContext {
    host: HostContext,
    request_id: String,
}

impl CallContext {
    /// The host's request id for this call.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The host services.
    pub fn host(&self) -> &HostContext {
        &self.host
    }

    /// Emits a JSON event for this call (shown by the host as progress or an event).
    pub fn emit(&self, event: serde_json::Value) {
        self.host
            .services
            .emit(&self.request_id, event.to_string().as_str());
    }

    /// Reports progress: a stage name, a message and an optional fraction in `0.0..=1.0`.
    pub fn progress(&self, stage: &str, message: &str, fraction: Option<f64>) {
        self.emit(serde_json::json!({
            "type": "progress",
            "stage": stage,
            "message": message,
            "fraction": fraction,
        }));
    }

    /// Looks up a secret this plugin declared; an error when it is not set.
    pub async fn secret(&self, name: &str) -> Result<Secret, PluginError> {
        self.host.secret(name).await?.ok_or_else(|| {
            PluginError::new(
                ErrorKind::Unauthenticated,
                format!("secret `{name}` is not set"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }
}
