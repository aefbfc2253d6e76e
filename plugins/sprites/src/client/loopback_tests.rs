//! Transport tests against small loopback servers, for edge cases the emulator does not produce
//! on demand: list shapes and tokens, numeric ids, 429/Retry-After, ambiguous creates, sockets that
//! close without an exit frame, lingering sockets, in-stream errors, attach framing, proxy.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::fixture::{Counter, authed, client, serve};
use super::*;

fn json_resp(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn ndjson(lines: &[serde_json::Value]) -> Response {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    (
        StatusCode::OK,
        [("content-type", "application/x-ndjson")],
        body,
    )
        .into_response()
}

#[tokio::test]
async fn list_stops_on_repeated_token_and_accepts_numeric_ids() {
    let hits = Counter::default();
    let app = Router::new()
        .route(
            "/v1/sprites",
            get(|State(hits): State<Counter>, headers: HeaderMap| async move {
                assert!(authed(&headers));
                let n = hits.bump();
                json_resp(
                    StatusCode::OK,
                    json!({"sprites":[{"id": n, "name": format!("s{n}")}], "has_more": true, "next_continuation_token": "same"}),
                )
            }),
        )
        .with_state(hits.clone());
    let (c, _) = client(&serve(app).await);
    let all = c.list(&ListOptions::default()).await.unwrap();
    // Page 1 gives token "same", page 2 repeats it: stop after two pages, not loop forever.
    assert_eq!(hits.get(), 2);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].id, "1");
}

#[tokio::test]
async fn list_stops_on_null_token_with_has_more_and_reads_org_block() {
    let hits = Counter::default();
    let app = Router::new()
        .route(
            "/v1/sprites",
            get(|State(hits): State<Counter>, Query(q): Query<Vec<(String, String)>>| async move {
                hits.bump();
                assert!(q.iter().any(|(k, v)| k == "prefix" && v == "ab"));
                assert!(q.iter().any(|(k, v)| k == "max_results" && v == "50"));
                json_resp(
                    StatusCode::OK,
                    json!({"sprites":[], "has_more": true, "next_continuation_token": null, "org": {"running": 1, "running_limit": 3}}),
                )
            }),
        )
        .with_state(hits.clone());
    let (c, _) = client(&serve(app).await);
    let opts = ListOptions {
        prefix: Some("ab".into()),
        page_size: None,
    };
    assert!(c.list(&opts).await.unwrap().is_empty());
    assert_eq!(hits.get(), 1);
    let page = c.list_page(&opts, None).await.unwrap();
    assert_eq!(page.org.unwrap().running_limit, Some(3));
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_and_reports_it() {
    let hits = Counter::default();
    let app = Router::new()
        .route(
            "/v1/sprites/{name}",
            get(|State(hits): State<Counter>| async move {
                if hits.bump() == 0 {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1"), ("content-type", "application/json")],
                        json!({"error":"sprite_creation_rate_limited","message":"too many","limit":10,"window_seconds":60,"retry_after_seconds":1}).to_string(),
                    )
                        .into_response();
                }
                json_resp(StatusCode::OK, json!({"id":"sprite-1","name":"a","status":"warm"}))
            }),
        )
        .with_state(hits.clone());
    let (c, events) = client(&serve(app).await);
    let start = Instant::now();
    let s = c.get("a").await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "did not honour Retry-After"
    );
    assert_eq!(s.status, SpriteStatus::Warm);
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].to_string(), "waiting 1s (rate limited)");
}

