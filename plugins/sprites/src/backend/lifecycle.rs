//! Sprite lifecycle: create (one sprite per session, labelled as ours, nothing left behind on
//! failure), status, wake (with progress while it is slow), hibernate (stop the agent, close
//! every exec session), delete, list, check_auth.

use std::time::{Duration, Instant};

use clauderon_plugin_sdk::ops::{self, InstanceStatus};
use clauderon_plugin_sdk::{CallContext, ErrorKind, PluginError};

use super::SpritesBackend;
use super::errors::{ctx as err_ctx, plugin_error};
use super::names;
use super::state::{STATE_VERSION, SpriteState};
use crate::client::{
    CreateSprite, ListOptions, MemoryPolicy, ResourcePolicy, SpriteHandle, SpriteStatus,
    SpritesClient, WriteOptions,
};

/// The status clauderon reports for a sprite status.
pub fn instance_status(s: &SpriteStatus) -> InstanceStatus {
    match s {
        SpriteStatus::Running => InstanceStatus::Running,
        SpriteStatus::Warm | SpriteStatus::Cold => InstanceStatus::Hibernated,
        SpriteStatus::Other(_) => InstanceStatus::Unknown,
    }
}

/// `create`: one sprite per session.
pub async fn create(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::CreateRequest,
) -> Result<ops::InstanceResponse, PluginError> {
    if req.session_id.trim().is_empty() {
        return Err(PluginError::invalid_request(
            "create needs the session id (it names and labels the sprite)",
        ));
    }
    if let Some(c) = req.cpu_limit
        && !(c.is_finite() && c > 0.0)
    {
        return Err(PluginError::invalid_request(format!(
            "cpu limit {c} must be a positive number of cores"
        )));
    }
    let client = b.client().await?;
    let name = names::sprite_name(&req.name, &req.session_id);
    let labels = names::labels(&req.labels, &req.session_id);
    let mut body = CreateSprite::new(name.clone());
    body.labels = labels.clone();
    // The legacy `config {cpus, ram_mb}` is not sent: the service ignores it (sprites-api.md
    // §2.1), so it would only look applied. Memory goes through the resources policy below;
    // CPU has no equivalent, which the user is told.
    if let Some(cpus) = req.cpu_limit {
        ctx.emit(serde_json::json!({
            "type": "warning",
            "stage": "create",
            "message": format!(
                "--cpu-limit {cpus} is not applied: sprites.dev sizes a sprite's CPUs itself \
                 (up to 8 vCPUs, billed by use); the limit is only recorded with the session"
            ),
        }));
    }
    ctx.progress("create", &format!("creating sprite {name}"), Some(0.0));
    let sprite = match client.create(&body).await {
        Ok(s) => s,
        // The same session's sprite from an earlier attempt (same labels): create is idempotent.
        Err(e) if e.is_conflict() => match client.find(&name).await {
            Ok(Some(s)) if labels.iter().all(|l| s.labels.contains(l)) => {
                ctx.progress("create", &format!("using the existing sprite {name}"), None);
                s
            }
            _ => return Err(plugin_error(&format!("creating sprite {name}"), &e)),
        },
        Err(e) => {
            let err = plugin_error(&format!("creating sprite {name}"), &e);
            cleanup(&client, &name, &labels, ctx).await;
            return Err(err);
        }
    };
    let state = SpriteState {
        v: STATE_VERSION,
        sprite: name.clone(),
        sprite_id: (!sprite.id.is_empty()).then(|| sprite.id.clone()),
        session_id: req.session_id.clone(),
        labels: labels.clone(),
        env: req.env.clone(),
        cpu_limit: req.cpu_limit,
        memory_limit_mib: req.memory_limit_mib,
        ..SpriteState::default()
    };
    ctx.progress("create", &format!("preparing sprite {name}"), Some(0.5));
    if let Err(e) = prepare(&client.sprite(name.clone()), &state).await {
        cleanup(&client, &name, &labels, ctx).await;
        return Err(e);
    }
    ctx.progress("create", &format!("sprite {name} is ready"), Some(1.0));
    Ok(ops::InstanceResponse {
        instance: state.instance(),
    })
}

/// The first calls into a new sprite (they also wake it): the memory limit and the session
/// marker.
async fn prepare(sprite: &SpriteHandle, state: &SpriteState) -> Result<(), PluginError> {
    if let Some(limit_mb) = state.memory_limit_mib {
        // autoscale: the sprite grows as it needs, up to the limit, and is billed for what it uses.
        let policy = ResourcePolicy {
            memory: Some(MemoryPolicy {
                limit_mb,
                autoscale: true,
            }),
        };
        sprite
            .set_resource_policy(&policy)
            .await
            .map_err(err_ctx(&format!(
                "setting the sprite's memory limit ({limit_mb} MiB, --memory-limit) through its \
                 resources policy"
            )))?;
    }
    let marker = serde_json::json!({
        "session_id": state.session_id,
        "labels": state.labels,
        "cpu_limit": state.cpu_limit,
        "memory_limit_mib": state.memory_limit_mib,
    });
    let opts = WriteOptions {
        mode: Some(0o644),
        mkdir_parents: true,
    };
    sprite
        .write_file(
            "/home/sprite/.clauderon/session.json",
            marker.to_string().into_bytes(),
            &opts,
        )
        .await
        .map_err(err_ctx("writing the session marker into the sprite"))?;
    Ok(())
}

