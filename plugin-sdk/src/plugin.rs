//! [`Plugin`]: a plugin's identity, what it declares, and how it creates its backend.

use crate::backend::Backend;
use crate::context::HostContext;
use clauderon_plugin_api::export::Extension;
use clauderon_plugin_api::{Capabilities, PluginDetails, PluginError};

/// A backend plugin: its identity and how to create its backend.
pub trait Plugin: 'static {
    /// The plugin's name; the library file is `libclauderon_<NAME>.so`.
    const NAME: &'static str;
    /// The plugin's own version (usually `env!("CARGO_PKG_VERSION")`).
    const VERSION: &'static str;
    /// One line about the plugin.
    const DESCRIPTION: &'static str;
    /// The operations the backend implements. Calls to anything else answer `Unsupported`.
    const CAPABILITIES: Capabilities = Capabilities::empty();

    /// The backend `init` creates.
    type Backend: Backend;

    /// Config keys, secrets and backend facts the plugin declares (build them with
    /// [`crate::DetailsBuilder`]).
    fn details() -> PluginDetails {
        PluginDetails::default()
    }

    /// Creates the backend. Runs inside the plugin's own tokio runtime context.
    fn init(host: HostContext, config: serde_json::Value) -> Result<Self::Backend, PluginError>;

    /// An extension vtable by name and major version; `None` for unknown ones.
    fn extension(_name: &str, _major: u32) -> Option<Extension> {
        None
    }
}