#[tokio::test]
async fn rate_limit_beyond_the_wait_cap_is_returned_typed() {
    let app = Router::new().route(
        "/v1/sprites",
        post(|| async {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "3600")],
                json!({"error":"concurrent_sprite_limit_exceeded","message":"3 running","limit":3,"current_count":3}).to_string(),
            )
        }),
    );
    let (c, events) = client(&serve(app).await);
    match c.create(&CreateSprite::new("a")).await.unwrap_err() {
        Error::RateLimited {
            retry_after,
            limit,
            code,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)));
            assert_eq!(limit, Some(3));
            assert_eq!(code.as_deref(), Some("concurrent_sprite_limit_exceeded"));
        }
        other => panic!("{other:?}"),
    }
    assert!(events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn ambiguous_create_adopts_the_sprite_when_labels_match() {
    let posts = Counter::default();
    let app = Router::new()
        .route(
            "/v1/sprites",
            post(|State(posts): State<Counter>| async move {
                posts.bump();
                // The sprite was created but the answer was lost behind a gateway error.
                json_resp(StatusCode::BAD_GATEWAY, json!({"error":"upstream timeout"}))
            }),
        )
        .route(
            "/v1/sprites/{name}",
            get(|| async {
                json_resp(
                    StatusCode::OK,
                    json!({"id":"sprite-9","name":"mine","labels":["clauderon","session-1"]}),
                )
            }),
        )
        .with_state(posts.clone());
    let (c, events) = client(&serve(app).await);
    let req = CreateSprite::new("mine")
        .label("session-1")
        .label("clauderon");
    let s = c.create(&req).await.unwrap();
    assert_eq!(s.id, "sprite-9");
    assert_eq!(posts.get(), 1, "a create must never be blindly repeated");
    let ev = events.lock().unwrap().clone();
    assert!(matches!(ev[0], ClientEvent::CreateRecovering { .. }));
    assert_eq!(
        ev[1],
        ClientEvent::CreateAdopted {
            name: "mine".into()
        }
    );
}

#[tokio::test]
async fn ambiguous_create_refuses_a_foreign_sprite_and_retries_an_absent_one() {
    let foreign = Router::new()
        .route(
            "/v1/sprites",
            post(|| async { json_resp(StatusCode::BAD_GATEWAY, json!({"error":"x"})) }),
        )
        .route(
            "/v1/sprites/{name}",
            get(|| async {
                json_resp(
                    StatusCode::OK,
                    json!({"id":"s","name":"n","labels":["other"]}),
                )
            }),
        );
    let (c, _) = client(&serve(foreign).await);
    let e = c
        .create(&CreateSprite::new("n").label("mine"))
        .await
        .unwrap_err();
    assert!(
        e.is_conflict() && e.to_string().contains("labels differ"),
        "{e}"
    );

    // Absent after a 503 (the service quirk: 500 on GET, confirmed through the list): create again.
    let posts = Counter::default();
    let absent = Router::new()
        .route(
            "/v1/sprites",
            post(|State(posts): State<Counter>| async move {
                if posts.bump() == 0 {
                    json_resp(StatusCode::SERVICE_UNAVAILABLE, json!({"error":"busy"}))
                } else {
                    json_resp(
                        StatusCode::CREATED,
                        json!({"id":"sprite-2","name":"n","status":"cold"}),
                    )
                }
            })
            .get(|| async { json_resp(StatusCode::OK, json!({"sprites":[],"has_more":false})) }),
        )
        .route(
            "/v1/sprites/{name}",
            get(|| async {
                json_resp(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error":"failed to retrieve sprite"}),
                )
            }),
        )
        .with_state(posts.clone());
    let (c, _) = client(&serve(absent).await);
    let s = c.create(&CreateSprite::new("n")).await.unwrap();
    assert_eq!(s.status, SpriteStatus::Cold);
    assert_eq!(posts.get(), 2);
}

#[tokio::test]
async fn duplicate_create_is_a_conflict() {
    let app = Router::new().route(
        "/v1/sprites",
        post(|| async {
            json_resp(
                StatusCode::CONFLICT,
                json!({"error":"A sprite named 'a' already exists. Please choose a different name."}),
            )
        }),
    );
    let (c, _) = client(&serve(app).await);
    let e = c.create(&CreateSprite::new("a")).await.unwrap_err();
    assert!(e.is_conflict());
    assert!(e.to_string().contains("already exists"));
}

#[tokio::test]
async fn refused_connections_are_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (c, events) = client(&format!("http://127.0.0.1:{port}"));
    let e = c.delete("x").await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    // Writes are retried on refusal: nothing reached the server.
    assert_eq!(events.lock().unwrap().len(), 2);
    assert!(!e.to_string().contains(super::fixture::TOKEN));
}

