//! The egress proxy's connections: an HTTP proxy (`CONNECT host:port`, or an absolute-form
//! `GET http://host/...`) that checks each destination against the sprite's network policy
//! before it connects from the emulator's own network, and drops a connection whose host a
//! later policy change denies.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::SpriteEgress;
use super::rules::{Decision, Rules};

/// Largest request head accepted.
const MAX_HEAD: usize = 32 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to the destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Names the operator mapped to addresses (`--egress-host NAME=IP`).
pub type HostMap = BTreeMap<String, IpAddr>;

/// Where a client wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
}

impl Target {
    fn ip(&self) -> Option<IpAddr> {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

/// Whether `ip` is loopback, private, link-local, shared (CGNAT), unspecified, multicast or
/// otherwise not a public address: the service never lets a sprite reach those.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The addresses to connect to for `t`, or why the policy refuses it.
async fn admit(
    t: &Target,
    rules: &Rules,
    eg: &SpriteEgress,
    hosts: &HostMap,
) -> Result<Vec<SocketAddr>, String> {
    if let Some(ip) = t.ip() {
        if is_private(ip) {
            return Err(format!("{ip} is a private address"));
        }
        if !rules.unrestricted() && !eg.was_resolved(ip) {
            return Err(format!(
                "{ip} is a raw IP address that no allowed name resolved to"
            ));
        }
        return Ok(vec![SocketAddr::new(ip, t.port)]);
    }
    let host = t.host.trim_end_matches('.').to_ascii_lowercase();
    match rules.decide(&host) {
        Decision::Allow => {}
        Decision::Deny(rule) => return Err(format!("{host} is denied by the rule `{rule}`")),
        Decision::Unlisted => return Err(format!("{host} matches no allow rule")),
    }
    // An operator's mapping may name a private address on purpose (a local test server).
    if let Some(ip) = hosts.get(&host) {
        return Ok(vec![SocketAddr::new(*ip, t.port)]);
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), t.port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .filter(|a| !is_private(a.ip()))
        .collect();
    if found.is_empty() {
        return Err(format!("{host} resolves to no public address"));
    }
    eg.remember_resolved(found.iter().map(SocketAddr::ip));
    Ok(found)
}

/// Whether `t` is still allowed under `rules` (after a policy change).
fn still_allowed(t: &Target, rules: &Rules, eg: &SpriteEgress) -> bool {
    match t.ip() {
        Some(ip) => rules.unrestricted() || eg.was_resolved(ip),
        None => rules.decide(&t.host) == Decision::Allow,
    }
}

async fn read_head(client: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = buf.split_off(end + 4);
                return Some((buf, rest));
            }
            if buf.len() > MAX_HEAD {
                return None;
            }
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, read)
        .await
        .ok()
        .flatten()
}

