//! Operation names, capability bits and the versioned serde payloads of every operation.
//!
//! Compatibility rules: unknown fields are ignored, every field added after 1.0 is optional
//! (`#[serde(default)]`), an operation a plugin does not know answers `Unsupported`. Adding an
//! operation = a new name here, a new capability bit, new payload types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `create`: make a sandbox.
pub const CREATE: &str = "create";
/// `status`: the sandbox's current status.
pub const STATUS: &str = "status";
/// `start`: start a stopped sandbox.
pub const START: &str = "start";
/// `delete`: destroy a sandbox.
pub const DELETE: &str = "delete";
/// `hibernate`: put a sandbox to sleep.
pub const HIBERNATE: &str = "hibernate";
/// `wake`: wake a hibernated sandbox.
pub const WAKE: &str = "wake";
/// `exec` (stream): run a command.
pub const EXEC: &str = "exec";
/// `attach` (stream): an interactive TTY session.
pub const ATTACH: &str = "attach";
/// `clone_repo`: clone a repository inside the sandbox.
pub const CLONE_REPO: &str = "clone_repo";
/// `sync`: copy files between host and sandbox.
pub const SYNC: &str = "sync";
/// `cache_save`: save cached paths.
pub const CACHE_SAVE: &str = "cache_save";
/// `cache_restore`: restore cached paths.
pub const CACHE_RESTORE: &str = "cache_restore";
/// `cache_delete` (since 1.2): drop entries of a cache store, or the whole store.
pub const CACHE_DELETE: &str = "cache_delete";
/// `open_tunnel`: relay a port inside the sandbox to a host address.
pub const OPEN_TUNNEL: &str = "open_tunnel";
/// `close_tunnel`: stop a tunnel.
pub const CLOSE_TUNNEL: &str = "close_tunnel";
/// `checkpoint_create`: snapshot a sandbox.
pub const CHECKPOINT_CREATE: &str = "checkpoint_create";
/// `checkpoint_list`: list snapshots.
pub const CHECKPOINT_LIST: &str = "checkpoint_list";
/// `checkpoint_restore`: restore a snapshot.
pub const CHECKPOINT_RESTORE: &str = "checkpoint_restore";
/// `check_auth`: a cheap authenticated call.
pub const CHECK_AUTH: &str = "check_auth";
/// `list_instances`: sandboxes labelled as ours.
pub const LIST_INSTANCES: &str = "list_instances";
/// `sync_stream` (stream, since 1.2): serve a directory inside the sandbox as the remote side of
/// the host's two-way sync, speaking the `clauderon-sync` wire protocol over Stdin/Stdout frames.
pub const SYNC_STREAM: &str = "sync_stream";