#[tokio::test]
async fn bad_token_is_an_api_error() {
    let app = Router::new().route(
        "/v1/sprites/{name}",
        get(|| async {
            json_resp(
                StatusCode::UNAUTHORIZED,
                json!({"error":"authentication failed"}),
            )
        }),
    );
    let (c, events) = client(&serve(app).await);
    let e = c.get("a").await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(events.lock().unwrap().is_empty());
}

/// A WebSocket route whose handler gets the socket and the query.
fn ws_route<F, Fut>(path: &str, f: F) -> Router
where
    F: Fn(WebSocket, Vec<(String, String)>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Router::new().route(
        path,
        get(
            move |ws: WebSocketUpgrade,
                  Query(q): Query<Vec<(String, String)>>,
                  headers: HeaderMap| {
                let f = f.clone();
                async move {
                    if !authed(&headers) {
                        return json_resp(
                            StatusCode::UNAUTHORIZED,
                            json!({"error":"authentication failed"}),
                        );
                    }
                    let mut resp = ws.on_upgrade(move |s| f(s, q));
                    resp.headers_mut()
                        .insert("x-sprite-capabilities", "signal".parse().unwrap());
                    resp
                }
            },
        ),
    )
}

fn frame(kind: u8, data: &[u8]) -> Message {
    let mut v = vec![kind];
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

#[tokio::test]
async fn non_tty_exec_streams_stdin_and_exits_without_waiting_for_the_linger() {
    let app = ws_route("/v1/sprites/{name}/exec", |mut ws, q| async move {
        assert!(q.contains(&("cmd".into(), "cat".into())));
        assert!(q.contains(&("path".into(), "cat".into())));
        assert!(q.contains(&("tty".into(), "false".into())));
        assert!(q.contains(&("stdin".into(), "true".into())));
        assert!(q.contains(&("env".into(), "A=1".into())));
        assert!(q.contains(&("dir".into(), "/tmp".into())));
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m {
                match b[0] {
                    0x00 => ws.send(frame(0x01, &b[1..])).await.unwrap(),
                    0x04 => {
                        ws.send(frame(0x02, b"bye")).await.unwrap();
                        ws.send(frame(0x03, &[7])).await.unwrap();
                        // The real service lingers about 5 s before closing.
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        return;
                    }
                    _ => {}
                }
            }
        }
    });
    let (c, _) = client(&serve(app).await);
    let mut child = c
        .sprite("s")
        .command("cat")
        .env("A", "1")
        .current_dir("/tmp")
        .stdin(true)
        .spawn()
        .await
        .unwrap();
    assert_eq!(child.capabilities(), Some(&["signal".to_owned()][..]));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello").await.unwrap();
    stdin.shutdown().await.unwrap();
    let start = Instant::now();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "waited for the server's linger"
    );
    assert_eq!(out.stdout, b"hello");
    assert_eq!(out.stderr, b"bye");
    assert_eq!(out.exit_code, 7);
}

#[tokio::test]
async fn a_socket_closed_without_exit_is_never_exit_zero() {
    let app = ws_route("/v1/sprites/{name}/exec", |mut ws, _| async move {
        ws.send(frame(0x01, b"partial")).await.unwrap();
        ws.send(Message::Close(None)).await.unwrap();
    });
    let (c, _) = client(&serve(app).await);
    let e = c.sprite("s").command("true").output().await.unwrap_err();
    assert!(matches!(e, Error::ExecEndedWithoutExit), "{e:?}");

    let dropped = ws_route("/v1/sprites/{name}/exec", |ws, _| async move { drop(ws) });
    let (c, _) = client(&serve(dropped).await);
    let e = c.sprite("s").command("true").status().await.unwrap_err();
    assert!(matches!(e, Error::ExecEndedWithoutExit), "{e:?}");
}

