//! Exec: the WebSocket (both framings), attach, the sessions list, kill, and exec over HTTP POST.
//!
//! Non-TTY frames are binary `[stream][payload]`: 0x00 stdin, 0x01 stdout, 0x02 stderr,
//! 0x03 exit (one byte), 0x04 stdin EOF. TTY frames are raw binary terminal bytes; text frames
//! carry JSON control messages (`resize`, `signal`, `session_info`, `exit`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::{DropWs, query_get, query_pairs, truthy};
use crate::app::{App, Sprite};
use crate::cli::Quirk;
use crate::duration::parse_duration;
use crate::error::{ApiError, json_response};
use crate::lifecycle::ActivityGuard;
use crate::session::{ExecSpec, In, Out, PathMap, Session, SpawnCtx};

/// Parses a signal name (`TERM`, `SIGTERM`, `15`).
pub fn parse_signal(s: &str) -> Option<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let up = s.trim().to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    Some(match name {
        "INT" => Signal::SIGINT,
        "TERM" => Signal::SIGTERM,
        "HUP" => Signal::SIGHUP,
        "KILL" => Signal::SIGKILL,
        "QUIT" => Signal::SIGQUIT,
        "USR1" => Signal::SIGUSR1,
        "USR2" => Signal::SIGUSR2,
        "STOP" => Signal::SIGSTOP,
        "CONT" => Signal::SIGCONT,
        "WINCH" => Signal::SIGWINCH,
        "ALRM" => Signal::SIGALRM,
        _ => return None,
    })
}

fn parse_spec(q: &[(String, String)], http: bool) -> Result<ExecSpec, ApiError> {
    let argv: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "cmd")
        .map(|(_, v)| v.clone())
        .collect();
    let tty = truthy(query_get(q, "tty")).unwrap_or(false);
    if http {
        for k in ["tty", "id", "detachable", "cc"] {
            if query_get(q, k).is_some() {
                return Err(ApiError::bad_request(format!(
                    "parameter {k} is not supported by exec over HTTP; use the WebSocket exec"
                )));
            }
        }
    }
    let env_given = q.iter().any(|(k, _)| k == "env");
    let mut env = Vec::new();
    for (_, kv) in q.iter().filter(|(k, _)| k == "env") {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            ApiError::bad_request(format!("env {kv:?} must have the form KEY=VALUE"))
        })?;
        env.push((k.to_owned(), v.to_owned()));
    }
    let num = |key: &str, default: u16| -> Result<u16, ApiError> {
        match query_get(q, key) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad_request(format!("{key} must be a positive integer, got {v:?}"))
            }),
        }
    };
    let max_run = match query_get(q, "max_run_after_disconnect") {
        None | Some("") => None,
        Some(v) => Some(parse_duration(v).map_err(|e| ApiError::bad_request(e.to_string()))?),
    };
    let dir = query_get(q, "dir")
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    if let Some(d) = &dir
        && !d.starts_with('/')
    {
        return Err(ApiError::bad_request(format!(
            "dir {d:?} must be an absolute path"
        )));
    }
    Ok(ExecSpec {
        argv,
        path: query_get(q, "path").map(str::to_owned),
        env: env_given.then_some(env),
        dir,
        tty,
        stdin: truthy(query_get(q, "stdin")).unwrap_or(tty),
        cols: num("cols", 80)?,
        rows: num("rows", 24)?,
        max_run_after_disconnect: max_run,
    })
}

async fn start_session(
    app: &Arc<App>,
    sprite: &Arc<Sprite>,
    spec: ExecSpec,
) -> Result<Arc<Session>, String> {
    match start_session_once(app, sprite, spec.clone()).await {
        Ok(s) => Ok(s),
        // A sandbox that died between the check and the fork: once more on a fresh one.
        Err(e)
            if app.sandboxed
                && app
                    .holder_ids(sprite)
                    .await
                    .is_none_or(|(p, _)| !crate::sandbox::alive(p)) =>
        {
            tracing::warn!(
                "exec in {} failed on a dead sandbox ({e}); retrying",
                sprite.name
            );
            start_session_once(app, sprite, spec).await
        }
        Err(e) => Err(e),
    }
}