/// Capability bits: which groups of operations a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// create, status, start, delete.
    pub const LIFECYCLE: Capabilities = Capabilities(1 << 0);
    /// hibernate, wake.
    pub const HIBERNATE: Capabilities = Capabilities(1 << 1);
    /// exec stream.
    pub const EXEC: Capabilities = Capabilities(1 << 2);
    /// attach stream.
    pub const ATTACH: Capabilities = Capabilities(1 << 3);
    /// clone_repo.
    pub const REMOTE_CLONE: Capabilities = Capabilities(1 << 4);
    /// sync.
    pub const SYNC: Capabilities = Capabilities(1 << 5);
    /// cache_save, cache_restore, cache_delete.
    pub const CACHE: Capabilities = Capabilities(1 << 6);
    /// open_tunnel, close_tunnel.
    pub const TUNNEL: Capabilities = Capabilities(1 << 7);
    /// checkpoint_create, checkpoint_list, checkpoint_restore.
    pub const CHECKPOINT: Capabilities = Capabilities(1 << 8);
    /// check_auth.
    pub const CHECK_AUTH: Capabilities = Capabilities(1 << 9);
    /// list_instances.
    pub const LIST: Capabilities = Capabilities(1 << 10);
    /// sync_stream (since 1.2).
    pub const SYNC_STREAM: Capabilities = Capabilities(1 << 11);

    /// Every capability with its name, in bit order.
    pub const ALL: [(Capabilities, &'static str); 12] = [
        (Capabilities::LIFECYCLE, "lifecycle"),
        (Capabilities::HIBERNATE, "hibernate"),
        (Capabilities::EXEC, "exec"),
        (Capabilities::ATTACH, "attach"),
        (Capabilities::REMOTE_CLONE, "remote_clone"),
        (Capabilities::SYNC, "sync"),
        (Capabilities::CACHE, "cache"),
        (Capabilities::TUNNEL, "tunnel"),
        (Capabilities::CHECKPOINT, "checkpoint"),
        (Capabilities::CHECK_AUTH, "check_auth"),
        (Capabilities::LIST, "list"),
        (Capabilities::SYNC_STREAM, "sync_stream"),
    ];

    /// No capabilities.
    pub const fn empty() -> Capabilities {
        Capabilities(0)
    }

    /// The union of two sets (usable in consts).
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the set bits this version knows (unknown bits from newer plugins skipped).
    pub fn names(self) -> Vec<&'static str> {
        Capabilities::ALL
            .iter()
            .filter(|(c, _)| self.contains(*c))
            .map(|(_, n)| *n)
            .collect()
    }

    /// The capability an operation needs, `None` for an op this version does not know.
    pub fn for_op(op: &str) -> Option<Capabilities> {
        Some(match op {
            CREATE | STATUS | START | DELETE => Capabilities::LIFECYCLE,
            HIBERNATE | WAKE => Capabilities::HIBERNATE,
            EXEC => Capabilities::EXEC,
            ATTACH => Capabilities::ATTACH,
            CLONE_REPO => Capabilities::REMOTE_CLONE,
            SYNC => Capabilities::SYNC,
            CACHE_SAVE | CACHE_RESTORE | CACHE_DELETE => Capabilities::CACHE,
            OPEN_TUNNEL | CLOSE_TUNNEL => Capabilities::TUNNEL,
            CHECKPOINT_CREATE | CHECKPOINT_LIST | CHECKPOINT_RESTORE => Capabilities::CHECKPOINT,
            CHECK_AUTH => Capabilities::CHECK_AUTH,
            LIST_INSTANCES => Capabilities::LIST,
            SYNC_STREAM => Capabilities::SYNC_STREAM,
            _ => return None,
        })
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        self.union(rhs)
    }
}

/// A sandbox as the host stores it: the provider's id and opaque plugin-versioned state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Instance {
    /// The provider's id for the sandbox.
    pub id: String,
    /// Opaque state the plugin versions itself; the host stores it with the session.
    #[serde(default)]
    pub state: serde_json::Value,
}

/// A sandbox's status as the plugin sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Being created.
    Creating,
    /// Running.
    Running,
    /// Hibernated (cold, resumable).
    Hibernated,
    /// Stopped.
    Stopped,
    /// No longer exists at the provider.
    Gone,
    /// Anything this version does not know.
    #[serde(other)]
    Unknown,
}

/// `create` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The host's session id (for labels and idempotency).
    pub session_id: String,
    /// A human name for the sandbox.
    pub name: String,
    /// Labels marking the sandbox as ours.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Environment variables for the sandbox (never secrets).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// CPU limit in cores (`--cpu-limit`), when the user set one.
    #[serde(default)]
    pub cpu_limit: Option<f64>,
    /// Memory limit in MiB (`--memory-limit`), when the user set one.
    #[serde(default)]
    pub memory_limit_mib: Option<u64>,
}

/// A response carrying the (possibly updated) instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstanceResponse {
    /// The instance after the operation.
    pub instance: Instance,
}

/// A request about one instance (`status`, `start`, `delete`, `hibernate`, `wake`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstanceRequest {
    /// The instance.
    pub instance: Instance,
}

/// `status` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The instance.
    pub instance: Instance,
    /// Its status.
    pub status: InstanceStatus,
}

/// `exec` request: run a command; its output comes over the stream.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The instance.
    pub instance: Instance,
    /// argv.
    pub command: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Allocate a TTY.
    #[serde(default)]
    pub tty: bool,
}

