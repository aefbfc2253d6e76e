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

impl DeleteArgs {
    /// Runs `delete`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let interactive = std::io::stdin().is_terminal();
        // Off a terminal without --yes the answer is a refusal; the daemon is only asked (never
        // started) so the refusal can name unpushed commits.
        let refuse = !self.yes && !interactive;
        let refusal = |warned: bool| {
            UsageError::err(format!(
                "refusing to delete `{}` without confirmation: stdin is not a terminal; pass \
                 --yes to delete without asking{}",
                self.name,
                if warned {
                    " (and lose the unpushed commits above)"
                } else {
                    ""
                }
            ))
        };
        let path = format!("/api/sessions/{}", encode(&self.name));
        let (api, session) = if refuse {
            let Ok(api) = ApiClient::connect(ctx, Autostart::No).await else {
                return Err(refusal(false));
            };
            let Ok(session) = api.get::<Session>(&path).await else {
                return Err(refusal(false));
            };
            (api, session)
        } else {
            let api = ApiClient::connect(ctx, Autostart::Yes).await?;
            let session: Session = api.get(&path).await?;
            (api, session)
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
            return Err(refusal(warning.is_some()));
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