async fn start_session_once(
    app: &Arc<App>,
    sprite: &Arc<Sprite>,
    spec: ExecSpec,
) -> Result<Arc<Session>, String> {
    let ns = app.ns_for_exec(sprite).await.map_err(|e| e.message())?;
    let id = sprite
        .next_session
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let weak = Arc::downgrade(sprite);
    let record = sprite.record();
    let limits = app
        .limits
        .prepare(
            &sprite.name,
            &crate::limits::effective(&record.config, &record.resources),
        )
        .map_err(|e| format!("cannot apply the sprite's limits: {e}"))?;
    let ctx = SpawnCtx {
        id,
        limits,
        env_extra: if app.sandboxed {
            let mut env = app.cfg.egress.env();
            env.extend(crate::languages::env(
                &app.cfg.languages,
                crate::session::DEFAULT_PATH,
            ));
            env
        } else {
            Vec::new()
        },
        map: (!app.sandboxed).then(|| PathMap {
            root: sprite.paths.root(),
        }),
        ns,
        ring_cap: app.cfg.replay_bytes,
        non_tty_disconnect: app.cfg.non_tty_disconnect,
        guard: ActivityGuard::new(Arc::clone(sprite)),
        on_exit: Box::new(move || {
            if let Some(s) = weak.upgrade() {
                if let Ok(mut m) = s.sessions.lock() {
                    m.remove(&id);
                }
                if let Ok(mut e) = s.ended.lock() {
                    e.push_back(id);
                    while e.len() > 1024 {
                        e.pop_front();
                    }
                }
            }
        }),
    };
    // The registry lock is held across spawn so the exit callback cannot run before insertion.
    let mut map = sprite
        .sessions
        .lock()
        .map_err(|_| "session table lock poisoned".to_owned())?;
    let session = Session::spawn(spec, ctx)?;
    map.insert(id, Arc::clone(&session));
    Ok(session)
}

fn session_info(app: &App, s: &Session) -> Value {
    let (cols, rows) = s.size();
    let id = if app.cfg.quirk(Quirk::SessionIdInt) {
        json!(s.id)
    } else {
        json!(s.id.to_string())
    };
    json!({
        "type": "session_info",
        "session_id": id,
        "command": s.program,
        "created": s.created.unix_timestamp(),
        "cols": cols,
        "rows": rows,
        "is_owner": true,
        "tty": s.tty,
    })
}

fn frame(tty: bool, out: &Out) -> Message {
    match (tty, out) {
        (true, Out::Stdout(b)) | (true, Out::Stderr(b)) => Message::Binary(b.clone()),
        (true, Out::Exit(c)) => {
            Message::Text(json!({"type": "exit", "exit_code": c}).to_string().into())
        }
        (false, Out::Stdout(b)) => Message::Binary(prefixed(1, b)),
        (false, Out::Stderr(b)) => Message::Binary(prefixed(2, b)),
        (false, Out::Exit(c)) => Message::Binary(Bytes::from(vec![3u8, *c as u8])),
    }
}

fn prefixed(tag: u8, b: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(b.len() + 1);
    v.push(tag);
    v.extend_from_slice(b);
    Bytes::from(v)
}

struct Conn {
    app: Arc<App>,
    session: Arc<Session>,
    conn: u64,
    rx: mpsc::Receiver<Out>,
    replay: Vec<Out>,
    exited: Option<i32>,
    drop_after: Option<u64>,
    _guard: ActivityGuard,
}

