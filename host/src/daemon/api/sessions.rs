//! Session routes: list, create, get, delete, wake, hibernate, unpushed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::daemon::engine::{CreateSession, agents};
use crate::daemon::error::EngineError;
use crate::daemon::views::SessionView;

use super::{AppState, bad_query};

/// `?all=true`.
#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// `GET /api/sessions`.
pub async fn list(
    State(st): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e),
    };
    let store = st.engine.store();
    let result = async {
        let rows = store.list(q.all).await?;
        let agents = agents::all(store).await?;
        Ok::<_, EngineError>(
            rows.into_iter()
                .map(|r| {
                    let a = agents.get(&r.id);
                    SessionView::new(r, a)
                })
                .collect::<Vec<_>>(),
        )
    }
    .await;
    match result {
        Ok(sessions) => Json(serde_json::json!({ "sessions": sessions })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn view(st: &AppState, rec: crate::store::SessionRecord) -> Result<SessionView, EngineError> {
    let a = agents::get(st.engine.store(), rec.id).await?;
    Ok(SessionView::new(rec, Some(&a)))
}

/// `POST /api/sessions`: 201 with the session in `creating`.
pub async fn create(State(st): State<AppState>, body: Bytes) -> Result<Response, EngineError> {
    let req = CreateSession::parse(&body)?;
    let rec = st.engine.create(req).await?;
    Ok((StatusCode::CREATED, Json(view(&st, rec).await?)).into_response())
}

/// `GET /api/sessions/{ref}`.
pub async fn get_one(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<SessionView>, EngineError> {
    let rec = st.engine.find(&session).await?;
    Ok(Json(view(&st, rec).await?))
}

/// `DELETE /api/sessions/{ref}`: once the sandbox is destroyed.
pub async fn delete(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<SessionView>, EngineError> {
    let rec = st.engine.find(&session).await?;
    let rec = st.engine.delete(rec.id).await?;
    Ok(Json(view(&st, rec).await?))
}

/// `POST /api/sessions/{ref}/wake`: `{"session","elapsed_ms"}` once running.
pub async fn wake(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<serde_json::Value>, EngineError> {
    let rec = st.engine.find(&session).await?;
    let (rec, elapsed) = st.engine.wake(rec.id).await?;
    Ok(Json(
        serde_json::json!({"session": view(&st, rec).await?, "elapsed_ms": elapsed}),
    ))
}

/// The body of `POST /api/sessions/{ref}/restart`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartBody {
    /// Start a new conversation with the session's prompt instead of resuming.
    #[serde(default)]
    fresh: bool,
}

/// `POST /api/sessions/{ref}/restart` (`{"fresh"?: bool}`, body optional): `{"session"}` once
/// the agent started again.
pub async fn restart(
    State(st): State<AppState>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, EngineError> {
    let req: RestartBody = if body.iter().all(u8::is_ascii_whitespace) {
        RestartBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            EngineError::BadRequest(format!(
                "invalid restart request: {e}; expected {{\"fresh\": true|false}} or no body"
            ))
        })?
    };
    let rec = st.engine.find(&session).await?;
    let rec = st.engine.restart(rec.id, req.fresh).await?;
    Ok(Json(serde_json::json!({"session": view(&st, rec).await?})))
}

/// `POST /api/sessions/{ref}/hibernate`: `{"session"}` once hibernated.
pub async fn hibernate(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<serde_json::Value>, EngineError> {
    let rec = st.engine.find(&session).await?;
    let rec = st.engine.hibernate(rec.id, "requested").await?;
    Ok(Json(serde_json::json!({"session": view(&st, rec).await?})))
}

/// `GET /api/sessions/{ref}/unpushed`: the session branch's commits that exist only in the
/// sandbox (`{"branch","checked","count","against"?,"reason"?}`), asked before a delete.
pub async fn unpushed(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<crate::daemon::engine::unpushed::Unpushed>, EngineError> {
    let rec = st.engine.find(&session).await?;
    Ok(Json(st.engine.unpushed(rec.id).await?))
}
