//! Control-plane handlers: sprite CRUD and list.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{query_get, query_pairs};
use crate::app::{App, Sprite};
use crate::cli::Quirk;
use crate::error::{ApiError, json_response};
use crate::lifecycle::State as Life;
use crate::limits::SpriteConfig;
use crate::store::{self, CheckpointRecord, SpriteRecord};
use crate::time_fmt;

/// Organisation slug the emulator reports.
pub const ORG: &str = "emulator";

/// The `SpriteResponse` JSON of a sprite.
pub fn sprite_json(app: &App, s: &Sprite) -> Value {
    let r = s.record();
    let mut v = json!({
        "id": r.id,
        "name": r.name,
        "url": crate::sprite_url::url_of(&r.name),
        "url_settings": r.url_settings,
        "status": s.state.get().as_str(),
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "version": null,
        "environment_version": null,
        "last_running_at": r.last_running_at,
        "last_warming_at": r.last_warming_at,
    });
    let org_key = if app.cfg.quirk(Quirk::OrgSlug) {
        "org_slug"
    } else {
        "organization"
    };
    v[org_key] = json!(ORG);
    if !r.labels.is_empty() {
        v["labels"] = json!(r.labels);
    }
    if !r.config.is_empty() {
        v["config"] = json!(r.config);
    }
    v
}

fn config_of(v: &Value) -> Result<Option<SpriteConfig>, ApiError> {
    match v.get("config") {
        None | Some(Value::Null) => Ok(None),
        Some(c) => SpriteConfig::parse(c)
            .map(Some)
            .map_err(ApiError::validation),
    }
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn check_url_settings(v: &Value) -> Result<Value, ApiError> {
    let bad = || ApiError::validation("invalid auth type, must be one of: sprite, public");
    let obj = v.as_object().ok_or_else(bad)?;
    match obj.get("auth").and_then(Value::as_str) {
        Some("sprite") | Some("public") => {}
        _ => return Err(bad()),
    }
    if let Some(pa) = obj.get("private_access")
        && !pa.is_null()
        && !matches!(pa.as_str(), Some("admins") | Some("organization"))
    {
        return Err(ApiError::validation(
            "invalid private_access, must be one of: admins, organization",
        ));
    }
    Ok(v.clone())
}

fn labels_of(v: &Value) -> Result<Vec<String>, ApiError> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| ApiError::validation("labels must be a list of strings"))
}

/// `POST /v1/sprites`.
pub async fn create(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::validation(format!("invalid JSON body: {e}")))?;
    let name = v.get("name").and_then(Value::as_str).unwrap_or("");
    if !valid_name(name) {
        return Err(ApiError::validation("invalid sprite name format"));
    }
    let url_settings = match v.get("url_settings") {
        None | Some(Value::Null) => json!({"auth": "sprite"}),
        Some(u) => check_url_settings(u)?,
    };
    let labels = match v.get("labels") {
        None | Some(Value::Null) => Vec::new(),
        Some(l) => labels_of(l)?,
    };
    let config = config_of(&v)?.unwrap_or_default();
    let now = time_fmt::now();
    let record = SpriteRecord {
        id: format!("sprite-{}", uuid::Uuid::new_v4()),
        name: name.to_owned(),
        created_at: time_fmt::micros(now),
        updated_at: time_fmt::micros(now),
        labels,
        url_settings,
        last_running_at: None,
        last_warming_at: None,
        network_policy: json!({"rules": []}),
        checkpoints: vec![CheckpointRecord {
            id: "v0".to_owned(),
            create_time: time_fmt::seconds(now),
            comment: String::new(),
            source_id: None,
        }],
        active_checkpoint: Some("v0".to_owned()),
        next_checkpoint: 1,
        config,
        resources: crate::limits::ResourcesPolicy::default(),
    };
    let sprite = {
        let mut map = app
            .sprites
            .write()
            .map_err(|_| ApiError::internal("sprite table lock poisoned"))?;
        if map.contains_key(name) {
            let msg =
                format!("A sprite named '{name}' already exists. Please choose a different name.");
            return Err(if app.cfg.quirk(Quirk::Duplicate400) {
                ApiError::bad_request(msg)
            } else {
                ApiError::msg(StatusCode::CONFLICT, msg)
            });
        }
        let sprite = Arc::new(Sprite::new(&app.cfg.data, record.clone()));
        let paths = &sprite.paths;
        let init = || -> std::io::Result<()> {
            if paths.dir.exists() {
                std::fs::remove_dir_all(&paths.dir)?;
            }
            std::fs::create_dir_all(&paths.dir)?;
            store::init_root(&paths.root())?;
            std::fs::create_dir_all(paths.checkpoints())?;
            crate::checkpoint::copy_tree(&paths.root(), &paths.checkpoints().join("v0"))?;
            std::fs::write(
                paths.root().join(".sprite/policy/network.json"),
                record.network_policy.to_string(),
            )?;
            store::save(paths, &record)
        };
        init().map_err(|e| ApiError::internal(format!("cannot create the sprite's disk: {e}")))?;
        map.insert(name.to_owned(), Arc::clone(&sprite));
        sprite
    };
    Ok(json_response(
        StatusCode::CREATED,
        &sprite_json(&app, &sprite),
    ))
}