async fn run_socket(socket: WebSocket, c: Conn) {
    let Conn {
        app,
        session,
        conn,
        mut rx,
        replay,
        exited,
        drop_after,
        _guard,
    } = c;
    let tty = session.tty;
    let (mut sink, mut stream) = socket.split();
    let mut sent: u64 = 0;
    let info = session_info(&app, &session).to_string();
    if sink.send(Message::Text(info.into())).await.is_err() {
        session.detach(conn);
        return;
    }
    let mut pending: std::collections::VecDeque<Out> = replay.into();
    if let Some(code) = exited
        && !pending.iter().any(|o| matches!(o, Out::Exit(_)))
    {
        pending.push_back(Out::Exit(code));
    }
    loop {
        let out = if let Some(o) = pending.pop_front() {
            Some(o)
        } else {
            tokio::select! {
                msg = stream.next() => {
                    match msg {
                        Some(Ok(Message::Binary(b))) => {
                            handle_input(&session, tty, b).await;
                            continue;
                        }
                        Some(Ok(Message::Text(t))) => {
                            handle_control(&session, t.as_str());
                            continue;
                        }
                        Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            session.detach(conn);
                            return;
                        }
                    }
                }
                out = rx.recv() => out,
            }
        };
        let Some(out) = out else {
            // Another connection took the session over.
            let _ = sink
                .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1000,
                    reason: "session attached elsewhere".into(),
                })))
                .await;
            return;
        };
        if let Some(limit) = drop_after
            && sent >= limit
            && !matches!(out, Out::Exit(_))
        {
            // Injected fault: vanish without a close frame or an exit frame.
            session.detach(conn);
            return;
        }
        let is_exit = matches!(out, Out::Exit(_));
        if let Out::Stdout(b) | Out::Stderr(b) = &out {
            sent += b.len() as u64;
        }
        if sink.send(frame(tty, &out)).await.is_err() {
            session.detach(conn);
            return;
        }
        if is_exit {
            // The real service lingers before it closes; a good client has closed by then.
            let linger = app.cfg.exit_linger;
            let _ = tokio::time::timeout(linger, async {
                while let Some(Ok(m)) = stream.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            let _ = sink
                .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1000,
                    reason: "".into(),
                })))
                .await;
            return;
        }
    }
}

async fn handle_input(session: &Session, tty: bool, b: Bytes) {
    if tty {
        session.input(In::Data(b)).await;
        return;
    }
    match b.first() {
        Some(0) => session.input(In::Data(b.slice(1..))).await,
        Some(4) => session.input(In::Eof).await,
        _ => {}
    }
}

fn handle_control(session: &Session, text: &str) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    match v.get("type").and_then(Value::as_str) {
        Some("resize") => {
            let cols = v.get("cols").and_then(Value::as_u64).unwrap_or(0);
            let rows = v.get("rows").and_then(Value::as_u64).unwrap_or(0);
            if (1..=u16::MAX as u64).contains(&cols) && (1..=u16::MAX as u64).contains(&rows) {
                session.resize(cols as u16, rows as u16);
            }
        }
        Some("signal") => {
            if let Some(sig) = v
                .get("signal")
                .and_then(Value::as_str)
                .and_then(parse_signal)
            {
                session.signal(sig);
            }
        }
        _ => {}
    }
}

fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn upgrade_of(
    req: Request,
    app: &Arc<App>,
) -> Result<(WebSocketUpgrade, Option<DropWs>), ApiError> {
    let drop = req.extensions().get::<DropWs>().copied();
    let (mut parts, _) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, app)
        .await
        .map_err(|e| ApiError::bad_request(format!("bad WebSocket upgrade: {e}")))?;
    Ok((ws.max_message_size(16 << 20), drop))
}

fn upgrade_into(
    app: &Arc<App>,
    ws: WebSocketUpgrade,
    sprite: &Arc<Sprite>,
    session: Arc<Session>,
    replay: bool,
    drop: Option<DropWs>,
) -> Response {
    let conn = app.conn_id();
    let (rx, replayed, exited) = session.attach(conn, replay);
    let c = Conn {
        app: Arc::clone(app),
        session,
        conn,
        rx,
        replay: replayed,
        exited,
        drop_after: drop.map(|d| d.0),
        _guard: ActivityGuard::new(Arc::clone(sprite)),
    };
    ws.on_upgrade(move |socket| run_socket(socket, c))
}

