//! Checkpoints over the Sprites checkpoint API: create (with progress), list (oldest first, the
//! `Current` pseudo-entry left out), restore (an error reported inside the stream is an error).

use clauderon_plugin_sdk::ops;
use clauderon_plugin_sdk::{CallContext, PluginError};
use time::format_description::well_known::Rfc3339;

use super::SpritesBackend;
use super::errors::ctx as err_ctx;
use super::state::SpriteState;
use crate::client::Checkpoint;

fn to_op(c: &Checkpoint) -> ops::Checkpoint {
    ops::Checkpoint {
        id: c.id.clone(),
        created_at: c.create_time.and_then(|t| t.format(&Rfc3339).ok()),
        comment: c.comment.clone().filter(|s| !s.is_empty()),
    }
}

/// `checkpoint_create`.
pub async fn create(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::CheckpointCreateRequest,
) -> Result<ops::CheckpointCreateResponse, PluginError> {
    let state = SpriteState::of(&req.instance)?;
    let sprite = b.sprite(&state).await?;
    let created = sprite
        .create_checkpoint(req.comment.as_deref(), |ev| {
            ctx.progress("checkpoint", ev.text(), None);
        })
        .await
        .map_err(err_ctx(&format!("checkpointing sprite {}", state.sprite)))?;
    let checkpoint = match sprite.checkpoint(&created.id).await {
        Ok(c) => to_op(&c),
        Err(_) => ops::Checkpoint {
            id: created.id.clone(),
            created_at: None,
            comment: req.comment.clone(),
        },
    };
    Ok(ops::CheckpointCreateResponse {
        instance: state.instance(),
        checkpoint,
    })
}

/// `checkpoint_list`: oldest first.
pub async fn list(
    b: &SpritesBackend,
    req: ops::InstanceRequest,
) -> Result<ops::CheckpointListResponse, PluginError> {
    let state = SpriteState::of(&req.instance)?;
    let sprite = b.sprite(&state).await?;
    let mut all = sprite
        .checkpoints()
        .await
        .map_err(err_ctx(&format!("listing checkpoints of {}", state.sprite)))?;
    all.retain(|c| !c.is_current());
    all.reverse();
    Ok(ops::CheckpointListResponse {
        checkpoints: all.iter().map(to_op).collect(),
    })
}

/// `checkpoint_restore`: files roll back and every session ends, so the agent session is
/// forgotten (the host starts the agent again).
pub async fn restore(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::CheckpointRestoreRequest,
) -> Result<ops::InstanceResponse, PluginError> {
    let mut state = SpriteState::of(&req.instance)?;
    if req.checkpoint_id.trim().is_empty() {
        return Err(PluginError::invalid_request(
            "restore needs a checkpoint id (see `clauderon checkpoint list`)",
        ));
    }
    let sprite = b.sprite(&state).await?;
    sprite
        .restore_checkpoint(&req.checkpoint_id, |ev| {
            ctx.progress("restore", ev.text(), None);
        })
        .await
        .map_err(err_ctx(&format!(
            "restoring checkpoint {} of {}",
            req.checkpoint_id, state.sprite
        )))?;
    state.agent_session = None;
    Ok(ops::InstanceResponse {
        instance: state.instance(),
    })
}
