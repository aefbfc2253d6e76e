//! Exec over WebSocket: a `Command` builder (like `std::process::Command`) and the running `Child`.
//!
//! Non-TTY framing: binary messages `[stream byte][payload]`: 0x00 stdin, 0x01 stdout, 0x02 stderr,
//! 0x03 exit (one byte), 0x04 stdin EOF. TTY framing: binary messages are raw terminal bytes both
//! ways; JSON text messages carry `resize`, `signal`, `session_info` and `exit`. The exit frame ends
//! the exec at once (the server lingers ~5 s before closing); a socket that ends without one is
//! [`Error::ExecEndedWithoutExit`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use super::error::{Error, Result};
use super::handle::SpriteHandle;
use super::lenient;
use super::ws::Ws;

/// Largest stdin chunk sent in one WebSocket message.
const STDIN_CHUNK: usize = 64 * 1024;
/// Output chunks buffered per stream before the reader task waits for the consumer.
const OUTPUT_BUFFER: usize = 256;

/// What the server says about an exec session (`session_info`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id (a string in current servers, the PID number in older ones).
    #[serde(deserialize_with = "lenient::string_or_number")]
    pub session_id: String,
    /// The command being run.
    #[serde(default)]
    pub command: Option<String>,
    /// When the session started.
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    pub created: Option<OffsetDateTime>,
    /// Terminal columns.
    #[serde(default)]
    pub cols: Option<u16>,
    /// Terminal rows.
    #[serde(default)]
    pub rows: Option<u16>,
    /// Whether this connection owns the session.
    #[serde(default)]
    pub is_owner: Option<bool>,
    /// Whether the session has a terminal (decides the framing on attach).
    #[serde(default)]
    pub tty: Option<bool>,
}

/// The collected result of a finished command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The exit code (0-255; what the server reported).
    pub exit_code: i32,
    /// Everything written to stdout (stdout and stderr merged for a TTY).
    pub stdout: Vec<u8>,
    /// Everything written to stderr (empty for a TTY).
    pub stderr: Vec<u8>,
}

