//! The Sprites backend: every clauderon operation over the Sprites client, one concept per
//! module (lifecycle, clone, agent streams, checkpoints, instance state).

mod agent;
mod checkpoints;
mod clone;
pub mod errors;
mod lifecycle;
pub mod names;
mod overlap;
pub mod progress;
pub mod state;
mod sync;
pub mod upload;

use std::sync::Mutex;
use std::time::Duration;

use clauderon_plugin_sdk::ops;
use clauderon_plugin_sdk::stream::FrameStream;
use clauderon_plugin_sdk::{Backend, CallContext, ErrorKind, HostContext, PluginError};

use crate::client::{SpriteHandle, SpritesClient, Token};

/// Where the workspace is cloned when the request names no destination.
pub const DEFAULT_WORKSPACE: &str = "/home/sprite/workspace";

/// The backend's settings from `[sprites]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API base URL.
    pub api_url: String,
    /// How long `hibernate` waits for the sprite to leave `running`.
    pub hibernate_wait: Duration,
    /// Grace period between TERM and KILL when stopping the agent.
    pub stop_grace: Duration,
    /// Reconnect attempts for a dropped attach socket (and a dropped tunnel relay socket).
    pub reconnect_attempts: u32,
    /// A static `clauderon-relay` binary to upload for tunnels instead of the one built into
    /// the plugin (`relay_path`).
    pub relay_path: Option<std::path::PathBuf>,
    /// Depth of clones from the origin when the request gives none (`clone_depth`; unset: the
    /// full history).
    pub clone_depth: Option<u32>,
}

/// The Sprites backend created by `init`.
pub struct SpritesBackend {
    settings: Settings,
    host: HostContext,
    client: Mutex<Option<SpritesClient>>,
}

