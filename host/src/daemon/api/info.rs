//! `GET /api/health`, `/api/credentials` and `/api/plugins`.

use axum::Json;
use axum::extract::State;

use crate::config::render::CredentialView;
use crate::plugins::PluginReport;

use super::AppState;

/// `{"version","pid"}`.
pub async fn health(State(st): State<AppState>) -> Json<crate::api::Health> {
    Json(crate::api::Health {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        installation: st.engine.installation().to_string(),
    })
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

/// `POST /api/reconcile` (`{"backend"?, "delete"?}`): sandboxes labelled as ours that no
/// session owns, and what was done with them.
pub async fn reconcile(
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<crate::api::ReconcileReport>, crate::daemon::error::EngineError> {
    let req: crate::api::ReconcileRequest = if body.iter().all(u8::is_ascii_whitespace) {
        crate::api::ReconcileRequest::default()
    } else {
        super::sessions::body_of(
            &body,
            "reconcile request",
            "{\"backend\"?: \"name\", \"delete\"?: true|false}",
        )?
    };
    Ok(Json(
        st.engine
            .reconcile_orphans(req.backend.as_deref(), req.delete)
            .await?,
    ))
}
