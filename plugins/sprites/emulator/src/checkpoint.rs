//! Checkpoints: real copies of the sprite's disk (`v0` at creation, then `v1`, `v2`, ...), the
//! `Current` pseudo-entry, restore that rolls the files back and ends every session, and the
//! NDJSON progress streams of the real service.
//!
//! Copies are full file copies (`copy_file_range`, so reflinks where the filesystem has them), not
//! hard links: a live file modified in place would otherwise change the snapshot too.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{query_get, query_pairs, truthy};
use crate::app::{App, Sprite};
use crate::cli::Quirk;
use crate::error::{ApiError, json_response};
use crate::store::CheckpointRecord;
use crate::time_fmt;

/// Copies a directory tree (files, directories, symlinks; modes kept).
pub fn copy_tree(src: &FsPath, dst: &FsPath) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    std::fs::create_dir_all(dst)?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let ft = entry.file_type()?;
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ft.is_dir() {
            copy_tree(&from, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)?;
        }
        // Sockets, FIFOs and devices are not part of a snapshot.
    }
    Ok(())
}

fn info(r: &CheckpointRecord) -> Value {
    let mut v = json!({
        "id": r.id,
        "create_time": r.create_time,
        "is_auto": false,
        "history": [],
        "health": "",
    });
    if !r.comment.is_empty() {
        v["comment"] = json!(r.comment);
    }
    if let Some(s) = &r.source_id {
        v["source_id"] = json!(s);
    }
    v
}

fn current(sprite: &Sprite) -> Value {
    let r = sprite.record();
    let mut v = json!({
        "id": "Current",
        "create_time": time_fmt::seconds(time_fmt::now()),
        "is_auto": false,
    });
    if let Some(a) = r.active_checkpoint {
        v["source_id"] = json!(a);
    }
    v
}

fn not_found_text(app: &App, id: &str) -> ApiError {
    if app.cfg.quirk(Quirk::Checkpoint404) {
        ApiError::msg(StatusCode::NOT_FOUND, format!("checkpoint {id} not found"))
    } else {
        ApiError::Text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to get checkpoint: checkpoint with path checkpoints/{id} not found"),
        )
    }
}

fn event(kind: &str, key: &str, text: &str) -> Value {
    json!({"type": kind, key: text, "time": time_fmt::seconds(time_fmt::now())})
}

/// `POST /v1/sprites/{name}/checkpoint` `{"comment"?}`: NDJSON progress.
pub async fn create(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    let comment = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        v.get("comment")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (events, resp) = crate::ndjson::stream();
    tokio::spawn(async move {
        // One checkpoint at a time per sprite: the lifecycle lock also keeps the sandbox still.
        let _life = sprite.life.lock().await;
        let (id, source) = match sprite.update(|r| {
            let id = format!("v{}", r.next_checkpoint);
            r.next_checkpoint += 1;
            (id, r.active_checkpoint.clone())
        }) {
            Ok(x) => x,
            Err(e) => {
                events.send(event("error", "error", &e.message())).await;
                return;
            }
        };
        events
            .send(event("info", "data", "Creating checkpoint..."))
            .await;
        let root = sprite.paths.root();
        let dst = sprite.paths.checkpoints().join(&id);
        let copy = tokio::task::spawn_blocking(move || copy_tree(&root, &dst)).await;
        if let Err(e) = copy
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            events
                .send(event(
                    "error",
                    "error",
                    &format!("Failed to create checkpoint: {e}"),
                ))
                .await;
            return;
        }
        let rec = CheckpointRecord {
            id: id.clone(),
            create_time: time_fmt::seconds(time_fmt::now()),
            comment,
            source_id: source,
        };
        if let Err(e) = sprite.update(|r| {
            r.checkpoints.push(rec);
            r.active_checkpoint = Some(id.clone());
        }) {
            events.send(event("error", "error", &e.message())).await;
            return;
        }
        events
            .send(event("info", "data", &format!("  ID: {id}")))
            .await;
        events
            .send(event(
                "complete",
                "data",
                &format!("Checkpoint {id} created successfully"),
            ))
            .await;
    });
    Ok(resp)
}

