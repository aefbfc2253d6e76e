//! The root-module functions `export_plugin!` wires up for a [`Plugin`] type.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString};

use super::adapter::{BackendAdapter, panicked};
use super::{HostContext, Plugin, log, runtime};
use crate::error::PluginError;
use crate::ffi::{
    FfiBackend_TO, FfiBackendBox, FfiExtension, FfiHostServicesBox, FfiPluginError, FfiPluginInfo,
    PluginModule, PluginModule_Ref,
};

/// Builds the root module for `P` (called once by abi_stable when the host loads the library).
pub fn root_module<P: Plugin>() -> PluginModule_Ref {
    PluginModule {
        abi_epoch: crate::ABI_EPOCH,
        api_version: RStr::from_str(crate::API_VERSION),
        info: info::<P>,
        init: init::<P>,
        extension: extension::<P>,
        shutdown,
    }
    .leak_into_prefix()
}

/// The info of `P` as plain Rust values (also what the host sees through FFI).
pub fn plugin_info<P: Plugin>() -> FfiPluginInfo {
    let details = catch_unwind(P::details)
        .ok()
        .and_then(|d| serde_json::to_string(&d).ok())
        .unwrap_or_else(|| "{}".to_owned());
    FfiPluginInfo {
        name: P::NAME.into(),
        version: P::VERSION.into(),
        description: P::DESCRIPTION.into(),
        capabilities: P::CAPABILITIES.0,
        details_json: details.into(),
    }
}

extern "C" fn info<P: Plugin>() -> FfiPluginInfo {
    plugin_info::<P>()
}

extern "C" fn init<P: Plugin>(
    services: FfiHostServicesBox,
    config: RString,
) -> RResult<FfiBackendBox, FfiPluginError> {
    let result = catch_unwind(AssertUnwindSafe(
        || -> Result<FfiBackendBox, PluginError> {
            let host = HostContext::new(services);
            log::install(&host);
            let handle = runtime::ensure(P::NAME)?;
            let config = if config.trim().is_empty() {
                serde_json::Value::Object(serde_json::Map::new())
            } else {
                serde_json::from_str(&config).map_err(|e| {
                    PluginError::invalid_request(format!(
                        "the plugin config is not valid JSON: {e}"
                    ))
                })?
            };
            let _guard = handle.enter();
            let backend = P::init(host.clone(), config)?;
            Ok(FfiBackend_TO::from_value(
                BackendAdapter::new(backend, host, P::CAPABILITIES),
                TD_Opaque,
            ))
        },
    ));
    match result {
        Ok(Ok(b)) => RResult::ROk(b),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(payload) => RResult::RErr(panicked("init", payload.as_ref()).into()),
    }
}

extern "C" fn extension<P: Plugin>(name: RStr<'_>, major: u32) -> ROption<FfiExtension> {
    match catch_unwind(|| P::extension(name.as_str(), major)) {
        Ok(Some(ext)) => ROption::RSome(ext.0),
        _ => ROption::RNone,
    }
}

extern "C" fn shutdown(deadline_ms: u64) {
    let _ = catch_unwind(|| runtime::shutdown(Duration::from_millis(deadline_ms)));
}