impl Output {
    /// True when the exit code is 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// A command to run in a sprite, built like `std::process::Command`. `Debug` omits environment
/// values (they may hold credentials).
#[derive(Clone)]
pub struct Command {
    pub(crate) handle: SpriteHandle,
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) dir: Option<String>,
    pub(crate) tty: Option<(u16, u16)>,
    pub(crate) stdin: Option<bool>,
    pub(crate) max_run_after_disconnect: Option<Duration>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("sprite", &self.handle.name)
            .field("argv", &self.argv)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("dir", &self.dir)
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

impl SpriteHandle {
    /// A command running `program` in this sprite.
    pub fn command(&self, program: impl Into<String>) -> Command {
        Command {
            handle: self.clone(),
            argv: vec![program.into()],
            env: Vec::new(),
            dir: None,
            tty: None,
            stdin: None,
            max_run_after_disconnect: None,
        }
    }
}

impl Command {
    /// Adds an argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.argv.push(a.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable. Note: giving any replaces the sprite's default environment.
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Sets the working directory (default `/home/sprite`).
    pub fn current_dir(mut self, dir: impl Into<String>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Runs under a pseudo-terminal of `cols` x `rows` (TTY framing; detachable session).
    pub fn tty(mut self, cols: u16, rows: u16) -> Self {
        self.tty = Some((cols, rows));
        self
    }

    /// Whether the child gets a stdin writer (default: yes for a TTY, no otherwise).
    pub fn stdin(mut self, enabled: bool) -> Self {
        self.stdin = Some(enabled);
        self
    }

    /// How long the process may outlive a dropped connection (server default: 10 s without a
    /// TTY, forever with one).
    pub fn max_run_after_disconnect(mut self, d: Duration) -> Self {
        self.max_run_after_disconnect = Some(d);
        self
    }

    fn check(&self) -> Result<()> {
        super::sprite::check_name(&self.handle.name)?;
        if self.argv.first().is_none_or(|p| p.is_empty()) {
            return Err(Error::InvalidInput("exec needs a program to run".into()));
        }
        if let Some(k) = self
            .env
            .iter()
            .map(|(k, _)| k)
            .find(|k| k.is_empty() || k.contains('='))
        {
            return Err(Error::InvalidInput(format!(
                "environment variable name {k:?} is empty or contains '='"
            )));
        }
        Ok(())
    }

    pub(crate) fn stdin_enabled(&self) -> bool {
        self.stdin.unwrap_or(self.tty.is_some())
    }

    /// Appends this command's query parameters (shared with HTTP exec, which has no TTY).
    pub(crate) fn append_query(&self, url: &mut url::Url, websocket: bool) {
        let mut q = url.query_pairs_mut();
        for a in &self.argv {
            q.append_pair("cmd", a);
        }
        q.append_pair("path", &self.argv[0]);
        q.append_pair(
            "stdin",
            if self.stdin_enabled() {
                "true"
            } else {
                "false"
            },
        );
        if websocket {
            match self.tty {
                Some((cols, rows)) => {
                    q.append_pair("tty", "true");
                    q.append_pair("cols", &cols.to_string());
                    q.append_pair("rows", &rows.to_string());
                }
                None => {
                    q.append_pair("tty", "false");
                }
            }
            if let Some(d) = self.max_run_after_disconnect {
                q.append_pair("max_run_after_disconnect", &format!("{}s", d.as_secs()));
            }
        }
        for (k, v) in &self.env {
            q.append_pair("env", &format!("{k}={v}"));
        }
        if let Some(d) = &self.dir {
            q.append_pair("dir", d);
        }
    }

    /// Starts the command over an exec WebSocket.
    pub async fn spawn(&self) -> Result<Child> {
        self.check()?;
        let mut url = self.handle.ws_url(&["exec"]);
        self.append_query(&mut url, true);
        let op = self.handle.op("GET", "exec (WebSocket)");
        let framing = if self.tty.is_some() {
            Framing::Tty
        } else {
            Framing::Stream
        };
        Child::start(&self.handle, &op, &url, Some(framing), self.stdin_enabled()).await
    }

    /// Runs the command to completion and collects its output.
    pub async fn output(&self) -> Result<Output> {
        self.spawn().await?.wait_with_output().await
    }

    /// Runs the command to completion and returns its exit code (output discarded).
    pub async fn status(&self) -> Result<i32> {
        self.spawn().await?.wait().await
    }
}

/// The two wire framings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Tty,
    Stream,
}

enum Control {
    Resize(u16, u16),
    Signal(String),
    Detach,
}

/// A command running in a sprite. Dropping it closes the connection (a TTY session keeps running
/// on the server and can be re-attached; a non-TTY one ends after its `max_run_after_disconnect`).
///
/// Read `stdout`/`stderr` while the command runs, or take them out before [`Child::wait`]: output
/// that is neither read nor dropped eventually stalls the connection, as with OS pipes.
pub struct Child {
    /// The stdin writer (present when stdin was enabled). Shut it down or drop it for EOF.
    pub stdin: Option<ChildStdin>,
    /// Standard output (the terminal's output for a TTY).
    pub stdout: Option<OutputStream>,
    /// Standard error (ends empty for a TTY).
    pub stderr: Option<OutputStream>,
    control: ChildControl,
    exit: oneshot::Receiver<Result<i32>>,
    info: watch::Receiver<Option<SessionInfo>>,
    capabilities: Option<Vec<String>>,
    sprite_version: Option<String>,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("sprite", &self.control.handle.name)
            .field("session", &*self.info.borrow())
            .finish_non_exhaustive()
    }
}

/// Sends resize and signal messages to a running child; cheap to clone.
#[derive(Clone)]
pub struct ChildControl {
    tx: mpsc::UnboundedSender<Control>,
    handle: SpriteHandle,
    info: watch::Receiver<Option<SessionInfo>>,
    capabilities: Option<Vec<String>>,
}

impl std::fmt::Debug for ChildControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildControl")
            .field("sprite", &self.handle.name)
            .finish_non_exhaustive()
    }
}

