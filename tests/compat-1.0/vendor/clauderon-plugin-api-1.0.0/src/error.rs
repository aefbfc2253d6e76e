//! The error a plugin operation returns, on both sides of the boundary.

use serde::{Deserialize, Serialize};

/// What kind of failure a [`PluginError`] is. Crosses the ABI as a `u32`; unknown codes from a
/// newer plugin read as [`ErrorKind::Internal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The thing asked about does not exist.
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// The request was malformed or invalid.
    InvalidRequest,
    /// The plugin does not support this operation.
    Unsupported,
    /// The provider is unavailable right now (retryable).
    Unavailable,
    /// The provider rate-limited us (retryable).
    RateLimited,
    /// The operation timed out.
    Timeout,
    /// The operation was cancelled.
    Cancelled,
    /// The credentials lack permission.
    PermissionDenied,
    /// The request conflicts with the current state.
    Conflict,
    /// A bug or unexpected condition.
    Internal,
    /// The plugin panicked; the panic was caught.
    Panicked,
    /// The plugin and host are not compatible.
    Incompatible,
    /// Credentials are missing or rejected.
    Unauthenticated,
}

impl ErrorKind {
    /// The stable wire code of this kind.
    pub fn code(self) -> u32 {
        match self {
            ErrorKind::NotFound => 1,
            ErrorKind::AlreadyExists => 2,
            ErrorKind::InvalidRequest => 3,
            ErrorKind::Unsupported => 4,
            ErrorKind::Unavailable => 5,
            ErrorKind::RateLimited => 6,
            ErrorKind::Timeout => 7,
            ErrorKind::Cancelled => 8,
            ErrorKind::PermissionDenied => 9,
            ErrorKind::Conflict => 10,
            ErrorKind::Internal => 11,
            ErrorKind::Panicked => 12,
            ErrorKind::Incompatible => 13,
            ErrorKind::Unauthenticated => 14,
        }
    }

    /// The kind for a wire code; unknown codes become [`ErrorKind::Internal`].
    pub fn from_code(code: u32) -> ErrorKind {
        match code {
            1 => ErrorKind::NotFound,
            2 => ErrorKind::AlreadyExists,
            3 => ErrorKind::InvalidRequest,
            4 => ErrorKind::Unsupported,
            5 => ErrorKind::Unavailable,
            6 => ErrorKind::RateLimited,
            7 => ErrorKind::Timeout,
            8 => ErrorKind::Cancelled,
            9 => ErrorKind::PermissionDenied,
            10 => ErrorKind::Conflict,
            12 => ErrorKind::Panicked,
            13 => ErrorKind::Incompatible,
            14 => ErrorKind::Unauthenticated,
            _ => ErrorKind::Internal,
        }
    }

    /// A short lowercase name (`not_found`, `unsupported`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Internal => "internal",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Incompatible => "incompatible",
            ErrorKind::Unauthenticated => "unauthenticated",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation's failure: a kind, a message a user can act on, whether retrying may help, the
/// chain of causes, and optional structured details. Never contains secret values.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct PluginError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// Whether the same request may succeed later.
    #[serde(default)]
    pub retryable: bool,
    /// The flattened `source()` chain, outermost first.
    #[serde(default)]
    pub causes: Vec<String>,
    /// Structured details (JSON), `Null` when none.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: message.into(),
            retryable: matches!(kind, ErrorKind::Unavailable | ErrorKind::RateLimited),
            causes: Vec::new(),
            details: serde_json::Value::Null,
        }
    }

    /// `op` is not supported by this plugin.
    pub fn unsupported(op: &str) -> Self {
        PluginError::new(
            ErrorKind::Unsupported,
            format!("operation `{op}` is not supported by this plugin"),
        )
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::Internal, message)
    }

    /// An invalid-request error.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::InvalidRequest, message)
    }

    /// Wraps any error, keeping its `source()` chain as causes.
    pub fn from_error(kind: ErrorKind, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut e = PluginError::new(kind, err.to_string());
        let mut src = err.source();
        let mut guard = 0;
        while let Some(s) = src {
            if guard == 32 {
                break;
            }
            e.causes.push(s.to_string());
            src = s.source();
            guard += 1;
        }
        e
    }

    /// Sets `retryable`.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Adds a cause.
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    /// Sets the structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_is_internal() {
        for k in [
            ErrorKind::NotFound,
            ErrorKind::Unsupported,
            ErrorKind::Panicked,
            ErrorKind::Unauthenticated,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_code(k.code()), k);
        }
        assert_eq!(ErrorKind::from_code(999), ErrorKind::Internal);
    }
}