impl std::fmt::Debug for SpritesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpritesBackend")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SpritesBackend {
    /// A backend with `settings`, reading its token through `host` on first use.
    pub fn new(settings: Settings, host: HostContext) -> SpritesBackend {
        SpritesBackend {
            settings,
            host,
            client: Mutex::new(None),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The client, built on first use with the `sprites_api_key` secret.
    pub(crate) async fn client(&self) -> Result<SpritesClient, PluginError> {
        if let Some(c) = self.client.lock().ok().and_then(|g| g.clone()) {
            return Ok(c);
        }
        let token = match self.host.secret("sprites_api_key").await? {
            Some(t) if !t.expose().trim().is_empty() => t,
            _ => {
                return Err(PluginError::new(
                    ErrorKind::Unauthenticated,
                    "no Sprites API token: set SPRITES_API_KEY, or store it with \
                     `clauderon config secret set sprites_api_key`",
                ));
            }
        };
        let client = SpritesClient::builder()
            .base_url(self.settings.api_url.clone())
            .token(Token::new(token.expose().trim()))
            .on_event(progress::forward)
            .build()
            .map_err(errors::ctx("cannot set up the Sprites client"))?;
        if let Ok(mut g) = self.client.lock() {
            *g = Some(client.clone());
        }
        Ok(client)
    }

    /// A handle for the sprite named in `state`.
    pub(crate) async fn sprite(
        &self,
        state: &state::SpriteState,
    ) -> Result<SpriteHandle, PluginError> {
        Ok(self.client().await?.sprite(state.sprite.clone()))
    }
}

impl Backend for SpritesBackend {
    async fn create(
        &self,
        ctx: CallContext,
        req: ops::CreateRequest,
    ) -> Result<ops::InstanceResponse, PluginError> {
        progress::with_sink(&ctx, "create", lifecycle::create(self, &ctx, req)).await
    }

    async fn status(
        &self,
        ctx: CallContext,
        req: ops::InstanceRequest,
    ) -> Result<ops::StatusResponse, PluginError> {
        progress::with_sink(&ctx, "status", lifecycle::status(self, req)).await
    }

    async fn start(
        &self,
        ctx: CallContext,
        req: ops::InstanceRequest,
    ) -> Result<ops::InstanceResponse, PluginError> {
        progress::with_sink(&ctx, "wake", lifecycle::wake(self, &ctx, req)).await
    }

    async fn delete(
        &self,
        ctx: CallContext,
        req: ops::InstanceRequest,
    ) -> Result<ops::Empty, PluginError> {
        progress::with_sink(&ctx, "delete", lifecycle::delete(self, &ctx, req)).await
    }

    async fn hibernate(
        &self,
        ctx: CallContext,
        req: ops::InstanceRequest,
    ) -> Result<ops::InstanceResponse, PluginError> {
        progress::with_sink(&ctx, "hibernate", lifecycle::hibernate(self, &ctx, req)).await
    }

    async fn wake(
        &self,
        ctx: CallContext,
        req: ops::InstanceRequest,
    ) -> Result<ops::InstanceResponse, PluginError> {
        progress::with_sink(&ctx, "wake", lifecycle::wake(self, &ctx, req)).await
    }

    async fn clone_repo(
        &self,
        ctx: CallContext,
        req: ops::CloneRepoRequest,
    ) -> Result<ops::CloneRepoResponse, PluginError> {
        progress::with_sink(&ctx, "clone", clone::clone_repo(self, &ctx, req)).await
    }

    async fn cache_save(
        &self,
        ctx: CallContext,
        req: ops::CacheSaveRequest,
    ) -> Result<ops::CacheResponse, PluginError> {
        progress::with_sink(&ctx, "cache", crate::cache::save(self, &ctx, req)).await
    }

    async fn cache_restore(
        &self,
        ctx: CallContext,
        req: ops::CacheRestoreRequest,
    ) -> Result<ops::CacheResponse, PluginError> {
        progress::with_sink(&ctx, "cache", crate::cache::restore(self, &ctx, req)).await
    }

    async fn cache_delete(
        &self,
        ctx: CallContext,
        req: ops::CacheDeleteRequest,
    ) -> Result<ops::CacheDeleteResponse, PluginError> {
        progress::with_sink(&ctx, "cache", crate::cache::delete(self, &ctx, req)).await
    }

    async fn open_tunnel(
        &self,
        ctx: CallContext,
        req: ops::OpenTunnelRequest,
    ) -> Result<ops::OpenTunnelResponse, PluginError> {
        crate::tunnel::open_tunnel(self, ctx, req).await
    }

    async fn close_tunnel(
        &self,
        ctx: CallContext,
        req: ops::CloseTunnelRequest,
    ) -> Result<ops::InstanceResponse, PluginError> {
        crate::tunnel::close_tunnel(self, ctx, req).await
    }

    async fn checkpoint_create(
        &self,
        ctx: CallContext,
        req: ops::CheckpointCreateRequest,
    ) -> Result<ops::CheckpointCreateResponse, PluginError> {
        progress::with_sink(&ctx, "checkpoint", checkpoints::create(self, &ctx, req)).await
    }

    async fn checkpoint_list(
        &self,
        ctx: CallContext,
        req: ops::InstanceRequest,
    ) -> Result<ops::CheckpointListResponse, PluginError> {
        progress::with_sink(&ctx, "checkpoint", checkpoints::list(self, req)).await
    }

    async fn checkpoint_restore(
        &self,
        ctx: CallContext,
        req: ops::CheckpointRestoreRequest,
    ) -> Result<ops::InstanceResponse, PluginError> {
        progress::with_sink(&ctx, "restore", checkpoints::restore(self, &ctx, req)).await
    }

    async fn check_auth(
        &self,
        ctx: CallContext,
        _req: ops::CheckAuthRequest,
    ) -> Result<ops::CheckAuthResponse, PluginError> {
        progress::with_sink(&ctx, "auth", lifecycle::check_auth(self)).await
    }

    async fn list_instances(
        &self,
        ctx: CallContext,
        req: ops::ListInstancesRequest,
    ) -> Result<ops::ListInstancesResponse, PluginError> {
        progress::with_sink(&ctx, "list", lifecycle::list_instances(self, req)).await
    }

    async fn exec(
        &self,
        ctx: CallContext,
        req: ops::ExecRequest,
        stream: FrameStream,
    ) -> Result<ops::StreamStarted, PluginError> {
        progress::with_sink(&ctx, "exec", agent::exec(self, req, stream)).await
    }

    async fn attach(
        &self,
        ctx: CallContext,
        req: ops::AttachRequest,
        stream: FrameStream,
    ) -> Result<ops::StreamStarted, PluginError> {
        progress::with_sink(&ctx, "agent", agent::attach(self, &ctx, req, stream)).await
    }

    async fn sync_stream(
        &self,
        ctx: CallContext,
        req: ops::SyncStreamRequest,
        stream: FrameStream,
    ) -> Result<ops::StreamStarted, PluginError> {
        progress::with_sink(&ctx, "sync", sync::sync_stream(self, &ctx, req, stream)).await
    }
}
