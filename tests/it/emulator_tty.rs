//! TTY exec sessions in the emulator's sandbox: the program itself is the session leader with the
//! PTY as its controlling terminal (inside the sprite's PID namespace), so an interactive shell
//! gets job control and its own exit code, and signals (control message, ^C) still reach it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::emulator::Emulator;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(20);

async fn create(emu: &Emulator, name: &str) {
    let r = emu
        .http_client()
        .post(format!("{}/v1/sprites", emu.base_url()))
        .bearer_auth(emu.token())
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn tty(emu: &Emulator, sprite: &str, argv: &[&str]) -> Ws {
    let mut url =
        reqwest::Url::parse(&format!("{}/v1/sprites/{sprite}/exec", emu.ws_url())).unwrap();
    for a in argv {
        url.query_pairs_mut().append_pair("cmd", a);
    }
    url.query_pairs_mut()
        .append_pair("tty", "true")
        .append_pair("cols", "80")
        .append_pair("rows", "24");
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", emu.token()).parse().unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Reads until the output contains `needle` (or the exit message); returns the exit code if the
/// session ended.
async fn read_until(w: &mut Ws, needle: &str, acc: &mut String) -> Option<i64> {
    tokio::time::timeout(WAIT, async {
        while !acc.contains(needle) {
            match w.next().await {
                Some(Ok(Message::Binary(b))) => acc.push_str(&String::from_utf8_lossy(&b)),
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "exit" {
                        return v["exit_code"].as_i64();
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended before {needle:?} (got {acc:?}): {other:?}"),
            }
        }
        None
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; got {acc:?}"))
}

async fn read_exit(w: &mut Ws, acc: &mut String) -> i64 {
    read_until(w, "\u{0}never\u{0}", acc)
        .await
        .unwrap_or_else(|| panic!("no exit message; output {acc:?}"))
}

async fn send(w: &mut Ws, bytes: &[u8]) {
    w.send(Message::Binary(bytes.to_vec().into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_interactive_shell_owns_its_terminal_and_exits_with_its_code() {
    let emu = Emulator::start();
    create(&emu, "itty").await;
    let mut w = tty(&emu, "itty", &["sh"]).await;
    let mut acc = String::new();
    send(&mut w, b"echo $((6*7))-answer\r").await;
    assert_eq!(read_until(&mut w, "42-answer", &mut acc).await, None);
    // The shell itself leads the terminal's session (`s` in ps's STAT; before the fix it was a
    // plain member of the intermediate's session and could not take the terminal back).
    send(&mut w, b"ps -o stat= -p $$; echo pgrp-$((1+1))\r").await;
    read_until(&mut w, "pgrp-2", &mut acc).await;
    assert!(
        acc.contains("\r\nSs\r\npgrp-2"),
        "the shell does not lead its session: {acc:?}"
    );
    send(&mut w, b"exit 5\r").await;
    let code = read_exit(&mut w, &mut acc).await;
    let lower = acc.to_lowercase();
    for bad in [
        "cannot set tty process group",
        "can't access tty",
        "job control turned off",
        "cannot set terminal process group",
    ] {
        assert!(!lower.contains(bad), "{bad:?} in {acc:?}");
    }
    assert_eq!(code, 5, "output: {acc:?}");
}

#[tokio::test]
async fn signals_reach_a_tty_session_by_control_message_and_by_ctrl_c() {
    let emu = Emulator::start();
    create(&emu, "sigs").await;
    let script = "trap 'echo got-int; exit 7' INT; echo ready; while :; do sleep 0.1; done";
    // The control message.
    let mut w = tty(&emu, "sigs", &["sh", "-c", script]).await;
    let mut acc = String::new();
    read_until(&mut w, "ready", &mut acc).await;
    w.send(Message::Text(
        json!({"type": "signal", "signal": "INT"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let code = read_exit(&mut w, &mut acc).await;
    assert!(acc.contains("got-int"), "{acc:?}");
    assert_eq!(code, 7, "{acc:?}");
    // ^C typed at the terminal: the line discipline signals the foreground process group.
    let mut w = tty(&emu, "sigs", &["sh", "-c", script]).await;
    let mut acc = String::new();
    read_until(&mut w, "ready", &mut acc).await;
    send(&mut w, b"\x03").await;
    let code = read_exit(&mut w, &mut acc).await;
    assert!(acc.contains("got-int"), "{acc:?}");
    assert_eq!(code, 7, "{acc:?}");
}
