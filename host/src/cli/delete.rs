//! `clauderon delete NAME [--yes]`: destroys the session's sandbox after a confirmation, with a
//! warning first when the session branch has commits that exist only in the sandbox.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, Session, Unpushed, encode};
use super::{Context, UsageError, output};

/// `clauderon delete NAME`
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

/// The warning for unpushed commits, if there are any.
fn unpushed_warning(session: &Session, u: &Unpushed) -> Option<String> {
    if !u.checked || u.count == 0 {
        return None;
    }
    let branch = u
        .branch
        .as_deref()
        .or(session.branch.as_deref())
        .unwrap_or("the session branch");
    let commits = if u.count == 1 { "commit" } else { "commits" };
    Some(format!(
        "warning: {} unpushed {commits} on branch {branch} of session {} (not on {}); deleting \
         the session destroys {}",
        u.count,
        session.name,
        u.against.as_deref().unwrap_or("any remote branch"),
        if u.count == 1 { "it" } else { "them" },
    ))
}

/// The usage error for a delete off a terminal without `--yes`.
fn confirmation_needed(name: &str, unpushed: bool) -> anyhow::Error {
    UsageError::err(format!(
        "refusing to delete `{name}` without confirmation: stdin is not a terminal; pass --yes \
         to delete without asking{}",
        if unpushed {
            " (and lose the unpushed commits above)"
        } else {
            ""
        }
    ))
}

impl DeleteArgs {
    /// Runs `delete`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let interactive = std::io::stdin().is_terminal();
        let refuse = !self.yes && !interactive;
        // A delete that will be refused never starts a daemon; with one running, the refusal
        // still warns about unpushed commits first.
        let api = match ApiClient::connect(
            ctx,
            if refuse {
                Autostart::No
            } else {
                Autostart::Yes
            },
        )
        .await
        {
            Ok(api) => api,
            Err(_) if refuse => return Err(confirmation_needed(&self.name, false)),
            Err(e) => return Err(e),
        };
        let path = format!("/api/sessions/{}", encode(&self.name));
        let session: Session = match api.get(&path).await {
            Ok(s) => s,
            Err(_) if refuse => return Err(confirmation_needed(&self.name, false)),
            Err(e) => return Err(e.into()),
        };
        // Only a sandbox that exists can hold unpushed work.
        let warning = if matches!(session.status.as_str(), "running" | "hibernated") {
            match api
                .get::<Unpushed>(&format!("/api/sessions/{}/unpushed", encode(&session.id)))
                .await
            {
                Ok(u) => {
                    if !u.checked {
                        eprintln!(
                            "note: could not check {} for unpushed commits: {}",
                            session.name,
                            u.reason.as_deref().unwrap_or("no reason given")
                        );
                    }
                    unpushed_warning(&session, &u)
                }
                Err(e) => {
                    eprintln!(
                        "note: could not check {} for unpushed commits: {e}",
                        session.name
                    );
                    None
                }
            }
        } else {
            None
        };
        if let Some(w) = &warning {
            eprintln!("{w}");
        }
        if refuse {
            return Err(confirmation_needed(&self.name, warning.is_some()));
        }
        if !self.yes {
            eprint!(
                "Delete session {} ({}, backend {}, status {})? Its sandbox and everything in \
                 it that is not pushed is destroyed. [y/N] ",
                session.name, session.repository, session.backend, session.status
            );
            std::io::stderr().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                eprintln!("not deleted");
                return Ok(ExitCode::from(super::EXIT_FAILURE));
            }
        }
        // Delete by id: the name could be reused between the question and the answer.
        let v: serde_json::Value = api
            .delete(&format!("/api/sessions/{}", encode(&session.id)))
            .await?;
        if ctx.json {
            output::print_json(&v)?;
        } else {
            println!("deleted {}", session.name);
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            name: "demo".into(),
            branch: Some("clauderon/demo".into()),
            ..Default::default()
        }
    }

    #[test]
    fn warns_only_about_checked_unpushed_commits() {
        let s = session();
        let none = Unpushed {
            checked: true,
            count: 0,
            ..Default::default()
        };
        assert_eq!(unpushed_warning(&s, &none), None);
        let unchecked = Unpushed {
            checked: false,
            count: 3,
            ..Default::default()
        };
        assert_eq!(unpushed_warning(&s, &unchecked), None);
        let two = Unpushed {
            branch: Some("clauderon/demo".into()),
            checked: true,
            count: 2,
            against: Some("any remote branch".into()),
            reason: None,
        };
        let w = unpushed_warning(&s, &two).unwrap();
        assert!(
            w.contains("2 unpushed commits on branch clauderon/demo of session demo"),
            "{w}"
        );
    }
}
