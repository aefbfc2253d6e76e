//! Opening an authenticated WebSocket to the API (exec, attach, proxy) with the connect deadline,
//! the shared TLS configuration and the same retry rules as REST.

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use super::builder::SpritesClient;
use super::error::{Error, Result};
use super::retry::Idempotency;
use super::transport::{error_from_parts, retry_delay};

/// A connected WebSocket.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open WebSocket and what its upgrade response said.
pub(crate) struct WsConn {
    pub(crate) ws: Ws,
    /// `X-Sprite-Capabilities`, split on commas (`None` when the header was absent).
    pub(crate) capabilities: Option<Vec<String>>,
    /// `Sprite-Version`, when present.
    pub(crate) sprite_version: Option<String>,
}

impl SpritesClient {
    /// Opens `url` as a WebSocket. A refused connection or a 429 on the upgrade is retried (the
    /// server did nothing); anything else is returned. The whole handshake is bounded by the
    /// connect timeout, because connecting is what wakes a cold sprite.
    pub(crate) async fn ws_connect(&self, op: &str, url: &Url) -> Result<WsConn> {
        let mut failed = 0u32;
        loop {
            let deadline = self.inner.connect_timeout;
            let (err, refused) = match tokio::time::timeout(deadline, self.ws_connect_once(url))
                .await
            {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(Error::Timeout {
                        what: format!(
                            "{op}: opening the WebSocket (the sprite may still be waking; raise the connect timeout if this repeats)"
                        ),
                        after: deadline,
                    });
                }
            };
            failed += 1;
            match retry_delay(&self.inner.retry, Idempotency::Write, refused, &err, failed) {
                Some(wait) => {
                    self.announce(op, &err, wait, failed);
                    tokio::time::sleep(wait).await;
                }
                None => return Err(err),
            }
        }
    }

    async fn ws_connect_once(&self, url: &Url) -> Result<WsConn, (Error, bool)> {
        use tokio_tungstenite::tungstenite::Error as WsError;
        let mut request = url.as_str().into_client_request().map_err(|e| {
            (
                Error::InvalidInput(format!("bad WebSocket URL {}: {e}", redact(url))),
                false,
            )
        })?;
        let auth = HeaderValue::from_str(&self.inner.token.header_value()).map_err(|_| {
            (
                Error::InvalidInput(
                    "the Sprites token contains characters not allowed in a header".into(),
                ),
                false,
            )
        })?;
        request.headers_mut().insert("authorization", auth);
        let connector = if url.scheme() == "wss" {
            Connector::Rustls(self.inner.tls.clone())
        } else {
            Connector::Plain
        };
        match tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
            .await
        {
            Ok((ws, resp)) => {
                let header = |n: &str| {
                    resp.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                Ok(WsConn {
                    ws,
                    capabilities: header("x-sprite-capabilities").map(|v| {
                        v.split(',')
                            .map(|c| c.trim().to_ascii_lowercase())
                            .filter(|c| !c.is_empty())
                            .collect()
                    }),
                    sprite_version: header("sprite-version"),
                })
            }
            Err(WsError::Http(resp)) => {
                let status = resp.status().as_u16();
                let mut headers = reqwest::header::HeaderMap::new();
                for (k, v) in resp.headers() {
                    if let (Ok(k), Ok(v)) = (
                        reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()),
                        reqwest::header::HeaderValue::from_bytes(v.as_bytes()),
                    ) {
                        headers.insert(k, v);
                    }
                }
                let body = resp.body().clone().unwrap_or_default();
                Err((error_from_parts(status, &headers, &body), false))
            }
            Err(WsError::Io(e)) => {
                let refused = e.kind() == std::io::ErrorKind::ConnectionRefused;
                Err((
                    Error::Transport(format!(
                        "WebSocket connection to {} failed: {e}",
                        redact(url)
                    )),
                    refused,
                ))
            }
            Err(e) => Err((
                Error::Transport(format!(
                    "WebSocket handshake with {} failed: {e}",
                    redact(url)
                )),
                false,
            )),
        }
    }
}

/// The URL without its query (argv and env can be long or sensitive).
fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}