#[tokio::test]
async fn tty_exec_uses_raw_bytes_and_json_control() {
    let app = ws_route("/v1/sprites/{name}/exec", |mut ws, q| async move {
        assert!(q.contains(&("tty".into(), "true".into())));
        assert!(q.contains(&("cols".into(), "100".into())));
        assert!(q.contains(&("rows".into(), "30".into())));
        ws.send(Message::Text(
            json!({"type":"session_info","session_id":"abc","command":"bash","created":1700000000,"cols":100,"rows":30,"is_owner":true,"tty":true}).to_string().into(),
        ))
        .await
        .unwrap();
        let mut seen = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Binary(b) => ws.send(Message::Binary(b)).await.unwrap(),
                Message::Text(t) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    seen.push(v.clone());
                    if v["type"] == "signal" {
                        assert_eq!(seen[0], json!({"type":"resize","cols":120,"rows":40}));
                        assert_eq!(v["signal"], "TERM");
                        ws.send(Message::Text(
                            json!({"type":"exit","exit_code":143}).to_string().into(),
                        ))
                        .await
                        .unwrap();
                    }
                }
                _ => {}
            }
        }
    });
    let (c, _) = client(&serve(app).await);
    let mut child = c
        .sprite("s")
        .command("bash")
        .tty(100, 30)
        .spawn()
        .await
        .unwrap();
    let info = child.session_info(Duration::from_secs(5)).await.unwrap();
    assert_eq!(info.session_id, "abc");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"ls\r").await.unwrap();
    assert_eq!(&stdout.recv().await.unwrap()[..], b"ls\r");
    child.resize(120, 40).unwrap();
    child.signal("SIGTERM").await.unwrap();
    assert_eq!(child.wait().await.unwrap(), 143);
}

#[tokio::test]
async fn attach_buffers_output_until_session_info_says_the_framing() {
    let app = ws_route("/v1/sprites/{name}/exec/{id}", |mut ws, q| async move {
        assert!(q.is_empty(), "attach must not send cmd/path/env");
        // Replayed output arrives before session_info; its framing is only known afterwards.
        ws.send(frame(0x01, b"old ")).await.unwrap();
        ws.send(Message::Text(
            json!({"type":"session_info","session_id":42,"tty":false})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        ws.send(frame(0x01, b"new")).await.unwrap();
        ws.send(frame(0x03, &[0])).await.unwrap();
    });
    let (c, _) = client(&serve(app).await);
    let child = c.sprite("s").attach("42").await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.stdout, b"old new");
    assert_eq!(out.exit_code, 0);
}

#[tokio::test]
async fn keepalive_pings_flow_and_a_silent_server_is_declared_dead() {
    let app = ws_route("/v1/sprites/{name}/exec", |ws, _| async move {
        // Never read (so no pongs) and never write: the client must give up on its own.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(ws);
    });
    let base = serve(app).await;
    let c = SpritesClient::builder()
        .base_url(&base)
        .token(Token::new(super::fixture::TOKEN))
        .ping_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let start = Instant::now();
    let e = c
        .sprite("s")
        .command("sleep")
        .arg("99")
        .status()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn http_exec_parses_chunk_frames() {
    let app = Router::new().route(
        "/v1/sprites/{name}/exec",
        post(
            |Query(q): Query<Vec<(String, String)>>, body: Bytes| async move {
                assert!(q.contains(&("stdin".into(), "true".into())));
                assert!(!q.iter().any(|(k, _)| k == "tty"));
                let frames: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(Bytes::from([&[1u8][..], &body[..]].concat())),
                    Ok(Bytes::from_static(b"\x02warn")),
                    Ok(Bytes::from_static(b"\x03\x03")),
                ];
                let stream = futures::stream::iter(frames).then(|f| async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    f
                });
                Response::new(axum::body::Body::from_stream(stream))
            },
        ),
    );
    let (c, _) = client(&serve(app).await);
    let out = c
        .sprite("s")
        .command("cat")
        .output_http(Some(b"data".to_vec()))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"data");
    assert_eq!(out.stderr, b"warn");
    assert_eq!(out.exit_code, 3);
}

