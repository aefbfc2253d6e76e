//! Checkpoint routes: list, create, restore.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::daemon::engine::agents;
use crate::daemon::error::EngineError;
use crate::daemon::views::{CheckpointView, SessionView};

use super::AppState;

/// `GET /api/sessions/{ref}/checkpoints`.
pub async fn list(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<serde_json::Value>, EngineError> {
    let rec = st.engine.find(&session).await?;
    let cps: Vec<CheckpointView> = st
        .engine
        .store()
        .checkpoints(rec.id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(serde_json::json!({ "checkpoints": cps })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    comment: Option<String>,
}

/// `POST /api/sessions/{ref}/checkpoints` with `{"comment"}`: 201 with the checkpoint.
pub async fn create(
    State(st): State<AppState>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Response, EngineError> {
    let body: CreateBody = if body.is_empty() {
        CreateBody { comment: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            EngineError::BadRequest(format!(
                "invalid checkpoint request: {e}; expected {{\"comment\": \"...\"}}"
            ))
        })?
    };
    let comment = body.comment.unwrap_or_default();
    if comment.chars().count() > 1000 {
        return Err(EngineError::BadRequest(
            "\"comment\" is longer than 1000 characters".into(),
        ));
    }
    let rec = st.engine.find(&session).await?;
    let cp = st.engine.checkpoint(rec.id, comment).await?;
    Ok((StatusCode::CREATED, Json(CheckpointView::from(cp))).into_response())
}

/// `POST /api/sessions/{ref}/checkpoints/{id}/restore`: `{"session","safety_checkpoint"}`.
pub async fn restore(
    State(st): State<AppState>,
    Path((session, checkpoint)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, EngineError> {
    let rec = st.engine.find(&session).await?;
    let (rec, safety) = st.engine.restore(rec.id, &checkpoint).await?;
    let a = agents::get(st.engine.store(), rec.id).await?;
    Ok(Json(serde_json::json!({
        "session": SessionView::new(rec, Some(&a)),
        "safety_checkpoint": CheckpointView::from(safety),
    })))
}