/// After a failed create: delete the sprite if it exists and carries our labels.
async fn cleanup(client: &SpritesClient, name: &str, labels: &[String], ctx: &CallContext) {
    match client.find(name).await {
        Ok(Some(s)) if labels.iter().all(|l| s.labels.contains(l)) => {
            ctx.progress(
                "create",
                &format!("removing the half-made sprite {name}"),
                None,
            );
            if let Err(e) = client.delete(name).await {
                tracing::warn!("could not delete the half-made sprite {name}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("could not check for a half-made sprite {name}: {e}"),
    }
}

/// `status`: running → Running, warm/cold → Hibernated, missing → Gone.
pub async fn status(
    b: &SpritesBackend,
    req: ops::InstanceRequest,
) -> Result<ops::StatusResponse, PluginError> {
    let state = SpriteState::of(&req.instance)?;
    let client = b.client().await?;
    let found = client
        .find(&state.sprite)
        .await
        .map_err(err_ctx(&format!("looking up sprite {}", state.sprite)))?;
    let status = match found {
        None => InstanceStatus::Gone,
        Some(s) => instance_status(&s.status),
    };
    Ok(ops::StatusResponse {
        instance: state.instance(),
        status,
    })
}

/// `wake` (and `start`): any request wakes a sprite; progress is reported while it is slow.
pub async fn wake(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::InstanceRequest,
) -> Result<ops::InstanceResponse, PluginError> {
    let mut state = SpriteState::of(&req.instance)?;
    let client = b.client().await?;
    let sprite = client.sprite(state.sprite.clone());
    let before = match client
        .find(&state.sprite)
        .await
        .map_err(err_ctx(&format!("looking up sprite {}", state.sprite)))?
    {
        None => {
            return Err(PluginError::new(
                ErrorKind::NotFound,
                format!("sprite {} no longer exists", state.sprite),
            ));
        }
        Some(s) => s.status,
    };
    let started = Instant::now();
    if before == SpriteStatus::Running {
        state.last_wake_ms = Some(0);
        ctx.progress(
            "wake",
            &format!("sprite {} is already running", state.sprite),
            Some(1.0),
        );
        return Ok(ops::InstanceResponse {
            instance: state.instance(),
        });
    }
    let from = match before {
        SpriteStatus::Cold => "cold",
        SpriteStatus::Warm => "warm",
        _ => "asleep",
    };
    ctx.progress(
        "wake",
        &format!("waking sprite {} ({from})", state.sprite),
        Some(0.0),
    );
    let wake_call = sprite.sessions();
    tokio::pin!(wake_call);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let result = loop {
        tokio::select! {
            r = &mut wake_call => break r,
            _ = tick.tick() => ctx.progress(
                "wake",
                &format!("still waking sprite {} ({:.0}s)", state.sprite, started.elapsed().as_secs_f64()),
                None,
            ),
        }
    };
    result.map_err(err_ctx(&format!("waking sprite {}", state.sprite)))?;
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    state.last_wake_ms = Some(ms);
    ctx.progress(
        "wake",
        &format!("sprite {} is awake after {ms} ms", state.sprite),
        Some(1.0),
    );
    Ok(ops::InstanceResponse {
        instance: state.instance(),
    })
}

/// `hibernate`: stop the agent (TERM, then KILL after the grace period), close every other
/// exec session, then wait (bounded) for the sprite to leave `running`.
pub async fn hibernate(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::InstanceRequest,
) -> Result<ops::InstanceResponse, PluginError> {
    let state = SpriteState::of(&req.instance)?;
    let client = b.client().await?;
    let sprite = client.sprite(state.sprite.clone());
    match client
        .find(&state.sprite)
        .await
        .map_err(err_ctx(&format!("looking up sprite {}", state.sprite)))?
    {
        None => {
            return Err(PluginError::new(
                ErrorKind::NotFound,
                format!("sprite {} no longer exists", state.sprite),
            ));
        }
        // Already asleep: its processes are stopped; any further call would only wake it.
        Some(s) if matches!(s.status, SpriteStatus::Warm | SpriteStatus::Cold) => {
            ctx.progress(
                "hibernate",
                &format!("sprite {} is already asleep", state.sprite),
                Some(1.0),
            );
            return Ok(ops::InstanceResponse {
                instance: state.instance(),
            });
        }
        Some(_) => {}
    }
    let sessions = sprite.sessions().await.map_err(err_ctx(&format!(
        "listing exec sessions of {}",
        state.sprite
    )))?;
    // The agent first, so it can save its conversation before anything else goes away.
    let mut ids: Vec<String> = sessions.into_iter().map(|s| s.id).collect();
    if let Some(agent) = &state.agent_session
        && let Some(pos) = ids.iter().position(|i| i == agent)
    {
        let id = ids.remove(pos);
        ids.insert(0, id);
    }
    for id in &ids {
        let what = if state.agent_session.as_deref() == Some(id) {
            "the agent"
        } else {
            "an exec session"
        };
        ctx.progress("hibernate", &format!("stopping {what} ({id})"), None);
        sprite
            .kill_session(id, "SIGTERM", b.settings().stop_grace)
            .await
            .map_err(err_ctx(&format!("stopping exec session {id}")))?;
    }
    ctx.progress(
        "hibernate",
        &format!("waiting for sprite {} to go to sleep", state.sprite),
        None,
    );
    let deadline = Instant::now() + b.settings().hibernate_wait;
    loop {
        let s = client
            .find(&state.sprite)
            .await
            .map_err(err_ctx(&format!("looking up sprite {}", state.sprite)))?;
        match s.map(|s| s.status) {
            None => {
                return Err(PluginError::new(
                    ErrorKind::NotFound,
                    format!("sprite {} disappeared while hibernating", state.sprite),
                ));
            }
            Some(SpriteStatus::Running) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Some(SpriteStatus::Running) => {
                ctx.progress(
                    "hibernate",
                    "every session is closed; the sprite sleeps once its idle window passes",
                    Some(1.0),
                );
                break;
            }
            Some(_) => {
                ctx.progress(
                    "hibernate",
                    &format!("sprite {} is asleep", state.sprite),
                    Some(1.0),
                );
                break;
            }
        }
    }
    Ok(ops::InstanceResponse {
        instance: state.instance(),
    })
}

/// `delete`: destroy the sprite (already gone is fine).
pub async fn delete(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::InstanceRequest,
) -> Result<ops::Empty, PluginError> {
    let state = SpriteState::of(&req.instance)?;
    let client = b.client().await?;
    ctx.progress("delete", &format!("deleting sprite {}", state.sprite), None);
    if let Err(e) = client.delete(&state.sprite).await {
        let gone = client
            .find(&state.sprite)
            .await
            .map_err(err_ctx(&format!("looking up sprite {}", state.sprite)))?
            .is_none();
        if !gone {
            return Err(plugin_error(
                &format!("deleting sprite {}", state.sprite),
                &e,
            ));
        }
    }
    Ok(ops::Empty {})
}

/// `list_instances`: sprites labelled `clauderon=1` (and every requested label).
pub async fn list_instances(
    b: &SpritesBackend,
    req: ops::ListInstancesRequest,
) -> Result<ops::ListInstancesResponse, PluginError> {
    let client = b.client().await?;
    let all = client
        .list(&ListOptions::default())
        .await
        .map_err(err_ctx("listing sprites"))?;
    let instances = all
        .into_iter()
        .filter(|s| s.labels.iter().any(|l| l == names::OURS))
        .filter_map(|s| {
            let labels = names::parse_labels(&s.labels);
            if !req.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                return None;
            }
            let state = SpriteState {
                v: STATE_VERSION,
                sprite: s.name.clone(),
                sprite_id: Some(s.id.clone()),
                session_id: labels
                    .get(clauderon_plugin_sdk::labels::SESSION)
                    .cloned()
                    .unwrap_or_default(),
                labels: s.labels.clone(),
                ..SpriteState::default()
            };
            Some(ops::InstanceSummary {
                instance: state.instance(),
                name: Some(s.name.clone()),
                labels,
                status: instance_status(&s.status),
            })
        })
        .collect();
    Ok(ops::ListInstancesResponse { instances })
}

/// `check_auth`: one cheap authenticated list call.
pub async fn check_auth(b: &SpritesBackend) -> Result<ops::CheckAuthResponse, PluginError> {
    let client = b.client().await?;
    client.check_auth().await.map_err(err_ctx(&format!(
        "checking the Sprites token against {}",
        client.base_url()
    )))?;
    Ok(ops::CheckAuthResponse {
        account: None,
        detail: Some(format!("the token is accepted by {}", client.base_url())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleeping_sprite_is_hibernated_whether_warm_or_cold() {
        assert_eq!(
            instance_status(&SpriteStatus::Running),
            InstanceStatus::Running
        );
        assert_eq!(
            instance_status(&SpriteStatus::Warm),
            InstanceStatus::Hibernated
        );
        assert_eq!(
            instance_status(&SpriteStatus::Cold),
            InstanceStatus::Hibernated
        );
        assert_eq!(
            instance_status(&SpriteStatus::Other("booting".into())),
            InstanceStatus::Unknown
        );
    }
}