#[tokio::test]
async fn restore_error_in_stream_is_an_error_despite_http_200() {
    let app = Router::new()
        .route(
            "/v1/sprites/{name}/checkpoints/{id}/restore",
            post(|| async {
                ndjson(&[
                    json!({"type":"info","data":"Restoring from checkpoint v9...","time":"2026-01-31T10:00:00Z"}),
                    json!({"type":"error","error":"Failed to restore checkpoint: checkpoint v9 not found","time":"2026-01-31T10:00:00Z"}),
                ])
            }),
        )
        .route(
            "/v1/sprites/{name}/checkpoint",
            post(|body: Bytes| async move {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v, json!({"comment":"before"}));
                ndjson(&[
                    json!({"type":"info","data":"Creating checkpoint..."}),
                    json!({"type":"info","data":"  ID: v3"}),
                    json!({"type":"complete","data":"Checkpoint v3 created successfully"}),
                ])
            }),
        );
    let (c, _) = client(&serve(app).await);
    let h = c.sprite("s");
    let mut seen = Vec::new();
    let e = h
        .restore_checkpoint("v9", |ev| seen.push(ev.kind.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InStream { message } if message.contains("not found")),
        "{e:?}"
    );
    assert_eq!(seen, ["info", "error"]);
    let mut progress = 0;
    let created = h
        .create_checkpoint(Some("before"), |_| progress += 1)
        .await
        .unwrap();
    assert_eq!(created.id, "v3");
    assert_eq!(progress, 3);
}

#[tokio::test]
async fn session_list_shapes_and_kill_gone() {
    let app = Router::new()
        .route(
            "/v1/sprites/{name}/exec",
            get(|| async {
                json_resp(
                    StatusCode::OK,
                    json!([{"id": 17, "command":"bash","tty":true,"is_active":false}]),
                )
            }),
        )
        .route(
            "/v1/sprites/{name}/exec/{id}/kill",
            post(|| async { json_resp(StatusCode::GONE, json!({"error":"session exited"})) }),
        );
    let (c, _) = client(&serve(app).await);
    let h = c.sprite("s");
    let list = h.sessions().await.unwrap();
    assert_eq!(list[0].id, "17");
    let k = h
        .kill_session("17", "SIGTERM", Duration::from_secs(1))
        .await
        .unwrap();
    assert!(k.already_exited);
}

