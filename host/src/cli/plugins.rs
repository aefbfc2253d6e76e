//! `clauderon plugins`: list, describe and check backend plugins.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Context, output};
use crate::plugins::{PluginReport, ops};

/// `clauderon plugins ...`
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every discovered plugin with its status (each is opened and verified).
    List,
    /// Show one plugin in detail.
    Info {
        /// The plugin name.
        name: String,
    },
    /// Load a plugin and run its `check_auth` operation.
    Check {
        /// The plugin name (default: the selected backend).
        name: Option<String>,
    },
    /// Verify a plugin library and copy it into $CLAUDERON_HOME/plugins (replacing an older
    /// version of it safely).
    Install {
        /// The library (`libclauderon_<name>.so`, or any file name: the plugin's own name is
        /// used).
        path: std::path::PathBuf,
        /// Replace an installed newer version with this older one.
        #[arg(long)]
        force: bool,
    },
}

impl PluginsCommand {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        match self {
            PluginsCommand::List => list(ctx),
            PluginsCommand::Info { name } => info(ctx, &name),
            PluginsCommand::Check { name } => check(ctx, name.as_deref()).await,
            PluginsCommand::Install { path, force } => install(ctx, &path, force).await,
        }
    }
}

async fn install(ctx: &Context, path: &std::path::Path, force: bool) -> anyhow::Result<ExitCode> {
    let installed = crate::plugins::install(path, &ctx.home().plugins_dir(), force)?;
    if ctx.json {
        output::print_json(&installed)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = format!(
        "plugin `{}` {} (plugin API {})",
        installed.name, installed.version, installed.api_version
    );
    if installed.unchanged {
        println!(
            "{what} is already installed at {}",
            installed.path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let replaced = installed
        .replaced
        .as_deref()
        .map(|v| format!(", replacing {v}"))
        .unwrap_or_default();
    println!("installed {what} to {}{replaced}", installed.path.display());
    // A library found earlier in the search order wins over the installed copy.
    if let Ok(registry) = ctx.registry()
        && let Some(c) = registry
            .candidates()
            .iter()
            .find(|c| c.name == installed.name && c.path != installed.path)
        && c.source != crate::plugins::DiscoverySource::Home
        && c.source != crate::plugins::DiscoverySource::ExeDir
    {
        println!(
            "note: {} (from {:?}) is found first and is the one used; remove it from there to \
             use the installed copy",
            c.path.display(),
            c.source
        );
    }
    if super::api::ApiClient::connect(ctx, super::api::Autostart::No)
        .await
        .is_ok()
    {
        println!(
            "the running daemon keeps the version it loaded until it restarts: \
             `clauderon daemon stop` (the next command starts it again)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list(ctx: &Context) -> anyhow::Result<ExitCode> {
    let reports = ctx.registry()?.report_all();
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        println!(
            "no plugins found (searched config paths, CLAUDERON_PLUGIN_PATH, {}, and the \
             executable's directory)",
            ctx.home().plugins_dir().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<10} {:<8} {:<13} {:<28} PATH",
        "NAME", "VERSION", "API", "STATUS", "CAPABILITIES"
    );
    for r in &reports {
        let caps = if r.capabilities.is_empty() {
            "-".to_owned()
        } else {
            r.capabilities.join(",")
        };
        println!(
            "{:<14} {:<10} {:<8} {:<13} {:<28} {}",
            r.name,
            r.version.as_deref().unwrap_or("-"),
            r.api_version.as_deref().unwrap_or("-"),
            r.status,
            caps,
            r.path.display()
        );
    }
    for r in reports.iter().filter(|r| r.reason.is_some()) {
        println!("\n{}: {}", r.name, r.reason.as_deref().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

fn info(ctx: &Context, name: &str) -> anyhow::Result<ExitCode> {
    let registry = ctx.registry()?;
    let Some(r) = registry.report_named(name) else {
        // Reuse the registry's message naming what exists and where to put the file.
        return Err(registry
            .get(name)
            .err()
            .map_or_else(|| anyhow::anyhow!("no plugin named `{name}`"), Into::into));
    };
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_info(&r);
    }
    // `faulted` is informational (a call panicked, was caught, the plugin still works).
    Ok(if r.status.is_usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAILURE)
    })
}

fn print_info(r: &PluginReport) {
    println!("name:         {}", r.name);
    println!("status:       {}", r.status);
    if let Some(reason) = &r.reason {
        println!("reason:       {reason}");
    }
    println!("path:         {}", r.path.display());
    println!("version:      {}", r.version.as_deref().unwrap_or("-"));
    println!("api version:  {}", r.api_version.as_deref().unwrap_or("-"));
    if let Some(d) = &r.description {
        println!("description:  {d}");
    }
    println!("capabilities: {}", r.capabilities.join(", "));
    if let Some(details) = &r.details {
        for k in &details.config_keys {
            let default = k
                .default
                .as_deref()
                .map(|d| format!(" (default {d})"))
                .unwrap_or_default();
            println!(
                "config key:   {} ({}): {}{default}",
                k.name, k.ty, k.description
            );
        }
        for s in &details.secrets {
            let env = s
                .env
                .as_deref()
                .map(|e| format!(" (env {e})"))
                .unwrap_or_default();
            println!("secret:       {}{env}: {}", s.name, s.description);
        }
    }
}

async fn check(ctx: &Context, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let client = match name {
        Some(n) => ctx.registry()?.get(n)?,
        None => ctx.backend_client()?,
    };
    let resp = client
        .check_auth(&ops::CheckAuthRequest::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "plugin `{}` check_auth failed ({}): {e}",
                client.name(),
                e.kind
            )
        })?;
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    } else {
        println!(
            "{}: credentials ok{}",
            client.name(),
            resp.account
                .as_deref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
