//! [`HostServices`]: the host-services object a plugin's `init` receives, in plain Rust.

use std::future::Future;
use std::sync::Arc;

use abi_stable::std_types::{RResult, RStr};

use crate::error::PluginError;
use crate::ffi::FfiHostServicesBox;

/// The host's services: its version, declared secrets, events and logs. Cheap to clone.
#[derive(Clone)]
pub struct HostServices {
    inner: Arc<FfiHostServicesBox>,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices").finish_non_exhaustive()
    }
}

impl HostServices {
    pub(super) fn new(inner: FfiHostServicesBox) -> HostServices {
        HostServices {
            inner: Arc::new(inner),
        }
    }

    /// The host's version.
    pub fn host_version(&self) -> String {
        self.inner.host_version().into_string()
    }

    /// Looks up a secret the plugin declared; `Ok(None)` when it is not set.
    pub fn secret(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, PluginError>> + Send + 'static {
        let fut = self.inner.secret(RStr::from_str(name));
        async move {
            match fut.await {
                RResult::ROk(v) => Ok(v.into_option().map(|s| s.into_string())),
                RResult::RErr(e) => Err(e.into()),
            }
        }
    }

    /// Emits a JSON event (text) tagged with the call's request id.
    pub fn emit(&self, request_id: &str, event_json: &str) {
        self.inner
            .emit(RStr::from_str(request_id), RStr::from_str(event_json));
    }

    /// Forwards one log record (level 1 = error .. 5 = trace) into the host's log.
    pub fn log(&self, level: u8, target: &str, message: &str, fields_json: &str) {
        self.inner.log(
            level,
            RStr::from_str(target),
            RStr::from_str(message),
            RStr::from_str(fields_json),
        );
    }

    /// The most verbose level the host wants (0 = off, 1 = error .. 5 = trace).
    pub fn max_log_level(&self) -> u8 {
        self.inner.max_log_level()
    }
}
