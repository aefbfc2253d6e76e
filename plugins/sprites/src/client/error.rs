//! The client's one error type: every failure a caller can act on, typed.

use std::time::Duration;

/// Any failure of a Sprites API call.
///
/// Messages never contain the bearer token. `Api` and `RateLimited` carry what the service said;
/// the others say which side of the wire failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service answered with an error status (>= 400, other than a rate limit).
    #[error("Sprites API error {status}: {message}{}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(), hint(*status))]
    Api {
        /// HTTP status code.
        status: u16,
        /// The service's message (JSON `error`/`message`/`errors`, or the plain-text body).
        message: String,
        /// A machine-readable code when the body carried one (`code`, or a rate-limit `error` code).
        code: Option<String>,
    },
    /// The service refused the call because of a rate or concurrency limit (429).
    #[error("rate limited by the Sprites API{}: {message}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// How long the service asked us to wait (JSON `retry_after_seconds`, else `Retry-After`).
        retry_after: Option<Duration>,
        /// The limit (requests or sprites) that was hit, when reported.
        limit: Option<u64>,
        /// The window the limit applies to, when reported.
        window: Option<Duration>,
        /// The limit code (`sprite_creation_rate_limited`, `concurrent_sprite_limit_exceeded`).
        code: Option<String>,
        /// The service's message.
        message: String,
    },
    /// An exec WebSocket closed before the server sent an exit frame; the exit code is unknown.
    #[error(
        "the exec connection closed without an exit code; the command's outcome is unknown (the sprite may have restarted or the network dropped)"
    )]
    ExecEndedWithoutExit,
    /// A streamed (NDJSON) operation reported an error event although HTTP said 200.
    #[error("the Sprites API reported an error during the operation: {message}")]
    InStream {
        /// The error event's text.
        message: String,
    },
    /// The service sent something this client cannot interpret.
    #[error("unexpected response from the Sprites API: {0}")]
    Protocol(String),
    /// The connection failed (refused, reset, TLS, DNS).
    #[error("cannot reach the Sprites API: {0}")]
    Transport(String),
    /// An operation took longer than its deadline.
    #[error("{what} timed out after {}s", after.as_secs_f32())]
    Timeout {
        /// What was being waited for.
        what: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The caller passed something the API cannot accept (checked before any request).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// The HTTP status of an `Api` (or 429 for `RateLimited`) error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// True for a 404 answer.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True for a 409 answer (for example a duplicate sprite name).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// True when the outcome of a request that was sent is unknown (it may or may not have taken
    /// effect): transport failures after sending, timeouts and 5xx answers.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            Error::Transport(_) | Error::Timeout { .. } => true,
            Error::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// What to do about a status, when there is something obvious.
fn hint(status: u16) -> &'static str {
    match status {
        401 => "; check the Sprites API token (create one at https://sprites.dev/account)",
        403 => {
            "; the token is not allowed to do this (restricted tokens may be limited to a name prefix)"
        }
        _ => "",
    }
}

/// Shorthand for results of this client.
pub type Result<T, E = Error> = std::result::Result<T, E>;
