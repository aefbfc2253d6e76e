//! Build-cache routes (DESIGN §16): `GET /api/caches`, `POST /api/caches/clear`,
//! `POST /api/caches/gc` and `POST /api/sessions/{ref}/cache/save`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};

use crate::api::{CacheClearRequest, CacheCleared, CacheGcReport, CacheList, CacheSaveReport};
use crate::daemon::engine::cache_save::SaveTrigger;
use crate::daemon::error::EngineError;

use super::AppState;
use super::sessions::body_of;

/// `GET /api/caches`: every cache with its entries and its store's state.
pub async fn list(State(st): State<AppState>) -> Result<Json<CacheList>, EngineError> {
    Ok(Json(st.engine.list_caches().await?))
}

/// `POST /api/caches/clear` (`{"key"}` or `{"project"}`): what was removed.
pub async fn clear(
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Json<CacheCleared>, EngineError> {
    let req: CacheClearRequest = body_of(
        &body,
        "cache clear request",
        "{\"key\": \"p-…\"} or {\"project\": \"/abs/path\"}",
    )?;
    Ok(Json(
        st.engine
            .clear_caches(req.key.as_deref(), req.project.as_deref())
            .await?,
    ))
}

/// `POST /api/caches/gc`: a collection now (entries unused for `[cache] max_age`), whatever
/// the daily schedule says.
pub async fn gc(State(st): State<AppState>) -> Result<Json<CacheGcReport>, EngineError> {
    let now = st.engine.cache_clock().now();
    Ok(Json(st.engine.collect_caches(now).await?))
}

/// `POST /api/sessions/{ref}/cache/save`: saves the session's caches now (409 while its
/// agent works or a build runs).
pub async fn save(
    State(st): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<CacheSaveReport>, EngineError> {
    let rec = st.engine.find(&session).await?;
    if rec.status != crate::session::Status::Running {
        return Err(EngineError::Conflict(format!(
            "session {} is {}; caches are saved from a running session (wake it first)",
            rec.name, rec.status
        )));
    }
    let caches = st.engine.save_caches(rec.id, SaveTrigger::Request).await?;
    Ok(Json(CacheSaveReport {
        session: rec.name.to_string(),
        caches,
    }))
}