fn missing_sprite(app: &App, what: &str) -> ApiError {
    if app.cfg.quirk(Quirk::MissingSprite404) {
        ApiError::msg(StatusCode::NOT_FOUND, "Sprite not found")
    } else {
        ApiError::internal(format!("failed to {what} sprite"))
    }
}

/// `GET /v1/sprites/{name}` (observed: 500 for a missing sprite).
pub async fn get_one(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let s = app
        .sprite(&name)
        .ok_or_else(|| missing_sprite(&app, "retrieve"))?;
    Ok(json_response(StatusCode::OK, &sprite_json(&app, &s)))
}

/// `PUT /v1/sprites/{name}`: `url_settings`, `labels`, `clear_labels`, and (an emulator
/// extension: the notes document `config` on create only) `config`, replacing the limits; a
/// changed CPU limit applies to the sprite's running processes at once, a memory limit to
/// processes started afterwards.
pub async fn update(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let s = app.sprite(&name).ok_or_else(ApiError::sprite_not_found)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::validation(format!("invalid JSON body: {e}")))?;
    let url = match v.get("url_settings") {
        None | Some(Value::Null) => None,
        Some(u) => Some(check_url_settings(u)?),
    };
    let labels = match v.get("labels") {
        None | Some(Value::Null) => None,
        Some(l) => Some(labels_of(l)?),
    };
    let clear = v
        .get("clear_labels")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let config = config_of(&v)?;
    if let Some(c) = &config {
        app.limits
            .prepare(&name, c)
            .map_err(|e| ApiError::internal(format!("cannot apply the sprite's limits: {e}")))?;
    }
    s.update(|r| {
        if let Some(c) = config {
            r.config = c;
        }
        if let Some(u) = url {
            r.url_settings = u;
        }
        if clear {
            r.labels.clear();
        }
        if let Some(l) = labels {
            r.labels = l;
        }
        r.updated_at = time_fmt::micros(time_fmt::now());
    })?;
    Ok(json_response(StatusCode::OK, &sprite_json(&app, &s)))
}

/// `DELETE /v1/sprites/{name}`: 204 (observed: 500 for a missing sprite).
pub async fn delete(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let s = {
        let mut map = app
            .sprites
            .write()
            .map_err(|_| ApiError::internal("sprite table lock poisoned"))?;
        map.remove(&name)
            .ok_or_else(|| missing_sprite(&app, "delete"))?
    };
    s.deleted.store(true, Ordering::SeqCst);
    {
        let mut life = s.life.lock().await;
        app.go_cold(&s, &mut life).await;
    }
    app.limits.remove(&name);
    let dir = s.paths.dir.clone();
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/sprites/{name}/upgrade`: nothing to upgrade; 204.
pub async fn upgrade(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    app.sprite(&name).ok_or_else(ApiError::sprite_not_found)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/sprites` with `prefix`, `max_results` (1-500, default 50), `continuation_token`.
pub async fn list(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    let q = query_pairs(&uri);
    let prefix = query_get(&q, "prefix").unwrap_or("");
    let max = match query_get(&q, "max_results") {
        None | Some("") => 50,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(
                    "max_results must be an integer between 1 and 500",
                ));
            }
        },
    };
    let after = query_get(&q, "continuation_token").filter(|t| !t.is_empty());
    let all = app.all();
    let (mut running, mut warm, mut cold) = (0, 0, 0);
    for s in &all {
        match s.state.get() {
            Life::Running => running += 1,
            Life::Warm => warm += 1,
            Life::Cold => cold += 1,
        }
    }
    let matching: Vec<&Arc<Sprite>> = all
        .iter()
        .filter(|s| s.name.starts_with(prefix))
        .filter(|s| after.is_none_or(|a| s.name.as_str() > a))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .take(max)
        .map(|s| sprite_json(&app, s))
        .collect();
    let has_more = matching.len() > max;
    let token = if has_more {
        matching.get(max - 1).map(|s| s.name.clone())
    } else {
        None
    };
    let (has_more, token) = if app.cfg.quirk(Quirk::HasMoreNullToken) && !has_more {
        (true, None)
    } else {
        (has_more, token)
    };
    let mut body = json!({
        "sprites": page,
        "has_more": has_more,
        "next_continuation_token": token,
    });
    if !app.cfg.quirk(Quirk::ListMinimal) {
        let agg = json!({
            "running": running, "warm": warm, "cold": cold,
            "name": ORG, "running_limit": 10, "warm_limit": 100,
        });
        if app.cfg.quirk(Quirk::ListOrgNested) {
            body["org"] = agg;
        } else if let (Some(b), Some(a)) = (body.as_object_mut(), agg.as_object()) {
            for (k, v) in a {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(json_response(StatusCode::OK, &body))
}