impl ChildControl {
    /// Resizes the terminal (TTY sessions).
    pub fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        self.tx
            .send(Control::Resize(cols, rows))
            .map_err(|_| Error::Protocol("the exec connection is already closed".into()))
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`, ...; a `SIG` prefix is accepted). Uses the exec
    /// WebSocket unless the server said it lacks the `signal` capability, in which case the
    /// session's kill endpoint delivers it.
    pub async fn signal(&self, name: &str) -> Result<()> {
        let sig = normalize_signal(name)?;
        let ws_capable = self
            .capabilities
            .as_ref()
            .is_none_or(|c| c.iter().any(|c| c == "signal"));
        let session = self.info.borrow().as_ref().map(|i| i.session_id.clone());
        match (ws_capable, session) {
            (false, Some(id)) => self
                .handle
                .kill_session(&id, &format!("SIG{sig}"), Duration::ZERO)
                .await
                .map(|_| ()),
            _ => self
                .tx
                .send(Control::Signal(sig))
                .map_err(|_| Error::Protocol("the exec connection is already closed".into())),
        }
    }
}

fn normalize_signal(name: &str) -> Result<String> {
    let up = name.trim().to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up).to_owned();
    if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::InvalidInput(format!(
            "{name:?} is not a signal name; use e.g. TERM, INT, HUP, KILL"
        )));
    }
    Ok(bare)
}

impl Child {
    /// Opens `url` and starts the reader task. `framing` is `None` on attach: the session's
    /// `session_info` decides, and binary data before it is buffered.
    pub(crate) async fn start(
        handle: &SpriteHandle,
        op: &str,
        url: &url::Url,
        framing: Option<Framing>,
        stdin: bool,
    ) -> Result<Child> {
        let conn = handle.client.ws_connect(op, url).await?;
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::channel(OUTPUT_BUFFER);
        let (err_tx, err_rx) = mpsc::channel(OUTPUT_BUFFER);
        let (exit_tx, exit_rx) = oneshot::channel();
        let (info_tx, info_rx) = watch::channel(None);
        let (stdin_writer, stdin_rx) = if stdin {
            let (tx, rx) = futures::channel::mpsc::channel(16);
            (Some(ChildStdin { tx }), Some(rx))
        } else {
            (None, None)
        };
        let task = Pump {
            framing,
            stdin: stdin_rx,
            control: ctl_rx,
            stdout: out_tx,
            stderr: err_tx,
            info: info_tx,
            ping_interval: handle.client.inner.ping_interval,
        };
        tokio::spawn(async move {
            let result = task.run(conn.ws).await;
            let _ = exit_tx.send(result);
        });
        Ok(Child {
            stdin: stdin_writer,
            stdout: Some(OutputStream { rx: out_rx }),
            stderr: Some(OutputStream { rx: err_rx }),
            control: ChildControl {
                tx: ctl_tx,
                handle: handle.clone(),
                info: info_rx.clone(),
                capabilities: conn.capabilities.clone(),
            },
            exit: exit_rx,
            info: info_rx,
            capabilities: conn.capabilities,
            sprite_version: conn.sprite_version,
        })
    }

    /// A cloneable handle for resize and signal while someone else waits. While a clone is alive,
    /// dropping the `Child` does not close the connection.
    pub fn control(&self) -> ChildControl {
        self.control.clone()
    }

    /// Resizes the terminal (TTY sessions).
    pub fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        self.control.resize(cols, rows)
    }

    /// Sends a signal (see [`ChildControl::signal`]).
    pub async fn signal(&self, name: &str) -> Result<()> {
        self.control.signal(name).await
    }

    /// The `session_info` the server sent, waiting up to `timeout` for it.
    pub async fn session_info(&mut self, timeout: Duration) -> Option<SessionInfo> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(info) = self.info.borrow().clone() {
                return Some(info);
            }
            match tokio::time::timeout_at(deadline, self.info.changed()).await {
                Ok(Ok(())) => {}
                _ => return self.info.borrow().clone(),
            }
        }
    }

    /// Capabilities from `X-Sprite-Capabilities` (`None` when the server sent no header).
    pub fn capabilities(&self) -> Option<&[String]> {
        self.capabilities.as_deref()
    }

    /// The `Sprite-Version` the upgrade response carried.
    pub fn sprite_version(&self) -> Option<&str> {
        self.sprite_version.as_deref()
    }

    /// Closes the connection without ending the remote session (TTY sessions keep running).
    pub fn detach(self) {
        let _ = self.control.tx.send(Control::Detach);
    }

    /// Waits for the exit code. Closes stdin (EOF) and discards output nobody took.
    pub async fn wait(self) -> Result<i32> {
        let Child {
            stdin,
            stdout,
            stderr,
            control,
            exit,
            ..
        } = self;
        drop((stdin, stdout, stderr));
        let result = exit
            .await
            .unwrap_or_else(|_| Err(Error::Protocol("the exec task ended unexpectedly".into())));
        drop(control);
        result
    }

    /// Waits for the exit code while collecting stdout and stderr (those not taken already).
    pub async fn wait_with_output(mut self) -> Result<Output> {
        let out = self.stdout.take();
        let err = self.stderr.take();
        let (stdout, stderr, code) = tokio::join!(collect(out), collect(err), self.wait());
        Ok(Output {
            exit_code: code?,
            stdout,
            stderr,
        })
    }
}

async fn collect(s: Option<OutputStream>) -> Vec<u8> {
    match s {
        Some(s) => s.read_to_end().await,
        None => Vec::new(),
    }
}

/// A child's stdout or stderr: a stream of byte chunks that ends when the command does.
pub struct OutputStream {
    rx: mpsc::Receiver<Bytes>,
}

impl std::fmt::Debug for OutputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputStream")
    }
}

impl OutputStream {
    /// The next chunk, or `None` at the end.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    /// Reads everything until the end.
    pub async fn read_to_end(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(b) = self.rx.recv().await {
            all.extend_from_slice(&b);
        }
        all
    }
}

impl Stream for OutputStream {
    type Item = Bytes;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.rx.poll_recv(cx)
    }
}

/// A child's stdin (`tokio::io::AsyncWrite`); shutting it down or dropping it sends EOF.
pub struct ChildStdin {
    tx: futures::channel::mpsc::Sender<Bytes>,
}

impl std::fmt::Debug for ChildStdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildStdin")
    }
}

impl tokio::io::AsyncWrite for ChildStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let closed = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "exec stdin is closed");
        match self.tx.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(closed())),
            Poll::Ready(Ok(())) => {
                let n = buf.len().min(STDIN_CHUNK);
                match self.tx.start_send(Bytes::copy_from_slice(&buf[..n])) {
                    Ok(()) => Poll::Ready(Ok(n)),
                    Err(_) => Poll::Ready(Err(closed())),
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tx.close_channel();
        Poll::Ready(Ok(()))
    }
}

/// The task that owns the socket: routes frames, sends stdin and control, pings.
struct Pump {
    framing: Option<Framing>,
    stdin: Option<futures::channel::mpsc::Receiver<Bytes>>,
    control: mpsc::UnboundedReceiver<Control>,
    stdout: mpsc::Sender<Bytes>,
    stderr: mpsc::Sender<Bytes>,
    info: watch::Sender<Option<SessionInfo>>,
    ping_interval: Duration,
}

/// How the reader loop ended.
enum End {
    Exit(i32),
    Failed(Error),
    Detached,
}

impl Pump {
    async fn run(mut self, ws: Ws) -> Result<i32> {
        let (mut sink, mut source) = ws.split();
        let mut pending: Vec<Bytes> = Vec::new();
        let mut stdin_open = self.stdin.is_some();
        if self.framing == Some(Framing::Stream) && !stdin_open {
            // No stdin: tell the server at once so commands reading stdin see EOF.
            if sink.send(Message::binary(vec![0x04u8])).await.is_err() {
                return Err(Error::ExecEndedWithoutExit);
            }
        }
        let mut ping = tokio::time::interval(self.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut last_seen = Instant::now();
        let end = loop {
            tokio::select! {
                // Unbiased: neither a flood of output nor a large upload starves the other.
                ctl = self.control.recv() => {
                    let msg = match control_message(ctl) {
                        Ok(m) => m,
                        Err(end) => break end,
                    };
                    if sink.send(msg).await.is_err() {
                        break End::Failed(Error::ExecEndedWithoutExit);
                    }
                }
                msg = source.next() => {
                    let msg = match msg {
                        None | Some(Err(_)) => break End::Failed(Error::ExecEndedWithoutExit),
                        Some(Ok(m)) => m,
                    };
                    last_seen = Instant::now();
                    match msg {
                        Message::Binary(b) => match self.framing {
                            None => pending.push(b),
                            Some(f) => if let Some(end) = self.route(f, b).await { break end },
                        },
                        Message::Text(t) => {
                            if let Some(end) = self.text(t.as_str(), &mut pending).await { break end }
                        }
                        Message::Close(_) => break End::Failed(Error::ExecEndedWithoutExit),
                        _ => {}
                    }
                }
                chunk = next_stdin(&mut self.stdin), if stdin_open && self.framing.is_some() => {
                    // A resize or signal queued before this input goes first.
                    let mut early = None;
                    while let Ok(ctl) = self.control.try_recv() {
                        match control_message(Some(ctl)) {
                            Ok(m) => if sink.send(m).await.is_err() {
                                early = Some(End::Failed(Error::ExecEndedWithoutExit));
                                break;
                            },
                            Err(end) => { early = Some(end); break; }
                        }
                    }
                    if let Some(end) = early { break end }
                    let framing = self.framing.unwrap_or(Framing::Tty);
                    let frame = match (chunk, framing) {
                        (Some(b), Framing::Tty) => Some(b.to_vec()),
                        (Some(b), Framing::Stream) => {
                            let mut v = Vec::with_capacity(b.len() + 1);
                            v.push(0x00);
                            v.extend_from_slice(&b);
                            Some(v)
                        }
                        (None, Framing::Stream) => { stdin_open = false; Some(vec![0x04]) }
                        (None, Framing::Tty) => { stdin_open = false; None }
                    };
                    if let Some(frame) = frame
                        && sink.send(Message::binary(frame)).await.is_err() {
                        break End::Failed(Error::ExecEndedWithoutExit);
                    }
                }
                _ = ping.tick() => {
                    let dead_after = self.ping_interval * 3;
                    if last_seen.elapsed() > dead_after {
                        break End::Failed(Error::Timeout {
                            what: "exec connection (no data or pong from the server)".into(),
                            after: dead_after,
                        });
                    }
                    if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                        break End::Failed(Error::ExecEndedWithoutExit);
                    }
                }
            }
        };
        if self.framing.is_none() {
            // Attached but never told the framing: hand over what arrived as terminal bytes.
            for b in pending {
                let _ = self.stdout.send(b).await;
            }
        }
        // Close right away: the server keeps the socket open for seconds after the exit frame.
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(Message::Close(None))).await;
        match end {
            End::Exit(code) => Ok(code),
            End::Failed(e) => Err(e),
            End::Detached => Err(Error::Protocol("detached from the session".into())),
        }
    }

    /// Handles a binary frame under a known framing.
    async fn route(&mut self, framing: Framing, b: Bytes) -> Option<End> {
        match framing {
            Framing::Tty => {
                let _ = self.stdout.send(b).await;
                None
            }
            Framing::Stream => {
                let (&kind, payload) = b.split_first()?;
                match kind {
                    0x01 => {
                        let _ = self.stdout.send(b.slice(1..)).await;
                        None
                    }
                    0x02 => {
                        let _ = self.stderr.send(b.slice(1..)).await;
                        None
                    }
                    0x03 => Some(match payload.first() {
                        Some(&code) => End::Exit(i32::from(code)),
                        None => {
                            End::Failed(Error::Protocol("exit frame without an exit code".into()))
                        }
                    }),
                    // Unknown stream ids are skipped (forward compatibility).
                    _ => None,
                }
            }
        }
    }

    /// Handles a JSON control message.
    async fn text(&mut self, text: &str, pending: &mut Vec<Bytes>) -> Option<End> {
        if text.starts_with("control:") {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        match v.get("type").and_then(|t| t.as_str())? {
            "exit" => {
                let code = v.get("exit_code").and_then(|c| c.as_i64()).unwrap_or(-1);
                Some(End::Exit(i32::try_from(code).unwrap_or(-1)))
            }
            "session_info" => {
                let info: SessionInfo = serde_json::from_value(v).ok()?;
                if self.framing.is_none() {
                    let f = if info.tty.unwrap_or(true) {
                        Framing::Tty
                    } else {
                        Framing::Stream
                    };
                    self.framing = Some(f);
                    for b in std::mem::take(pending) {
                        if let Some(end) = self.route(f, b).await {
                            return Some(end);
                        }
                    }
                }
                let _ = self.info.send(Some(info));
                None
            }
            _ => None,
        }
    }
}

/// The text message for a control request, or how the loop ends (detach, or the `Child` dropped).
fn control_message(ctl: Option<Control>) -> Result<Message, End> {
    let v = match ctl {
        Some(Control::Resize(cols, rows)) => {
            serde_json::json!({"type": "resize", "cols": cols, "rows": rows})
        }
        Some(Control::Signal(sig)) => serde_json::json!({"type": "signal", "signal": sig}),
        Some(Control::Detach) | None => return Err(End::Detached),
    };
    Ok(Message::text(v.to_string()))
}

async fn next_stdin(rx: &mut Option<futures::channel::mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_debug_hides_env_values() {
        let c = crate::client::SpritesClient::builder()
            .token(crate::client::Token::new("t"))
            .build()
            .unwrap();
        let cmd = c.sprite("s").command("env").env("API_KEY", "hunter2");
        let dbg = format!("{cmd:?}");
        assert!(dbg.contains("API_KEY") && !dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn signal_names_normalise() {
        assert_eq!(normalize_signal("SIGTERM").unwrap(), "TERM");
        assert_eq!(normalize_signal("int").unwrap(), "INT");
        assert!(normalize_signal("").is_err());
        assert!(normalize_signal("TE RM").is_err());
    }

    #[test]
    fn session_info_accepts_numeric_ids() {
        let i: SessionInfo = serde_json::from_str(
            r#"{"type":"session_info","session_id":1234,"command":"bash","created":1700000000,"cols":80,"rows":24,"is_owner":true,"tty":true}"#,
        )
        .unwrap();
        assert_eq!(i.session_id, "1234");
        assert_eq!(i.tty, Some(true));
    }
}
