//! `clauderon config show|paths|credentials`: local, no daemon needed.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::{Context, output};
use crate::config::BackendSchema;
use crate::config::render::{self, CredentialView};
use crate::plugins::{ops, schema_from_details};

/// How long one plugin's `check_auth` may take in `config credentials`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// `clauderon config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults applied, every secret redacted).
    Show,
    /// Print where each file lives.
    Paths,
    /// List credentials: where each comes from, a redacted preview, whether it works, and
    /// which credential-proxy rules (host, header) inject it.
    Credentials,
}

impl ConfigCommand {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        match self {
            ConfigCommand::Show => show(ctx),
            ConfigCommand::Paths => {
                if ctx.json {
                    output::print_json(&render::paths_json(ctx.home()))?;
                } else {
                    print!("{}", render::paths_text(ctx.home()));
                }
                Ok(ExitCode::SUCCESS)
            }
            ConfigCommand::Credentials => credentials(ctx).await,
        }
    }
}

fn warn(ctx: &Context) -> anyhow::Result<()> {
    for w in ctx.config()?.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(())
}

fn show(ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.config()?;
    warn(ctx)?;
    // Each backend table is shown as its plugin receives it, when the plugin can be read.
    let registry = ctx.registry()?;
    let mut schemas: BTreeMap<String, BackendSchema> = BTreeMap::new();
    for name in config.backend_names() {
        let details = registry.report_named(name).and_then(|r| r.details);
        match details.map(|d| schema_from_details(&d)) {
            Some(Ok(s)) => {
                schemas.insert(name.to_owned(), s);
            }
            Some(Err(e)) => eprintln!("warning: [{name}]: {e}"),
            None => eprintln!(
                "warning: [{name}]: no plugin named `{name}` was found, so this table is shown \
                 as written (secret-looking keys redacted)"
            ),
        }
    }
    if ctx.json {
        output::print_json(&render::show_json(config, &schemas))?;
    } else {
        print!("{}", render::show_text(config, &schemas));
    }
    Ok(ExitCode::SUCCESS)
}

async fn credentials(ctx: &Context) -> anyhow::Result<ExitCode> {
    warn(ctx)?;
    let registry = ctx.registry()?;
    let mut resolver = ctx.secrets()?;
    let mut plugins = Vec::new();
    for report in registry.report_all() {
        let Some(details) = &report.details else {
            continue;
        };
        let schema = match schema_from_details(details) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("warning: plugin {}: {e}", report.name);
                continue;
            }
        };
        resolver.declare(&report.name, &schema);
        if report.status.is_usable() && !schema.secrets.is_empty() {
            plugins.push((report.name.clone(), schema));
        }
    }
    let statuses = resolver.credentials().await;
    let mut works: BTreeMap<String, bool> = BTreeMap::new();
    let mut notes = Vec::new();
    for (name, schema) in plugins {
        // Only plugins that have a value for one of their secrets are asked: the check is an
        // authenticated call, pointless (and slow) without credentials.
        let has_value = schema.secrets.iter().any(|d| {
            statuses
                .iter()
                .any(|s| s.name == d.name && s.source.is_some())
        });
        if !has_value {
            continue;
        }
        let client = registry.get(&name)?;
        let ok = match tokio::time::timeout(
            CHECK_TIMEOUT,
            client.check_auth(&ops::CheckAuthRequest::default()),
        )
        .await
        {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                notes.push(format!("{name}: check_auth failed ({}): {e}", e.kind));
                false
            }
            Err(_) => {
                notes.push(format!(
                    "{name}: check_auth did not answer within {}s",
                    CHECK_TIMEOUT.as_secs()
                ));
                false
            }
        };
        for d in &schema.secrets {
            works.insert(d.name.clone(), ok);
        }
    }
    let rows: Vec<CredentialView> = statuses
        .into_iter()
        .map(|status| CredentialView {
            works: works.get(&status.name).copied(),
            status,
        })
        .collect();
    // Which credential-proxy rules have a secret (a broken proxy.toml is a warning here:
    // this command is for diagnosing).
    let rules = match crate::proxy::Policy::load(ctx.home()) {
        Ok(policy) => crate::proxy::rule_credentials(&policy, &resolver).await,
        Err(e) => {
            eprintln!("warning: the credential proxy's rules cannot be read: {e}");
            Vec::new()
        }
    };
    if ctx.json {
        output::print_json(&render::credentials_json_with_rules(&rows, &rules))?;
    } else {
        print!("{}", render::credentials_text(&rows));
        for n in notes {
            println!("{n}");
        }
        if !rules.is_empty() {
            print!("{}", render::proxy_rules_text(&rules));
        }
    }
    Ok(ExitCode::SUCCESS)
}
