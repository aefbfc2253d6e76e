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
