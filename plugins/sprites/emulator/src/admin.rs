//! Test hooks under `/_emulator` (same bearer token): info, faults, forced lifecycle states.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::{App, Sprite};
use crate::error::{ApiError, json_response};
use crate::lifecycle::State as Life;

/// `GET /_emulator/info`.
pub async fn info(State(app): State<Arc<App>>) -> Response {
    let c = &app.cfg;
    json_response(
        StatusCode::OK,
        &json!({
            "emulator": "sprites-emulator",
            "version": env!("CARGO_PKG_VERSION"),
            "sprite_version": crate::api::SPRITE_VERSION,
            "pid": std::process::id(),
            "sandbox": if app.sandboxed { "namespaces" } else { "none" },
            "sandbox_note": app.sandbox_note,
            "data_dir": c.data.display().to_string(),
            "idle_to_warm_ms": c.idle_to_warm.as_millis() as u64,
            "warm_to_cold_ms": c.warm_to_cold.as_millis() as u64,
            "wake_delay_warm_ms": c.wake_delay_warm.as_millis() as u64,
            "wake_delay_cold_ms": c.wake_delay_cold.as_millis() as u64,
            "exit_linger_ms": c.exit_linger.as_millis() as u64,
            "http_exit_delay_ms": c.http_exit_delay.as_millis() as u64,
            "non_tty_disconnect_ms": c.non_tty_disconnect.as_millis() as u64,
            "replay_bytes": c.replay_bytes,
            "languages": c.languages.iter().map(|l| json!({"name": l.name, "dir": l.dir.display().to_string(), "mount": l.mount_point()})).collect::<Vec<_>>(),
            "quirks": c.quirks.iter().map(|q| q.name()).collect::<Vec<_>>(),
            "faults": app.faults.list().len(),
            "sprites": app.all().len(),
            "limits": app.limits.describe(),
            "egress": if app.sandboxed && c.egress.port != 0 {
                json!({"enforced": true, "port": c.egress.port,
                       "hosts": c.egress.hosts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()})
            } else {
                json!({"enforced": false, "port": c.egress.port,
                       "note": if c.egress.port == 0 { "--egress-port 0: sprites have no egress" }
                               else { "without namespaces sprites use the host's network: network policies are stored only" }})
            },
        }),
    )
}

/// `GET /_emulator/faults`.
pub async fn faults_list(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, &json!(app.faults.list()))
}

/// `POST /_emulator/faults` with one rule or an array.
pub async fn faults_add(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let rules = crate::faults::from_value(v).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid fault: {e}; expected {{\"kind\": \"rate_limit\"|\"error\"|\"drop_ws\"|\"latency\"|\"slow_wake\", ...}}"
        ))
    })?;
    let n = rules.len();
    app.faults.add(rules);
    Ok(json_response(
        StatusCode::OK,
        &json!({"added": n, "faults": app.faults.list()}),
    ))
}

/// `DELETE /_emulator/faults`.
pub async fn faults_clear(State(app): State<Arc<App>>) -> Response {
    app.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn state_json(app: &App, s: &Arc<Sprite>) -> Value {
    let init = app.init_pid(s).await;
    let members = init.map(crate::sandbox::ns_members);
    json!({
        "name": s.name,
        "state": s.state.get().as_str(),
        "sessions": s.sessions().len(),
        "active": s.activity.active(),
        "init_pid": init,
        "processes": members.as_ref().map(Vec::len),
        "stopped": members.as_ref().map(|m| crate::sandbox::count_stopped(m)),
    })
}

/// `GET /_emulator/sprites/{name}/state` (does not wake the sprite).
pub async fn state_get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let s = app.sprite(&name).ok_or_else(ApiError::sprite_not_found)?;
    Ok(json_response(StatusCode::OK, &state_json(&app, &s).await))
}

/// `POST /_emulator/sprites/{name}/state` `{"state": "running"|"warm"|"cold"}`.
pub async fn state_set(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let s = app.sprite(&name).ok_or_else(ApiError::sprite_not_found)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let state = v
        .get("state")
        .and_then(Value::as_str)
        .and_then(Life::parse)
        .ok_or_else(|| ApiError::bad_request("state must be one of: running, warm, cold"))?;
    app.force_state(&s, state).await?;
    Ok(json_response(StatusCode::OK, &state_json(&app, &s).await))
}
