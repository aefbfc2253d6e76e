//! Resolving a held conflict: the version the user takes wins on both sides. The ancestor of
//! the path becomes the *other* side's conflicting version, so the next cycle sees only the
//! taken side as changed and copies it over, by the same compare-and-swap as any change: if
//! the other side changed again meanwhile, that is a new conflict, never an overwrite.

use super::cycle::SyncState;
use super::plan::Side;

/// Why a conflict cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not in conflict")]
pub struct NotInConflict(pub String);

/// Resolves the conflict at `path` by taking `take`'s version.
pub fn resolve(state: &mut SyncState, path: &str, take: Side) -> Result<(), NotInConflict> {
    let c = state
        .conflicts
        .remove(path)
        .ok_or_else(|| NotInConflict(path.to_owned()))?;
    let other = match take {
        Side::Local => c.remote,
        Side::Remote => c.local,
    };
    state.ancestor.insert(path.to_owned(), other);
    Ok(())
}
