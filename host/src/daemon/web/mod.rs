//! The web UI (DESIGN §13): pages and assets served by the daemon, signing in with a one-time
//! link from `clauderon web`, and one stream of every session's events for the session list.
//!
//! The UI is a client of the same REST API as the CLI (DESIGN §9); the routes here only serve
//! it, sign a browser in, and add the all-sessions event stream a list of many sessions needs.

mod assets;
pub mod auth;
mod events;
mod pages;

use axum::Router;
use axum::routing::{get, post};

use super::api::AppState;

pub use auth::{AuthedBy, COOKIE_NAME, WebAuth};
pub use pages::{continue_page, login_page, not_found_page};

/// Where a login token is exchanged for the session cookie (`/login?token=...`).
pub const LOGIN_PATH: &str = "/login";

/// Whether `path` belongs to the JSON API (which answers 401 as JSON, not with the login page).
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// The web UI's routes, to merge into the API router (behind the same guard).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::index))
        .route("/new", get(pages::index))
        .route("/caches", get(pages::index))
        .route("/s/{session}", get(pages::index))
        .route("/assets/{version}/{*file}", get(assets::asset))
        .route(LOGIN_PATH, get(pages::login))
        .route("/api/web/login-token", post(pages::login_token))
        .route("/api/web/logout", post(pages::logout))
        .route("/api/web/events", get(events::all_events))
}
