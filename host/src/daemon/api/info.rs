//! `GET /api/health`, `/api/credentials` and `/api/plugins`.

use axum::Json;
use axum::extract::State;

use crate::config::render::CredentialView;
use crate::plugins::PluginReport;

use super::AppState;

/// `{"version","pid"}`.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
    }))
}

/// `{"credentials":[CredentialView]}`: names, sources and redacted previews, never values.
pub async fn credentials(State(st): State<AppState>) -> Json<serde_json::Value> {
    let rows: Vec<CredentialView> = st
        .resolver
        .credentials()
        .await
        .into_iter()
        .map(|status| CredentialView {
            status,
            works: None,
        })
        .collect();
    Json(serde_json::json!({ "credentials": rows }))
}

/// The `plugins list --json` report, with the panics caught in this daemon since it started:
/// a plugin whose call panicked is `faulted` (informational; it still serves calls).
pub async fn plugins(State(st): State<AppState>) -> Json<serde_json::Value> {
    let backends = st.engine.backends();
    let reports: Vec<PluginReport> = backends
        .reports()
        .iter()
        .cloned()
        .map(|r| {
            let fault = backends.get(&r.name).ok().and_then(|c| c.fault());
            r.with_fault(fault)
        })
        .collect();
    Json(serde_json::to_value(reports).unwrap_or_default())
}
