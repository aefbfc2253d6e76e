//! Error answers in the shapes the real service uses (section 2.0 of the notes).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An HTTP error answer: JSON for the control plane and fs endpoints, text for sprite-env quirks.
#[derive(Debug)]
pub enum ApiError {
    /// A JSON body.
    Json(StatusCode, Value),
    /// A `text/plain` body (sprite-env errors are often plain text).
    Text(StatusCode, String),
}

impl ApiError {
    /// `{"error": msg}`.
    pub fn msg(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError::Json(status, json!({ "error": msg.into() }))
    }

    /// `{"errors": [msg]}` (validation).
    pub fn validation(msg: impl Into<String>) -> Self {
        ApiError::Json(StatusCode::BAD_REQUEST, json!({ "errors": [msg.into()] }))
    }

    /// 404 `{"error":"sprite not found"}` (sub-resources of a missing sprite).
    pub fn sprite_not_found() -> Self {
        Self::msg(StatusCode::NOT_FOUND, "sprite not found")
    }

    /// 400 `{"error": msg}`.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::msg(StatusCode::BAD_REQUEST, msg)
    }

    /// 500 `{"error": msg}`.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::msg(StatusCode::INTERNAL_SERVER_ERROR, msg)
    }

    /// A filesystem error `{"error","code","path"}`.
    pub fn fs(status: StatusCode, code: &str, path: &str, msg: impl Into<String>) -> Self {
        ApiError::Json(
            status,
            json!({ "error": msg.into(), "code": code, "path": path }),
        )
    }

    /// The human-readable message of this answer.
    pub fn message(&self) -> String {
        match self {
            ApiError::Json(_, v) => v
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string()),
            ApiError::Text(_, t) => t.clone(),
        }
    }

    /// The status code of this answer.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Json(s, _) | ApiError::Text(s, _) => *s,
        }
    }
}

/// A JSON response with the control plane's content type and cache headers.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=0, private, must-revalidate"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Json(status, body) => json_response(status, &body),
            ApiError::Text(status, text) => {
                let mut resp = (status, text).into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                resp
            }
        }
    }
}
