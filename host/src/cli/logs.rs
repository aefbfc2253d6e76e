//! `clauderon logs NAME [-f]`: a session's event log; agent output is written as it came,
//! other events as one line each (`--json`: one event per line).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use clap::Args;

use super::Context;
use super::api::{ApiClient, ApiError, ApiEvent, Autostart, Session, encode};

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
        let session: Session = api
            .get(&format!("/api/sessions/{}", encode(&self.name)))
            .await?;
        let mut out = std::io::stdout().lock();
        if !self.follow {
            for ev in api.events(&session.id, 0).await? {
                write_event(&mut out, &ev, ctx.json)?;
            }
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut after = 0;
        let mut failures = 0;
        loop {
            let mut stream = match api.follow_events(&session.id, after).await {
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
    let d = &ev.data;
    let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let line = match ev.kind.as_str() {
        "output" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s("b64"))
                .map_err(|e| ApiError::Protocol(format!("output event: {e}")))?;
            out.write_all(&bytes)?;
            return Ok(());
        }
        "status" => {
            let reason = match s("reason") {
                "" => String::new(),
                r => format!(" ({r})"),
            };
            match s("from") {
                "" => format!("status {}{reason}", s("to")),
                from => format!("status {from} -> {}{reason}", s("to")),
            }
        }
        "progress" => format!("[{}] {}", s("stage"), s("message")),
        "agent_exited" => format!(
            "agent exited with code {}",
            d.get("code")
                .map_or_else(|| "?".into(), ToString::to_string)
        ),
        "log" => format!("{}: {}", s("level"), s("message")),
        "error" => format!("error: {}", s("message")),
        other => format!("{other} {d}"),
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
            kind: kind.into(),
            data,
            at: "T".into(),
            ..ApiEvent::default()
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
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "hi\n[T] status creating -> failed (x)\n[T] agent exited with code 3\n"
        );
    }
}
