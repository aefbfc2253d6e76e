//! The TCP proxy WebSocket: a byte stream to a host and port as seen from inside the sprite.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio_tungstenite::tungstenite::Message;

use super::error::{Error, Result};
use super::handle::SpriteHandle;

/// Buffer between the caller and the socket task.
const PIPE: usize = 256 * 1024;

/// A TCP connection relayed through the sprite (`AsyncRead + AsyncWrite`). Shutting down the
/// write side or dropping it closes the WebSocket.
#[derive(Debug)]
pub struct ProxyStream {
    io: DuplexStream,
    target: Option<String>,
}

impl ProxyStream {
    /// The `target` the server reported it connected to.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl SpriteHandle {
    /// Opens a TCP connection to `host:port` inside the sprite (e.g. `localhost`, 5432).
    pub async fn proxy(&self, host: &str, port: u16) -> Result<ProxyStream> {
        if host.is_empty() || port == 0 {
            return Err(Error::InvalidInput(format!(
                "proxy target {host}:{port} needs a host and a non-zero port"
            )));
        }
        let op = self.op("GET", "proxy (WebSocket)");
        let conn = self
            .client
            .ws_connect(&op, &self.ws_url(&["proxy"]))
            .await?;
        let mut ws = conn.ws;
        let init = serde_json::json!({ "host": host, "port": port }).to_string();
        ws.send(Message::text(init))
            .await
            .map_err(|e| Error::Transport(format!("{op}: sending the target failed: {e}")))?;
        let deadline = self.client.inner.connect_timeout;
        let reply = tokio::time::timeout(deadline, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(other)) => {
                        return Err(Error::Protocol(format!(
                            "{op}: expected the connected reply, got {other:?}"
                        )));
                    }
                    Some(Err(e)) => return Err(Error::Transport(format!("{op}: {e}"))),
                    None => {
                        return Err(Error::Protocol(format!(
                            "{op}: the server closed the proxy before connecting to {host}:{port}"
                        )));
                    }
                }
            }
        })
        .await
        .map_err(|_| Error::Timeout {
            what: format!("{op}: waiting for the proxy to connect to {host}:{port}"),
            after: deadline,
        })??;
        let v: serde_json::Value = serde_json::from_str(&reply)
            .map_err(|e| Error::Protocol(format!("{op}: the reply is not JSON ({e}): {reply}")))?;
        if v.get("status").and_then(|s| s.as_str()) != Some("connected") {
            let why = v
                .get("error")
                .or_else(|| v.get("message"))
                .and_then(|m| m.as_str())
                .unwrap_or(&reply);
            return Err(Error::Api {
                status: 502,
                message: format!("the sprite could not connect to {host}:{port}: {why}"),
                code: None,
            });
        }
        let target = v.get("target").and_then(|t| t.as_str()).map(str::to_owned);
        let (ours, theirs) = tokio::io::duplex(PIPE);
        tokio::spawn(relay(ws, theirs, self.client.inner.ping_interval));
        Ok(ProxyStream { io: ours, target })
    }
}

/// Copies between the socket and the pipe until either side ends.
async fn relay(ws: super::ws::Ws, pipe: DuplexStream, ping_interval: Duration) {
    let (mut sink, mut source) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(pipe);
    let mut buf = vec![0u8; 64 * 1024];
    let mut ping = tokio::time::interval(ping_interval);
    ping.tick().await;
    let mut reading = true;
    let mut last_seen = tokio::time::Instant::now();
    loop {
        tokio::select! {
            n = rd.read(&mut buf), if reading => match n {
                Ok(0) | Err(_) => {
                    reading = false;
                    let _ = sink.send(Message::Close(None)).await;
                }
                Ok(n) => if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() { break },
            },
            msg = source.next() => match msg.inspect(|_| last_seen = tokio::time::Instant::now()) {
                Some(Ok(Message::Binary(b))) => if wr.write_all(&b).await.is_err() { break },
                Some(Ok(Message::Text(t))) => if wr.write_all(t.as_bytes()).await.is_err() { break },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                // Pongs count as traffic: three silent intervals mean the peer is gone.
                if last_seen.elapsed() > ping_interval * 3
                    || sink.send(Message::Ping(bytes::Bytes::new())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
}
