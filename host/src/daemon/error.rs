//! Errors of the daemon's engine and their JSON form on the API:
//! `{"error":{"code","message"}}` with the status code DESIGN §9 assigns.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::plugins::{ErrorKind, PluginError};
use crate::store::StoreError;

/// Why an engine operation or API request failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is malformed or names something invalid; the message says how to fix it.
    #[error("{0}")]
    BadRequest(String),
    /// One field of the request is invalid (the answer names it, for forms).
    #[error(transparent)]
    Invalid(#[from] crate::api::FieldError),
    /// No such session (or checkpoint).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the session's state or another session.
    #[error("{0}")]
    Conflict(String),
    /// The backend plugin failed.
    #[error("backend `{plugin}` failed during `{op}`: {error}")]
    Backend {
        /// The plugin's name.
        plugin: String,
        /// The operation.
        op: &'static str,
        /// What the plugin said.
        error: Box<PluginError>,
    },
    /// The session's backend plugin is not loaded in this daemon.
    #[error("{0}")]
    Unavailable(String),
    /// The agent's process ended before it started working; the message quotes its last
    /// screen and says how to start it again.
    #[error("{0}")]
    AgentExited(String),
    /// The session store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (a bug or the machine).
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    /// A backend failure of `op` on `plugin`.
    pub fn backend(plugin: &str, op: &'static str, error: PluginError) -> Self {
        Self::Backend {
            plugin: plugin.to_owned(),
            op,
            error: Box::new(error),
        }
    }

    /// Whether this is the plugin saying the thing asked about does not exist.
    pub fn is_backend_not_found(&self) -> bool {
        matches!(self, Self::Backend { error, .. } if error.kind == ErrorKind::NotFound)
    }

    /// The HTTP status and short code of this error.
    pub fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) | Self::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Backend { .. } => (StatusCode::BAD_GATEWAY, "backend_failed"),
            Self::Unavailable(_) => (StatusCode::BAD_GATEWAY, "backend_unavailable"),
            Self::AgentExited(_) => (StatusCode::BAD_GATEWAY, "agent_exited"),
            Self::Store(StoreError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Store(StoreError::Ambiguous { .. }) => (StatusCode::BAD_REQUEST, "ambiguous"),
            Self::Store(StoreError::NameTaken(_) | StoreError::IdTaken(_)) => {
                (StatusCode::CONFLICT, "name_taken")
            }
            Self::Store(StoreError::Transition(_)) => (StatusCode::CONFLICT, "wrong_state"),
            Self::Store(_) | Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The JSON error body every route answers with.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for EngineError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        if let Self::Invalid(e) = &self {
            let body = serde_json::json!({"error": {"code": code, "message": e.message,
                "field": e.field}});
            return (status, axum::Json(body)).into_response();
        }
        error_response(status, code, &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_contract() {
        let e = EngineError::backend("local", "create", PluginError::internal("boom"));
        assert_eq!(e.status_code().0, StatusCode::BAD_GATEWAY);
        assert_eq!(
            e.to_string(),
            "backend `local` failed during `create`: boom"
        );
        assert_eq!(
            EngineError::Store(StoreError::NameTaken("x".into()))
                .status_code()
                .0,
            StatusCode::CONFLICT
        );
        assert_eq!(
            EngineError::Store(StoreError::NotFound("x".into()))
                .status_code()
                .0,
            StatusCode::NOT_FOUND
        );
        assert!(
            EngineError::backend("p", "wake", PluginError::new(ErrorKind::NotFound, "gone"))
                .is_backend_not_found()
        );
    }
}
