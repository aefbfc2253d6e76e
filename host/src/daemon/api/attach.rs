//! `GET /api/sessions/{ref}/attach?cols=C&rows=R`: a WebSocket to the agent's terminal.
//! Binary messages are terminal bytes both ways; text messages are JSON control
//! (`resize`, `signal` from the client; `exit` or `error` then close from the daemon). The
//! client detaches by closing; attaching to a hibernated session wakes it first.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;

use crate::daemon::engine::{AgentInput, AgentOutput, Engine, LiveAgent};
use crate::daemon::error::{EngineError, error_response};
use crate::session::{SessionId, Status};

use super::{AppState, bad_query};

/// `?cols=C&rows=R`.
#[derive(Debug, serde::Deserialize)]
pub struct AttachQuery {
    #[serde(default)]
    cols: Option<u16>,
    #[serde(default)]
    rows: Option<u16>,
}

/// A control message from the client.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control {
    Resize { cols: u16, rows: u16 },
    Signal { name: String },
}

fn valid_size(cols: u16, rows: u16) -> bool {
    (1..=1000).contains(&cols) && (1..=1000).contains(&rows)
}

/// The route.
pub async fn attach(
    State(st): State<AppState>,
    Path(session): Path<String>,
    q: Result<Query<AttachQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e),
    };
    let (cols, rows) = (q.cols.unwrap_or(80), q.rows.unwrap_or(24));
    if !valid_size(cols, rows) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "cols and rows must be from 1 to 1000",
        );
    }
    let rec = match st.engine.find(&session).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if matches!(rec.status, Status::Deleted | Status::Deleting) {
        return EngineError::Conflict(format!("cannot attach: the session is {}", rec.status))
            .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("this route is a WebSocket; connect with a WebSocket client ({e})"),
            );
        }
    };
    let engine = Arc::clone(&st.engine);
    let shutdown = st.shutdown.clone();
    ws.on_upgrade(move |socket| serve(engine, rec.id, cols, rows, socket, shutdown))
}

async fn send_control(socket: &mut WebSocket, v: serde_json::Value) {
    let _ = socket.send(Message::Text(v.to_string().into())).await;
}

async fn close_with(socket: &mut WebSocket, v: serde_json::Value) {
    send_control(socket, v).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

async fn live_agent(engine: &Arc<Engine>, id: SessionId) -> Result<Arc<LiveAgent>, String> {
    let rec = engine.store().get(id).await.map_err(|e| e.to_string())?;
    if matches!(rec.status, Status::Hibernated | Status::Hibernating) {
        let rt = engine.runtime(id);
        // A hibernate in flight finishes first (it holds the operation lock).
        drop(rt.op_lock.lock().await);
        if engine
            .store()
            .get(id)
            .await
            .map_err(|e| e.to_string())?
            .status
            == Status::Hibernated
        {
            engine.wake(id).await.map_err(|e| e.to_string())?;
        }
    } else if rec.status == Status::Waking || rec.status == Status::Creating {
        // Wait for the operation in flight.
        drop(engine.runtime(id).op_lock.lock().await);
    }
    match engine.ensure_agent(id).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => {
            let rec = engine.store().get(id).await.map_err(|e| e.to_string())?;
            if rec.options.print {
                Err(
                    "this session's agent runs without a terminal (--print); follow its output \
                     with `clauderon logs -f`"
                        .into(),
                )
            } else {
                let code = engine
                    .store()
                    .agent(id)
                    .await
                    .ok()
                    .and_then(|r| r.exit_code)
                    .map_or(String::new(), |c| format!(" with code {c}"));
                Err(format!(
                    "the agent exited{code}; `clauderon restart {}` starts it again (its \
                     conversation continues; --fresh for a new one)",
                    rec.name
                ))
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn serve(
    engine: Arc<Engine>,
    id: SessionId,
    cols: u16,
    rows: u16,
    mut socket: WebSocket,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let _guard = engine.attach_guard(id);
    let agent = match live_agent(&engine, id).await {
        Ok(a) => a,
        Err(msg) => {
            close_with(
                &mut socket,
                serde_json::json!({"type": "error", "message": msg}),
            )
            .await;
            return;
        }
    };
    // What the terminal last showed first (the agent may have printed before this attach,
    // e.g. when the attach woke the session and restarted it), then the live output.
    let (recent, mut output) = agent.subscribe();
    if !recent.is_empty()
        && socket
            .send(Message::Binary(Bytes::from(recent)))
            .await
            .is_err()
    {
        return;
    }
    agent.send(AgentInput::Resize(cols, rows)).await;
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if !agent.send(AgentInput::Stdin(b.to_vec())).await {
                        break;
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Control>(t.as_str()) {
                    Ok(Control::Resize { cols, rows }) if valid_size(cols, rows) => {
                        agent.send(AgentInput::Resize(cols, rows)).await;
                    }
                    Ok(Control::Resize { .. }) => {
                        send_control(&mut socket, serde_json::json!({"type": "error",
                            "message": "cols and rows must be from 1 to 1000; resize ignored"})).await;
                    }
                    Ok(Control::Signal { name }) => {
                        agent.send(AgentInput::Signal(name)).await;
                    }
                    Err(e) => {
                        send_control(&mut socket, serde_json::json!({"type": "error",
                            "message": format!("unknown control message ({e}); expected \
                             {{\"type\":\"resize\",\"cols\",\"rows\"}} or \
                             {{\"type\":\"signal\",\"name\"}}")})).await;
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = output.recv() => match out {
                Ok(AgentOutput::Data(d)) => {
                    if socket.send(Message::Binary(Bytes::copy_from_slice(&d))).await.is_err() {
                        break;
                    }
                }
                Ok(AgentOutput::Exit(code)) => {
                    close_with(&mut socket, serde_json::json!({"type": "exit", "code": code})).await;
                    break;
                }
                Ok(AgentOutput::Error(m)) => {
                    close_with(&mut socket, serde_json::json!({"type": "error", "message": m})).await;
                    break;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = agent.ended() => {
                // Drain what the task sent before it ended.
                while let Ok(o) = output.try_recv() {
                    match o {
                        AgentOutput::Data(d) => { let _ = socket.send(Message::Binary(Bytes::copy_from_slice(&d))).await; }
                        AgentOutput::Exit(code) => {
                            close_with(&mut socket, serde_json::json!({"type": "exit", "code": code})).await;
                            return;
                        }
                        AgentOutput::Error(m) => {
                            close_with(&mut socket, serde_json::json!({"type": "error", "message": m})).await;
                            return;
                        }
                    }
                }
                let status = engine.store().get(id).await.map(|r| r.status.to_string()).unwrap_or_default();
                close_with(&mut socket, serde_json::json!({"type": "error",
                    "message": format!("the connection to the agent ended (the session is {status})")})).await;
                return;
            }
            _ = shutdown.changed() => {
                close_with(&mut socket, serde_json::json!({"type": "error", "message": "the daemon is stopping"})).await;
                return;
            }
        }
    }
}