async fn answer(client: &mut TcpStream, status: &str, text: &str) {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = client.write_all(resp.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// `host:port` (a port is required), `[v6]:port` included.
fn parse_authority(a: &str, default_port: Option<u16>) -> Option<Target> {
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => {
            (h, p.parse().ok()?)
        }
        _ => (a, default_port?),
    };
    (!host.is_empty() && port != 0).then(|| Target {
        host: host.to_owned(),
        port,
    })
}

/// The request head for the origin: origin-form request line, no proxy or connection headers,
/// `Connection: close` (one request per proxied connection).
fn origin_head(method: &str, path: &str, version: &str, lines: &[&str]) -> Vec<u8> {
    let mut out = format!("{method} {path} {version}\r\n");
    for l in lines {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive"
        ) {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Serves one client of the egress proxy.
pub async fn serve(
    mut client: TcpStream,
    eg: Arc<SpriteEgress>,
    hosts: Arc<HostMap>,
    urls: tokio::sync::mpsc::UnboundedSender<crate::sprite_url::UrlConn>,
) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or("");
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        answer(&mut client, "400 Bad Request", "malformed request line\n").await;
        return;
    };
    let headers: Vec<&str> = lines.collect();
    let (target, forward) = if method.eq_ignore_ascii_case("CONNECT") {
        (parse_authority(uri, None), None)
    } else {
        match url::Url::parse(uri) {
            Ok(u) if u.scheme() == "http" => {
                let host = u.host_str().unwrap_or("").to_owned();
                let path = match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_owned(),
                };
                let t = u.port_or_known_default().map(|port| Target { host, port });
                (t, Some(origin_head(method, &path, version, &headers)))
            }
            _ => (None, None),
        }
    };
    let Some(target) = target else {
        answer(
            &mut client,
            "400 Bad Request",
            "this is the sprite's egress proxy: use CONNECT host:port or an absolute http:// URL\n",
        )
        .await;
        return;
    };
    let mut rules_rx = eg.subscribe();
    let rules = rules_rx.borrow_and_update().clone();
    let host = target.host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(name) = crate::sprite_url::sprite_of(&host) {
        // Another sprite's URL: the emulator answers it (under this sprite's policy).
        let why = match rules.decide(&host) {
            Decision::Allow => None,
            Decision::Deny(rule) => Some(format!("{host} is denied by the rule `{rule}`")),
            Decision::Unlisted => Some(format!("{host} matches no allow rule")),
        };
        if let Some(why) = why {
            let msg = format!("blocked by the sprite's network policy: {why}\n");
            answer(&mut client, "403 Forbidden", &msg).await;
            return;
        }
        if forward.is_some() || target.port != 443 {
            let msg = "sprite URLs are https on port 443: use CONNECT\n";
            answer(&mut client, "400 Bad Request", msg).await;
            return;
        }
        if client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let conn = crate::sprite_url::UrlConn {
            sprite: name.to_owned(),
            host,
            client,
        };
        // Served by the app's own task (it wakes sprites, whose egress lives here).
        let _ = urls.send(conn);
        return;
    }
    let addrs = match admit(&target, &rules, &eg, &hosts).await {
        Ok(a) => a,
        Err(why) => {
            tracing::info!("egress of a sprite refused: {why}");
            answer(
                &mut client,
                "403 Forbidden",
                &format!("blocked by the sprite's network policy: {why}\n"),
            )
            .await;
            return;
        }
    };
    let upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addrs[..])).await;
    let mut upstream = match upstream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let msg = format!("cannot connect to {}:{}: {e}\n", target.host, target.port);
            answer(&mut client, "502 Bad Gateway", &msg).await;
            return;
        }
        Err(_) => {
            let msg = format!("connecting to {}:{} timed out\n", target.host, target.port);
            answer(&mut client, "504 Gateway Timeout", &msg).await;
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let sent = match &forward {
        None => client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_ok(),
        Some(h) => upstream.write_all(h).await.is_ok(),
    };
    if !sent || (!rest.is_empty() && upstream.write_all(&rest).await.is_err()) {
        return;
    }
    // Relay until either side ends, or a policy change denies the destination.
    let revoked = async {
        loop {
            if rules_rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            let now = rules_rx.borrow_and_update().clone();
            if !still_allowed(&target, &now, &eg) {
                tracing::info!(
                    "egress to {}:{} dropped: the sprite's policy now denies it",
                    target.host,
                    target.port
                );
                return;
            }
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = revoked => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(a.parse().unwrap()), "{a}");
        }
        for a in ["1.1.1.1", "140.82.112.3", "2606:4700::1111"] {
            assert!(!is_private(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn authorities_and_origin_heads() {
        assert_eq!(
            parse_authority("example.com:443", None),
            Some(Target {
                host: "example.com".into(),
                port: 443
            })
        );
        assert_eq!(
            parse_authority("[::1]:8080", None).unwrap().ip(),
            Some("::1".parse().unwrap())
        );
        assert_eq!(parse_authority("example.com", None), None);
        assert_eq!(parse_authority("example.com:0", None), None);
        let h = origin_head(
            "GET",
            "/x?y=1",
            "HTTP/1.1",
            &[
                "Host: a.test",
                "Proxy-Connection: keep-alive",
                "Accept: */*",
            ],
        );
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "GET /x?y=1 HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }
}
