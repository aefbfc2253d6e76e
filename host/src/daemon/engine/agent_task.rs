//! The one task per live session that owns the plugin's agent stream: it records the agent's
//! output as `output` events, fans it out to every attached client, and writes their input,
//! resizes and signals to the agent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::{broadcast, mpsc, watch};

use crate::api::SessionEvent;
use crate::plugins::{Frame, FrameKind, FrameStream};
use crate::session::SessionId;

use super::Engine;

/// Output frames coalesced into one `output` event at most this large.
const MAX_OUTPUT_EVENT: usize = 64 * 1024;

/// What attached clients send to the agent.
#[derive(Debug, Clone)]
pub enum AgentInput {
    /// Terminal bytes.
    Stdin(Vec<u8>),
    /// A new terminal size (cols, rows).
    Resize(u16, u16),
    /// A signal name (`INT`, `TERM`, ...).
    Signal(String),
    /// Leave the agent running and stop this task.
    Detach,
}

/// What the agent task sends to attached clients.
#[derive(Debug, Clone)]
pub enum AgentOutput {
    /// Terminal bytes.
    Data(Arc<[u8]>),
    /// The agent exited with this code.
    Exit(i32),
    /// The stream failed or the plugin reported an error.
    Error(String),
}

/// How much of the agent's most recent output a client that attaches is shown first.
pub const RECENT_OUTPUT: usize = 64 * 1024;

/// The agent's output on its way to attached clients: the live frames, and the last
/// [`RECENT_OUTPUT`] bytes so a client attaching late first sees what the terminal last showed
/// (after a wake, the restarted agent's first lines come before the attach subscribes).
#[derive(Debug)]
struct OutputFanout {
    live: broadcast::Sender<AgentOutput>,
    recent: Mutex<VecDeque<u8>>,
}

