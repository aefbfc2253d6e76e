//! Session routes: list, create, get, delete, wake, hibernate, restart, unpushed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::{
    CreateSession, RestartRequest, SessionAnswer, SessionList, SessionSummaryList, SessionView,
    Unpushed, Woken,
};
use crate::daemon::error::EngineError;
use crate::store::{ListCursor, ListPage};

use super::convert::{session_summary, session_view};
use super::{AppState, bad_query};

/// `?all=true&view=summary|full&limit=N&after=CURSOR`.
#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    view: ListView,
    limit: Option<usize>,
    after: Option<String>,
}

/// How much of each session a list shows.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum ListView {
    /// [`SessionView`]s.
    #[default]
    Full,
    /// [`crate::api::SessionSummary`]s.
    Summary,
}

/// The most sessions one page may ask for.
const MAX_PAGE: usize = 100_000;

impl ListQuery {
    fn page(&self) -> Result<ListPage, EngineError> {
        if self.limit.is_some_and(|n| n == 0 || n > MAX_PAGE) {
            return Err(EngineError::BadRequest(format!(
                "`limit` must be between 1 and {MAX_PAGE}"
            )));
        }
        let after = match self.after.as_deref() {
            None | Some("") => None,
            Some(text) => Some(ListCursor::decode(text).ok_or_else(|| {
                EngineError::BadRequest(format!(
                    "`after` is `{text}`, not a cursor this daemon handed out; pass the `next` \
                     of the previous page"
                ))
            })?),
        };
        Ok(ListPage {
            include_deleted: self.all,
            after,
            limit: self.limit,
        })
    }
}

/// `GET /api/sessions`: every session (deleted ones with `all`), oldest first, as full views
/// or (`view=summary`) summaries; with `limit`, one page and the `next` cursor.
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
        let page = q.page()?;
        Ok::<_, EngineError>(match q.view {
            ListView::Summary => {
                let (rows, next) = store.list_summaries(page).await?;
                Json(SessionSummaryList {
                    sessions: rows.into_iter().map(session_summary).collect(),
                    next: next.map(|c| c.encode()),
                })
                .into_response()
            }
            ListView::Full => {
                let (rows, next) = store.list_page(page).await?;
                let agents = store.agents().await?;
                Json(SessionList {
                    sessions: rows
                        .into_iter()
                        .map(|r| {
                            let a = agents.get(&r.id);
                            session_view(r, a)
                        })
                        .collect(),
                    next: next.map(|c| c.encode()),
                })
                .into_response()
            }
        })
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
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
    if let Some(e) = CreateSession::bad_option_in(&body) {
        return Err(e.into());
    }
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
