//! `clauderon logs NAME [-f]`: a session's event log; agent output is written as it came,
//! other events as one line each (`--json`: one event per line).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::Context;
use super::api::{ApiClient, ApiError, Autostart, encode};
use crate::api::{ApiEvent, SessionView, render};

/// `clauderon logs NAME [-f]`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
    /// Keep following new events until the session is deleted (Ctrl-C stops).
    #[arg(long, short = 'f')]
    follow: bool,
}

impl LogsArgs {
    /// Runs `logs`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        // Resolve the name once, so a follow survives the name being reused.
        let session: SessionView = api
            .get(&format!("/api/sessions/{}", encode(&self.name)))
            .await?;
        let id = session.id.to_string();
        let mut out = std::io::stdout().lock();
        if !self.follow {
            for ev in api.events(&id, 0).await? {
                write_event(&mut out, &ev, ctx.json)?;
            }
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut after = 0;
        let mut failures = 0;
        loop {
            let mut stream = match api.follow_events(&id, after).await {
                Ok(s) => s,
                Err(e @ ApiError::Transport { .. }) if failures < 5 => {
                    failures += 1;
                    eprintln!("clauderon: {e}; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            loop {
                match stream.next().await {
                    Ok(Some(ev)) => {
                        after = after.max(ev.seq);
                        failures = 0;
                        write_event(&mut out, &ev, ctx.json)?;
                        out.flush()?;
                    }
                    // The daemon ends the stream after the session is deleted.
                    Ok(None) => return Ok(ExitCode::SUCCESS),
                    Err(ApiError::Transport { .. }) if failures < 5 => {
                        failures += 1;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// One event: output bytes as they are; everything else as a line.
fn write_event(out: &mut impl std::io::Write, ev: &ApiEvent, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(ev)?)?;
        return Ok(());
    }
    let line = match ev.event() {
        Some(event) => {
            if let Some(bytes) = render::output_bytes(&event) {
                out.write_all(&bytes)?;
                return Ok(());
            }
            render::line(&event).unwrap_or_else(|| render::unknown_line(ev))
        }
        None => render::unknown_line(ev),
    };
    writeln!(out, "[{}] {line}", ev.at)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_events() {
        let mut out = Vec::new();
        let ev = |kind: &str, data: serde_json::Value| ApiEvent {
            session_id: crate::session::SessionId::new(),
            seq: 1,
            kind: kind.into(),
            data,
            at: "T".into(),
        };
        write_event(
            &mut out,
            &ev("output", serde_json::json!({"b64": "aGkK"})),
            false,
        )
        .unwrap();
        write_event(
            &mut out,
            &ev(
                "status",
                serde_json::json!({"from": "creating", "to": "failed", "reason": "x"}),
            ),
            false,
        )
        .unwrap();
        write_event(
            &mut out,
            &ev("agent_exited", serde_json::json!({"code": 3})),
            false,
        )
        .unwrap();
        write_event(&mut out, &ev("future", serde_json::json!({"a": 1})), false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "hi\n[T] status creating -> failed (x)\n[T] agent exited with code 3\n\
             [T] future {\"a\":1}\n"
        );
    }
}