#[tokio::test]
async fn proxy_relays_bytes_after_connected() {
    let app = ws_route("/v1/sprites/{name}/proxy", |mut ws, _| async move {
        let Some(Ok(Message::Text(init))) = ws.next().await else {
            panic!("no init")
        };
        let v: serde_json::Value = serde_json::from_str(init.as_str()).unwrap();
        assert_eq!(v, json!({"host":"localhost","port":5432}));
        ws.send(Message::Text(
            json!({"status":"connected","target":"localhost:5432"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m {
                let mut up = b.to_vec();
                up.make_ascii_uppercase();
                ws.send(Message::Binary(up.into())).await.unwrap();
            }
        }
    });
    let (c, _) = client(&serve(app).await);
    let mut s = c.sprite("s").proxy("localhost", 5432).await.unwrap();
    assert_eq!(s.target(), Some("localhost:5432"));
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"PING");
}

#[tokio::test]
async fn fs_sends_documented_parameters() {
    let app = Router::new()
        .route(
            "/v1/sprites/{name}/fs/write",
            axum::routing::put(|Query(q): Query<Vec<(String, String)>>, body: Bytes| async move {
                assert!(q.contains(&("mode".into(), "0640".into())));
                assert!(q.contains(&("mkdirParents".into(), "true".into())));
                assert!(q.contains(&("workingDir".into(), "/home/sprite".into())));
                json_resp(StatusCode::OK, json!({"path":"/home/sprite/a/b","size":body.len(),"mode":"0640"}))
            }),
        )
        .route(
            "/v1/sprites/{name}/fs/list",
            get(|Query(q): Query<Vec<(String, String)>>| async move {
                if q.contains(&("path".into(), "/nope".into())) {
                    return json_resp(StatusCode::NOT_FOUND, json!({"error":"not found","code":"ENOENT","path":"/nope"}));
                }
                json_resp(StatusCode::OK, json!({"path":"/home/sprite/a","entries":[{"name":"b","path":"/home/sprite/a/b","type":"file","size":2,"mode":"0640","isDir":false}],"count":1}))
            }),
        );
    let (c, _) = client(&serve(app).await);
    let h = c.sprite("s");
    let w = h
        .write_file(
            "a/b",
            b"hi".to_vec(),
            &WriteOptions {
                mode: Some(0o640),
                mkdir_parents: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(w.size, 2);
    let st = h.stat("a/b").await.unwrap().unwrap();
    assert_eq!(st.mode_bits(), Some(0o640));
    assert!(h.stat("/nope/x").await.unwrap().is_none());
}

/// A TLS acceptor for `localhost` with a fresh self-signed certificate (returned as DER).
fn tls_acceptor() -> (tokio_rustls::TlsAcceptor, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der = ck.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone().into()], key)
        .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        cert_der,
    )
}

#[tokio::test]
async fn https_and_wss_work_with_the_ring_tls_config() {
    let (acceptor, ca) = tls_acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // Peek at the request head to tell REST from a WebSocket upgrade.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                assert!(text.contains("authorization: bearer fixture-token"));
                if text.contains("upgrade: websocket") {
                    // The key is case-sensitive: take it from the original bytes.
                    let orig = String::from_utf8_lossy(&head).to_string();
                    let key = orig
                        .lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:"))
                        .map(|l| l.split_once(':').unwrap().1.trim().to_owned())
                        .unwrap();
                    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                        key.as_bytes(),
                    );
                    let resp = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
                    );
                    tls.write_all(resp.as_bytes()).await.unwrap();
                    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        tls,
                        tokio_tungstenite::tungstenite::protocol::Role::Server,
                        None,
                    )
                    .await;
                    use futures::SinkExt;
                    let m = |v: Vec<u8>| tokio_tungstenite::tungstenite::Message::binary(v);
                    ws.send(m(b"\x01secure".to_vec())).await.unwrap();
                    ws.send(m(vec![3, 0])).await.unwrap();
                    let _ = ws.next().await;
                } else {
                    let body = r#"{"id":"sprite-t","name":"t","status":"running"}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    tls.write_all(resp.as_bytes()).await.unwrap();
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    let c = SpritesClient::builder()
        .base_url(format!("https://localhost:{port}"))
        .token(Token::new(super::fixture::TOKEN))
        .add_root_certificate(ca)
        .build()
        .unwrap();
    assert!(c.ws_url().starts_with("wss://localhost:"));
    assert_eq!(c.get("t").await.unwrap().status, SpriteStatus::Running);
    let out = c.sprite("t").command("x").output().await.unwrap();
    assert_eq!(out.stdout, b"secure");

    // Without the test CA the same server is refused (the web roots do not trust it).
    let untrusting = SpritesClient::builder()
        .base_url(format!("https://localhost:{port}"))
        .token(Token::new(super::fixture::TOKEN))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    assert!(matches!(
        untrusting.get("t").await.unwrap_err(),
        Error::Transport(_)
    ));
}

