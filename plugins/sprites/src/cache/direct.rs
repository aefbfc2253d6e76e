//! The direct path of a restore: the session sprite fetches the archive from the cache
//! sprite's URL itself, so the bytes do not cross the user's link twice.

use clauderon_plugin_sdk::CallContext;

use super::Attempt;
use super::store::{EntryMeta, Store};
use crate::backend::SpritesBackend;
use crate::client::SpriteHandle;

/// Tries the direct path; `Err` says why it cannot be used (the caller relays instead).
pub(crate) async fn restore(
    _b: &SpritesBackend,
    _ctx: &CallContext,
    _store: &Store,
    _session: &SpriteHandle,
    _meta: &EntryMeta,
    _stage: &str,
) -> Result<Attempt, String> {
    Err("not implemented yet".into())
}