/// `attach` request: an interactive TTY session.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AttachRequest {
    /// The instance.
    pub instance: Instance,
    /// A detachable session name to attach to or create.
    #[serde(default)]
    pub session: Option<String>,
    /// Command to run when creating the session.
    #[serde(default)]
    pub command: Vec<String>,
    /// Terminal columns.
    #[serde(default)]
    pub cols: u16,
    /// Terminal rows.
    #[serde(default)]
    pub rows: u16,
    /// Working directory when creating the session.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Extra environment when creating the session (never secrets).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Response of a stream op (`exec`, `attach`) once the stream is open.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamStarted {
    /// The instance after starting.
    #[serde(default)]
    pub instance: Option<Instance>,
    /// The id of the detachable session the stream is attached to (an `attach` that created one
    /// reports it here; the host keeps it to re-attach later).
    #[serde(default)]
    pub session: Option<String>,
}

/// `clone_repo` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CloneRepoRequest {
    /// The instance.
    pub instance: Instance,
    /// The repository's origin URL (empty when it has none).
    pub url: String,
    /// The new session branch to create and check out.
    #[serde(default)]
    pub branch: Option<String>,
    /// Destination path inside the sandbox.
    pub dest: String,
    /// The repository on the host, for plugins that ship a bundle when the origin is unreachable
    /// or lacks local commits.
    #[serde(default)]
    pub local_path: Option<String>,
    /// The commit (full hash) the session branch starts from: the host's local HEAD.
    #[serde(default)]
    pub base_commit: Option<String>,
    /// The local branch name HEAD was on, when it was on one.
    #[serde(default)]
    pub base_branch: Option<String>,
    /// Clone depth (`None`: full history).
    #[serde(default)]
    pub depth: Option<u32>,
}

/// `clone_repo` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CloneRepoResponse {
    /// The instance.
    pub instance: Instance,
    /// The checked-out commit, when known.
    #[serde(default)]
    pub commit: Option<String>,
}

/// Direction of a `sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncDirection {
    /// Host to sandbox.
    #[default]
    ToSandbox,
    /// Sandbox to host.
    FromSandbox,
}

/// `sync` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The instance.
    pub instance: Instance,
    /// Direction.
    #[serde(default)]
    pub direction: SyncDirection,
    /// Path on the host.
    pub local_path: String,
    /// Path in the sandbox.
    pub remote_path: String,
    /// Glob patterns to skip.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `sync` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The instance.
    pub instance: Instance,
    /// Bytes transferred.
    #[serde(default)]
    pub bytes: u64,
    /// Files transferred.
    #[serde(default)]
    pub files: u64,
}

/// `sync_stream` request (since 1.2): serve `root` inside the sandbox as the remote replica of
/// a two-way sync. The stream then carries the `clauderon-sync` wire protocol: the host's
/// requests as Stdin frames, the replica's replies as Stdout frames; Exit or Error ends it (the
/// host reconnects and reconciles, so a lost stream loses nothing).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SyncStreamRequest {
    /// The instance.
    pub instance: Instance,
    /// The absolute directory inside the sandbox (the workspace).
    pub root: String,
    /// Extra ignore patterns (gitignore-style), on top of git's own ignores.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Whether the replica watches for changes and says so (`false`: it answers only).
    #[serde(default = "yes")]
    pub watch: bool,
}

fn yes() -> bool {
    true
}