/// `GET /v1/sprites/{name}/checkpoints`: newest first, `Current` on top.
pub async fn list(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    let q = query_pairs(&uri);
    if let Some(h) = query_get(&q, "history") {
        // grep-style text lines of checkpoints derived from `h`.
        let lines: Vec<String> = sprite
            .record()
            .checkpoints
            .iter()
            .filter(|c| c.source_id.as_deref() == Some(h) || c.id == h)
            .map(|c| format!("{}: {}", c.id, c.create_time))
            .collect();
        return Ok(crate::error::ApiError::Text(StatusCode::OK, lines.join("\n")).into_response());
    }
    let _include_auto = truthy(query_get(&q, "includeAuto"));
    let mut items = vec![current(&sprite)];
    items.extend(sprite.record().checkpoints.iter().rev().map(info));
    Ok(json_response(StatusCode::OK, &json!(items)))
}

/// `GET /v1/sprites/{name}/checkpoints/{id}` (observed: 500 text on a missing id).
pub async fn get_one(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    if id == "Current" {
        return Ok(json_response(StatusCode::OK, &current(&sprite)));
    }
    let r = sprite.record();
    let c = r
        .checkpoints
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| not_found_text(&app, &id))?;
    Ok(json_response(StatusCode::OK, &info(c)))
}

/// `DELETE /v1/sprites/{name}/checkpoints/{id}`: 204; 409 for the active checkpoint.
pub async fn delete(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    let r = sprite.record();
    if id == "Current" || r.active_checkpoint.as_deref() == Some(id.as_str()) {
        return Err(ApiError::Text(
            StatusCode::CONFLICT,
            "cannot delete active checkpoint".to_owned(),
        ));
    }
    if !r.checkpoints.iter().any(|c| c.id == id) {
        return Err(ApiError::Text(
            StatusCode::NOT_FOUND,
            format!("checkpoint with path checkpoints/{id} not found"),
        ));
    }
    let dir = sprite.paths.checkpoints().join(&id);
    tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("cannot delete checkpoint files: {e}")))?;
    sprite.update(|r| r.checkpoints.retain(|c| c.id != id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/sprites/{name}/checkpoints/{id}/restore`: NDJSON; a missing id still answers 200 with
/// an in-stream error event. Every process of the sprite ends; the files roll back.
pub async fn restore(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    let (events, resp) = crate::ndjson::stream();
    tokio::spawn(async move {
        let exists = sprite.record().checkpoints.iter().any(|c| c.id == id);
        if !exists {
            events
                .send(event(
                    "error",
                    "error",
                    &format!("Failed to restore checkpoint: checkpoint with path checkpoints/{id} not found"),
                ))
                .await;
            return;
        }
        events
            .send(event(
                "info",
                "data",
                &format!("Restoring from checkpoint {id}..."),
            ))
            .await;
        let mut life = sprite.life.lock().await;
        app.go_cold(&sprite, &mut life).await;
        let root = sprite.paths.root();
        let snap = sprite.paths.checkpoints().join(&id);
        let swap = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let old = root.with_file_name(format!("root.old-{}", uuid::Uuid::new_v4().simple()));
            std::fs::rename(&root, &old)?;
            if let Err(e) = copy_tree(&snap, &root) {
                let _ = std::fs::remove_dir_all(&root);
                std::fs::rename(&old, &root)?;
                return Err(e);
            }
            std::fs::remove_dir_all(&old)
        })
        .await;
        if let Err(e) = swap
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            events
                .send(event(
                    "error",
                    "error",
                    &format!("Failed to restore checkpoint: {e}"),
                ))
                .await;
            return;
        }
        let _ = sprite.update(|r| r.active_checkpoint = Some(id.clone()));
        // The policy is sprite configuration, not disk content: keep the file current.
        let policy = sprite.record().network_policy.to_string();
        let _ = std::fs::create_dir_all(sprite.paths.root().join(".sprite/policy"));
        let _ = std::fs::write(
            sprite.paths.root().join(".sprite/policy/network.json"),
            policy,
        );
        drop(life);
        if let Err(e) = app.wake(&sprite).await {
            events
                .send(event(
                    "error",
                    "error",
                    &format!("Failed to start container: {}", e.message()),
                ))
                .await;
            return;
        }
        events
            .send(event(
                "info",
                "data",
                "Container components started successfully",
            ))
            .await;
        events
            .send(event(
                "complete",
                "data",
                &format!("Restore from {id} complete"),
            ))
            .await;
    });
    Ok(resp)
}
