//! `clauderon create`: validate every flag locally, then ask the daemon to create the session
//! and follow its events until it runs (or, with `--print`, until the agent exits).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::api::{ApiClient, ApiError, Autostart, encode};
use super::progress::Progress;
use super::{Context, UsageError, output};
use crate::api::render;
use crate::api::{CreateSession, SessionEvent, SessionView as Session};
use crate::session::{RawOptions, Status};

/// `clauderon create ...`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The git repository to work on (default: the current directory).
    #[arg(long, value_name = "PATH")]
    repo: Option<PathBuf>,
    /// What the agent should do.
    #[arg(long, value_name = "TEXT")]
    prompt: String,
    /// Run the agent non-interactively, stream its output to stdout and exit with its code.
    #[arg(long)]
    print: bool,
    /// The agent's model (e.g. `sonnet`, `opus`).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Start the agent in plan mode.
    #[arg(long)]
    plan_mode: bool,
    /// CPUs for the sandbox (1 to 256).
    #[arg(long, value_name = "N")]
    cpu_limit: Option<String>,
    /// Memory for the sandbox (`512M`, `2G`, ...).
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    /// Idle time before the session hibernates: 5m, 15m, 30m, 1h, 2h, 6h or never.
    #[arg(long, value_name = "DURATION")]
    hibernation_timeout: Option<String>,
    /// Build caches to keep: cargo, npm, yarn, bun, pip, docker or a directory (comma-separated).
    #[arg(long, value_name = "LIST")]
    build_cache: Option<String>,
    /// Share caches per `project` (default) or keep them per `session`.
    #[arg(long, value_name = "SCOPE")]
    cache_scope: Option<String>,
    /// The session's name (default: from the repository's name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Keep a local worktree ($CLAUDERON_HOME/worktrees/NAME) in two-way sync with the sandbox
    /// (default: the backend table's `sync` key).
    #[arg(long, overrides_with = "no_sync")]
    sync: bool,
    /// No synced local worktree, whatever the backend table says.
    #[arg(long)]
    no_sync: bool,
}

