//! Label keys the host and plugins share: the host puts them on every sandbox it creates (in
//! the `create` request) and finds its own sandboxes by them (`list_instances`); a plugin
//! stores them with the provider and reports them back.

/// The marker every sandbox clauderon creates carries, with the value [`MARKER_VALUE`].
pub const MARKER: &str = "clauderon";

/// The value of [`MARKER`].
pub const MARKER_VALUE: &str = "1";

/// The id of the host session that owns the sandbox.
pub const SESSION: &str = "clauderon.session";

/// Since 1.2: marks a cache store (for Sprites, a cache sprite) and names it: the value is
/// the store's key. A sandbox carrying it belongs to no session; reconcile never reports it as
/// an orphan.
pub const CACHE: &str = "clauderon.cache";

/// The installation (one clauderon home) that created the sandbox: several homes may share one
/// provider account, and each acts only on its own sandboxes. Since plugin API 1.2.0.
pub const INSTALLATION: &str = "clauderon.installation";

/// Config keys the host reads from a backend's own table (`[<backend>]`), since 1.2. A plugin
/// that supports the two-way sync declares them in its details; the host never names a
/// backend, only these keys.
pub mod config_keys {
    /// `sync = true|false`: whether sessions get a synced local worktree by default
    /// (`clauderon create --sync/--no-sync` decides per session).
    pub const SYNC: &str = "sync";
    /// `sync_ignore = ["pattern", ...]`: extra gitignore-style patterns neither side syncs.
    pub const SYNC_IGNORE: &str = "sync_ignore";
}
