//! Tunnels (`open_tunnel`/`close_tunnel`): relaying a port inside the sprite to a host address.
//! Owned by the proxy work; until it lands both answer `Unsupported` and the plugin does not list
//! the `tunnel` capability.

use clauderon_plugin_api::ops;
use clauderon_plugin_api::{CallContext, PluginError};

use crate::backend::SpritesBackend;

/// `open_tunnel`: not implemented yet.
pub async fn open_tunnel(
    _backend: &SpritesBackend,
    _ctx: CallContext,
    _req: ops::OpenTunnelRequest,
) -> Result<ops::OpenTunnelResponse, PluginError> {
    Err(PluginError::unsupported(ops::OPEN_TUNNEL))
}

/// `close_tunnel`: not implemented yet.
pub async fn close_tunnel(
    _backend: &SpritesBackend,
    _ctx: CallContext,
    _req: ops::CloseTunnelRequest,
) -> Result<ops::InstanceResponse, PluginError> {
    Err(PluginError::unsupported(ops::CLOSE_TUNNEL))
}
