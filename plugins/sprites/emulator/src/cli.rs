//! Command-line flags and the validated configuration they produce.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use crate::duration::parse_duration;
use crate::faults::Fault;

/// Behaviours where the real service varies or the sources disagree; each flag picks the other form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Quirk {
    /// Missing sprite on GET/DELETE answers the documented 404 instead of the observed 500.
    MissingSprite404,
    /// Duplicate create answers the documented 400 instead of the observed 409.
    Duplicate400,
    /// List aggregates (counts, limits, org name) nested under `org` (older Go SDK shape).
    ListOrgNested,
    /// List carries only `sprites`, `has_more`, `next_continuation_token` (observed Jan 2026).
    ListMinimal,
    /// Every list page says `has_more: true` with a null token (sprites-docs #148).
    HasMoreNullToken,
    /// Sessions list is a bare JSON array (spec) instead of `{"sessions":[..],"count":n}` (SDKs).
    SessionsArray,
    /// `session_id` in `session_info` is an integer instead of a string.
    SessionIdInt,
    /// Policy POST answers 200 echoing the rules (spec) instead of 204 (SDKs).
    Policy200,
    /// Missing checkpoint on GET answers 404 JSON instead of the observed 500 text.
    Checkpoint404,
    /// Sprites carry `org_slug` instead of `organization` (older list examples).
    OrgSlug,
    /// `fs/write` as observed in Jan 2026 (sprites-docs #116): 400 for a body that is not UTF-8
    /// text, 413 above 1 MB (1,000,000 bytes), instead of the spec's 16 MiB of anything.
    FsWriteLimits,
}

impl Quirk {
    /// The flag spelling of this quirk.
    pub fn name(self) -> &'static str {
        match self {
            Quirk::MissingSprite404 => "missing-sprite404",
            Quirk::Duplicate400 => "duplicate400",
            Quirk::ListOrgNested => "list-org-nested",
            Quirk::ListMinimal => "list-minimal",
            Quirk::HasMoreNullToken => "has-more-null-token",
            Quirk::SessionsArray => "sessions-array",
            Quirk::SessionIdInt => "session-id-int",
            Quirk::Policy200 => "policy200",
            Quirk::Checkpoint404 => "checkpoint404",
            Quirk::OrgSlug => "org-slug",
            Quirk::FsWriteLimits => "fs-write-limits",
        }
    }
}

/// How sprite processes are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxArg {
    /// Namespaces when the kernel allows them, otherwise none (said so at start).
    Auto,
    /// Namespaces or fail at start.
    Namespaces,
    /// No isolation: processes run on the host with sprite paths mapped into the data directory.
    None,
}

/// `sprites-emulator` flags.
#[derive(Parser)]
#[command(
    name = "sprites-emulator",
    version,
    about = "A local, sprites.dev-compatible API server"
)]
pub struct Args {
    /// Address to listen on; with port 0 the bound address is the first line of stdout.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Directory holding every sprite's files, checkpoints and metadata (survives restarts).
    #[arg(long)]
    pub data: PathBuf,
    /// The bearer token clients must send (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "SPRITES_EMULATOR_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Idle time after which a running sprite goes warm (its processes are stopped).
    #[arg(long, default_value = "30s")]
    pub idle_to_warm: String,
    /// Time after which a warm sprite goes cold (its processes are killed, the disk kept).
    #[arg(long, default_value = "30s")]
    pub warm_to_cold: String,
    /// Extra delay when a request wakes a warm sprite.
    #[arg(long, default_value = "0s")]
    pub wake_delay_warm: String,
    /// Extra delay when a request wakes a cold sprite.
    #[arg(long, default_value = "0s")]
    pub wake_delay_cold: String,
    /// How long an exec socket stays open after the exit frame before the server closes it
    /// (the real service lingers about 5 s; clients should close at once).
    #[arg(long, default_value = "5s")]
    pub exit_linger: String,
    /// Pause before the exit frame of an HTTP exec (`POST .../exec`), after the output went out,
    /// like the real service's process exit: clients that take each network read for one frame
    /// (the official JS SDK) then never see output and exit in one read.
    #[arg(long, default_value = "5ms")]
    pub http_exit_delay: String,
    /// Default `max_run_after_disconnect` for non-TTY execs.
    #[arg(long, default_value = "10s")]
    pub non_tty_disconnect: String,
    /// Bytes of recent output kept per session for replay on re-attach.
    #[arg(long, default_value_t = 64 * 1024)]
    pub replay_bytes: usize,
    /// Isolation of sprite processes.
    #[arg(long, value_enum, default_value = "auto")]
    pub sandbox: SandboxArg,
    /// Port of the egress proxy on each sprite's loopback, through which sprites reach the
    /// outside under their network policy (0: no egress at all; needs namespaces).
    #[arg(long, default_value_t = 3129)]
    pub egress_port: u16,
    /// Resolve NAME to IP for sprites' egress, private addresses allowed (repeatable; for local
    /// test servers: `--egress-host api.test=127.0.0.1`).
    #[arg(long = "egress-host", value_name = "NAME=IP")]
    pub egress_hosts: Vec<String>,
    /// Mount a host toolchain read-only into every sprite at `/.sprite/languages/NAME` with its
    /// `bin` on the default PATH, as sprites.dev's base image has node, python and rust
    /// (repeatable; e.g. `rust=$(rustc --print sysroot)`; needs namespaces).
    #[arg(long = "language", value_name = "NAME=DIR")]
    pub languages: Vec<String>,
    /// Pick the other form of a behaviour where the sources disagree (repeatable).
    #[arg(long = "quirk", value_enum)]
    pub quirks: Vec<Quirk>,
    /// A fault to inject, as JSON (an object or an array of objects; repeatable).
    #[arg(long = "fault")]
    pub faults: Vec<String>,
}

