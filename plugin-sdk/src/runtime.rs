//! The plugin library's own tokio runtime: one multi-thread runtime per library, created on the
//! first `init`. Tokio cannot be shared with the host across the library boundary.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use clauderon_plugin_api::PluginError;

static HANDLE: OnceLock<Handle> = OnceLock::new();
static OWNED: Mutex<Option<Runtime>> = Mutex::new(None);

/// The runtime's handle, creating the runtime on first use.
pub(crate) fn ensure(plugin: &str) -> Result<Handle, PluginError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let mut owned = OWNED
        .lock()
        .map_err(|_| PluginError::internal("plugin runtime lock poisoned"))?;
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{plugin}-worker"))
        .enable_all()
        .build()
        .map_err(|e| PluginError::internal(format!("cannot start the plugin's runtime: {e}")))?;
    let handle = rt.handle().clone();
    *owned = Some(rt);
    let _ = HANDLE.set(handle.clone());
    Ok(handle)
}

/// The runtime's handle if it was created.
pub(crate) fn handle() -> Option<Handle> {
    HANDLE.get().cloned()
}

/// Shuts the runtime down, waiting at most `deadline`. Later calls fail as cancelled.
pub(crate) fn shutdown(deadline: Duration) {
    let rt = OWNED.lock().ok().and_then(|mut g| g.take());
    if let Some(rt) = rt {
        rt.shutdown_timeout(deadline);
    }
}
