//! `clauderon cache save NAME | list | clear KEY|--project PATH | gc`: build caches that
//! outlive sessions (DESIGN §16). The daemon does the work; this only asks and prints.

use std::process::ExitCode;

use clap::Subcommand;

use super::api::{ApiClient, Autostart};
use super::progress::session_action;
use super::{Context, UsageError, output};
use crate::api::{
    CacheClearRequest, CacheCleared, CacheGcReport, CacheList, CacheSaveReport, ClearedCache,
};

/// `clauderon cache ...`
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Save a running session's build caches now (its agent idle, no build running).
    Save {
        /// The session's name or a unique prefix of its id.
        name: String,
    },
    /// List the build caches: key, project, types, size, last use, the backend store's state.
    List,
    /// Remove a build cache (its backend store too), one entry, or every cache of a project.
    Clear {
        /// A cache's key (`p-…`, `s-…`) or an entry's key, as `cache list` shows them.
        #[arg(required_unless_present = "project", conflicts_with = "project")]
        key: Option<String>,
        /// Every cache of the repository at this path (both scopes).
        #[arg(long, value_name = "PATH")]
        project: Option<std::path::PathBuf>,
    },
    /// Delete the caches unused for `[cache] max_age` now (the daemon also does it daily).
    Gc,
}

impl CacheCommand {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        match self {
            CacheCommand::Save { name } => {
                let report: Option<CacheSaveReport> = session_action(
                    ctx,
                    &name,
                    "cache/save",
                    "saving build caches",
                    serde_json::json!({}),
                )
                .await?;
                let Some(r) = report else {
                    return Ok(ExitCode::SUCCESS);
                };
                for c in &r.caches {
                    println!("{}", c.line());
                }
                let failed = r.caches.iter().any(|c| c.outcome == "failed");
                Ok(if failed {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                })
            }
            CacheCommand::List => {
                let api = ApiClient::connect(ctx, Autostart::Yes).await?;
                let list: CacheList = api.get("/api/caches").await?;
                if ctx.json {
                    output::print_json(&list.caches)?;
                } else if list.caches.is_empty() {
                    println!(
                        "no build caches; create a session with --build-cache (e.g. cargo,npm)"
                    );
                } else {
                    print!("{}", table(&list, time::OffsetDateTime::now_utc()));
                }
                Ok(ExitCode::SUCCESS)
            }
            CacheCommand::Clear { key, project } => {
                let project = match project {
                    Some(p) => Some(
                        std::fs::canonicalize(&p)
                            .map_err(|e| {
                                UsageError::err(format!("--project {}: {e}", p.display()))
                            })?
                            .to_string_lossy()
                            .into_owned(),
                    ),
                    None => None,
                };
                let api = ApiClient::connect(ctx, Autostart::Yes).await?;
                let req = CacheClearRequest { key, project };
                let r: CacheCleared = api
                    .post("/api/caches/clear", &serde_json::to_value(&req)?)
                    .await?;
                if ctx.json {
                    output::print_json(&r)?;
                } else {
                    print_removed(&r.removed);
                }
                Ok(ExitCode::SUCCESS)
            }
            CacheCommand::Gc => {
                let api = ApiClient::connect(ctx, Autostart::Yes).await?;
                let r: CacheGcReport = api.post("/api/caches/gc", &serde_json::json!({})).await?;
                if ctx.json {
                    output::print_json(&r)?;
                } else if r.removed.is_empty() {
                    println!("no build cache is old enough to remove");
                } else {
                    print_removed(&r.removed);
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// `cache list` as an aligned table.
fn table(list: &CacheList, now: time::OffsetDateTime) -> String {
    let mut rows = vec![
        [
            "KEY",
            "PROJECT",
            "SCOPE",
            "TYPES",
            "SIZE",
            "LAST USED",
            "STORE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for c in &list.caches {
        let scope = match &c.session {
            Some(s) => format!("session {s}"),
            None => c.scope.to_string(),
        };
        rows.push(vec![
            c.key.clone(),
            c.project.clone(),
            scope,
            if c.types.is_empty() {
                "-".into()
            } else {
                c.types.join(",")
            },
            output::bytes(c.size),
            format!("{} ago", output::age(&c.last_used, now)),
            format!("{} ({})", c.instance.as_deref().unwrap_or("-"), c.state),
        ]);
    }
    output::aligned(&rows)
}

/// One line per removed cache or entry, with its outcome.
fn print_removed(removed: &[ClearedCache]) {
    for c in removed {
        match &c.key {
            Some(k) => println!("{}: entry {k} {}", c.cache, c.outcome),
            None => println!("{}: {}", c.cache, c.outcome),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CacheEntryView, CacheView};

    #[test]
    fn the_list_reads_as_a_table() {
        let list = CacheList {
            caches: vec![CacheView {
                key: "p-0123456789abcdef".into(),
                project: "github.com/acme/widget".into(),
                scope: crate::session::CacheScope::Project,
                session: None,
                backend: "sprites".into(),
                types: vec!["cargo".into(), "npm".into()],
                size: 3 << 20,
                last_used: "2026-01-01T00:00:00Z".into(),
                instance: Some("clauderon-cache-p-0123456789abcdef".into()),
                state: "hibernated".into(),
                entries: vec![CacheEntryView {
                    key: "npm-1".into(),
                    kind: "npm".into(),
                    size: 1,
                    created_at: "2026-01-01T00:00:00Z".into(),
                    last_used: "2026-01-01T00:00:00Z".into(),
                    base: None,
                }],
            }],
        };
        let now = time::macros::datetime!(2026-01-03 00:00 UTC);
        insta::assert_snapshot!(table(&list, now));
    }
}