/// `cache_save` request: pack `paths` of the sandbox into the entry `key` of a cache store.
///
/// A *cache store* is where one project's caches of one scope live at the provider (for
/// Sprites a long-lived cache sprite); the host keeps its [`Instance`] and hands it back. An
/// entry, once saved under its key, is never changed; saving a key again replaces it whole
/// (the last complete save wins, a half-written one is never visible).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheSaveRequest {
    /// The session's sandbox the paths are read from.
    pub instance: Instance,
    /// The entry's key (`[A-Za-z0-9._-]`, at most 200 characters).
    pub key: String,
    /// Absolute paths inside the sandbox to save (missing ones are skipped).
    pub paths: Vec<String>,
    /// Since 1.2: the store, when the host knows one; `None` (or a store that is gone) makes
    /// the plugin create one for `store_key`.
    #[serde(default)]
    pub store: Option<Instance>,
    /// Since 1.2: the store's key: the value of the `clauderon.cache` label
    /// ([`crate::labels::CACHE`]) a new store carries, and what names it.
    #[serde(default)]
    pub store_key: Option<String>,
    /// Since 1.2: labels a new store carries besides `clauderon.cache` (the host's marker).
    #[serde(default)]
    pub store_labels: BTreeMap<String, String>,
    /// Since 1.2: the largest archive the entry may take; a bigger one is not stored
    /// (`saved: false` with the reason).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Since 1.2: the bytes may go straight from the sandbox to the store, not through the
    /// host, where the backend has such a path (the response's `transport` says which was
    /// used); as [`CacheRestoreRequest::direct`] for a restore.
    #[serde(default)]
    pub direct: bool,
}

/// `cache_restore` request: fill `paths` of the sandbox from the entry `key` of a store.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheRestoreRequest {
    /// The session's sandbox the paths are written into.
    pub instance: Instance,
    /// The entry's key (the host chose it: an exact key or the newest prefix match).
    pub key: String,
    /// Since 1.2: the store holding the entry.
    #[serde(default)]
    pub store: Option<Instance>,
    /// Since 1.2: the absolute paths to fill (those of the entry that are not listed stay
    /// out); empty: everything the entry holds.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Since 1.2: whether the plugin may move the bytes directly between store and sandbox
    /// when its provider allows it (else, and when that fails, they go through the host).
    #[serde(default)]
    pub direct: bool,
}

/// `cache_save` / `cache_restore` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheResponse {
    /// The session's sandbox.
    pub instance: Instance,
    /// Whether anything was saved or restored (false: a miss, or nothing to save).
    pub hit: bool,
    /// Bytes moved (the compressed archive).
    #[serde(default)]
    pub bytes: u64,
    /// Since 1.2: the store after the call (made or updated by a save); the host keeps it.
    #[serde(default)]
    pub store: Option<Instance>,
    /// Since 1.2: how the bytes travelled (`relay`: through the host; `direct`: store and
    /// sandbox talked to each other).
    #[serde(default)]
    pub transport: Option<String>,
    /// Since 1.2: why nothing was saved or restored, when `hit` is false.
    #[serde(default)]
    pub reason: Option<String>,
    /// Since 1.2 (restore): the entry is unusable (a corrupt or truncated archive) and should
    /// be forgotten; the plugin removed what it could of it.
    #[serde(default)]
    pub damaged: bool,
    /// Since 1.2: how long the transfer took, in milliseconds.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// Since 1.2 (save): the entry is a layer over this one (it holds only what changed since
    /// that entry), so the store must keep that entry while this one lives; `None`: a whole
    /// archive.
    #[serde(default)]
    pub base: Option<String>,
    /// Since 1.2 (restore): the entries the plugin removed from the store during the call (a
    /// damaged one and the layers lying on it, or a layer whose base is gone or was replaced);
    /// the host forgets them too. Empty on a hit.
    #[serde(default)]
    pub removed: Vec<String>,
}

/// `cache_delete` request (since 1.2): drop entries of a store, or the store itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheDeleteRequest {
    /// The store.
    pub store: Instance,
    /// The entries to drop; empty: the whole store goes (for Sprites, its cache sprite).
    #[serde(default)]
    pub keys: Vec<String>,
}

/// `cache_delete` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheDeleteResponse {
    /// The store after the call; `None` when the whole store was deleted (or was gone).
    #[serde(default)]
    pub store: Option<Instance>,
    /// The entries that were dropped (missing ones are not an error).
    #[serde(default)]
    pub deleted: Vec<String>,
}

/// `open_tunnel` request: relay connections to `remote_port` inside the sandbox to `host_addr`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OpenTunnelRequest {
    /// The instance.
    pub instance: Instance,
    /// Port inside the sandbox.
    pub remote_port: u16,
    /// Host address (`127.0.0.1:PORT`) connections go to.
    pub host_addr: String,
}