impl OutputFanout {
    fn new() -> Self {
        Self {
            live: broadcast::channel(1024).0,
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Keeps `data` among the recent bytes and sends it to every subscriber, under one lock so
    /// a subscriber sees each byte exactly once (in the replay or live).
    fn data(&self, data: Arc<[u8]>) {
        let mut recent = super::lock(&self.recent);
        recent.extend(data.iter().copied());
        let excess = recent.len().saturating_sub(RECENT_OUTPUT);
        recent.drain(..excess);
        let _ = self.live.send(AgentOutput::Data(data));
    }

    /// Sends an exit or error to every subscriber.
    fn send(&self, out: AgentOutput) {
        let _ = self.live.send(out);
    }

    fn subscribe(&self) -> (Vec<u8>, broadcast::Receiver<AgentOutput>) {
        let recent = super::lock(&self.recent);
        let rx = self.live.subscribe();
        (recent.iter().copied().collect(), rx)
    }

    fn recent(&self) -> Vec<u8> {
        super::lock(&self.recent).iter().copied().collect()
    }
}

/// A running agent task.
#[derive(Debug)]
pub struct LiveAgent {
    input: mpsc::Sender<AgentInput>,
    output: Arc<OutputFanout>,
    done: watch::Receiver<bool>,
    /// Whether this is a `--print` run (exec, no TTY).
    pub print: bool,
    /// How many hook reports the session had when this agent started.
    reports_before: u64,
}

impl LiveAgent {
    /// Sends input to the agent; false when the task has ended.
    pub async fn send(&self, input: AgentInput) -> bool {
        self.input.send(input).await.is_ok()
    }

    /// The agent's most recent output (at most [`RECENT_OUTPUT`] bytes) and a receiver of
    /// everything after it, with no gap and no byte twice.
    pub fn subscribe(&self) -> (Vec<u8>, broadcast::Receiver<AgentOutput>) {
        self.output.subscribe()
    }

    /// The agent's most recent output (at most [`RECENT_OUTPUT`] bytes).
    pub fn recent_output(&self) -> Vec<u8> {
        self.output.recent()
    }

    /// How many hook reports the session had when this agent started (its own reports are
    /// the ones after).
    pub fn started_after(&self) -> u64 {
        self.reports_before
    }

    /// Whether the task has ended.
    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Waits until the task ends (bounded by `limit`); true when it did.
    pub async fn wait_done(&self, limit: Duration) -> bool {
        let mut done = self.done.clone();
        tokio::time::timeout(limit, done.wait_for(|d| *d))
            .await
            .is_ok()
    }

    /// Resolves when the task has ended.
    pub async fn ended(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Asks the task to detach (the agent keeps running in the sandbox) and waits for it.
    pub async fn detach(&self) {
        let _ = self.input.send(AgentInput::Detach).await;
        self.wait_done(Duration::from_secs(5)).await;
    }
}

enum Ended {
    Exited,
    Detached,
    Lost(String),
}

/// Starts the task owning `stream` for session `id` and registers it in the session's runtime
/// (`reports_before`: the session's hook report count just before the agent's process started).
pub fn spawn(
    engine: &Arc<Engine>,
    id: SessionId,
    stream: FrameStream,
    print: bool,
    reports_before: u64,
) -> Arc<LiveAgent> {
    let (input_tx, input_rx) = mpsc::channel(256);
    let output = Arc::new(OutputFanout::new());
    let (done_tx, done_rx) = watch::channel(false);
    let rt = engine.runtime(id);
    let live = Arc::new(LiveAgent {
        input: input_tx,
        output: Arc::clone(&output),
        done: done_rx,
        print,
        reports_before,
    });
    *super::lock(&rt.agent) = Some(Arc::clone(&live));
    let engine = Arc::clone(engine);
    tokio::spawn(async move {
        let ended = run(&engine, id, stream, input_rx, &output, print).await;
        match ended {
            Ended::Exited | Ended::Detached => {}
            // A --print run whose stream ended without an exit code will never report one:
            // the session fails with the reason (a CLI following it exits 1 instead of
            // waiting forever). Only while running: a delete or hibernate ends streams too.
            Ended::Lost(why) if print => {
                tracing::info!(session = %id, "--print stream ended: {why}");
                let running = matches!(
                    engine.store().get(id).await,
                    Ok(r) if r.status == crate::session::Status::Running
                );
                if running {
                    engine
                        .fail(
                            id,
                            &format!(
                                "the --print run's output stream ended before the agent's exit \
                                 code ({why})"
                            ),
                        )
                        .await;
                }
            }
            Ended::Lost(why) => {
                tracing::info!(session = %id, "agent stream ended: {why}");
                engine
                    .warn(
                        id,
                        format!(
                            "the connection to the agent ended ({why}); attach again to reconnect"
                        ),
                    )
                    .await;
            }
        }
        let _ = done_tx.send(true);
    });
    live
}

async fn run(
    engine: &Arc<Engine>,
    id: SessionId,
    stream: FrameStream,
    mut input: mpsc::Receiver<AgentInput>,
    output: &OutputFanout,
    print: bool,
) -> Ended {
    let (mut reader, mut writer) = stream.split();
    // A `--print` run is non-interactive: its stdin ends at once (`claude -p` would otherwise
    // wait for input that never comes).
    // A write error is not fatal: a command that already finished may have closed its end,
    // and its output and exit frame are still there to read.
    if print
        && let Err(e) = writer
            .write_frame(&Frame::new(FrameKind::StdinEof, Vec::new()))
            .await
    {
        tracing::debug!(session = %id, "cannot close the agent's stdin: {e}");
    }
    // Reading a frame is not cancel-safe, so a separate task reads and this one selects over
    // two channels.
    let (frames_tx, mut frames) = mpsc::channel::<std::io::Result<Option<Frame>>>(64);
    let read_task = tokio::spawn(async move {
        loop {
            let f = reader.read_frame().await;
            let last = !matches!(f, Ok(Some(_)));
            if frames_tx.send(f).await.is_err() || last {
                break;
            }
        }
    });
    let _abort = AbortOnDrop(read_task.abort_handle());
    let rt = engine.runtime(id);
    loop {
        tokio::select! {
            f = frames.recv() => {
                let frame = match f {
                    Some(Ok(Some(frame))) => frame,
                    Some(Ok(None)) | None => return Ended::Lost("the stream closed".into()),
                    Some(Err(e)) => return Ended::Lost(e.to_string()),
                };
                match frame.kind {
                    FrameKind::Stdout | FrameKind::Stderr => {
                        let mut data = frame.payload;
                        let mut pending = None;
                        // Coalesce what is already queued into one durable event.
                        while data.len() < MAX_OUTPUT_EVENT {
                            match frames.try_recv() {
                                Ok(Ok(Some(f))) if matches!(f.kind, FrameKind::Stdout | FrameKind::Stderr) => {
                                    data.extend_from_slice(&f.payload);
                                }
                                Ok(other) => { pending = Some(other); break; }
                                Err(_) => break,
                            }
                        }
                        rt.touch();
                        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
                        engine.emit(id, SessionEvent::Output { b64 }).await;
                        output.data(Arc::from(data));
                        if let Some(p) = pending {
                            match p {
                                Ok(Some(f)) => {
                                    if let Some(end) = handle_control(engine, id, f, output).await {
                                        return end;
                                    }
                                }
                                Ok(None) => return Ended::Lost("the stream closed".into()),
                                Err(e) => return Ended::Lost(e.to_string()),
                            }
                        }
                    }
                    _ => {
                        if let Some(end) = handle_control(engine, id, frame, output).await {
                            return end;
                        }
                    }
                }
            }
            i = input.recv() => {
                let frame = match i {
                    Some(AgentInput::Stdin(b)) => { rt.touch(); Frame::new(FrameKind::Stdin, b) }
                    Some(AgentInput::Resize(c, r)) => Frame::resize(c, r),
                    Some(AgentInput::Signal(s)) => Frame::new(FrameKind::Signal, s.into_bytes()),
                    Some(AgentInput::Detach) | None => {
                        let _ = writer.write_frame(&Frame::new(FrameKind::Detach, Vec::new())).await;
                        return Ended::Detached;
                    }
                };
                if let Err(e) = writer.write_frame(&frame).await {
                    return Ended::Lost(e.to_string());
                }
            }
        }
    }
}

/// Handles a non-output frame; `Some` when it ends the stream.
async fn handle_control(
    engine: &Arc<Engine>,
    id: SessionId,
    frame: Frame,
    output: &OutputFanout,
) -> Option<Ended> {
    match frame.kind {
        FrameKind::Exit => {
            let code = frame.exit_code().unwrap_or(-1);
            let exited = crate::agent::AgentState::Exited { code };
            if let Err(e) = engine
                .store()
                .update_agent(id, move |r| {
                    r.exit_code = Some(code);
                    r.state = Some(exited);
                })
                .await
            {
                tracing::warn!(session = %id, error = %e, "cannot record the exit code");
            }
            engine.emit_agent_state(id, Some(exited)).await;
            engine.emit(id, SessionEvent::AgentExited { code }).await;
            output.send(AgentOutput::Exit(code));
            Some(Ended::Exited)
        }
        FrameKind::Error => {
            let msg = String::from_utf8_lossy(&frame.payload).into_owned();
            engine
                .emit(
                    id,
                    SessionEvent::Error {
                        message: msg.clone(),
                    },
                )
                .await;
            output.send(AgentOutput::Error(msg.clone()));
            Some(Ended::Lost(msg))
        }
        FrameKind::Event => {
            // Reconnects and warnings of the plugin's stream are shown as progress.
            match serde_json::from_slice::<serde_json::Value>(&frame.payload) {
                Ok(ev) => engine.plugin_event(id, &ev, "agent").await,
                Err(_) => tracing::debug!(
                    session = %id,
                    "agent stream event that is not JSON: {}",
                    String::from_utf8_lossy(&frame.payload)
                ),
            }
            None
        }
        _ => None,
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
