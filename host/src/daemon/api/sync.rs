//! The two-way sync's routes (DESIGN §15): `GET|POST /api/sessions/{ref}/sync`,
//! `POST /api/sessions/{ref}/sync/resolve`, `POST /api/sessions/{ref}/sync/history`, and
//! `POST /api/sessions/{ref}/pull` (which needs no sync).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};

use super::AppState;
use super::sessions::body_of;
use crate::api::{PullRequest, Pulled, ResolveRequest, SyncRequest, SyncView, TakeHistoryRequest};
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

/// `POST /api/sessions/{ref}/sync/history` (`{"take": "local"|"sprite"}`): diverged history
/// follows one side.
pub async fn take_history(
    State(st): State<AppState>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Json<SyncView>, EngineError> {
    let req: TakeHistoryRequest =
        body_of(&body, "history request", "{\"take\": \"local\"|\"sprite\"}")?;
    let rec = st.engine.find(&session).await?;
    Ok(Json(st.engine.sync_take_history(rec.id, &req.take).await?))
}

/// `POST /api/sessions/{ref}/pull` (`{}` or `{"branch": "B"}`): the sandbox's commits into the
/// local repository.
pub async fn pull(
    State(st): State<AppState>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Json<Pulled>, EngineError> {
    let req: PullRequest = if body.is_empty() {
        PullRequest::default()
    } else {
        body_of(&body, "pull request", "{\"branch\": \"B\"} (optional)")?
    };
    let rec = st.engine.find(&session).await?;
    Ok(Json(st.engine.pull(rec.id, req.branch).await?))
}
