//! The two-way sync's routes (DESIGN §14): `GET|POST /api/sessions/{ref}/sync` and
//! `POST /api/sessions/{ref}/sync/resolve`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};

use super::AppState;
use super::sessions::body_of;
use crate::api::{ResolveRequest, SyncRequest, SyncView};
use crate::daemon::error::EngineError;

/// `GET /api/sessions/{ref}/sync`: the sync's state, pending changes, conflicts, last sync.
pub async fn show(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<SyncView>, EngineError> {
    let rec = st.engine.find(&session).await?;
    Ok(Json(st.engine.sync_view(rec.id).await?))
}

/// `POST /api/sessions/{ref}/sync` (`{"action": "start"|"stop"|"once"|"confirm_deletions"|
/// "restore"}`): the sync after the action.
pub async fn act(
    State(st): State<AppState>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Json<SyncView>, EngineError> {
    let req: SyncRequest = body_of(
        &body,
        "sync request",
        "{\"action\": \"start\"|\"stop\"|\"once\"|\"confirm_deletions\"|\"restore\"}",
    )?;
    let rec = st.engine.find(&session).await?;
    Ok(Json(st.engine.sync_action(rec.id, req.action).await?))
}

/// `POST /api/sessions/{ref}/sync/resolve` (`{"path", "take": "local"|"sprite"}`).
pub async fn resolve(
    State(st): State<AppState>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Json<SyncView>, EngineError> {
    let req: ResolveRequest = body_of(
        &body,
        "resolve request",
        "{\"path\": \"src/x.rs\", \"take\": \"local\"|\"sprite\"}",
    )?;
    let rec = st.engine.find(&session).await?;
    Ok(Json(
        st.engine.sync_resolve(rec.id, &req.path, &req.take).await?,
    ))
}
