//! Streams: `exec` (a command without a TTY: stdout, stderr, exit code) and `attach` (the agent's
//! detachable TTY session: created with the agent's command, or re-attached by id with its
//! recent output replayed; Resize/Signal/Detach mapped to the Sprites framing; a dropped socket
//! reconnects a bounded number of times without touching the agent).

use std::collections::BTreeMap;
use std::time::Duration;

use clauderon_plugin_sdk::ops;
use clauderon_plugin_sdk::stream::{Frame, FrameKind, FrameStream, FrameWriter};
use clauderon_plugin_sdk::{CallContext, ErrorKind, PluginError};
use tokio::io::AsyncWriteExt;

use super::SpritesBackend;
use super::errors::{ctx as err_ctx, plugin_error};
use super::overlap::Tail;
use super::state::SpriteState;
use crate::client::{Child, Command, Error as ClientError, OutputStream, SpriteHandle};

/// How long a new TTY session may take to report its id.
const SESSION_INFO_WAIT: Duration = Duration::from_secs(15);
/// How long output is gathered after a reconnect before the replay is de-duplicated.
const REPLAY_GATHER: Duration = Duration::from_millis(300);

/// The command for `argv` with the session's environment (added through `env`, because giving
/// the exec call an environment would replace the sprite's default one).
fn build_command(
    sprite: &SpriteHandle,
    state: &SpriteState,
    argv: &[String],
    cwd: Option<&str>,
    extra_env: &BTreeMap<String, String>,
) -> Result<Command, PluginError> {
    let Some((program, rest)) = argv.split_first() else {
        return Err(PluginError::invalid_request(
            "the command is empty; give the program and its arguments",
        ));
    };
    let mut env = state.env.clone();
    env.extend(extra_env.clone());
    for k in env.keys() {
        if k.is_empty() || k.contains('=') {
            return Err(PluginError::invalid_request(format!(
                "environment variable name {k:?} is not valid"
            )));
        }
    }
    let mut cmd = if env.is_empty() {
        sprite.command(program.clone()).args(rest.iter().cloned())
    } else {
        sprite
            .command("env")
            .args(env.iter().map(|(k, v)| format!("{k}={v}")))
            .arg(program.clone())
            .args(rest.iter().cloned())
    };
    if let Some(dir) = cwd.filter(|d| !d.is_empty()) {
        cmd = cmd.current_dir(dir);
    }
    Ok(cmd)
}

async fn send(w: &mut FrameWriter, kind: FrameKind, payload: impl Into<Vec<u8>>) -> bool {
    w.write_frame(&Frame::new(kind, payload)).await.is_ok()
}

async fn recv(s: &mut Option<OutputStream>) -> Option<bytes::Bytes> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// `exec`: runs a command without a TTY (unless asked) and streams it.
pub async fn exec(
    b: &SpritesBackend,
    req: ops::ExecRequest,
    stream: FrameStream,
) -> Result<ops::StreamStarted, PluginError> {
    let state = SpriteState::of(&req.instance)?;
    let sprite = b.sprite(&state).await?;
    let mut cmd =
        build_command(&sprite, &state, &req.command, req.cwd.as_deref(), &req.env)?.stdin(true);
    if req.tty {
        cmd = cmd.tty(80, 24);
    }
    let child = cmd.spawn().await.map_err(err_ctx(&format!(
        "starting `{}` in the sprite",
        req.command.join(" ")
    )))?;
    tokio::spawn(pump_exec(child, stream));
    Ok(ops::StreamStarted {
        instance: Some(state.instance()),
        session: None,
    })
}

/// How long a command whose input the host closed may take to end once the host is gone.
const AFTER_HANGUP: std::time::Duration = std::time::Duration::from_secs(5);

