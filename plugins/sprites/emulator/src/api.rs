//! The HTTP surface: routes, bearer auth, fault injection and common headers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::app::App;
use crate::error::{ApiError, json_response};
use crate::faults::FaultKind;

/// Version reported in `Sprite-Version` (an rc the notes describe; >= rc30 enables path attach).
pub const SPRITE_VERSION: &str = "v0.0.1-rc48";

/// Request extension: drop this WebSocket after that many output bytes.
#[derive(Debug, Clone, Copy)]
pub struct DropWs(pub u64);

/// Decoded query string (repeated keys kept in order).
pub fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The first value of `key`.
pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses a boolean query value (`true`/`1`/`yes`).
pub fn truthy(v: Option<&str>) -> Option<bool> {
    v.map(|s| {
        matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on" | ""
        )
    })
}

/// Builds the router.
pub fn router(app: Arc<App>) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/sprites",
            get(crate::sprites::list).post(crate::sprites::create),
        )
        .route(
            "/v1/sprites/{name}",
            get(crate::sprites::get_one)
                .put(crate::sprites::update)
                .delete(crate::sprites::delete),
        )
        .route("/v1/sprites/{name}/upgrade", post(crate::sprites::upgrade))
        .route(
            "/v1/sprites/{name}/exec",
            get(crate::exec::exec_get)
                .head(crate::exec::exec_head)
                .post(crate::exec::exec_http),
        )
        .route("/v1/sprites/{name}/exec/{id}", get(crate::exec::attach))
        .route("/v1/sprites/{name}/exec/{id}/kill", post(crate::exec::kill))
        .route(
            "/v1/sprites/{name}/checkpoint",
            post(crate::checkpoint::create),
        )
        .route(
            "/v1/sprites/{name}/checkpoints",
            get(crate::checkpoint::list),
        )
        .route(
            "/v1/sprites/{name}/checkpoints/{id}",
            get(crate::checkpoint::get_one).delete(crate::checkpoint::delete),
        )
        .route(
            "/v1/sprites/{name}/checkpoints/{id}/restore",
            post(crate::checkpoint::restore),
        )
        .route("/v1/sprites/{name}/fs/read", get(crate::fsops::read))
        .route(
            "/v1/sprites/{name}/fs/write",
            axum::routing::put(crate::fsops::write).post(crate::fsops::write),
        )
        .route("/v1/sprites/{name}/fs/list", get(crate::fsops::list))
        .route(
            "/v1/sprites/{name}/fs/delete",
            axum::routing::delete(crate::fsops::delete),
        )
        .route("/v1/sprites/{name}/fs/rename", post(crate::fsops::rename))
        .route(
            "/v1/sprites/{name}/policy/network",
            get(crate::policy::policy_get)
                .post(crate::policy::policy_set)
                .put(crate::policy::policy_set),
        )
        .route(
            "/v1/sprites/{name}/policy/resources",
            get(crate::policy::resources_get)
                .post(crate::policy::resources_set)
                .delete(crate::policy::resources_clear),
        )
        .route("/v1/sprites/{name}/proxy", get(crate::proxy::proxy))
        .route("/_emulator/info", get(crate::admin::info))
        .route(
            "/_emulator/faults",
            get(crate::admin::faults_list)
                .post(crate::admin::faults_add)
                .delete(crate::admin::faults_clear),
        )
        .route(
            "/_emulator/sprites/{name}/state",
            get(crate::admin::state_get).post(crate::admin::state_set),
        )
        .fallback(not_found)
        // Bodies up to the fs/write limit plus headroom; the handlers enforce the exact limits.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024));
    v1.layer(middleware::from_fn_with_state(Arc::clone(&app), gate))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::msg(StatusCode::NOT_FOUND, "not found")
}

fn authorized(app: &App, req: &Request) -> bool {
    let Some(v) = req.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Ok(v) = v.to_str() else { return false };
    let Some(token) = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
    else {
        return false;
    };
    // Length-independent comparison: no early exit on the first differing byte.
    let a = token.trim().as_bytes();
    let b = app.cfg.token.as_bytes();
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn rate_limited(f: &crate::faults::Fault) -> Response {
    let retry = f.retry_after.unwrap_or(1);
    let limit = f.limit.unwrap_or(10);
    let window = f.window_seconds.unwrap_or(60);
    let code = f
        .code
        .clone()
        .unwrap_or_else(|| "sprite_creation_rate_limited".to_owned());
    let reset = time::OffsetDateTime::now_utc().unix_timestamp() + retry as i64;
    let body = json!({
        "error": code,
        "message": format!("Rate limit exceeded: {limit} per {window}s. Retry after {retry} seconds."),
        "limit": limit,
        "window_seconds": window,
        "retry_after_seconds": retry,
        "current_count": limit,
        "upgrade_available": false,
        "upgrade_url": "https://sprites.dev/account",
    });
    let mut resp = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
    let h = resp.headers_mut();
    for (k, v) in [
        ("retry-after", retry.to_string()),
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", "0".to_owned()),
        ("x-ratelimit-reset", reset.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    resp
}

async fn gate(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    if !authorized(&app, &req) {
        return ApiError::msg(StatusCode::UNAUTHORIZED, "authentication failed").into_response();
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().as_str().to_owned();
    if !path.starts_with("/_emulator") {
        let delay: u64 = app
            .faults
            .take(&FaultKind::Latency, &method, &path, &query)
            .iter()
            .map(|f| f.ms.unwrap_or(100))
            .sum();
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if let Some(f) = app
            .faults
            .take(&FaultKind::RateLimit, &method, &path, &query)
            .first()
        {
            return rate_limited(f);
        }
        if let Some(f) = app
            .faults
            .take(&FaultKind::Error, &method, &path, &query)
            .first()
        {
            let status = f
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return match &f.body {
                Some(serde_json::Value::String(s)) => {
                    ApiError::Text(status, s.clone()).into_response()
                }
                Some(v) => json_response(status, v),
                None => json_response(status, &json!({"error": "injected fault"})),
            };
        }
        if req.headers().contains_key(header::UPGRADE)
            && let Some(f) = app
                .faults
                .take(&FaultKind::DropWs, &method, &path, &query)
                .first()
        {
            req.extensions_mut()
                .insert(DropWs(f.after_bytes.unwrap_or(0)));
        }
    }
    let sprite_env = path
        .strip_prefix("/v1/sprites/")
        .is_some_and(|rest| rest.contains('/'));
    let is_exec = sprite_env && path.contains("/exec");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "x-request-id",
        HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
            .unwrap_or(HeaderValue::from_static("emulator")),
    );
    if sprite_env {
        h.insert("sprite-version", HeaderValue::from_static(SPRITE_VERSION));
    }
    if is_exec {
        h.insert("x-sprite-capabilities", HeaderValue::from_static("signal"));
    }
    resp
}
