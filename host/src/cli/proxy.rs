//! `clauderon proxy`: the credential proxy's audit log and rules.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::Context;
use crate::config::{Config, ProxyConfig};
use crate::home::Home;
use crate::proxy::{self, AuditEntry, Policy};
use crate::secrets::SecretResolver;
use crate::session::SessionId;

/// `clauderon proxy ...`
#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// Show a session's audit log: every request its sandbox made through the proxy (host,
    /// method, path, status, duration, whether a credential was injected; never a value).
    Audit {
        /// The session's name or id (prefix).
        name: String,
        /// Show only the last N entries.
        #[arg(long, value_name = "N")]
        last: Option<usize>,
    },
    /// Show the credential rules and whether each has a secret (redacted previews only).
    Rules,
}

impl ProxyCommand {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let home = ctx.home().clone();
        match self {
            ProxyCommand::Audit { name, last } => audit(ctx, &home, &name, last),
            ProxyCommand::Rules => rules(ctx, &home).await,
        }
    }
}

/// The session id for `name`: the store's lookup (live name, else unique id prefix), or a
/// full session id when there is no store yet.
fn session_id(home: &Home, name: &str) -> anyhow::Result<SessionId> {
    let db_file = home.db_file();
    if db_file.is_file() {
        let db = crate::store::Db::open(&db_file)?;
        match db.find(name) {
            Ok(s) => return Ok(s.id),
            Err(e) => {
                if let Ok(id) = name.parse::<SessionId>() {
                    return Ok(id);
                }
                return Err(e.into());
            }
        }
    }
    name.parse::<SessionId>().map_err(|_| {
        anyhow::anyhow!(
            "no session named `{name}` (there is no session store yet at {})",
            db_file.display()
        )
    })
}

fn audit(ctx: &Context, home: &Home, name: &str, last: Option<usize>) -> anyhow::Result<ExitCode> {
    let id = session_id(home, name)?;
    let mut entries = proxy::read_audit(home, id)
        .with_context(|| format!("reading the audit log of session {id}"))?;
    if let Some(n) = last {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!(
            "no requests recorded for session {id} ({})",
            proxy::audit_file(home, id).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<7} {:<28} {:<6} {:>9} {:<8} PATH",
        "TIME", "METHOD", "HOST", "STATUS", "MS", "INJECTED"
    );
    for e in &entries {
        print_entry(e);
    }
    let blocked = entries.iter().filter(|e| e.violation.is_some()).count();
    if blocked > 0 {
        println!("{blocked} request(s) blocked as policy violations");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entry(e: &AuditEntry) {
    let time = e.at.get(..19).unwrap_or(&e.at).replace('T', " ");
    println!(
        "{:<20} {:<7} {:<28} {:<6} {:>9.1} {:<8} {}{}",
        time,
        e.method,
        e.host,
        e.status,
        e.duration_ms,
        if e.injected { "yes" } else { "no" },
        e.path,
        e.violation
            .as_deref()
            .map(|v| format!("  BLOCKED: {v}"))
            .unwrap_or_default()
    );
}

async fn rules(ctx: &Context, home: &Home) -> anyhow::Result<ExitCode> {
    let policy = Policy::load(home)?;
    let config = Config::load(home)?;
    let proxy_config = ProxyConfig::load(home)?;
    let resolver = SecretResolver::new(home.clone(), &config, &proxy_config);
    let rows = proxy::rule_credentials(&policy, &resolver).await;
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<14} {:<10} {:<20} {:<8} SOURCE",
        "HOST", "HEADER", "FORMAT", "SECRET", "VALUE"
    );
    for r in &rows {
        let format = serde_json::to_value(r.format)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let source = match (&r.source, &r.error) {
            (_, Some(e)) => format!("error: {e}"),
            (Some(s), None) => s.to_string(),
            (None, None) => "not set".to_string(),
        };
        println!(
            "{:<24} {:<14} {:<10} {:<20} {:<8} {}",
            r.host,
            r.header,
            format,
            r.secret,
            r.preview.as_deref().unwrap_or("-"),
            source
        );
    }
    Ok(ExitCode::SUCCESS)
}