impl CreateArgs {
    /// Checks every value before anything is contacted or made (the same validation the daemon
    /// runs, naming flags instead of fields); errors are usage errors.
    fn validate(&self, ctx: &Context) -> anyhow::Result<CreateSession> {
        let options = RawOptions {
            hibernation_timeout: self.hibernation_timeout.as_deref(),
            cpu_limit: self.cpu_limit.as_deref(),
            memory_limit: self.memory_limit.as_deref(),
            build_cache: self.build_cache.as_deref(),
            cache_scope: self.cache_scope.as_deref(),
            model: self.model.as_deref(),
            plan_mode: self.plan_mode,
            print: self.print,
            sync: match (self.sync, self.no_sync) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
        }
        .validate()
        .map_err(|e| UsageError::err(e.for_flag()))?;
        let repo = check_repo(self.repo.as_deref().unwrap_or(Path::new(".")))?;
        let Some(backend) = ctx.backend_name()? else {
            return Err(UsageError::err(format!(
                "no backend selected: pass --backend NAME (or set CLAUDERON_BACKEND), or set \
                 default_backend in {}",
                ctx.home().config_file().display()
            )));
        };
        let registry = ctx.registry()?;
        if !registry.candidates().iter().any(|c| c.name == backend) {
            let known: Vec<&str> = registry
                .candidates()
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(UsageError::err(format!(
                "invalid value `{backend}` for --backend: no such plugin (available: {}); see \
                 `clauderon plugins list`",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
        let req = CreateSession {
            backend: Some(backend),
            repo: repo.to_string_lossy().into_owned(),
            prompt: self.prompt.clone(),
            name: self.name.clone(),
            options,
        };
        req.clone()
            .validate()
            .map_err(|e| UsageError::err(e.for_flag))?;
        Ok(req)
    }

    /// Runs `create`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let req = self.validate(ctx)?;
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let body = serde_json::to_value(&req)?;
        let session: Session = api.post("/api/sessions", &body).await.map_err(|e| {
            // The daemon validates again; a 400 is bad input like a bad flag.
            if e.status() == Some(400) {
                UsageError::err(e.to_string())
            } else {
                anyhow::Error::new(e).context("creating the session")
            }
        })?;
        let progress = Progress::new(ctx.json, session.name.as_str());
        let mut api = api;
        let outcome = follow(ctx, &mut api, &session, self.print, &progress).await;
        progress.finish();
        let id = session.id.to_string();
        match outcome? {
            Outcome::AgentExited(code) => {
                if ctx.json {
                    let s: serde_json::Value =
                        api.get(&format!("/api/sessions/{}", encode(&id))).await?;
                    output::print_json(&s)?;
                }
                Ok(ExitCode::from(
                    u8::try_from(code.clamp(0, 255)).unwrap_or(1),
                ))
            }
            Outcome::Running => {
                let s: serde_json::Value =
                    api.get(&format!("/api/sessions/{}", encode(&id))).await?;
                if ctx.json {
                    output::print_json(&s)?;
                } else {
                    let n = &session.name;
                    println!("session {n} is running (backend {})", session.backend);
                    println!("  clauderon attach {n}      talk to the agent (Ctrl-] detaches)");
                    println!("  clauderon logs {n} -f     follow its output");
                    println!("  clauderon status {n}");
                    println!("  clauderon delete {n}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// `--repo`: absolute, existing, inside a git work tree; its top level.
pub(super) fn check_repo(path: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| {
        UsageError::err(format!(
            "invalid value `{}` for --repo: {e}",
            path.display()
        ))
    })?;
    let canonical = abs.canonicalize().map_err(|e| {
        UsageError::err(format!(
            "invalid value `{}` for --repo: {e}; give the path of a git repository",
            path.display()
        ))
    })?;
    if !canonical.is_dir() {
        return Err(UsageError::err(format!(
            "invalid value `{}` for --repo: not a directory; give the path of a git repository",
            path.display()
        )));
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&canonical)
        .args(["rev-parse", "--show-toplevel"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let top = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            Ok(if top.is_empty() {
                canonical
            } else {
                PathBuf::from(top)
            })
        }
        Ok(_) => Err(UsageError::err(format!(
            "invalid value `{}` for --repo: {} is not inside a git repository (run `git init` \
             there, or pass the path of a clone)",
            path.display(),
            canonical.display()
        ))),
        Err(e) => Err(UsageError::err(format!(
            "cannot check --repo `{}`: running git failed ({e}); install git",
            path.display()
        ))),
    }
}

enum Outcome {
    Running,
    AgentExited(i32),
}

/// How many times in a row `create` re-opens a lost event stream before giving up (each try
/// may start a daemon and wait up to [`super::api::AUTOSTART_WAIT`] for it).
const FOLLOW_RETRIES: u32 = 5;

/// Follows the session's events until it is running (or the agent exited, with `--print`).
/// When the stream drops (the daemon stopped or crashed) it connects again, through
/// `daemon.json` and starting a daemon when none answers, and resumes after the last event
/// seen: a restarted daemon reconciles the session and its events say how it ended.
async fn follow(
    ctx: &Context,
    api: &mut ApiClient,
    session: &Session,
    print: bool,
    progress: &Progress,
) -> anyhow::Result<Outcome> {
    let mut after = 0;
    let mut stdout = std::io::stdout().lock();
    let mut failures = 0;
    while failures < FOLLOW_RETRIES {
        let mut stream = match api.follow_events(&session.id.to_string(), after).await {
            Ok(s) => s,
            Err(e @ ApiError::Transport { .. }) => {
                failures += 1;
                progress.note(&format!("event stream lost ({e}); reconnecting"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(again) = ApiClient::connect(ctx, Autostart::Yes).await {
                    *api = again;
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            let ev = match stream.next().await {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(ApiError::Transport { .. }) => break,
                Err(e) => return Err(e.into()),
            };
            failures = 0;
            after = after.max(ev.seq);
            let Some(event) = ev.event() else { continue };
            match &event {
                SessionEvent::Status(st) => match st.to {
                    Status::Running if !print => return Ok(Outcome::Running),
                    Status::Failed => anyhow::bail!(
                        "session {} failed: {}",
                        session.name,
                        st.reason
                            .as_deref()
                            .filter(|r| !r.is_empty())
                            .unwrap_or("no reason given; see `clauderon logs`")
                    ),
                    Status::Deleting | Status::Deleted => {
                        anyhow::bail!("session {} was deleted while starting", session.name)
                    }
                    _ => progress.set(&format!("status {}", st.to)),
                },
                SessionEvent::Progress(_) => {
                    if let Some(line) = render::line(&event) {
                        progress.set(&line);
                    }
                }
                SessionEvent::Error { .. } => {
                    if let Some(line) = render::line(&event) {
                        progress.note(&line);
                    }
                }
                SessionEvent::Output { .. } if print => {
                    let bytes = render::output_bytes(&event).ok_or_else(|| {
                        ApiError::Protocol("an output event that is not base64".into())
                    })?;
                    stdout.write_all(&bytes)?;
                    stdout.flush()?;
                }
                SessionEvent::AgentExited { code } if print => {
                    return Ok(Outcome::AgentExited(*code));
                }
                _ => {}
            }
        }
        // The stream ended: the daemon went away, or the session reached a state we missed.
        failures += 1;
        progress.note("event stream ended; reconnecting");
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(again) = ApiClient::connect(ctx, Autostart::Yes).await {
            *api = again;
        }
    }
    anyhow::bail!(
        "lost the daemon's event stream for session {} repeatedly; see `clauderon status {}`",
        session.name,
        session.name
    )
}