#[tokio::test]
async fn signal_falls_back_to_the_kill_endpoint_without_the_capability() {
    let killed = std::sync::Arc::new(tokio::sync::Notify::new());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let (k1, k2, s1) = (killed.clone(), killed.clone(), seen.clone());
    let app = Router::new()
        .route(
            "/v1/sprites/{name}/exec",
            get(move |ws: WebSocketUpgrade| {
                let killed = k1.clone();
                async move {
                    let mut resp = ws.on_upgrade(move |mut ws| async move {
                        ws.send(Message::Text(
                            json!({"type":"session_info","session_id":"s7","tty":false})
                                .to_string()
                                .into(),
                        ))
                        .await
                        .unwrap();
                        killed.notified().await;
                        ws.send(frame(0x03, &[130])).await.unwrap();
                        let _ = ws.next().await;
                    });
                    resp.headers_mut()
                        .insert("x-sprite-capabilities", "resize".parse().unwrap());
                    resp
                }
            }),
        )
        .route(
            "/v1/sprites/{name}/exec/{id}/kill",
            post(move |Query(q): Query<Vec<(String, String)>>| {
                let (killed, seen) = (k2.clone(), s1.clone());
                async move {
                    seen.lock().unwrap().extend(q);
                    killed.notify_one();
                    ndjson(&[
                        json!({"type":"signal","message":"sent SIGINT","signal":"SIGINT","pid":9}),
                        json!({"type":"complete","exit_code":130}),
                    ])
                }
            }),
        );
    let (c, _) = client(&serve(app).await);
    let mut child = c
        .sprite("s")
        .command("sleep")
        .arg("9")
        .spawn()
        .await
        .unwrap();
    assert_eq!(
        child
            .session_info(Duration::from_secs(5))
            .await
            .unwrap()
            .session_id,
        "s7"
    );
    child.signal("int").await.unwrap();
    assert_eq!(child.wait().await.unwrap(), 130);
    let q = seen.lock().unwrap().clone();
    assert!(q.contains(&("signal".into(), "SIGINT".into())), "{q:?}");
}

#[tokio::test]
async fn a_conflict_after_our_own_ambiguous_attempt_is_adopted() {
    // Attempt 1 is lost (502) and the lookup races it (404); attempt 2 then collides with what
    // attempt 1 created (409): that sprite is ours when its labels match.
    let (posts, gets) = (Counter::default(), Counter::default());
    let app = Router::new()
        .route(
            "/v1/sprites",
            post(|State((posts, _)): State<(Counter, Counter)>| async move {
                if posts.bump() == 0 {
                    json_resp(StatusCode::BAD_GATEWAY, json!({"error":"lost"}))
                } else {
                    json_resp(StatusCode::CONFLICT, json!({"error":"A sprite named 'r' already exists. Please choose a different name."}))
                }
            }),
        )
        .route(
            "/v1/sprites/{name}",
            get(|State((_, gets)): State<(Counter, Counter)>| async move {
                if gets.bump() == 0 {
                    json_resp(StatusCode::NOT_FOUND, json!({"error":"sprite not found"}))
                } else {
                    json_resp(StatusCode::OK, json!({"id":"sprite-r","name":"r","labels":["mine"]}))
                }
            }),
        )
        .with_state((posts.clone(), gets.clone()));
    let (c, events) = client(&serve(app).await);
    let s = c
        .create(&CreateSprite::new("r").label("mine"))
        .await
        .unwrap();
    assert_eq!(s.id, "sprite-r");
    assert_eq!(posts.get(), 2);
    assert!(
        events
            .lock()
            .unwrap()
            .contains(&ClientEvent::CreateAdopted { name: "r".into() })
    );
}
