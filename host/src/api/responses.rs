//! The API's answers besides the views: lists, wrapped sessions, the health check, the
//! unpushed-commits check, checkpoint restores and reconcile reports.

use super::events::ApiEvent;
use super::views::{CheckpointView, SessionSummary, SessionView};

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// The daemon's clauderon version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Its home's installation id (the `clauderon.installation` label of its sandboxes).
    #[serde(default)]
    pub installation: String,
}

/// `GET /api/sessions`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionList {
    /// The sessions, oldest first.
    pub sessions: Vec<SessionView>,
    /// With `limit`: the `after` of the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<String>,
}

/// `GET /api/sessions?view=summary`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionSummaryList {
    /// The sessions, oldest first.
    pub sessions: Vec<SessionSummary>,
    /// With `limit`: the `after` of the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<String>,
}

/// `{"session"}`: hibernate, restart.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionAnswer {
    /// The session after the operation.
    pub session: SessionView,
}

/// `POST /api/sessions/{ref}/wake`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Woken {
    /// The session, running.
    pub session: SessionView,
    /// How long waking took, in milliseconds.
    pub elapsed_ms: u64,
}

/// `POST /api/sessions/{ref}/checkpoints/{id}/restore`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Restored {
    /// The session after the restore.
    pub session: SessionView,
    /// The checkpoint taken just before restoring.
    pub safety_checkpoint: CheckpointView,
}

/// `GET /api/sessions/{ref}/checkpoints`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointList {
    /// Oldest first.
    pub checkpoints: Vec<CheckpointView>,
}

/// `GET /api/sessions/{ref}/events` (without `follow`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EventPage {
    /// In `seq` order.
    pub events: Vec<ApiEvent>,
}

/// `GET /api/sessions/{ref}/unpushed`: commits on the session branch in the sandbox that
/// exist nowhere else.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unpushed {
    /// The session branch.
    pub branch: Option<String>,
    /// Whether the sandbox could be checked (`reason` says why not).
    pub checked: bool,
    /// Commits on the branch that exist nowhere else (0 when not checked).
    pub count: u64,
    /// What the commits were compared against, for the warning.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub against: Option<String>,
    /// Why the check was not made or failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

impl Unpushed {
    /// An answer for a sandbox that could not be asked.
    pub fn unchecked(branch: Option<String>, reason: impl Into<String>) -> Self {
        Self {
            branch,
            checked: false,
            count: 0,
            against: None,
            reason: Some(reason.into()),
        }
    }
}

/// `POST /api/sessions/{ref}/pull`: the sandbox's commits fetched into the local repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pulled {
    /// The local branch that now points at the sandbox's commit.
    pub branch: String,
    /// The sandbox branch's commit.
    pub commit: String,
    /// Commits the local repository did not have.
    pub commits: u64,
    /// The bundle's size.
    pub bytes: u64,
    /// Whether the branch moved (`false`: it was there already).
    pub updated: bool,
}

/// `POST /api/reconcile`: the selected backend's sandboxes labelled as ours that no session
/// owns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReconcileReport {
    /// The backend asked.
    pub backend: String,
    /// Each orphan and what happened to it.
    pub orphans: Vec<Orphan>,
    /// Sandboxes labelled as clauderon's that belong to another installation (another home on
    /// the same account), or that carry no installation label and no session this home knows:
    /// listed, never deleted.
    #[serde(default)]
    pub foreign: Vec<ForeignSandbox>,
}

/// A sandbox of another installation, left alone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForeignSandbox {
    /// The backend's instance id.
    pub instance: String,
    /// Its name at the backend.
    pub name: Option<String>,
    /// The session id its label names (empty when none).
    pub session: String,
    /// The installation its label names; `None`: it has no installation label (made by a
    /// clauderon before installation ids, or by hand).
    pub installation: Option<String>,
    /// Its status at the backend.
    pub status: crate::plugins::ops::InstanceStatus,
}

/// One sandbox no session owns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Orphan {
    /// The backend's instance id.
    pub instance: String,
    /// Its name at the backend.
    pub name: Option<String>,
    /// The session id its label names (empty when none).
    pub session: String,
    /// Its status at the backend.
    pub status: crate::plugins::ops::InstanceStatus,
    /// `orphaned`, `deleted`, or `delete failed: …`.
    pub outcome: String,
}

impl ReconcileReport {
    /// How many deletes failed.
    pub fn failures(&self) -> usize {
        self.orphans
            .iter()
            .filter(|o| o.outcome.starts_with("delete failed"))
            .count()
    }
}

/// What happened to one cache of a save (`POST /api/sessions/{ref}/cache/save`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheSaveOutcome {
    /// The cache (`cargo`, `./dir`, ...).
    pub cache: String,
    /// The entry's exact key, when one could be named.
    pub key: Option<String>,
    /// `saved`, `exists` (the exact key is cached already), `skipped` or `failed`.
    pub outcome: String,
    /// Why, or what was moved.
    pub detail: String,
    /// Bytes saved.
    #[serde(default)]
    pub bytes: u64,
    /// How the bytes travelled (`relay`, `direct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

impl CacheSaveOutcome {
    /// A cache that was not saved, and why.
    pub fn skipped(cache: &str, key: Option<&str>, why: &str) -> Self {
        CacheSaveOutcome {
            cache: cache.to_owned(),
            key: key.map(str::to_owned),
            outcome: "skipped".into(),
            detail: why.to_owned(),
            bytes: 0,
            transport: None,
        }
    }

    /// A cache whose save failed, and why.
    pub fn failed(cache: &str, key: Option<&str>, why: &str) -> Self {
        CacheSaveOutcome {
            outcome: "failed".into(),
            ..Self::skipped(cache, key, why)
        }
    }

    /// The outcome as one line (`cargo: saved cargo-… (123 bytes …)`).
    pub fn line(&self) -> String {
        format!(
            "{}: {} {}({})",
            self.cache,
            self.outcome,
            self.key
                .as_deref()
                .map(|k| format!("{k} "))
                .unwrap_or_default(),
            self.detail
        )
    }
}

/// `POST /api/sessions/{ref}/cache/save`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheSaveReport {
    /// The session's name.
    pub session: String,
    /// One outcome per cache.
    pub caches: Vec<CacheSaveOutcome>,
}

/// `GET /api/caches`: every build cache (a project's store in one scope) with its entries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheList {
    /// Oldest first.
    pub caches: Vec<super::views::CacheView>,
}

/// `POST /api/caches/clear`: what was removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheCleared {
    /// One line per cache or entry removed.
    pub removed: Vec<ClearedCache>,
}

/// One cache or entry `cache clear` removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClearedCache {
    /// The cache's key.
    pub cache: String,
    /// The entry's key (`None`: the whole cache, its backend store included).
    pub key: Option<String>,
    /// `removed`, or `backend failed: …` (the index still forgets it).
    pub outcome: String,
}

/// What a collection (`POST /api/caches/gc`, and the daemon's daily run) removed.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CacheGcReport {
    /// When it ran (RFC 3339, by the cache clock).
    pub at: String,
    /// Entries removed because they went unused for `[cache] max_age`.
    pub removed: Vec<ClearedCache>,
}
