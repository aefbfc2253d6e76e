//! The author SDK: implement [`Plugin`] and [`Backend`] with plain async Rust, then call
//! [`export_plugin!`](crate::export_plugin) once. Authors never see FFI types.

mod adapter;
mod context;
#[doc(hidden)]
pub mod export;
mod log;
mod runtime;

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::PluginError;
use crate::ops::{self, Capabilities};
use crate::stream::FrameStream;

pub use context::{CallContext, HostContext, Secret};

/// A configuration key the plugin reads from its `[plugins.<name>]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigKey {
    /// The key.
    pub name: String,
    /// Its type (`string`, `integer`, `boolean`, `duration`, ...).
    #[serde(rename = "type")]
    pub ty: String,
    /// What it does.
    pub description: String,
    /// Its default, rendered as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A secret the plugin may ask the host for. A plugin can only read secrets it declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretDecl {
    /// The secret's name (`sprites_api_key`).
    pub name: String,
    /// An environment variable that may hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A key of the plugin's config table that may hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_key: Option<String>,
    /// What it is for.
    pub description: String,
}

/// What a plugin declares beyond name and version: its config keys and secrets.
/// Serialized as the info's `details_json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PluginDetails {
    /// Config keys.
    #[serde(default)]
    pub config_keys: Vec<ConfigKey>,
    /// Secrets.
    #[serde(default)]
    pub secrets: Vec<SecretDecl>,
}

/// An extension vtable a plugin offers under a `(name, major)`: a `'static` `#[repr(C)]` value
/// whose type both sides agree on for that name and major.
#[derive(Debug, Clone, Copy)]
pub struct Extension(pub(crate) *const ());

impl Extension {
    /// Offers `vtable` as an extension.
    pub fn new<T: Sync + 'static>(vtable: &'static T) -> Extension {
        Extension(std::ptr::from_ref(vtable).cast())
    }
}

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

    /// Config keys and secrets the plugin declares.
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

macro_rules! backend_ops {
    ($($(#[$doc:meta])* $method:ident($req:ty) -> $resp:ty = $op:path;)*) => {
        /// The operations of a sandbox backend. Every method defaults to `Unsupported`; implement
        /// the ones your plugin supports (with `async fn`) and list them in
        /// [`Plugin::CAPABILITIES`].
        pub trait Backend: Send + Sync + 'static {
            $(
                $(#[$doc])*
                fn $method(
                    &self,
                    _ctx: CallContext,
                    _req: $req,
                ) -> impl Future<Output = Result<$resp, PluginError>> + Send {
                    async { Err(PluginError::unsupported($op)) }
                }
            )*

            /// `exec`: run a command; drive `stream` (spawn a task) and return once started.
            fn exec(
                &self,
                _ctx: CallContext,
                _req: ops::ExecRequest,
                _stream: FrameStream,
            ) -> impl Future<Output = Result<ops::StreamStarted, PluginError>> + Send {
                async { Err(PluginError::unsupported(ops::EXEC)) }
            }

            /// `attach`: an interactive TTY session over `stream`; return once started.
            fn attach(
                &self,
                _ctx: CallContext,
                _req: ops::AttachRequest,
                _stream: FrameStream,
            ) -> impl Future<Output = Result<ops::StreamStarted, PluginError>> + Send {
                async { Err(PluginError::unsupported(ops::ATTACH)) }
            }
        }

        /// Runs a non-stream op by name.
        pub(crate) async fn dispatch_call<B: Backend>(
            backend: &B,
            ctx: CallContext,
            op: &str,
            json: &str,
        ) -> Result<String, PluginError> {
            match op {
                $(
                    $op => {
                        let req: $req = adapter::decode(op, json)?;
                        adapter::encode(&backend.$method(ctx, req).await?)
                    }
                )*
                _ => Err(PluginError::unsupported(op)),
            }
        }
    };
}

crate::for_each_call_op!(backend_ops);

/// Exports `$plugin` (a type implementing [`Plugin`]) from this `cdylib`: the declaration symbol
/// and the abi_stable root module. Call it exactly once per library, at the crate root.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The frozen declaration the host reads before anything else.
        #[unsafe(no_mangle)]
        pub static CLAUDERON_PLUGIN_DECLARATION: $crate::declaration::PluginDeclaration =
            $crate::declaration::PluginDeclaration::CURRENT;

        /// abi_stable's root-module header (the symbol `#[export_root_module]` would emit).
        #[unsafe(no_mangle)]
        #[allow(non_upper_case_globals)]
        pub static _1as_0lib_1header_0root_bmodule_bloader:
            $crate::__private::abi_stable::library::LibHeader = {
            extern "C" fn __clauderon_erased_root_module()
            -> $crate::__private::abi_stable::library::RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader(
                    $crate::sdk::export::root_module::<$plugin>,
                )
            }
            // SAFETY: the constructor returns the module type the header is built for.
            unsafe {
                $crate::__private::abi_stable::library::LibHeader::from_constructor::<
                    $crate::ffi::PluginModule_Ref,
                >(
                    __clauderon_erased_root_module,
                    $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