/// `open_tunnel` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OpenTunnelResponse {
    /// The instance.
    pub instance: Instance,
    /// The tunnel's id for `close_tunnel`.
    pub tunnel_id: String,
}

/// `close_tunnel` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CloseTunnelRequest {
    /// The instance.
    pub instance: Instance,
    /// The tunnel id.
    pub tunnel_id: String,
}

/// A checkpoint (snapshot) of a sandbox.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The provider's checkpoint id.
    pub id: String,
    /// RFC 3339 creation time, when known.
    #[serde(default)]
    pub created_at: Option<String>,
    /// A comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `checkpoint_create` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckpointCreateRequest {
    /// The instance.
    pub instance: Instance,
    /// A comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `checkpoint_create` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckpointCreateResponse {
    /// The instance.
    pub instance: Instance,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
}

/// `checkpoint_list` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckpointListResponse {
    /// Checkpoints, oldest first.
    pub checkpoints: Vec<Checkpoint>,
}

/// `checkpoint_restore` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckpointRestoreRequest {
    /// The instance.
    pub instance: Instance,
    /// The checkpoint to restore.
    pub checkpoint_id: String,
}

/// `check_auth` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckAuthRequest {}

/// `check_auth` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckAuthResponse {
    /// Who the credentials belong to, when the provider says.
    #[serde(default)]
    pub account: Option<String>,
    /// A human-readable summary.
    #[serde(default)]
    pub detail: Option<String>,
}

/// `list_instances` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListInstancesRequest {
    /// Only sandboxes carrying all these labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One sandbox in a `list_instances` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSummary {
    /// The instance.
    pub instance: Instance,
    /// Its name at the provider.
    #[serde(default)]
    pub name: Option<String>,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its status.
    pub status: InstanceStatus,
}

/// `list_instances` response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListInstancesResponse {
    /// The sandboxes.
    pub instances: Vec<InstanceSummary>,
}

/// A response with nothing in it (`delete` when the instance is gone, ...).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Empty {}

/// Expands `$callback! { ... }` with the table of every non-stream operation: its doc, method
/// name, request type, response type and op name. The SDK's `Backend` trait and the host's typed
/// client are both generated from this one table, so they cannot drift apart.
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_call_op {
    ($callback:ident) => {
        $callback! {
            /// `create`: make a sandbox.
            create($crate::ops::CreateRequest) -> $crate::ops::InstanceResponse = $crate::ops::CREATE;
            /// `status`: the sandbox's status.
            status($crate::ops::InstanceRequest) -> $crate::ops::StatusResponse = $crate::ops::STATUS;
            /// `start`: start a stopped sandbox.
            start($crate::ops::InstanceRequest) -> $crate::ops::InstanceResponse = $crate::ops::START;
            /// `delete`: destroy a sandbox.
            delete($crate::ops::InstanceRequest) -> $crate::ops::Empty = $crate::ops::DELETE;
            /// `hibernate`: put a sandbox to sleep.
            hibernate($crate::ops::InstanceRequest) -> $crate::ops::InstanceResponse = $crate::ops::HIBERNATE;
            /// `wake`: wake a sandbox.
            wake($crate::ops::InstanceRequest) -> $crate::ops::InstanceResponse = $crate::ops::WAKE;
            /// `clone_repo`: clone a repository inside the sandbox.
            clone_repo($crate::ops::CloneRepoRequest) -> $crate::ops::CloneRepoResponse = $crate::ops::CLONE_REPO;
            /// `sync`: copy files between host and sandbox.
            sync($crate::ops::SyncRequest) -> $crate::ops::SyncResponse = $crate::ops::SYNC;
            /// `cache_save`: save cached paths.
            cache_save($crate::ops::CacheSaveRequest) -> $crate::ops::CacheResponse = $crate::ops::CACHE_SAVE;
            /// `cache_restore`: restore cached paths.
            cache_restore($crate::ops::CacheRestoreRequest) -> $crate::ops::CacheResponse = $crate::ops::CACHE_RESTORE;
            /// `cache_delete`: drop entries of a cache store, or the whole store.
            cache_delete($crate::ops::CacheDeleteRequest) -> $crate::ops::CacheDeleteResponse = $crate::ops::CACHE_DELETE;
            /// `open_tunnel`: relay a sandbox port to a host address.
            open_tunnel($crate::ops::OpenTunnelRequest) -> $crate::ops::OpenTunnelResponse = $crate::ops::OPEN_TUNNEL;
            /// `close_tunnel`: stop a tunnel.
            close_tunnel($crate::ops::CloseTunnelRequest) -> $crate::ops::InstanceResponse = $crate::ops::CLOSE_TUNNEL;
            /// `checkpoint_create`: snapshot the sandbox.
            checkpoint_create($crate::ops::CheckpointCreateRequest) -> $crate::ops::CheckpointCreateResponse = $crate::ops::CHECKPOINT_CREATE;
            /// `checkpoint_list`: list snapshots.
            checkpoint_list($crate::ops::InstanceRequest) -> $crate::ops::CheckpointListResponse = $crate::ops::CHECKPOINT_LIST;
            /// `checkpoint_restore`: restore a snapshot.
            checkpoint_restore($crate::ops::CheckpointRestoreRequest) -> $crate::ops::InstanceResponse = $crate::ops::CHECKPOINT_RESTORE;
            /// `check_auth`: a cheap authenticated call.
            check_auth($crate::ops::CheckAuthRequest) -> $crate::ops::CheckAuthResponse = $crate::ops::CHECK_AUTH;
            /// `list_instances`: sandboxes labelled as ours.
            list_instances($crate::ops::ListInstancesRequest) -> $crate::ops::ListInstancesResponse = $crate::ops::LIST_INSTANCES;
        }
    };
}

