//! `clauderon attach NAME`: the terminal joined to the agent over the daemon's attach
//! WebSocket. Raw mode while attached (restored on every way out), the remote terminal
//! follows resizes (SIGWINCH), Ctrl-] detaches and leaves the agent running, Ctrl-C goes to the
//! agent as a byte.

use std::io::{IsTerminal as _, Write as _};
use std::os::fd::AsFd as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
pub(crate) struct RawMode;

impl RawMode {
    /// Turns raw mode on.
    pub(crate) fn enable() -> anyhow::Result<RawMode> {
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
pub(crate) enum End {
    /// The detach key: the agent keeps running.
    Detached,
    /// The agent exited with this code.
    Exited(i32),
    /// The daemon closed the socket.
    Closed,
    /// The socket or the terminal failed.
    Error(String),
    /// SIGTERM or SIGHUP arrived (the caller should stop too).
    Signal(&'static str),
}

/// The terminal's size; 80x24 when it has none (a pty nobody sized reports 0x0).
pub(crate) fn size() -> (u16, u16) {
    match crossterm::terminal::size() {
        Ok((c, r)) if c > 0 && r > 0 => (c.min(1000), r.min(1000)),
        _ => (80, 24),
    }
}

/// The attach WebSocket to a session.
pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the attach WebSocket to `session` at the terminal's size; the error quotes the
/// daemon's message (a hibernated session is woken first, so this can take a while).
pub(crate) async fn connect(api: &ApiClient, session: &SessionView) -> anyhow::Result<Socket> {
    let (cols, rows) = size();
    let url = format!(
        "ws://{}/api/sessions/{}/attach?cols={cols}&rows={rows}",
        api.addr(),
        encode(&session.id.to_string())
    );
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", api.token()).parse()?);
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
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
        let ws = connect(&api, &session).await?;
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

/// Reads stdin on a plain thread until dropped. It waits with `poll(2)` in short slices, so
/// once dropped it has stopped reading: the bytes typed after a detach belong to whoever reads
/// the terminal next (the TUI), not to a reader left blocked in `read(2)`.
struct StdinReader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StdinReader {
    fn spawn(tx: tokio::sync::mpsc::Sender<Vec<u8>>) -> StdinReader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("attach-stdin".into())
            .spawn(move || read_stdin(&flag, &tx))
            .ok();
        StdinReader { stop, thread }
    }
}

impl Drop for StdinReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_stdin(stop: &AtomicBool, tx: &tokio::sync::mpsc::Sender<Vec<u8>>) {
    use nix::poll::{PollFd, PollFlags, poll};
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, 50u16) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => break,
        }
    }
}

/// Moves bytes both ways until detach, exit, close or error; stdin is no longer read when it
/// returns.
pub(crate) async fn pump(ws: Socket) -> End {
    let (mut sink, mut stream) = ws.split();
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let _reader = StdinReader::spawn(in_tx);
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
