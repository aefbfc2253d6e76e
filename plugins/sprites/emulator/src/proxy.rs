//! `WSS .../proxy`: the client's first text message `{"host","port"}`, the reply
//! `{"status":"connected","target":"host:port"}`, then a raw binary relay to that port inside the
//! sprite's network namespace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::DropWs;
use crate::app::{App, Sprite};
use crate::error::ApiError;
use crate::lifecycle::ActivityGuard;

/// `GET /v1/sprites/{name}/proxy` (WebSocket).
pub async fn proxy(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let sprite = app.sprite(&name).ok_or_else(ApiError::sprite_not_found)?;
    let guard = ActivityGuard::new(Arc::clone(&sprite));
    app.wake(&sprite).await?;
    let drop = req.extensions().get::<DropWs>().copied();
    let (mut parts, _) = req.into_parts();
    let ws = <axum::extract::ws::WebSocketUpgrade as axum::extract::FromRequestParts<_>>::from_request_parts(&mut parts, &app)
        .await
        .map_err(|e| ApiError::bad_request(format!("bad WebSocket upgrade: {e}")))?;
    Ok(ws.on_upgrade(move |socket| relay(app, sprite, socket, guard, drop)))
}

async fn connect(
    app: &App,
    sprite: &Arc<Sprite>,
    host: &str,
    port: u16,
) -> Result<tokio::net::TcpStream, String> {
    let ip: IpAddr = match host {
        "" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h
            .parse()
            .map_err(|_| format!("cannot resolve {h:?}: the sprite's network has only loopback"))?,
    };
    let addr = SocketAddr::new(ip, port);
    let std_stream = match app.holder_ids(sprite).await {
        Some((pid, helper)) if app.sandboxed => {
            tokio::task::spawn_blocking(move || crate::sandbox::connect_in_netns(pid, helper, addr))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("dial {addr}: {e}"))?
        }
        _ if app.sandboxed => return Err("sprite sandbox is not running".to_owned()),
        _ => std::net::TcpStream::connect(addr).map_err(|e| format!("dial {addr}: {e}"))?,
    };
    std_stream
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    tokio::net::TcpStream::from_std(std_stream).map_err(|e| e.to_string())
}

async fn relay(
    app: Arc<App>,
    sprite: Arc<Sprite>,
    socket: WebSocket,
    _guard: ActivityGuard,
    drop: Option<DropWs>,
) {
    let (mut sink, mut stream) = socket.split();
    // The first text message names the target.
    let init = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => break t.to_string(),
            Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
            _ => return,
        }
    };
    let target: Option<(String, u16)> = serde_json::from_str::<Value>(&init).ok().and_then(|v| {
        let port = v
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())?;
        let host = v
            .get("host")
            .and_then(Value::as_str)
            .unwrap_or("localhost")
            .to_owned();
        Some((host, port))
    });
    let Some((host, port)) = target else {
        let _ = sink
            .send(Message::Text(
                json!({"status":"error","error":"first message must be {\"host\":...,\"port\":n}"})
                    .to_string()
                    .into(),
            ))
            .await;
        let _ = sink.send(Message::Close(None)).await;
        return;
    };
    let tcp = match connect(&app, &sprite, &host, port).await {
        Ok(t) => t,
        Err(e) => {
            let _ = sink
                .send(Message::Text(
                    json!({"status":"error","error":e}).to_string().into(),
                ))
                .await;
            let _ = sink.send(Message::Close(None)).await;
            return;
        }
    };
    let reply = json!({"status":"connected","target":format!("{host}:{port}")});
    if sink
        .send(Message::Text(reply.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let (mut rd, mut wr) = tcp.into_split();
    let limit = drop.map(|d| d.0);
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if wr.write_all(&b).await.is_err() { break; }
                }
                Some(Ok(Message::Text(t))) => {
                    if wr.write_all(t.as_bytes()).await.is_err() { break; }
                }
                Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
                _ => { let _ = wr.shutdown().await; return; }
            },
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if limit.is_some_and(|l| sent >= l) {
                        return; // injected fault: drop without a close frame
                    }
                    sent += n as u64;
                    if sink.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}