/// Expands `$callback! { ... }` with the table of every stream operation: its doc, method name,
/// request type and op name. A stream op answers [`StreamStarted`] and hands the host one end
/// of a socketpair that speaks [`crate::stream`]. Like [`for_each_call_op!`], it generates the
/// SDK's `Backend` methods and the host's typed client.
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_stream_op {
    ($callback:ident) => {
        $callback! {
            /// `exec`: run a command; its I/O crosses the stream.
            exec($crate::ops::ExecRequest) = $crate::ops::EXEC;
            /// `attach`: an interactive TTY session over the stream.
            attach($crate::ops::AttachRequest) = $crate::ops::ATTACH;
            /// `sync_stream`: the remote side of the two-way sync over the stream (since 1.2).
            sync_stream($crate::ops::SyncStreamRequest) = $crate::ops::SYNC_STREAM;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_ignored_and_new_fields_optional() {
        let r: StatusResponse =
            serde_json::from_str(r#"{"instance":{"id":"a"},"status":"frozen","future_field":1}"#)
                .unwrap();
        assert_eq!(r.status, InstanceStatus::Unknown);
        assert_eq!(r.instance.state, serde_json::Value::Null);
    }

    #[test]
    fn every_known_op_has_a_capability() {
        for op in [
            CREATE,
            STATUS,
            START,
            DELETE,
            HIBERNATE,
            WAKE,
            EXEC,
            ATTACH,
            CLONE_REPO,
            SYNC,
            CACHE_SAVE,
            CACHE_RESTORE,
            CACHE_DELETE,
            OPEN_TUNNEL,
            CLOSE_TUNNEL,
            CHECKPOINT_CREATE,
            CHECKPOINT_LIST,
            CHECKPOINT_RESTORE,
            CHECK_AUTH,
            LIST_INSTANCES,
            SYNC_STREAM,
        ] {
            assert!(Capabilities::for_op(op).is_some(), "{op}");
        }
        assert_eq!(Capabilities::for_op("teleport"), None);
        let c = Capabilities::LIFECYCLE | Capabilities::CHECK_AUTH;
        assert_eq!(c.names(), vec!["lifecycle", "check_auth"]);
    }
}
