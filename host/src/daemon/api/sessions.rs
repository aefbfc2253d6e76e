//! Session routes: list, create, get, delete, wake, hibernate, restart, unpushed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::{
    CreateSession, RestartRequest, SessionAnswer, SessionList, SessionView, Unpushed, Woken,
};
use crate::daemon::error::EngineError;

use super::convert::session_view;
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
        let agents = store.agents().await?;
        Ok::<_, EngineError>(SessionList {
            sessions: rows
                .into_iter()
                .map(|r| {
                    let a = agents.get(&r.id);
                    session_view(r, a)
                })
                .collect(),
        })
    }
    .await;
    match result {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn view(st: &AppState, rec: crate::store::SessionRecord) -> Result<SessionView, EngineError> {
    let a = st.engine.store().agent(rec.id).await?;
    Ok(session_view(rec, Some(&a)))
}

/// A JSON body (`T`), or a 400 that says what was expected.
pub(super) fn body_of<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
    expected: &str,
) -> Result<T, EngineError> {
    serde_json::from_slice(body)
        .map_err(|e| EngineError::BadRequest(format!("invalid {what}: {e}; expected {expected}")))
}

/// `POST /api/sessions`: 201 with the session in `creating`.
pub async fn create(State(st): State<AppState>, body: Bytes) -> Result<Response, EngineError> {
    let req: CreateSession = body_of(
        &body,
        "create request",
        "{\"repo\": \"/abs/path\", \"prompt\": \"...\", \"backend\"?, \"name\"?, \"options\"?}",
    )?;
    let req = req.validate()?;
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
) -> Result<Json<Woken>, EngineError> {
    let rec = st.engine.find(&session).await?;
    let (rec, elapsed) = st.engine.wake(rec.id).await?;
    Ok(Json(Woken {
        session: view(&st, rec).await?,
        elapsed_ms: u64::try_from(elapsed).unwrap_or(u64::MAX),
    }))
}

/// `POST /api/sessions/{ref}/restart` (`{"fresh"?: bool}`, body optional): `{"session"}` once
/// the agent started again.
pub async fn restart(
    State(st): State<AppState>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Json<SessionAnswer>, EngineError> {
    let req: RestartRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RestartRequest::default()
    } else {
        body_of(
            &body,
            "restart request",
            "{\"fresh\": true|false} or no body",
        )?
    };
    let rec = st.engine.find(&session).await?;
    let rec = st.engine.restart(rec.id, req.fresh).await?;
    Ok(Json(SessionAnswer {
        session: view(&st, rec).await?,
    }))
}

/// `POST /api/sessions/{ref}/hibernate`: `{"session"}` once hibernated.
pub async fn hibernate(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<SessionAnswer>, EngineError> {
    let rec = st.engine.find(&session).await?;
    let rec = st.engine.hibernate(rec.id, "requested").await?;
    Ok(Json(SessionAnswer {
        session: view(&st, rec).await?,
    }))
}

/// `GET /api/sessions/{ref}/unpushed`: the session branch's commits that exist only in the
/// sandbox (`{"branch","checked","count","against"?,"reason"?}`), asked before a delete.
pub async fn unpushed(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<Unpushed>, EngineError> {
    let rec = st.engine.find(&session).await?;
    Ok(Json(st.engine.unpushed(rec.id).await?))
}
