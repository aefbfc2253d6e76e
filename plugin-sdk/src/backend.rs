//! [`Backend`]: one `async fn` per operation, generated from the op tables
//! (`for_each_call_op!`, `for_each_stream_op!`) that also generate the host's typed client, and
//! the dispatch of a named op to it.

use std::future::Future;

use clauderon_plugin_api::PluginError;
use clauderon_plugin_api::ops;
use clauderon_plugin_api::stream::FrameStream;

use crate::adapter;
use crate::context::CallContext;

macro_rules! backend_ops {
    ($($(#[$doc:meta])* $method:ident($req:ty) -> $resp:ty = $op:path;)*) => {
        /// The operations of a sandbox backend. Every method defaults to `Unsupported`; implement
        /// the ones your plugin supports (with `async fn`) and list them in
        /// [`crate::Plugin::CAPABILITIES`].
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

            clauderon_plugin_api::for_each_stream_op!(stream_methods);
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

/// The stream methods of [`Backend`], and their dispatch by name.
macro_rules! stream_methods {
    ($($(#[$doc:meta])* $method:ident($req:ty) = $op:path;)*) => {
        $(
            $(#[$doc])*
            /// Drive `stream` (spawn a task that owns it) and return once started.
            fn $method(
                &self,
                _ctx: CallContext,
                _req: $req,
                _stream: FrameStream,
            ) -> impl Future<Output = Result<ops::StreamStarted, PluginError>> + Send {
                async { Err(PluginError::unsupported($op)) }
            }
        )*
    };
}

macro_rules! stream_dispatch {
    ($($(#[$doc:meta])* $method:ident($req:ty) = $op:path;)*) => {
        /// Runs a stream op by name over `stream` (the plugin's end).
        pub(crate) async fn dispatch_stream<B: Backend>(
            backend: &B,
            ctx: CallContext,
            op: &str,
            json: &str,
            stream: FrameStream,
        ) -> Result<String, PluginError> {
            match op {
                $(
                    $op => {
                        let req: $req = adapter::decode(op, json)?;
                        adapter::encode(&backend.$method(ctx, req, stream).await?)
                    }
                )*
                _ => Err(PluginError::unsupported(op)),
            }
        }
    };
}

clauderon_plugin_api::for_each_call_op!(backend_ops);
clauderon_plugin_api::for_each_stream_op!(stream_dispatch);
