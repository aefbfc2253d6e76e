//! The typed client of one loaded backend plugin. Every call crosses the ABI as a named op with a
//! JSON payload and is awaited inside a spawned task, so even a panic that escaped the plugin's
//! own guards becomes an error here.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::{RResult, RStr, RString};
use clauderon_plugin_api::ffi::{FfiBackendBox, FfiExtension, PluginModule_Ref};
use clauderon_plugin_api::ops::{self, Capabilities};
use clauderon_plugin_api::panic::{panic_message, panic_reason};
use clauderon_plugin_api::stream::FrameStream;
use clauderon_plugin_api::task::AbortOnDrop;
use clauderon_plugin_api::{ErrorKind, PluginError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

use super::discovery::DiscoverySource;
use super::fault::{FaultLog, PluginFault};
use super::host_services::EventRouter;
use super::loader::PluginInfo;

/// A loaded, initialized backend plugin. Cheap to share (`Arc`); lives for the whole process.
/// A panic in one of its calls becomes a `Panicked` error and is recorded ([`Self::fault`]).
pub struct PluginClient {
    pub(crate) info: PluginInfo,
    pub(crate) path: PathBuf,
    pub(crate) source: DiscoverySource,
    pub(crate) module: PluginModule_Ref,
    pub(crate) backend: Arc<FfiBackendBox>,
    pub(crate) events: EventRouter,
    pub(crate) faults: FaultLog,
}

impl std::fmt::Debug for PluginClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginClient")
            .field("name", &self.info.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A plugin client whose calls hand every event the plugin emits during them to a sink (the
/// daemon turns them into a session's progress). It has the same typed methods as
/// [`PluginClient`], generated from the same op table.
#[derive(Debug, Clone)]
pub struct EventedClient {
    client: Arc<PluginClient>,
    events: UnboundedSender<serde_json::Value>,
}

impl EventedClient {
    /// The plugin.
    pub fn client(&self) -> &PluginClient {
        &self.client
    }
}

impl PluginClient {
    /// This plugin with every call's events going to `events`.
    pub fn with_events(
        self: &Arc<Self>,
        events: UnboundedSender<serde_json::Value>,
    ) -> EventedClient {
        EventedClient {
            client: Arc::clone(self),
            events,
        }
    }
}

macro_rules! typed_ops {
    ($($(#[$doc:meta])* $method:ident($req:ty) -> $resp:ty = $op:path;)*) => {
        impl PluginClient {
            $(
                $(#[$doc])*
                pub async fn $method(&self, req: &$req) -> Result<$resp, PluginError> {
                    self.call($op, req, None).await
                }
            )*
        }
        impl EventedClient {
            $(
                $(#[$doc])*
                pub async fn $method(&self, req: &$req) -> Result<$resp, PluginError> {
                    self.client.call($op, req, Some(self.events.clone())).await
                }
            )*
        }
    };
}

macro_rules! typed_stream_ops {
    ($($(#[$doc:meta])* $method:ident($req:ty) = $op:path;)*) => {
        impl PluginClient {
            $(
                $(#[$doc])*
                /// Returns the response and the framed stream of its I/O.
                pub async fn $method(
                    &self,
                    req: &$req,
                ) -> Result<(ops::StreamStarted, FrameStream), PluginError> {
                    self.open_stream($op, req, None).await
                }
            )*
        }
        impl EventedClient {
            $(
                $(#[$doc])*
                /// Returns the response and the framed stream of its I/O.
                pub async fn $method(
                    &self,
                    req: &$req,
                ) -> Result<(ops::StreamStarted, FrameStream), PluginError> {
                    self.client.open_stream($op, req, Some(self.events.clone())).await
                }
            )*
        }
    };
}

clauderon_plugin_api::for_each_call_op!(typed_ops);
clauderon_plugin_api::for_each_stream_op!(typed_stream_ops);

impl PluginClient {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// What the plugin says about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The library file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the library was found.
    pub fn source(&self) -> DiscoverySource {
        self.source
    }

    /// The plugin's capabilities.
    pub fn capabilities(&self) -> Capabilities {
        self.info.capabilities
    }

    /// The absolute directory inside each sandbox where the plugin clones the repository and
    /// the agent runs, as the plugin declares it (`None`: it does not say, as no plugin built
    /// before plugin API 1.1 does).
    pub fn workspace(&self) -> Option<&str> {
        self.info.details.workspace.as_deref()
    }

    /// How long a session may sit idle before it hibernates when the user sets nothing, as the
    /// plugin declares it (`None`: it does not say).
    pub fn default_idle(&self) -> Option<Duration> {
        self.info
            .details
            .default_idle_seconds
            .map(Duration::from_secs)
    }

    /// The panics caught from this plugin's calls so far (`None`: it never panicked). Only
    /// informational: a caught panic leaves the plugin's runtime serving later calls.
    pub fn fault(&self) -> Option<PluginFault> {
        self.faults.snapshot()
    }

    /// Whether the plugin implements `op`.
    pub fn supports(&self, op: &str) -> bool {
        Capabilities::for_op(op).is_some_and(|c| self.info.capabilities.contains(c))
    }

    /// Calls `op` with a serde request. Events the plugin emits for this call go to `events`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: &str,
        req: &Req,
        events: Option<UnboundedSender<serde_json::Value>>,
    ) -> Result<Resp, PluginError> {
        let json = self.encode(op, req)?;
        let out = self
            .with_request(op, events, |rid| {
                self.backend
                    .call(RStr::from_str(op), RStr::from_str(rid), json)
            })
            .await?;
        self.decode(op, &out)
    }

    /// Opens a stream op by name.
    pub async fn open_stream<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: &str,
        req: &Req,
        events: Option<UnboundedSender<serde_json::Value>>,
    ) -> Result<(Resp, FrameStream), PluginError> {
        let json = self.encode(op, req)?;
        let opened = self
            .with_request(op, events, |rid| {
                self.backend
                    .open_stream(RStr::from_str(op), RStr::from_str(rid), json)
            })
            .await?;
        // SAFETY: the SDK hands over ownership of a fresh socketpair end.
        let fd = unsafe { OwnedFd::from_raw_fd(opened.fd) };
        let stream = FrameStream::from_fd(fd)
            .map_err(|e| PluginError::internal(format!("cannot use the stream of `{op}`: {e}")))?;
        let resp = self.decode(op, &opened.response_json)?;
        Ok((resp, stream))
    }

    /// The extension vtable registered under `(name, major)`, if the plugin has one. The caller
    /// must know its type for that name and major.
    pub fn extension(&self, name: &str, major: u32) -> Option<FfiExtension> {
        (self.module.extension())(RStr::from_str(name), major).into_option()
    }

    /// Stops the plugin's runtime, waiting at most `deadline`. Later calls fail as cancelled.
    pub fn shutdown(&self, deadline: Duration) {
        let ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        (self.module.shutdown())(ms);
    }

    fn decode<Resp: DeserializeOwned>(&self, op: &str, json: &str) -> Result<Resp, PluginError> {
        serde_json::from_str(json).map_err(|e| {
            PluginError::internal(format!(
                "plugin `{}` answered `{op}` with an invalid response: {e}",
                self.name()
            ))
        })
    }

    fn encode<Req: Serialize>(&self, op: &str, req: &Req) -> Result<RString, PluginError> {
        serde_json::to_string(req)
            .map(RString::from)
            .map_err(|e| PluginError::internal(format!("cannot encode the `{op}` request: {e}")))
    }

    async fn with_request<T: Send + 'static>(
        &self,
        op: &str,
        events: Option<UnboundedSender<serde_json::Value>>,
        start: impl FnOnce(
            &str,
        ) -> async_ffi::FfiFuture<
            RResult<T, clauderon_plugin_api::ffi::FfiPluginError>,
        >,
    ) -> Result<T, PluginError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        // Unregistered when this call ends or is dropped.
        let _route = events.map(|tx| {
            self.events.register(&request_id, tx);
            RouteGuard {
                events: self.events.clone(),
                request_id: request_id.clone(),
            }
        });
        let fut = start(&request_id);
        // Awaited in its own task: a panic re-raised by async-ffi stays in that task.
        // Aborted if this future is dropped, which drops the plugin's future and so aborts the
        // plugin-side task: cancellation reaches the plugin.
        let joined = AbortOnDrop(tokio::spawn(fut)).await;
        match joined {
            Ok(RResult::ROk(v)) => Ok(v),
            Ok(RResult::RErr(e)) => {
                let e: PluginError = e.into();
                if e.kind == ErrorKind::Panicked {
                    // The SDK caught it: "the plugin panicked in `op`: <message>".
                    let what = format!("`{op}`");
                    self.faults.record(op, panic_reason(&what, &e.message));
                }
                Err(e)
            }
            Err(e) if e.is_panic() => {
                let message = panic_message(e.into_panic().as_ref());
                self.faults.record(op, &message);
                Err(PluginError::new(
                    ErrorKind::Panicked,
                    format!("plugin `{}` panicked during `{op}`", self.name()),
                ))
            }
            Err(_) => Err(PluginError::new(
                ErrorKind::Cancelled,
                format!("`{op}` on plugin `{}` was cancelled", self.name()),
            )),
        }
    }
}

struct RouteGuard {
    events: EventRouter,
    request_id: String,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.events.unregister(&self.request_id);
    }
}
