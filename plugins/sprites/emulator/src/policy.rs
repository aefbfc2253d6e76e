//! The sprite's policies (sprite-env): `policy/network` (egress rules, stored, written to
//! `/.sprite/policy/network.json`, enforced by [`crate::egress`] from the next connection on)
//! and `policy/resources` (a memory limit, enforced by [`crate::limits`] on every process
//! started afterwards).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::App;
use crate::cli::Quirk;
use crate::error::{ApiError, json_response};
use crate::limits::ResourcesPolicy;

/// A JSON body checked by `check`; either failure is 400 `invalid <what>: <why>`.
fn parsed<T>(
    body: &[u8],
    what: &str,
    check: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<T, ApiError> {
    serde_json::from_slice::<Value>(body)
        .map_err(|e| e.to_string())
        .and_then(|v| check(&v))
        .map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// `GET .../policy/network`.
pub async fn policy_get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let s = app.sprite_env(&name).await?;
    Ok(json_response(StatusCode::OK, &s.record().network_policy))
}

fn check_policy(v: &Value) -> Result<(), String> {
    let rules = v
        .get("rules")
        .and_then(Value::as_array)
        .ok_or("body must be {\"rules\": [...]}")?;
    for (i, r) in rules.iter().enumerate() {
        let o = r.as_object().ok_or(format!("rule {i} is not an object"))?;
        for (k, val) in o {
            match k.as_str() {
                "domain" if val.is_string() => {}
                "action" if matches!(val.as_str(), Some("allow") | Some("deny")) => {}
                "include" if val.as_str() == Some("defaults") => {}
                _ => return Err(format!("rule {i}: invalid field {k:?} = {val}")),
            }
        }
        if o.contains_key("domain") && !o.contains_key("action") {
            return Err(format!(
                "rule {i}: a domain rule needs an action (allow or deny)"
            ));
        }
    }
    Ok(())
}

/// `POST .../policy/network`: stored, written to `/.sprite/policy/network.json`, and applied by
/// the egress proxy at once (open connections it now denies are dropped).
pub async fn policy_set(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let s = app.sprite_env(&name).await?;
    let v = parsed(&body, "policy", |v| check_policy(v).map(|()| v.clone()))?;
    let stored = json!({"rules": v["rules"].clone()});
    s.update(|r| r.network_policy = stored.clone())?;
    s.egress.set_policy(&stored);
    let file = s.paths.root().join(".sprite/policy/network.json");
    let _ = std::fs::create_dir_all(s.paths.root().join(".sprite/policy"));
    std::fs::write(&file, stored.to_string())
        .map_err(|e| ApiError::internal(format!("cannot write policy file: {e}")))?;
    if app.cfg.quirk(Quirk::Policy200) {
        Ok(json_response(StatusCode::OK, &stored))
    } else {
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

/// `GET .../policy/resources`: the stored policy (`{}` when none).
pub async fn resources_get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let s = app.sprite_env(&name).await?;
    Ok(json_response(StatusCode::OK, &json!(s.record().resources)))
}

/// `POST .../policy/resources` `{"memory":{"limit_mb":N,"autoscale":bool}}`: replaces the
/// policy; 200 echoing it. The memory limit applies to processes started afterwards.
pub async fn resources_set(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let s = app.sprite_env(&name).await?;
    let policy = parsed(&body, "resources policy", ResourcesPolicy::parse)?;
    s.update(|r| r.resources = policy.clone())?;
    Ok(json_response(StatusCode::OK, &json!(policy)))
}

/// `DELETE .../policy/resources`: clears the policy (the legacy `config.ram_mb`, if any, applies
/// again); 200 with `{}`.
pub async fn resources_clear(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let s = app.sprite_env(&name).await?;
    s.update(|r| r.resources = ResourcesPolicy::default())?;
    Ok(json_response(StatusCode::OK, &json!({})))
}
