//! [`Exported`]: a [`Plugin`] as the ABI's [`PluginEntry`], which `export_plugin!` exports.

use std::marker::PhantomData;
use std::panic::catch_unwind;
use std::time::Duration;

use clauderon_plugin_api::export::{
    BackendObject, Description, Extension, HostServices, PluginEntry,
};
use clauderon_plugin_api::{PluginDetails, PluginError};

use crate::adapter::BackendAdapter;
use crate::context::HostContext;
use crate::plugin::Plugin;
use crate::{log, runtime};

/// The plugin `P` as the ABI sees it. Not part of the public API: use `export_plugin!`.
pub struct Exported<P>(PhantomData<P>);

impl<P: Plugin> PluginEntry for Exported<P> {
    fn describe() -> Description {
        Description {
            name: P::NAME.to_owned(),
            version: P::VERSION.to_owned(),
            description: P::DESCRIPTION.to_owned(),
            capabilities: P::CAPABILITIES,
            // A panicking `details` still lets the plugin load, declaring nothing.
            details: catch_unwind(P::details).unwrap_or_else(|_| PluginDetails::default()),
        }
    }

    fn init(host: HostServices, config_json: &str) -> Result<Box<dyn BackendObject>, PluginError> {
        let host = HostContext::new(host);
        log::install(&host);
        let handle = runtime::ensure(P::NAME)?;
        let config = if config_json.trim().is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(config_json).map_err(|e| {
                PluginError::invalid_request(format!("the plugin config is not valid JSON: {e}"))
            })?
        };
        let _guard = handle.enter();
        let backend = P::init(host.clone(), config)?;
        Ok(Box::new(BackendAdapter::new(
            backend,
            host,
            P::CAPABILITIES,
        )))
    }

    fn extension(name: &str, major: u32) -> Option<Extension> {
        P::extension(name, major)
    }

    fn shutdown(deadline: Duration) {
        runtime::shutdown(deadline);
    }
}
