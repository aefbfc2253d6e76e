//! A sprite's network policy is enforced: its only way out is the emulator's egress proxy (on the
//! sprite's loopback, in every exec's default environment), which checks each destination
//! against `policy/network` and drops open connections a new policy denies. The destinations
//! here are HTTP servers on the host's loopback, reached under names mapped with
//! `--egress-host` (private addresses are otherwise never reachable).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::emulator::Emulator;

/// An HTTP server on the host: `/slow` streams a byte every 100 ms for 20 s, anything else
/// answers `hello from <Host>`. Counts the requests it got.
async fn server() -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&buf).to_string();
                let host = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Host: ").or(l.strip_prefix("host: ")))
                    .unwrap_or("?")
                    .to_owned();
                if head.starts_with("GET /slow ") {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
                        .await;
                    for _ in 0..200 {
                        if s.write_all(b"x").await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    return;
                }
                let body = format!("hello from {host}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, hits)
}

/// Runs `sh -c script` in the sprite (default environment): stdout and stderr together.
async fn sh(emu: &Emulator, sprite: &str, script: &str) -> String {
    emu.exec_http(sprite, &["sh", "-c", &format!("{script} 2>&1")])
        .await
        .0
}

async fn set_policy(emu: &Emulator, sprite: &str, rules: Value) {
    let path = format!("/v1/sprites/{sprite}/policy/network");
    assert_eq!(emu.post_json(&path, &json!({ "rules": rules })).await, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_policy_decides_what_a_sprite_reaches() {
    let (port, hits) = server().await;
    let emu = Emulator::start_args(&[
        "--egress-host",
        "allowed.test=127.0.0.1",
        "--egress-host",
        "denied.test=127.0.0.1",
    ]);
    let info = emu.get_json("/_emulator/info").await;
    if info["sandbox"] != "namespaces" {
        // Without namespaces sprites use the host's network: the policy cannot be enforced,
        // and the emulator says so.
        assert_eq!(info["egress"]["enforced"], false, "{info}");
        assert!(
            info["egress"]["note"]
                .as_str()
                .unwrap()
                .contains("stored only")
        );
        return;
    }
    assert_eq!(info["egress"]["enforced"], true, "{info}");
    assert_eq!(
        emu.post_json("/v1/sprites", &json!({"name": "net"})).await,
        201
    );
    let get = |host: &str| format!("curl -sS -m 10 http://{host}:{port}/hi; echo \" rc=$?\"");

    // No rules: unrestricted, through the proxy in the default environment.
    let out = sh(&emu, "net", "echo $HTTPS_PROXY").await;
    assert_eq!(out.trim(), "http://127.0.0.1:3129");
    let out = sh(&emu, "net", &get("allowed.test")).await;
    assert!(
        out.contains(&format!("hello from allowed.test:{port} rc=0")),
        "{out}"
    );
    // No way around it: the sprite's network has nothing but lo.
    let out = sh(
        &emu,
        "net",
        &format!("curl -sS -m 5 --noproxy '*' http://127.0.0.1:{port}/; echo rc=$?"),
    )
    .await;
    assert!(out.contains("rc=7"), "{out}");
    // Private addresses are never reachable, even unrestricted (a cloud metadata address, and
    // the host's loopback where this test's server listens).
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://127.0.0.1:{port}/"),
    ] {
        let out = sh(
            &emu,
            "net",
            &format!("curl -sS -m 5 -i --noproxy '' {url}; echo rc=$?"),
        )
        .await;
        assert!(
            out.contains("403 Forbidden") && out.contains("is a private address"),
            "{out}"
        );
    }
    let served = hits.load(Ordering::SeqCst);
    assert_eq!(served, 1, "only the allowed request reached the server");

    // An allowlist: the allowed name passes (plain and CONNECT), everything else is refused.
    set_policy(
        &emu,
        "net",
        json!([{"domain": "allowed.test", "action": "allow"}, {"domain": "*", "action": "deny"}]),
    )
    .await;
    let out = sh(&emu, "net", &get("allowed.test")).await;
    assert!(out.contains("hello from allowed.test"), "{out}");
    let out = sh(
        &emu,
        "net",
        &format!("curl -sS -m 10 --proxytunnel http://allowed.test:{port}/t; echo \" rc=$?\""),
    )
    .await;
    assert!(
        out.contains("hello from allowed.test") && out.contains("rc=0"),
        "{out}"
    );
    let out = sh(
        &emu,
        "net",
        &format!("curl -sS -m 10 -i http://denied.test:{port}/; echo rc=$?"),
    )
    .await;
    assert!(
        out.contains("403 Forbidden") && out.contains("denied by the rule `deny *`"),
        "{out}"
    );
    let out = sh(
        &emu,
        "net",
        &format!("curl -sS -m 10 --proxytunnel http://denied.test:{port}/; echo \" rc=$?\""),
    )
    .await;
    assert!(out.contains("403") && !out.contains("rc=0"), "{out}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        served + 2,
        "denied requests never arrive"
    );

    // A policy change applies live: an open download from a host now denied is cut off.
    let started = Instant::now();
    let script = format!(
        "curl -sS -m 60 -o /tmp/slow http://allowed.test:{port}/slow & pid=$!; \
         sleep 1; echo change > /tmp/ready; wait $pid; echo \"rc=$? got=$(wc -c < /tmp/slow)\""
    );
    let run = sh(&emu, "net", &script);
    let change = async {
        // Wait until the download is under way, then deny everything.
        loop {
            let out = sh(&emu, "net", "cat /tmp/ready 2>/dev/null").await;
            if out.contains("change") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        set_policy(&emu, "net", json!([{"domain": "*", "action": "deny"}])).await;
    };
    let (out, ()) = tokio::join!(run, change);
    let took = started.elapsed();
    assert!(!out.contains("rc=0"), "the download was not cut off: {out}");
    let got: usize = out
        .split("got=")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(usize::MAX);
    assert!(got < 200, "{out}");
    assert!(took < Duration::from_secs(15), "{took:?}: {out}");
    // And new connections follow the new policy.
    let out = sh(&emu, "net", &get("allowed.test")).await;
    assert!(
        out.contains("blocked by the sprite's network policy: allowed.test is denied"),
        "{out}"
    );
}
