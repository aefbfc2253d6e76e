//! Checkpoint routes: list, create, restore.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::requests::CheckpointRequest;
use crate::api::{CheckpointList, CheckpointView, Restored};
use crate::daemon::error::EngineError;

use super::AppState;
use super::convert::{checkpoint_view, session_view};

/// `GET /api/sessions/{ref}/checkpoints`.
pub async fn list(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<CheckpointList>, EngineError> {
    let rec = st.engine.find(&session).await?;
    let checkpoints: Vec<CheckpointView> = st
        .engine
        .store()
        .checkpoints(rec.id)
        .await?
        .into_iter()
        .map(checkpoint_view)
        .collect();
    Ok(Json(CheckpointList { checkpoints }))
}

/// `POST /api/sessions/{ref}/checkpoints` with `{"comment"}`: 201 with the checkpoint.
pub async fn create(
    State(st): State<AppState>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Response, EngineError> {
    let body: CheckpointRequest = if body.is_empty() {
        CheckpointRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            EngineError::BadRequest(format!(
                "invalid checkpoint request: {e}; expected {{\"comment\": \"...\"}}"
            ))
        })?
    };
    let comment = body.comment;
    if comment.chars().count() > 1000 {
        return Err(EngineError::BadRequest(
            "\"comment\" is longer than 1000 characters".into(),
        ));
    }
    let rec = st.engine.find(&session).await?;
    let cp = st.engine.checkpoint(rec.id, comment).await?;
    Ok((StatusCode::CREATED, Json(checkpoint_view(cp))).into_response())
}

/// `POST /api/sessions/{ref}/checkpoints/{id}/restore`: `{"session","safety_checkpoint"}`.
pub async fn restore(
    State(st): State<AppState>,
    Path((session, checkpoint)): Path<(String, String)>,
) -> Result<Json<Restored>, EngineError> {
    let rec = st.engine.find(&session).await?;
    let (rec, safety) = st.engine.restore(rec.id, &checkpoint).await?;
    let a = st.engine.store().agent(rec.id).await?;
    Ok(Json(Restored {
        session: session_view(rec, Some(&a)),
        safety_checkpoint: checkpoint_view(safety),
    }))
}
