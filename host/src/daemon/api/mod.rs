//! The REST API of DESIGN §9: the router, its shared state, and JSON errors for every way a
//! request can be malformed. Every route, and the web UI's pages and assets merged in from
//! [`super::web`], sits behind [`super::guard`].

mod attach;
mod caches;
mod checkpoints;
mod convert;
mod events;
mod info;
mod sessions;
mod sync;

use std::sync::Arc;

use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use tokio::sync::watch;

use crate::secrets::SecretResolver;

use super::engine::Engine;
use super::error::error_response;
use super::guard::{self, Guard, GuardConfig};
use super::web::{self, WebAuth};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The session engine.
    pub engine: Arc<Engine>,
    /// The secret resolver (for `GET /api/credentials`; values never leave it).
    pub resolver: Arc<SecretResolver>,
    /// Becomes `true` when the daemon is stopping: long-lived streams end.
    pub shutdown: watch::Receiver<bool>,
}

/// The API router and the web UI with the guard on every route.
pub fn router(state: AppState, guard: GuardConfig) -> Router {
    let web_auth = WebAuth::new();
    Router::new()
        .route("/api/health", get(info::health))
        .route("/api/credentials", get(info::credentials))
        .route("/api/plugins", get(info::plugins))
        .route("/api/reconcile", post(info::reconcile))
        .route("/api/caches", get(caches::list))
        .route("/api/caches/clear", post(caches::clear))
        .route("/api/caches/gc", post(caches::gc))
        .route("/api/sessions/{session}/cache/save", post(caches::save))
        .route("/api/sessions", get(sessions::list).post(sessions::create))
        .route(
            "/api/sessions/{session}",
            get(sessions::get_one).delete(sessions::delete),
        )
        .route("/api/sessions/{session}/wake", post(sessions::wake))
        .route("/api/sessions/{session}/restart", post(sessions::restart))
        .route("/api/sessions/{session}/unpushed", get(sessions::unpushed))
        .route(
            "/api/sessions/{session}/sync",
            get(sync::show).post(sync::act),
        )
        .route("/api/sessions/{session}/sync/resolve", post(sync::resolve))
        .route(
            "/api/sessions/{session}/sync/history",
            post(sync::take_history),
        )
        .route("/api/sessions/{session}/pull", post(sync::pull))
        .route(
            "/api/sessions/{session}/hibernate",
            post(sessions::hibernate),
        )
        .route("/api/sessions/{session}/events", get(events::events))
        .route("/api/sessions/{session}/attach", get(attach::attach))
        .route(
            "/api/sessions/{session}/checkpoints",
            get(checkpoints::list).post(checkpoints::create),
        )
        .route(
            "/api/sessions/{session}/checkpoints/{checkpoint}/restore",
            post(checkpoints::restore),
        )
        .merge(web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Guard::new(guard, web_auth.clone()),
            guard::middleware,
        ))
        .layer(Extension(web_auth))
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    if !web::is_api_path(uri.path()) {
        return web::not_found_page();
    }
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such API route; the routes are listed in docs/DESIGN.md (the daemon's REST API)",
    )
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// A 400 for a query string that does not parse.
fn bad_query(e: impl std::fmt::Display) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "bad_request",
        &format!("invalid query string: {e}"),
    )
}
