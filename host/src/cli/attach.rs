//! `clauderon attach NAME`: the terminal joined to the agent over the daemon's attach
//! WebSocket. Raw mode while attached (restored on every way out), the remote terminal
//! follows resizes (SIGWINCH), Ctrl-] detaches and leaves the agent running, Ctrl-C goes to the
//! agent as a byte.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::process::ExitCode;

use clap::Args;
use futures::{SinkExt as _, StreamExt as _};
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::Context;
use super::api::{ApiClient, Autostart, encode};
use crate::api::SessionView;

/// The detach key: Ctrl-] (0x1d), as in telnet and docker.
pub const DETACH_BYTE: u8 = 0x1d;

/// `clauderon attach NAME`
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
}

/// Raw mode for as long as it lives; dropping it (any return, `?`, or a panic's unwind)
/// restores the terminal.
struct RawMode;

impl RawMode {
    fn enable() -> anyhow::Result<RawMode> {
        crossterm::terminal::enable_raw_mode()?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// How an attachment ended.
enum End {
    Detached,
    Exited(i32),
    Closed,
    Error(String),
    Signal(&'static str),
}

/// The terminal's size; 80x24 when it has none (a pty nobody sized reports 0x0).
fn size() -> (u16, u16) {
    match crossterm::terminal::size() {
        Ok((c, r)) if c > 0 && r > 0 => (c.min(1000), r.min(1000)),
        _ => (80, 24),
    }
}

impl AttachArgs {
    /// Runs `attach`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let session: SessionView = api
            .get(&format!("/api/sessions/{}", encode(&self.name)))
            .await?;
        let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        let (cols, rows) = size();
        let url = format!(
            "ws://{}/api/sessions/{}/attach?cols={cols}&rows={rows}",
            api.addr(),
            encode(&session.id.to_string())
        );
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {}", api.token()).parse()?);
        let ws = match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let msg = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("the daemon answered {}", resp.status()));
                anyhow::bail!("cannot attach to {}: {msg}", session.name);
            }
            Err(e) => anyhow::bail!("cannot attach to {}: {e}", session.name),
        };
        if tty {
            eprintln!(
                "attached to {} (detach with Ctrl-], the agent keeps running)\r",
                session.name
            );
        }
        let end = {
            let _raw = if tty { Some(RawMode::enable()?) } else { None };
            pump(ws).await
        };
        // Raw mode is off again here, whatever happened above.
        match end {
            End::Detached => {
                eprintln!(
                    "\ndetached from {n}; the agent keeps running. Re-attach with `clauderon \
                     attach {n}`",
                    n = session.name
                );
                Ok(ExitCode::SUCCESS)
            }
            End::Exited(code) => {
                eprintln!("\nthe agent in {} exited with code {code}", session.name);
                Ok(ExitCode::from(
                    u8::try_from(code.clamp(0, 255)).unwrap_or(1),
                ))
            }
            End::Closed => {
                eprintln!(
                    "\nthe daemon closed the connection to {n}; `clauderon status {n}` shows why",
                    n = session.name
                );
                Ok(ExitCode::from(super::EXIT_FAILURE))
            }
            End::Signal(name) => {
                eprintln!(
                    "\n{name} received: detached from {n}; the agent keeps running",
                    n = session.name
                );
                Ok(ExitCode::from(super::EXIT_FAILURE))
            }
            End::Error(m) => anyhow::bail!("attach to {}: {m}", session.name),
        }
    }
}

/// Moves bytes both ways until detach, exit, close or error.
async fn pump(
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> End {
    let (mut sink, mut stream) = ws.split();
    // Blocking stdin reads on a plain thread: it may stay blocked in read() after we are done,
    // which must not hold up the runtime's shutdown (a spawn_blocking task would).
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let _ = std::thread::Builder::new()
        .name("attach-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if in_tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    let (Ok(mut winch), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::window_change()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return End::Error("cannot install signal handlers".into());
    };
    let mut stdin_open = true;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if stdout.write_all(&b).and_then(|()| stdout.flush()).is_err() {
                        return End::Error("cannot write to the terminal".into());
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("exit") => {
                            let code = v["code"].as_i64().unwrap_or(1);
                            return End::Exited(i32::try_from(code).unwrap_or(1));
                        }
                        Some("error") => {
                            return End::Error(v["message"].as_str().unwrap_or("error").to_owned());
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None => return End::Closed,
                Some(Ok(_)) => {}
                Some(Err(e)) => return End::Error(e.to_string()),
            },
            input = in_rx.recv(), if stdin_open => match input {
                Some(bytes) => {
                    let (send, detach) = match bytes.iter().position(|b| *b == DETACH_BYTE) {
                        Some(i) => (&bytes[..i], true),
                        _ => (&bytes[..], false),
                    };
                    if !send.is_empty() && sink.send(Message::Binary(send.to_vec().into())).await.is_err() {
                        return End::Closed;
                    }
                    if detach {
                        let _ = sink.send(Message::Close(None)).await;
                        return End::Detached;
                    }
                }
                None => stdin_open = false,
            },
            _ = winch.recv() => {
                let (cols, rows) = size();
                let msg = serde_json::json!({"type": "resize", "cols": cols, "rows": rows});
                if sink.send(Message::Text(msg.to_string().into())).await.is_err() {
                    return End::Closed;
                }
            },
            _ = term.recv() => {
                let _ = sink.send(Message::Close(None)).await;
                return End::Signal("SIGTERM");
            },
            _ = hup.recv() => {
                let _ = sink.send(Message::Close(None)).await;
                return End::Signal("SIGHUP");
            },
        }
    }
}