/// `GET /v1/sprites/{name}/exec`: a WebSocket upgrade starts an exec (or attaches with the legacy
/// `?id=`); a plain GET lists sessions.
pub async fn exec_get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    if !is_upgrade(&req) {
        return list_sessions(&app, &name).await;
    }
    let sprite = app.sprite(&name).ok_or_else(ApiError::sprite_not_found)?;
    let _hold = ActivityGuard::new(Arc::clone(&sprite));
    app.wake(&sprite).await?;
    let q = query_pairs(req.uri());
    if let Some(id) = query_get(&q, "id") {
        let id: u64 = id
            .parse()
            .map_err(|_| ApiError::bad_request(format!("session id {id:?} is not a number")))?;
        let session = sprite
            .session(id)
            .ok_or_else(|| ApiError::msg(StatusCode::NOT_FOUND, "session not found"))?;
        let (ws, drop) = upgrade_of(req, &app).await?;
        return Ok(upgrade_into(&app, ws, &sprite, session, true, drop));
    }
    let spec = parse_spec(&q, false)?;
    let tty = spec.tty;
    let (ws, drop) = upgrade_of(req, &app).await?;
    match start_session(&app, &sprite, spec).await {
        Ok(session) => Ok(upgrade_into(&app, ws, &sprite, session, false, drop)),
        Err(msg) => {
            // Like a shell that cannot run the program: the message on stderr, exit 127.
            let linger = app.cfg.exit_linger;
            Ok(ws.on_upgrade(move |mut socket| async move {
                let text = format!("{msg}\n");
                let (out, exit) = if tty {
                    (
                        Message::Binary(Bytes::from(text)),
                        Message::Text(json!({"type":"exit","exit_code":127}).to_string().into()),
                    )
                } else {
                    (
                        Message::Binary(prefixed(2, text.as_bytes())),
                        Message::Binary(Bytes::from_static(&[3, 127])),
                    )
                };
                let _ = socket.send(out).await;
                let _ = socket.send(exit).await;
                // Linger and read as after any exit: closing with the client's stdin bytes
                // unread makes the kernel reset the connection, and the exit frame is lost.
                let _ = tokio::time::timeout(linger, async {
                    while let Some(Ok(m)) = socket.recv().await {
                        if matches!(m, Message::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
                let _ = socket.send(Message::Close(None)).await;
            }))
        }
    }
}

/// `HEAD /v1/sprites/{name}/exec`: version probe (the `Sprite-Version` header).
pub async fn exec_head(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    app.sprite_env(&name).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /v1/sprites/{name}/exec/{id}` (WebSocket): attach to a session, replaying recent output.
pub async fn attach(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let sprite = app.sprite(&name).ok_or_else(ApiError::sprite_not_found)?;
    app.wake(&sprite).await?;
    let session = id
        .parse::<u64>()
        .ok()
        .and_then(|i| sprite.session(i))
        .ok_or_else(|| ApiError::msg(StatusCode::NOT_FOUND, format!("session {id} not found")))?;
    if !is_upgrade(&req) {
        return Err(ApiError::bad_request("attach needs a WebSocket upgrade"));
    }
    let (ws, drop) = upgrade_of(req, &app).await?;
    Ok(upgrade_into(&app, ws, &sprite, session, true, drop))
}

async fn list_sessions(app: &Arc<App>, name: &str) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(name).await?;
    let items: Vec<Value> = sprite
        .sessions()
        .iter()
        .filter(|s| s.exit_code().is_none())
        .map(|s| {
            let age = (time::OffsetDateTime::now_utc() - s.created)
                .as_seconds_f64()
                .max(1.0);
            json!({
                "id": s.id,
                "command": s.command,
                "created": crate::time_fmt::seconds(s.created),
                "workdir": s.workdir,
                "tty": s.tty,
                "is_active": s.is_attached(),
                "bytes_per_second": (s.bytes() as f64 / age).round(),
                "last_activity": crate::time_fmt::seconds(s.last_activity()),
            })
        })
        .collect();
    let body = if app.cfg.quirk(Quirk::SessionsArray) {
        json!(items)
    } else {
        json!({"count": items.len(), "sessions": items})
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v1/sprites/{name}/exec/{id}/kill?signal=SIGTERM&timeout=10s`: NDJSON events.
pub async fn kill(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    let num = id.parse::<u64>().ok();
    if num.is_some_and(|n| sprite.session(n).is_none() && sprite.has_ended(n)) {
        return Err(ApiError::msg(
            StatusCode::GONE,
            format!("session {id} has already exited"),
        ));
    }
    let session = num
        .and_then(|i| sprite.session(i))
        .ok_or_else(|| ApiError::msg(StatusCode::NOT_FOUND, format!("session {id} not found")))?;
    let q = query_pairs(&uri);
    let sig_name = query_get(&q, "signal").unwrap_or("SIGTERM").to_owned();
    let sig = parse_signal(&sig_name)
        .ok_or_else(|| ApiError::bad_request(format!("unknown signal {sig_name:?}")))?;
    let timeout = match query_get(&q, "timeout") {
        None | Some("") => Duration::from_secs(10),
        Some(t) => parse_duration(t).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let (events, resp) = crate::ndjson::stream();
    tokio::spawn(async move {
        let pid = session.pgid;
        session.signal(sig);
        events
            .send(json!({"type":"signal","message":format!("Sent {} to process {pid}", sig.as_str()),"signal":sig.as_str(),"pid":pid}))
            .await;
        let code = match session.wait_exit(timeout).await {
            Some(c) => {
                events
                    .send(json!({"type":"exited","message":"Process exited"}))
                    .await;
                c
            }
            None => {
                events
                    .send(json!({"type":"timeout","message":format!("Process did not exit within {}s", timeout.as_secs_f64())}))
                    .await;
                session.signal(Signal::SIGKILL);
                let c = session.wait_exit(Duration::from_secs(10)).await;
                match c {
                    Some(c) => {
                        events
                            .send(json!({"type":"killed","message":"Process killed with SIGKILL"}))
                            .await;
                        c
                    }
                    None => {
                        events.send(json!({"type":"error","message":"Process did not die after SIGKILL"})).await;
                        return;
                    }
                }
            }
        };
        events
            .send(json!({"type":"complete","exit_code":code}))
            .await;
    });
    Ok(resp)
}

/// `POST /v1/sprites/{name}/exec`: non-TTY exec over HTTP; body = stdin (with `stdin=true`,
/// at most 10 MiB); the answer streams `[stream][payload]` chunks ending with `0x03` + code.
pub async fn exec_http(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = query_pairs(&uri);
    let spec = parse_spec(&q, true)?;
    if body.len() > 10 * 1024 * 1024 {
        return Err(ApiError::msg(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body exceeds the 10 MiB stdin limit",
        ));
    }
    if spec.argv.is_empty() {
        return Err(ApiError::bad_request("cmd is required"));
    }
    let sprite = app.sprite_env(&name).await?;
    let use_stdin = spec.stdin;
    let session = start_session(&app, &sprite, spec)
        .await
        .map_err(ApiError::bad_request)?;
    let conn = app.conn_id();
    let (rx, _, _) = session.attach(conn, false);
    if use_stdin && !body.is_empty() {
        session.input(In::Data(body)).await;
    }
    session.input(In::Eof).await;
    let guard = ActivityGuard::new(Arc::clone(&sprite));
    let frames = HttpFrames {
        rx,
        held: None,
        exit_delay: app.cfg.http_exit_delay,
        done: false,
        _guard: guard,
    };
    let stream = futures::stream::unfold(frames, |mut f| async move {
        let bytes = f.next().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(bytes), f))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(resp)
}

/// The frames of an HTTP exec answer, one per HTTP chunk. Framing rests on chunk boundaries
/// alone, so output of one stream that is already waiting goes out as one frame, and the exit
/// frame is written by itself after a pause (`--http-exit-delay`): the output chunk before it is
/// flushed while the body waits, as after the real service's process exit.
struct HttpFrames {
    rx: mpsc::Receiver<Out>,
    held: Option<Out>,
    exit_delay: Duration,
    done: bool,
    _guard: ActivityGuard,
}

impl HttpFrames {
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let first = match self.held.take() {
            Some(o) => o,
            None => self.rx.recv().await?,
        };
        let (tag, mut data) = match first {
            Out::Exit(c) => {
                self.done = true;
                if !self.exit_delay.is_zero() {
                    tokio::time::sleep(self.exit_delay).await;
                }
                return Some(Bytes::from(vec![3u8, c as u8]));
            }
            Out::Stdout(b) => (1u8, b.to_vec()),
            Out::Stderr(b) => (2u8, b.to_vec()),
        };
        // Join what of the same stream is already there (bounded, to keep chunks moderate).
        while data.len() < 256 * 1024 {
            match self.rx.try_recv() {
                Ok(Out::Stdout(b)) if tag == 1 => data.extend_from_slice(&b),
                Ok(Out::Stderr(b)) if tag == 2 => data.extend_from_slice(&b),
                Ok(other) => {
                    self.held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        Some(prefixed(tag, &data))
    }
}