/// Pumps a non-TTY child through a host stream: Stdin/StdinEof/Resize/Signal in, Stdout,
/// Stderr and Exit (or Error) out.
pub(crate) async fn pump_exec(mut child: Child, stream: FrameStream) {
    let (mut r, mut w) = stream.split();
    let mut stdin = child.stdin.take();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let control = child.control();
    // Host -> command on a task of its own: a stdin write waits while the command does not
    // read, and the command may be waiting for its output to be read (a request/reply helper
    // such as the sync's). Were both on one loop, neither would move and the connection would
    // die of its unanswered pings.
    // Says, when the host hangs up, whether it had closed the command's stdin first.
    let (hangup_tx, mut hangup) = tokio::sync::oneshot::channel::<bool>();
    let (warn_tx, mut warnings) = tokio::sync::mpsc::unbounded_channel::<String>();
    let input = tokio::spawn(async move {
        let mut eof_sent = false;
        loop {
            match r.read_frame().await {
                Ok(Some(f)) => match f.kind {
                    FrameKind::Stdin => {
                        if let Some(s) = stdin.as_mut()
                            && s.write_all(&f.payload).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    FrameKind::StdinEof => {
                        if let Some(mut s) = stdin.take() {
                            let _ = s.shutdown().await;
                        }
                        eof_sent = true;
                    }
                    FrameKind::Resize => {
                        if let Some((c, rws)) = f.resize_size() {
                            let _ = control.resize(c, rws);
                        }
                    }
                    FrameKind::Signal => {
                        let name = String::from_utf8_lossy(&f.payload).into_owned();
                        if let Err(e) = control.signal(&name).await {
                            let _ = warn_tx.send(e.to_string());
                        }
                    }
                    _ => {}
                },
                // The host hung up: stop forwarding; the command ends with its connection.
                Ok(None) | Err(_) => {
                    let _ = hangup_tx.send(eof_sent);
                    return;
                }
            }
        }
    });
    let wait = child.wait();
    tokio::pin!(wait);
    loop {
        tokio::select! {
            c = recv(&mut out), if out.is_some() => match c {
                Some(b) => { send(&mut w, FrameKind::Stdout, b.to_vec()).await; }
                None => out = None,
            },
            c = recv(&mut err), if err.is_some() => match c {
                Some(b) => { send(&mut w, FrameKind::Stderr, b.to_vec()).await; }
                None => err = None,
            },
            Some(message) = warnings.recv() => {
                send(&mut w, FrameKind::Event, serde_json::json!({"type": "warning", "message": message}).to_string()).await;
            }
            hung = &mut hangup => {
                input.abort();
                // A host that closed the command's input before leaving (the sync's helper
                // when its stream closes) lets it end on that end-of-file, as it would have
                // seen it, instead of dropping the connection under it: a dropped exec runs
                // on for `max_run_after_disconnect` and never finishes what it does at exit.
                if hung.unwrap_or(false) {
                    let _ = tokio::time::timeout(AFTER_HANGUP, async {
                        while out.is_some() || err.is_some() {
                            tokio::select! {
                                c = recv(&mut out), if out.is_some() => if c.is_none() { out = None },
                                c = recv(&mut err), if err.is_some() => if c.is_none() { err = None },
                            }
                        }
                        let _ = (&mut wait).await;
                    })
                    .await;
                }
                return;
            }
            code = &mut wait, if out.is_none() && err.is_none() => {
                input.abort();
                match code {
                    Ok(c) => { send(&mut w, FrameKind::Exit, c.to_be_bytes().to_vec()).await; }
                    Err(e) => { send(&mut w, FrameKind::Error, plugin_error("the command", &e).message).await; }
                }
                return;
            }
        }
    }
}

/// `attach`: creates the agent's detachable TTY session, or re-attaches to it.
pub async fn attach(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::AttachRequest,
    stream: FrameStream,
) -> Result<ops::StreamStarted, PluginError> {
    let mut state = SpriteState::of(&req.instance)?;
    let sprite = b.sprite(&state).await?;
    let cols = if req.cols == 0 { 80 } else { req.cols };
    let rows = if req.rows == 0 { 24 } else { req.rows };
    let (child, id) = match req.session.clone().filter(|s| !s.is_empty()) {
        Some(id) => {
            let sessions = sprite.sessions().await.map_err(err_ctx(&format!(
                "listing exec sessions of {}",
                state.sprite
            )))?;
            if !sessions.iter().any(|s| s.id == id) {
                return Err(gone(&id));
            }
            ctx.progress(
                "agent",
                &format!("re-attaching to the agent session {id}"),
                None,
            );
            let child = sprite.attach(&id).await.map_err(|e| {
                if e.is_not_found() {
                    gone(&id)
                } else {
                    plugin_error(&format!("attaching to session {id}"), &e)
                }
            })?;
            let _ = child.resize(cols, rows);
            (child, id)
        }
        None => {
            let cmd = build_command(&sprite, &state, &req.command, req.cwd.as_deref(), &req.env)
                .map_err(|e| {
                    PluginError::invalid_request(format!(
                        "attach needs a session id to re-attach to or a command to start: {}",
                        e.message
                    ))
                })?
                .tty(cols, rows);
            ctx.progress(
                "agent",
                &format!("starting `{}`", req.command.join(" ")),
                None,
            );
            let mut child = cmd.spawn().await.map_err(err_ctx(&format!(
                "starting `{}` in the sprite",
                req.command.join(" ")
            )))?;
            let Some(info) = child.session_info(SESSION_INFO_WAIT).await else {
                return Err(PluginError::internal(
                    "the Sprites API did not report the new TTY session's id",
                ));
            };
            (child, info.session_id)
        }
    };
    state.agent_session = Some(id.clone());
    tokio::spawn(pump_attach(
        sprite,
        id.clone(),
        child,
        stream,
        b.settings().reconnect_attempts,
        (cols, rows),
    ));
    Ok(ops::StreamStarted {
        instance: Some(state.instance()),
        session: Some(id),
    })
}

fn gone(id: &str) -> PluginError {
    PluginError::new(
        ErrorKind::NotFound,
        format!(
            "the agent session {id} is gone (the sprite slept or the agent exited); start the agent again"
        ),
    )
}

/// How one connection to the session ended.
enum ConnEnd {
    /// The agent exited (or the session reported an error): the stream is finished.
    Done,
    /// The host detached or hung up: leave the agent running.
    Detached,
    /// The socket dropped: reconnect.
    Dropped(ClientError),
}

async fn pump_attach(
    sprite: SpriteHandle,
    id: String,
    first: Child,
    stream: FrameStream,
    max_attempts: u32,
    mut size: (u16, u16),
) {
    let (mut r, mut w) = stream.split();
    let mut tail = Tail::default();
    let mut child = first;
    let mut dedupe = false;
    loop {
        match one_connection(child, &mut r, &mut w, &mut tail, &mut size, dedupe).await {
            ConnEnd::Done => return,
            ConnEnd::Detached => {
                send(&mut w, FrameKind::Event, r#"{"type":"detached"}"#).await;
                return;
            }
            ConnEnd::Dropped(why) => {
                let mut attempt = 0;
                let next = loop {
                    attempt += 1;
                    if attempt > max_attempts {
                        break None;
                    }
                    let ev = serde_json::json!({
                        "type": "reconnecting", "attempt": attempt, "reason": why.to_string()
                    });
                    if !send(&mut w, FrameKind::Event, ev.to_string()).await {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    match sprite.attach(&id).await {
                        Ok(c) => break Some(c),
                        Err(e) if e.is_not_found() => {
                            send(&mut w, FrameKind::Error, gone(&id).message).await;
                            return;
                        }
                        Err(_) => continue,
                    }
                };
                let Some(c) = next else {
                    let msg = format!(
                        "lost the connection to the agent session {id} and could not reconnect after {max_attempts} attempts; the agent keeps running, attach again"
                    );
                    send(&mut w, FrameKind::Error, msg).await;
                    return;
                };
                let _ = c.resize(size.0, size.1);
                send(&mut w, FrameKind::Event, r#"{"type":"reconnected"}"#).await;
                child = c;
                dedupe = true;
            }
        }
    }
}

async fn one_connection(
    mut child: Child,
    r: &mut clauderon_plugin_sdk::stream::FrameReader,
    w: &mut FrameWriter,
    tail: &mut Tail,
    size: &mut (u16, u16),
    dedupe: bool,
) -> ConnEnd {
    let mut stdin = child.stdin.take();
    let mut out = child.stdout.take();
    let control = child.control();
    drop(child.stderr.take());
    let wait = child.wait();
    tokio::pin!(wait);
    let mut gather: Option<(Vec<u8>, tokio::time::Instant)> =
        dedupe.then(|| (Vec::new(), tokio::time::Instant::now() + REPLAY_GATHER));
    loop {
        let gather_deadline = gather.as_ref().map(|(_, d)| *d);
        tokio::select! {
            _ = async { if let Some(d) = gather_deadline { tokio::time::sleep_until(d).await } else { std::future::pending::<()>().await } } => {
                if let Some((buf, _)) = gather.take() {
                    let fresh = tail.fresh(&buf).to_vec();
                    if !fresh.is_empty() {
                        tail.push(&fresh);
                        if !send(w, FrameKind::Stdout, fresh).await { return ConnEnd::Detached; }
                    }
                }
            }
            c = recv(&mut out), if out.is_some() => match c {
                Some(b) => {
                    if let Some((buf, _)) = gather.as_mut() {
                        buf.extend_from_slice(&b);
                    } else {
                        tail.push(&b);
                        if !send(w, FrameKind::Stdout, b.to_vec()).await { return ConnEnd::Detached; }
                    }
                }
                None => out = None,
            },
            f = r.read_frame() => match f {
                Ok(Some(f)) => match f.kind {
                    FrameKind::Stdin => {
                        if let Some(s) = stdin.as_mut()
                            && s.write_all(&f.payload).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    FrameKind::Resize => {
                        if let Some((c, rws)) = f.resize_size() {
                            *size = (c, rws);
                            let _ = control.resize(c, rws);
                        }
                    }
                    FrameKind::Signal => {
                        let name = String::from_utf8_lossy(&f.payload).into_owned();
                        if let Err(e) = control.signal(&name).await {
                            let ev = serde_json::json!({"type": "warning", "message": e.to_string()});
                            send(w, FrameKind::Event, ev.to_string()).await;
                        }
                    }
                    FrameKind::Detach => return ConnEnd::Detached,
                    _ => {}
                },
                Ok(None) | Err(_) => return ConnEnd::Detached,
            },
            code = &mut wait, if out.is_none() => {
                if let Some((buf, _)) = gather.take() {
                    let fresh = tail.fresh(&buf).to_vec();
                    if !fresh.is_empty() {
                        tail.push(&fresh);
                        send(w, FrameKind::Stdout, fresh).await;
                    }
                }
                return match code {
                    Ok(c) => {
                        send(w, FrameKind::Exit, c.to_be_bytes().to_vec()).await;
                        ConnEnd::Done
                    }
                    Err(e @ (ClientError::ExecEndedWithoutExit | ClientError::Transport(_) | ClientError::Timeout { .. })) => ConnEnd::Dropped(e),
                    Err(e) => {
                        send(w, FrameKind::Error, plugin_error("the agent session", &e).message).await;
                        ConnEnd::Done
                    }
                };
            }
        }
    }
}
