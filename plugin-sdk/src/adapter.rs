//! Adapts an author's [`Backend`] to the ABI's backend object: capability gate, JSON codecs,
//! spawning on the plugin runtime with abort-on-drop, and panics turned into errors.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use clauderon_plugin_api::export::{BackendObject, BoxedCall, StreamOpened};
use clauderon_plugin_api::ops::Capabilities;
use clauderon_plugin_api::panic::panicked;
use clauderon_plugin_api::stream::FrameStream;
use clauderon_plugin_api::task::AbortOnDrop;
use clauderon_plugin_api::{ErrorKind, PluginError};
use futures::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, dispatch_call, dispatch_stream};
use crate::context::CallContext;
use crate::context::HostContext;

/// Decodes an op's JSON request.
pub(crate) fn decode<T: DeserializeOwned>(op: &str, json: &str) -> Result<T, PluginError> {
    serde_json::from_str(json)
        .map_err(|e| PluginError::invalid_request(format!("invalid `{op}` request: {e}")))
}

/// Encodes an op's JSON response.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<String, PluginError> {
    serde_json::to_string(value)
        .map_err(|e| PluginError::internal(format!("cannot encode the response: {e}")))
}

/// Spawns `fut` on the plugin runtime and returns a future of its result that needs no
/// runtime context to be polled: dropping it aborts the task; a panic becomes a `Panicked`
/// error.
fn spawn<T, F>(what: String, fut: F) -> BoxedCall<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, PluginError>> + Send + 'static,
{
    let Some(handle) = crate::runtime::handle() else {
        return Box::pin(async { Err(PluginError::internal("the plugin runtime is not running")) });
    };
    let task = AbortOnDrop(handle.spawn(AssertUnwindSafe(fut).catch_unwind()));
    Box::pin(async move {
        match task.await {
            Ok(Ok(r)) => r,
            Ok(Err(payload)) => Err(panicked(&what, payload.as_ref())),
            Err(e) if e.is_panic() => Err(panicked(&what, e.into_panic().as_ref())),
            Err(_) => Err(PluginError::new(
                ErrorKind::Cancelled,
                format!("{what} was cancelled: the plugin runtime shut down"),
            )),
        }
    })
}

/// The ABI backend object wrapping an author's backend.
pub(crate) struct BackendAdapter<B> {
    backend: Arc<B>,
    host: HostContext,
    caps: Capabilities,
}

impl<B: Backend> BackendAdapter<B> {
    pub(crate) fn new(backend: B, host: HostContext, caps: Capabilities) -> Self {
        BackendAdapter {
            backend: Arc::new(backend),
            host,
            caps,
        }
    }

    /// Runs `body` for `op` on the plugin runtime, if the plugin's capabilities allow `op`.
    fn run<T, Fut>(
        &self,
        op: &str,
        request_id: &str,
        body: impl FnOnce(Arc<B>, CallContext, String) -> Fut,
    ) -> BoxedCall<T>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, PluginError>> + Send + 'static,
    {
        let allowed = Capabilities::for_op(op).is_some_and(|c| self.caps.contains(c));
        if !allowed {
            let refused = PluginError::unsupported(op);
            return Box::pin(async move { Err(refused) });
        }
        let ctx = self.host.call(request_id.to_owned());
        let fut = body(Arc::clone(&self.backend), ctx, op.to_owned());
        spawn(format!("`{op}`"), fut)
    }
}

impl<B: Backend> BackendObject for BackendAdapter<B> {
    fn call(&self, op: &str, request_id: &str, request_json: String) -> BoxedCall<String> {
        self.run(op, request_id, |backend, ctx, op| async move {
            dispatch_call(&*backend, ctx, &op, &request_json).await
        })
    }

    fn open_stream(
        &self,
        op: &str,
        request_id: &str,
        request_json: String,
    ) -> BoxedCall<StreamOpened> {
        self.run(op, request_id, |backend, ctx, op| async move {
            let (host_end, plugin_end) = FrameStream::pair().map_err(|e| {
                PluginError::internal(format!("cannot create the stream socketpair: {e}"))
            })?;
            let response_json =
                dispatch_stream(&*backend, ctx, &op, &request_json, plugin_end).await?;
            let fd = host_end
                .into_fd()
                .map_err(|e| PluginError::internal(format!("cannot hand over the stream: {e}")))?;
            Ok(StreamOpened { fd, response_json })
        })
    }
}