/// The validated configuration the server runs with (its `Debug` never shows the token).
#[derive(Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory (absolute).
    pub data: PathBuf,
    /// Bearer token.
    pub token: String,
    /// Running to warm after this much idleness.
    pub idle_to_warm: Duration,
    /// Warm to cold after this long warm.
    pub warm_to_cold: Duration,
    /// Wake delay from warm.
    pub wake_delay_warm: Duration,
    /// Wake delay from cold.
    pub wake_delay_cold: Duration,
    /// Linger after the exit frame.
    pub exit_linger: Duration,
    /// Pause before an HTTP exec's exit frame.
    pub http_exit_delay: Duration,
    /// Default survival of non-TTY execs after disconnect.
    pub non_tty_disconnect: Duration,
    /// Replay buffer size.
    pub replay_bytes: usize,
    /// Requested isolation.
    pub sandbox: SandboxArg,
    /// Sprites' egress proxy.
    pub egress: crate::egress::EgressConfig,
    /// Host toolchains mounted into every sprite.
    pub languages: Vec<crate::languages::Language>,
    /// Enabled quirks.
    pub quirks: BTreeSet<Quirk>,
    /// Faults from the command line.
    pub faults: Vec<Fault>,
    /// The program re-executed as the sandbox helper (normally this binary).
    pub helper: PathBuf,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("data", &self.data)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data", &self.data)
            .field("token", &"[redacted]")
            .field("idle_to_warm", &self.idle_to_warm)
            .field("warm_to_cold", &self.warm_to_cold)
            .field("sandbox", &self.sandbox)
            .field("quirks", &self.quirks)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Whether a quirk is on.
    pub fn quirk(&self, q: Quirk) -> bool {
        self.quirks.contains(&q)
    }
}

impl Args {
    /// Validates the flags.
    pub fn into_config(self) -> anyhow::Result<Config> {
        if self.token.is_empty() {
            bail!("--token must not be empty: pass the bearer token clients will use");
        }
        std::fs::create_dir_all(&self.data)
            .with_context(|| format!("cannot create --data directory {}", self.data.display()))?;
        let data = self
            .data
            .canonicalize()
            .with_context(|| format!("cannot resolve --data directory {}", self.data.display()))?;
        let dur = |flag: &str, v: &str| {
            parse_duration(v).with_context(|| {
                format!("--{flag} {v:?}: expected a duration like 30s, 500ms or 2m")
            })
        };
        let mut faults = Vec::new();
        for f in &self.faults {
            faults
                .extend(crate::faults::parse_faults(f).with_context(|| format!("--fault {f:?}"))?);
        }
        let helper = std::env::current_exe().context("cannot locate this executable")?;
        let mut hosts = crate::egress::forward::HostMap::new();
        for h in &self.egress_hosts {
            let (name, ip) = h
                .split_once('=')
                .and_then(|(n, ip)| Some((n.trim(), ip.trim().parse::<std::net::IpAddr>().ok()?)))
                .filter(|(n, _)| !n.is_empty())
                .with_context(|| {
                    format!("--egress-host {h:?}: expected NAME=IP such as api.test=127.0.0.1")
                })?;
            hosts.insert(name.trim_end_matches('.').to_ascii_lowercase(), ip);
        }
        let mut languages: Vec<crate::languages::Language> = Vec::new();
        for spec in &self.languages {
            let l = crate::languages::Language::parse(spec)
                .map_err(|e| anyhow::anyhow!("--language {e}"))?;
            if languages.iter().any(|o| o.name == l.name) {
                bail!("--language {spec:?}: `{}` is given twice", l.name);
            }
            languages.push(l);
        }
        Ok(Config {
            listen: self.listen,
            data,
            token: self.token,
            idle_to_warm: dur("idle-to-warm", &self.idle_to_warm)?,
            warm_to_cold: dur("warm-to-cold", &self.warm_to_cold)?,
            wake_delay_warm: dur("wake-delay-warm", &self.wake_delay_warm)?,
            wake_delay_cold: dur("wake-delay-cold", &self.wake_delay_cold)?,
            exit_linger: dur("exit-linger", &self.exit_linger)?,
            http_exit_delay: dur("http-exit-delay", &self.http_exit_delay)?,
            non_tty_disconnect: dur("non-tty-disconnect", &self.non_tty_disconnect)?,
            replay_bytes: self.replay_bytes,
            sandbox: self.sandbox,
            egress: crate::egress::EgressConfig {
                port: self.egress_port,
                hosts: std::sync::Arc::new(hosts),
            },
            languages,
            quirks: self.quirks.into_iter().collect(),
            faults,
            helper,
        })
    }
}
