//! [`BackendObject`]: a plugin's backend in plain Rust, and its wrapping into the FFI backend
//! object (`FfiBackend`), whose futures cross as `async_ffi::FfiFuture`.

use std::future::Future;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::pin::Pin;

use abi_stable::std_types::{RResult, RStr, RString};
use async_ffi::{FfiFuture, FutureExt as _};

use crate::error::PluginError;
use crate::ffi::{FfiBackend, FfiPluginError, FfiStreamOpened};

/// The future of one call: `Send` and `'static`, because it crosses to the host's runtime.
pub type BoxedCall<T> = Pin<Box<dyn Future<Output = Result<T, PluginError>> + Send + 'static>>;

/// A stream op's result: the socketpair end the host now owns, and the op's JSON response.
#[derive(Debug)]
pub struct StreamOpened {
    /// The host's end of the stream.
    pub fd: OwnedFd,
    /// The op's JSON response.
    pub response_json: String,
}

/// A backend as the ABI sees it: named ops over JSON text. The returned futures are polled by
/// the host, on the host's runtime: they must not need the plugin's runtime context to make
/// progress (the SDK spawns the work on its own runtime and returns a handle to it).
pub trait BackendObject: Send + Sync + 'static {
    /// Runs the non-stream op `op` with a JSON request; resolves to the JSON response.
    fn call(&self, op: &str, request_id: &str, request_json: String) -> BoxedCall<String>;

    /// Opens the stream op `op` (exec, attach).
    fn open_stream(
        &self,
        op: &str,
        request_id: &str,
        request_json: String,
    ) -> BoxedCall<StreamOpened>;
}

/// A [`BackendObject`] behind the FFI backend vtable.
pub(super) struct Exported(pub(super) Box<dyn BackendObject>);

fn to_ffi<T, U: Send + 'static>(
    fut: BoxedCall<T>,
    convert: impl FnOnce(T) -> U + Send + 'static,
) -> FfiFuture<RResult<U, FfiPluginError>>
where
    T: Send + 'static,
{
    async move {
        match fut.await {
            Ok(v) => RResult::ROk(convert(v)),
            Err(e) => RResult::RErr(e.into()),
        }
    }
    .into_ffi()
}

impl FfiBackend for Exported {
    fn call(
        &self,
        op: RStr<'_>,
        request_id: RStr<'_>,
        request_json: RString,
    ) -> FfiFuture<RResult<RString, FfiPluginError>> {
        let fut = self
            .0
            .call(op.as_str(), request_id.as_str(), request_json.into_string());
        to_ffi(fut, RString::from)
    }

    fn open_stream(
        &self,
        op: RStr<'_>,
        request_id: RStr<'_>,
        request_json: RString,
    ) -> FfiFuture<RResult<FfiStreamOpened, FfiPluginError>> {
        let fut = self
            .0
            .open_stream(op.as_str(), request_id.as_str(), request_json.into_string());
        to_ffi(fut, |opened| FfiStreamOpened {
            fd: opened.fd.into_raw_fd(),
            response_json: opened.response_json.into(),
        })
    }
}
