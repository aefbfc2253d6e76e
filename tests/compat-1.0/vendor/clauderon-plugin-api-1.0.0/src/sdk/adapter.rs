//! Adapts an author's [`Backend`] to the FFI backend object: capability gate, JSON codecs,
//! spawning on the plugin runtime with abort-on-drop, and panics turned into errors.

use std::future::Future;
use std::os::fd::IntoRawFd;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use abi_stable::std_types::{RResult, RStr, RString};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::{Backend, HostContext, dispatch_call};
use crate::error::{ErrorKind, PluginError};
use crate::ffi::{FfiBackend, FfiPluginError, FfiStreamOpened};
use crate::ops::{self, Capabilities};
use crate::stream::FrameStream;

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

/// The message of a caught panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// A panic turned into an error.
pub(crate) fn panicked(what: &str, payload: &(dyn std::any::Any + Send)) -> PluginError {
    PluginError::new(
        ErrorKind::Panicked,
        format!("the plugin panicked in {what}: {}", panic_message(payload)),
    )
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Spawns `fut` on the plugin runtime and returns an FFI future for its result: dropping the
/// FFI future aborts the task; a panic becomes a `Panicked` error.
fn spawn_ffi<T, F>(what: String, fut: F) -> FfiFuture<RResult<T, FfiPluginError>>
where
    T: Send + 'static,
    F: Future<Output = Result<T, PluginError>> + Send + 'static,
{
    let Some(handle) = super::runtime::handle() else {
        return async {
            RResult::RErr(PluginError::internal("the plugin runtime is not running").into())
        }
        .into_ffi();
    };
    let task = AbortOnDrop(handle.spawn(AssertUnwindSafe(fut).catch_unwind()));
    async move {
        let result = match task.await {
            Ok(Ok(r)) => r,
            Ok(Err(payload)) => Err(panicked(&what, payload.as_ref())),
            Err(e) if e.is_panic() => Err(panicked(&what, e.into_panic().as_ref())),
            Err(_) => Err(PluginError::new(
                ErrorKind::Cancelled,
                format!("{what} was cancelled: the plugin runtime shut down"),
            )),
        };
        match result {
            Ok(v) => RResult::ROk(v),
            Err(e) => RResult::RErr(e.into()),
        }
    }
    .into_ffi()
}

/// The FFI backend object wrapping an author's backend.
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

    fn gate(&self, op: &str) -> Result<(), PluginError> {
        match Capabilities::for_op(op) {
            Some(c) if self.caps.contains(c) => Ok(()),
            _ => Err(PluginError::unsupported(op)),
        }
    }
}

impl<B: Backend> FfiBackend for BackendAdapter<B> {
    fn call(
        &self,
        op: RStr<'_>,
        request_id: RStr<'_>,
        request_json: RString,
    ) -> FfiFuture<RResult<RString, FfiPluginError>> {
        let op = op.as_str().to_owned();
        let gate = self.gate(&op);
        let backend = Arc::clone(&self.backend);
        let ctx = self.host.call(request_id.as_str().to_owned());
        spawn_ffi(format!("`{op}`"), async move {
            gate?;
            let out = dispatch_call(&*backend, ctx, &op, &request_json).await?;
            Ok(RString::from(out))
        })
    }

    fn open_stream(
        &self,
        op: RStr<'_>,
        request_id: RStr<'_>,
        request_json: RString,
    ) -> FfiFuture<RResult<FfiStreamOpened, FfiPluginError>> {
        let op = op.as_str().to_owned();
        let gate = self.gate(&op);
        let backend = Arc::clone(&self.backend);
        let ctx = self.host.call(request_id.as_str().to_owned());
        spawn_ffi(format!("`{op}`"), async move {
            gate?;
            let (host_end, plugin_end) = FrameStream::pair().map_err(|e| {
                PluginError::internal(format!("cannot create the stream socketpair: {e}"))
            })?;
            let response = match op.as_str() {
                ops::EXEC => {
                    let req = decode(&op, &request_json)?;
                    encode(&backend.exec(ctx, req, plugin_end).await?)?
                }
                ops::ATTACH => {
                    let req = decode(&op, &request_json)?;
                    encode(&backend.attach(ctx, req, plugin_end).await?)?
                }
                _ => return Err(PluginError::unsupported(&op)),
            };
            let fd = host_end
                .into_fd()
                .map_err(|e| PluginError::internal(format!("cannot hand over the stream: {e}")))?;
            Ok(FfiStreamOpened {
                fd: fd.into_raw_fd(),
                response_json: response.into(),
            })
        })
    }
}
