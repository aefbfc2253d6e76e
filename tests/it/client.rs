//! The Sprites client (`clauderon_sprites::client`) against the real emulator over loopback.
//!
//! Every test starts its own `sprites-emulator` (port 0, temporary data directory) and drives it
//! only through the client, except where a test checks the wire form itself (then it uses the
//! emulator's plain HTTP client) so that a drift of either side from the notes fails here.

// Test helpers outside #[test] functions: an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clauderon_sprites::client::{
    ClientEvent, CreateSprite, Error, ListOptions, MemoryPolicy, NetworkPolicy, PolicyRule,
    ResourcePolicy, RetryPolicy, SpriteHandle, SpriteStatus, SpritesClient, Token, UpdateSprite,
    UrlSettings, WriteOptions, fs_code,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::emulator::Emulator;

type Events = Arc<Mutex<Vec<ClientEvent>>>;

/// A client for `emu` with short backoffs that records its events.
fn client_with(
    emu: &Emulator,
    tweak: impl FnOnce(
        clauderon_sprites::client::SpritesClientBuilder,
    ) -> clauderon_sprites::client::SpritesClientBuilder,
) -> (SpritesClient, Events) {
    let events: Events = Arc::default();
    let sink = events.clone();
    let builder = SpritesClient::builder()
        .base_url(emu.base_url())
        .token(Token::new(emu.token()))
        .retry_policy(RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(400),
            max_rate_limit_wait: Duration::from_secs(10),
        })
        .on_event(move |e| sink.lock().unwrap().push(e.clone()));
    (tweak(builder).build().unwrap(), events)
}

fn client(emu: &Emulator) -> (SpritesClient, Events) {
    client_with(emu, |b| b)
}

async fn new_sprite(c: &SpritesClient, name: &str) -> SpriteHandle {
    c.create(&CreateSprite::new(name).label("clauderon"))
        .await
        .unwrap();
    c.sprite(name)
}

/// Reads a child's stdout until `needle` appears (bounded by `limit`).
async fn read_until(
    out: &mut clauderon_sprites::client::OutputStream,
    needle: &str,
    limit: Duration,
) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, out.recv()).await {
            Ok(Some(b)) => seen.push_str(&String::from_utf8_lossy(&b)),
            Ok(None) => panic!("output ended before {needle:?}: {seen:?}"),
            Err(_) => panic!("no {needle:?} within {limit:?}: {seen:?}"),
        }
    }
    seen
}

#[tokio::test]
async fn sprite_crud_and_documented_errors() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let created = c
        .create(
            &CreateSprite::new("alpha")
                .label("clauderon")
                .label("session-1")
                .url_settings(UrlSettings {
                    auth: "public".into(),
                    private_access: None,
                }),
        )
        .await
        .unwrap();
    assert!(created.id.starts_with("sprite-"), "{created:?}");
    assert_eq!(created.name, "alpha");
    assert_eq!(created.status, SpriteStatus::Cold);
    assert!(
        created
            .url
            .as_deref()
            .unwrap_or("")
            .starts_with("https://alpha-")
    );
    assert_eq!(created.url_settings.as_ref().unwrap().auth, "public");
    assert!(created.created_at.is_some());

    // Duplicate: the observed 409; invalid name: 400 with an errors list.
    let dup = c.create(&CreateSprite::new("alpha")).await.unwrap_err();
    assert_eq!(dup.status(), Some(409), "{dup}");
    assert!(dup.to_string().contains("already exists"), "{dup}");
    let bad = c
        .create(&CreateSprite::new("Not A Name!"))
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(400), "{bad}");
    assert!(bad.to_string().contains("invalid sprite name"), "{bad}");

    let handle = c.sprite("alpha");
    let version = handle.environment_version().await.unwrap();
    assert!(
        version.is_some_and(|v| !v.is_empty()),
        "no Sprite-Version on HEAD exec"
    );
    handle.upgrade().await.unwrap();
    let got = c.get("alpha").await.unwrap();
    assert_eq!(got.id, created.id);
    let mut labels = got.labels.clone();
    labels.sort();
    assert_eq!(labels, ["clauderon", "session-1"]);

    let updated = c
        .update(
            "alpha",
            &UpdateSprite {
                labels: Some(vec!["relabelled".into()]),
                url_settings: Some(UrlSettings {
                    auth: "sprite".into(),
                    private_access: None,
                }),
                ..UpdateSprite::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.labels, ["relabelled"]);
    assert_eq!(updated.url_settings.unwrap().auth, "sprite");
    let bad_auth = c
        .update(
            "alpha",
            &UpdateSprite {
                url_settings: Some(UrlSettings {
                    auth: "nobody".into(),
                    private_access: None,
                }),
                ..UpdateSprite::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad_auth.status(), Some(400), "{bad_auth}");

    c.delete("alpha").await.unwrap();
    // The observed quirk: a missing sprite answers 500 on GET; `find` still says "absent".
    let gone = c.get("alpha").await.unwrap_err();
    assert_eq!(gone.status(), Some(500), "{gone}");
    assert!(c.find("alpha").await.unwrap().is_none());
    assert_eq!(c.delete("alpha").await.unwrap_err().status(), Some(500));

    c.check_auth().await.unwrap();

    let wrong = SpritesClient::builder()
        .base_url(emu.base_url())
        .token(Token::new("wrong-token"))
        .build()
        .unwrap();
    assert_eq!(wrong.check_auth().await.unwrap_err().status(), Some(401));
    let e = wrong.get("alpha").await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(e.to_string().contains("authentication failed"), "{e}");
    assert!(!e.to_string().contains("wrong-token"));
}

#[tokio::test]
async fn list_follows_pages_and_prefix() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    for n in ["pg-a", "pg-b", "pg-c", "other"] {
        c.create(&CreateSprite::new(n).wait_for_capacity(true))
            .await
            .unwrap();
    }
    let opts = ListOptions {
        prefix: Some("pg-".into()),
        page_size: Some(1),
    };
    let first = c.list_page(&opts, None).await.unwrap();
    assert_eq!(first.sprites.len(), 1);
    assert!(first.has_more);
    assert!(first.next_token.is_some());
    let mut names: Vec<String> = c
        .list(&opts)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.sort();
    assert_eq!(names, ["pg-a", "pg-b", "pg-c"]);
    assert_eq!(c.list(&ListOptions::default()).await.unwrap().len(), 4);
}

#[tokio::test]
async fn the_other_documented_shapes_decode_too() {
    let emu = Emulator::start_args(&[
        "--quirk",
        "list-org-nested",
        "--quirk",
        "has-more-null-token",
        "--quirk",
        "sessions-array",
        "--quirk",
        "session-id-int",
        "--quirk",
        "policy200",
        "--quirk",
        "org-slug",
        "--quirk",
        "missing-sprite404",
        "--quirk",
        "duplicate400",
        "--quirk",
        "checkpoint404",
    ]);
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "shapes").await;
    let s = c.get("shapes").await.unwrap();
    assert!(s.organization.is_some(), "org_slug not read: {s:?}");
    // has_more with a null token: one page, no endless loop.
    let page = c.list_page(&ListOptions::default(), None).await.unwrap();
    assert!(page.has_more && page.next_token.is_none());
    assert!(page.org.is_some(), "nested org counters not read");
    assert_eq!(c.list(&ListOptions::default()).await.unwrap().len(), 1);
    assert!(c.find("absent").await.unwrap().is_none());
    assert_eq!(c.get("absent").await.unwrap_err().status(), Some(404));
    assert_eq!(
        c.create(&CreateSprite::new("shapes"))
            .await
            .unwrap_err()
            .status(),
        Some(400)
    );
    assert_eq!(h.checkpoint("v99").await.unwrap_err().status(), Some(404));

    let mut child = h.command("sh").arg("+m").tty(80, 24).spawn().await.unwrap();
    let info = child.session_info(Duration::from_secs(10)).await.unwrap();
    assert!(info.session_id.parse::<u64>().is_ok(), "{info:?}");
    let sessions = h.sessions().await.unwrap();
    assert!(
        sessions.iter().any(|s| s.id == info.session_id),
        "{sessions:?}"
    );
    child.signal("KILL").await.unwrap();
    let _ = child.wait().await;

    let policy = NetworkPolicy {
        rules: vec![PolicyRule {
            domain: Some("example.com".into()),
            action: Some("allow".into()),
            include: None,
        }],
    };
    h.set_network_policy(&policy).await.unwrap();
    assert_eq!(h.network_policy().await.unwrap(), policy);
}

#[tokio::test]
async fn non_tty_exec_streams_and_closes_at_the_exit_frame() {
    // The emulator lingers 5 s after the exit frame, like the real service.
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "exec").await;
    let start = Instant::now();
    let out = h
        .command("sh")
        .args(["-c", "echo out; echo err >&2; pwd; echo $HOME; exit 3"])
        .output()
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "waited for the linger"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "out\n/home/sprite\n/home/sprite\n"
    );
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit_code, 3);

    let out = h
        .command("sh")
        .args(["-c", "echo $GREETING; pwd"])
        .env("GREETING", "hello")
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/tmp")
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n/tmp\n");

    // stdin streamed in, EOF on shutdown.
    let mut child = h.command("wc").arg("-c").stdin(true).spawn().await.unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = vec![b'x'; 200_000];
    stdin.write_all(&data).await.unwrap();
    stdin.shutdown().await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200000");

    // Upload and echo at once: 4 MiB through `cat` while its output streams back.
    let mut child = h.command("cat").stdin(true).spawn().await.unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let payload: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        stdin.write_all(&sent).await.unwrap();
        stdin.shutdown().await.unwrap();
    });
    let echoed = tokio::time::timeout(Duration::from_secs(60), stdout.read_to_end())
        .await
        .expect("echo stalled");
    writer.await.unwrap();
    assert_eq!(child.wait().await.unwrap(), 0);
    assert!(
        echoed == payload,
        "echo differs ({} bytes back)",
        echoed.len()
    );

    // Keepalive: with 100 ms pings a quiet 1 s command survives only if the server answers pongs.
    let (pinging, _) = client_with(&emu, |b| b.ping_interval(Duration::from_millis(100)));
    let quiet = pinging
        .sprite("exec")
        .command("sleep")
        .arg("1")
        .status()
        .await;
    assert_eq!(quiet.unwrap(), 0);

    // Without stdin the command sees EOF at once instead of hanging.
    let out = h.command("cat").output().await.unwrap();
    assert!(out.success() && out.stdout.is_empty());

    // A program that cannot run is an exit code (127 from the shell), not a transport failure.
    let code = h
        .command("sh")
        .args(["-c", "/no/such/program"])
        .status()
        .await
        .unwrap();
    assert_eq!(code, 127);

    // The emulator itself cannot start a missing program: its stderr message and exit 127
    // must arrive every time (the client sends stdin EOF at once; an unread byte once made the
    // emulator's close reset the connection and lose the exit frame).
    for _ in 0..10 {
        let out = h.command("/no/such/program").output().await.unwrap();
        assert_eq!(out.exit_code, 127);
        assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    }
}

#[tokio::test]
async fn tty_exec_resizes_and_reports_exit() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "tty").await;
    let mut child = h.command("sh").arg("+m").tty(80, 24).spawn().await.unwrap();
    let info = child.session_info(Duration::from_secs(10)).await.unwrap();
    assert_eq!(info.tty, Some(true));
    let mut stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    child.resize(120, 40).unwrap();
    stdin
        .write_all(b"stty size; test -t 0 && echo term-$((1+1))\r")
        .await
        .unwrap();
    // `term-2` is printed after `stty size`, so once it is seen both are in the text.
    let seen = read_until(&mut stdout, "term-2", Duration::from_secs(10)).await;
    assert!(seen.contains("40 120"), "resize not applied: {seen:?}");
    stdin.write_all(b"exit 5\r").await.unwrap();
    assert_eq!(child.wait().await.unwrap(), 5);
}

#[tokio::test]
async fn detached_tty_sessions_list_reattach_replay_and_kill() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "sessions").await;

    let mut child = h.command("sh").arg("+m").tty(80, 24).spawn().await.unwrap();
    let id = child
        .session_info(Duration::from_secs(10))
        .await
        .unwrap()
        .session_id;
    let mut stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo marker-$((40+2))\r").await.unwrap();
    read_until(&mut stdout, "marker-42", Duration::from_secs(10)).await;
    drop((stdin, stdout));
    child.detach();

    let listed = h.sessions().await.unwrap();
    let s = listed
        .iter()
        .find(|s| s.id == id)
        .expect("detached session listed");
    assert_eq!(s.tty, Some(true));

    let mut again = h.attach(&id).await.unwrap();
    let info = again.session_info(Duration::from_secs(10)).await.unwrap();
    assert_eq!(info.session_id, id);
    let mut stdout = again.stdout.take().unwrap();
    // Recent output is replayed on attach.
    read_until(&mut stdout, "marker-42", Duration::from_secs(10)).await;
    let mut stdin = again.stdin.take().unwrap();
    stdin.write_all(b"exit 7\r").await.unwrap();
    drop(stdout);
    assert_eq!(again.wait().await.unwrap(), 7);

    // A second session, detached, then killed through the NDJSON kill endpoint.
    let mut sleeper = h
        .command("sleep")
        .arg("600")
        .tty(80, 24)
        .spawn()
        .await
        .unwrap();
    let sid = sleeper
        .session_info(Duration::from_secs(10))
        .await
        .unwrap()
        .session_id;
    sleeper.detach();
    let outcome = h
        .kill_session(&sid, "SIGTERM", Duration::from_secs(2))
        .await
        .unwrap();
    assert!(!outcome.already_exited);
    let kinds: Vec<&str> = outcome.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"signal"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"complete"), "{kinds:?}");
    let still = h.sessions().await.unwrap();
    assert!(
        !still
            .iter()
            .any(|s| s.id == sid && s.is_active == Some(true)),
        "{still:?}"
    );
    let e = h
        .kill_session("no-such-session", "SIGTERM", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

#[tokio::test]
async fn http_exec_runs_small_commands() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "httpexec").await;
    let out = h
        .command("sh")
        .args(["-c", "cat; echo warn >&2; exit 4"])
        .output_http(Some(b"from-stdin\n".to_vec()))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"from-stdin\n");
    assert_eq!(out.stderr, b"warn\n");
    assert_eq!(out.exit_code, 4);
    let out = h.command("echo").arg("hi").output_http(None).await.unwrap();
    assert_eq!(out.stdout, b"hi\n");
}

#[tokio::test]
async fn checkpoints_really_restore_files() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "ckpt").await;
    h.write_file(
        "/home/sprite/state.txt",
        b"before".to_vec(),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let mut progress = Vec::new();
    let created = h
        .create_checkpoint(Some("before change"), |e| progress.push(e.kind.clone()))
        .await
        .unwrap();
    assert_eq!(created.id, "v1");
    assert_eq!(progress.last().map(String::as_str), Some("complete"));

    // The wire order itself: newest first, the Current pseudo-entry on top.
    let raw = emu.get_json("/v1/sprites/ckpt/checkpoints").await;
    let ids: Vec<&str> = raw
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["Current", "v1", "v0"]);

    let list = h.checkpoints().await.unwrap();
    assert!(list[0].is_current());
    assert_eq!(list[1].id, "v1");
    assert_eq!(list[1].comment.as_deref(), Some("before change"));
    assert_eq!(h.checkpoint("v1").await.unwrap().id, "v1");
    let missing = h.checkpoint("v99").await.unwrap_err();
    assert_eq!(missing.status(), Some(500), "{missing}");

    h.write_file(
        "/home/sprite/state.txt",
        b"after".to_vec(),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    h.write_file(
        "/home/sprite/new.txt",
        b"new".to_vec(),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let events = h.restore_checkpoint("v1", |_| {}).await.unwrap();
    assert_eq!(events.last().unwrap().kind, "complete");
    assert_eq!(
        &h.read_file("/home/sprite/state.txt").await.unwrap()[..],
        b"before"
    );
    assert!(h.stat("/home/sprite/new.txt").await.unwrap().is_none());
    let out = h
        .command("cat")
        .arg("/home/sprite/state.txt")
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"before");

    // A restore of a missing id: HTTP 200 with an in-stream error, which is an error.
    let e = h.restore_checkpoint("v42", |_| {}).await.unwrap_err();
    assert!(matches!(e, Error::InStream { .. }), "{e:?}");

    let second = h.create_checkpoint(None, |_| {}).await.unwrap();
    assert_eq!(second.id, "v2");
    // The active checkpoint cannot be deleted (409); an older one can.
    let active = h.delete_checkpoint("v2").await.unwrap_err();
    assert!(active.is_conflict(), "{active}");
    h.delete_checkpoint("v1").await.unwrap();
    let ids: Vec<String> = h
        .checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["Current", "v2", "v0"]);
}

#[tokio::test]
async fn filesystem_read_write_list_stat_rename_delete() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "files").await;
    let w = h
        .write_file(
            "project/src/main.rs",
            b"fn main() {}\n".to_vec(),
            &WriteOptions {
                mode: Some(0o600),
                mkdir_parents: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(w.size, 13);
    assert_eq!(w.path, "/home/sprite/project/src/main.rs");
    let bytes = h
        .read_file("/home/sprite/project/src/main.rs")
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"fn main() {}\n");
    // The same file, seen by a process in the sprite.
    let out = h
        .command("stat")
        .args(["-c", "%a", "project/src/main.rs"])
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "600");

    let entries = h.list_dir("project").await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].name, "src");
    assert!(entries[0].is_dir);
    let st = h.stat("project/src/main.rs").await.unwrap().unwrap();
    assert_eq!(st.kind, "file");
    assert_eq!(st.mode_bits(), Some(0o600));
    assert!(h.stat("project/src").await.unwrap().unwrap().is_dir);
    assert!(h.stat("project/nothing").await.unwrap().is_none());

    let missing = h.read_file("project/nothing").await.unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
    assert_eq!(fs_code(&missing), Some("ENOENT"));
    let no_parent = h
        .write_file("deep/er/x", b"x".to_vec(), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(no_parent.status().is_some_and(|s| s >= 400), "{no_parent}");

    h.rename("project/src/main.rs", "project/lib.rs")
        .await
        .unwrap();
    assert!(h.stat("project/src/main.rs").await.unwrap().is_none());
    assert_eq!(
        &h.read_file("project/lib.rs").await.unwrap()[..],
        b"fn main() {}\n"
    );
    h.delete_path("project", true).await.unwrap();
    assert!(h.stat("project").await.unwrap().is_none());
    let e = h.delete_path("project", true).await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

#[tokio::test]
async fn network_policy_round_trips() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "policy").await;
    assert!(h.network_policy().await.unwrap().rules.is_empty());
    let policy = NetworkPolicy {
        rules: vec![
            PolicyRule {
                domain: Some("*.github.com".into()),
                action: Some("allow".into()),
                include: None,
            },
            PolicyRule {
                include: Some("defaults".into()),
                ..PolicyRule::default()
            },
        ],
    };
    h.set_network_policy(&policy).await.unwrap();
    assert_eq!(h.network_policy().await.unwrap(), policy);
}

#[tokio::test]
async fn resource_policy_round_trips() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "resources").await;
    assert_eq!(
        h.resource_policy().await.unwrap(),
        ResourcePolicy::default()
    );
    let policy = ResourcePolicy {
        memory: Some(MemoryPolicy {
            limit_mb: 1024,
            autoscale: true,
        }),
    };
    h.set_resource_policy(&policy).await.unwrap();
    assert_eq!(h.resource_policy().await.unwrap(), policy);
    h.clear_resource_policy().await.unwrap();
    assert_eq!(
        h.resource_policy().await.unwrap(),
        ResourcePolicy::default()
    );
    let zero = ResourcePolicy {
        memory: Some(MemoryPolicy {
            limit_mb: 0,
            autoscale: false,
        }),
    };
    assert!(matches!(
        h.set_resource_policy(&zero).await,
        Err(Error::InvalidInput(_))
    ));
    // What the service refuses comes back as its 400 with the message.
    let too_small = ResourcePolicy {
        memory: Some(MemoryPolicy {
            limit_mb: 1,
            autoscale: false,
        }),
    };
    let e = h.set_resource_policy(&too_small).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.to_string().contains("memory.limit_mb"), "{e}");
}

#[tokio::test]
async fn tcp_proxy_reaches_a_port_inside_the_sprite() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "proxy").await;
    // A one-connection upper-casing echo server inside the sprite (perl is in every base image).
    let server = "use IO::Socket::INET; $|=1; my $s=IO::Socket::INET->new(LocalAddr=>'127.0.0.1:7777',Listen=>1,ReuseAddr=>1) or die $!; print \"ready\\n\"; my $c=$s->accept; while(sysread($c,my $b,4096)){syswrite($c,uc $b)}";
    let mut child = h
        .command("perl")
        .args(["-e", server])
        .spawn()
        .await
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    read_until(&mut stdout, "ready", Duration::from_secs(10)).await;
    let mut stream = h.proxy("localhost", 7777).await.unwrap();
    stream.write_all(b"through the sprite").await.unwrap();
    let mut buf = vec![0u8; 18];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, b"THROUGH THE SPRITE");
    drop(stream);
    assert_eq!(child.wait().await.unwrap(), 0);

    // Nothing listens there: the proxy reports it instead of handing back a dead stream.
    assert!(h.proxy("localhost", 7778).await.is_err());
}

#[tokio::test]
async fn lifecycle_states_and_restart_persistence() {
    let mut emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "life").await;
    h.write_file("keep.txt", b"kept".to_vec(), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(c.get("life").await.unwrap().status, SpriteStatus::Running);
    emu.force_state("life", "cold").await;
    assert_eq!(c.get("life").await.unwrap().status, SpriteStatus::Cold);
    // Any sprite-env call wakes it.
    assert!(h.command("true").output().await.unwrap().success());
    assert_eq!(c.get("life").await.unwrap().status, SpriteStatus::Running);

    emu.restart();
    let (c, _) = client(&emu);
    let h = c.sprite("life");
    assert_eq!(c.get("life").await.unwrap().name, "life");
    assert_eq!(&h.read_file("keep.txt").await.unwrap()[..], b"kept");
}

#[tokio::test]
async fn fault_rate_limit_is_waited_out_and_reported() {
    let emu = Emulator::start();
    let (c, events) = client(&emu);
    new_sprite(&c, "limited").await;
    emu.add_fault(serde_json::json!({"kind":"rate_limit","method":"GET","path":"/v1/sprites/limited","times":1,"retry_after":1}))
        .await;
    let start = Instant::now();
    c.get("limited").await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "Retry-After not honoured"
    );
    let ev = events.lock().unwrap().clone();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].to_string(), "waiting 1s (rate limited)");

    // A WebSocket upgrade answered 429 is retried the same way (the exec never started).
    let h = c.sprite("limited");
    emu.add_fault(serde_json::json!({"kind":"rate_limit","method":"GET","path":"/v1/sprites/limited/exec","times":1,"retry_after":1}))
        .await;
    let start = Instant::now();
    assert_eq!(
        h.command("echo").arg("ok").output().await.unwrap().stdout,
        b"ok\n"
    );
    assert!(start.elapsed() >= Duration::from_millis(950));
    assert_eq!(events.lock().unwrap().len(), 2);

    // A create refused by the rate limit is repeated (nothing was created), and the typed error
    // carries the limit details when the wait is longer than the client will sit out.
    emu.add_fault(serde_json::json!({"kind":"rate_limit","method":"POST","path":"/v1/sprites","times":1,"retry_after":3600,"limit":10,"window_seconds":60}))
        .await;
    match c.create(&CreateSprite::new("later")).await.unwrap_err() {
        Error::RateLimited {
            retry_after,
            limit,
            window,
            code,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)));
            assert_eq!(limit, Some(10));
            assert_eq!(window, Some(Duration::from_secs(60)));
            assert_eq!(code.as_deref(), Some("sprite_creation_rate_limited"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn fault_500_surfaces_on_reads_and_create_recovers_by_name() {
    let emu = Emulator::start();
    let (c, events) = client(&emu);
    new_sprite(&c, "five").await;
    emu.add_fault(serde_json::json!({"kind":"error","status":500,"method":"GET","path":"/v1/sprites/five","times":1}))
        .await;
    let e = c.get("five").await.unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert!(e.to_string().contains("injected fault"), "{e}");
    // A gateway error on a read is retried.
    emu.add_fault(serde_json::json!({"kind":"error","status":503,"method":"GET","path":"/v1/sprites/five","times":1}))
        .await;
    c.get("five").await.unwrap();
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ClientEvent::Retrying { .. }))
    );

    // An ambiguous create: the client looks the name up; absent, so it creates again.
    events.lock().unwrap().clear();
    emu.add_fault(serde_json::json!({"kind":"error","status":500,"method":"POST","path":"/v1/sprites","times":1}))
        .await;
    let s = c
        .create(&CreateSprite::new("six").label("clauderon"))
        .await
        .unwrap();
    assert_eq!(s.name, "six");
    let ev = events.lock().unwrap().clone();
    assert!(
        matches!(&ev[0], ClientEvent::CreateRecovering { name, .. } if name == "six"),
        "{ev:?}"
    );
    assert_eq!(c.list(&ListOptions::default()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn fault_dropped_socket_is_not_a_success() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "dropped").await;
    emu.add_fault(
        serde_json::json!({"kind":"drop_ws","path":"/v1/sprites/dropped/exec","times":1}),
    )
    .await;
    let e = h.command("echo").arg("hi").output().await.unwrap_err();
    assert!(matches!(e, Error::ExecEndedWithoutExit), "{e:?}");
    // The next exec is unaffected.
    assert_eq!(
        h.command("echo").arg("hi").output().await.unwrap().stdout,
        b"hi\n"
    );
}

#[tokio::test]
async fn fault_latency_is_absorbed_or_times_out() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    new_sprite(&c, "slow").await;
    emu.add_fault(serde_json::json!({"kind":"latency","ms":400,"method":"GET","path":"/v1/sprites/slow","times":1}))
        .await;
    let start = Instant::now();
    c.get("slow").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(400));

    // Slower than the request deadline: a read times out and is retried.
    let (impatient, events) = client_with(&emu, |b| b.request_timeout(Duration::from_millis(300)));
    emu.add_fault(serde_json::json!({"kind":"latency","ms":2000,"method":"GET","path":"/v1/sprites/slow","times":1}))
        .await;
    impatient.get("slow").await.unwrap();
    let ev = events.lock().unwrap().clone();
    assert!(
        matches!(&ev[..], [ClientEvent::Retrying { reason, .. }] if reason.contains("timed out")),
        "{ev:?}"
    );
    // A write is not retried after a timeout: the outcome is unknown.
    emu.add_fault(serde_json::json!({"kind":"latency","ms":2000,"method":"PUT","path":"/v1/sprites/slow","times":1}))
        .await;
    let e = impatient
        .update(
            "slow",
            &UpdateSprite {
                labels: Some(vec!["x".into()]),
                ..UpdateSprite::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn fault_slow_wake_needs_the_long_connect_timeout() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "sleepy").await;
    emu.force_state("sleepy", "cold").await;
    emu.add_fault(
        serde_json::json!({"kind":"slow_wake","ms":1500,"path":"/v1/sprites/sleepy","times":1}),
    )
    .await;
    let start = Instant::now();
    assert!(h.command("true").output().await.unwrap().success());
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "wake was not slow"
    );

    emu.force_state("sleepy", "cold").await;
    emu.add_fault(
        serde_json::json!({"kind":"slow_wake","ms":3000,"path":"/v1/sprites/sleepy","times":1}),
    )
    .await;
    let (hasty, _) = client_with(&emu, |b| b.connect_timeout(Duration::from_millis(500)));
    let e = hasty
        .sprite("sleepy")
        .command("true")
        .output()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn exec_headers_signals_large_output_and_attach_errors() {
    let emu = Emulator::start();
    let (c, _) = client(&emu);
    let h = new_sprite(&c, "bulk").await;

    // 16 MiB of stdout arrives intact and in order.
    let child = h
        .command("head")
        .args(["-c", "16777216", "/dev/zero"])
        .spawn()
        .await
        .unwrap();
    assert!(child.sprite_version().is_some(), "no Sprite-Version header");
    assert!(
        child
            .capabilities()
            .is_some_and(|c| c.iter().any(|c| c == "signal")),
        "no X-Sprite-Capabilities: signal"
    );
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.stdout.len(), 16 * 1024 * 1024);
    assert!(out.stdout.iter().all(|&b| b == 0));
    assert_eq!(out.exit_code, 0);

    // A signal over the exec socket ends a non-TTY command.
    let mut child = h
        .command("sh")
        .args([
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo armed; while :; do sleep 0.1; done",
        ])
        .spawn()
        .await
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    read_until(&mut stdout, "armed", Duration::from_secs(10)).await;
    let control = child.control();
    control.signal("TERM").await.unwrap();
    read_until(&mut stdout, "got-term", Duration::from_secs(10)).await;
    assert_eq!(child.wait().await.unwrap(), 42);

    // Attaching to a session that does not exist is a 404, not a silent new exec.
    let e = h.attach("999999").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(h.sessions().await.unwrap().is_empty());

    // A non-TTY exec dropped by its client ends after max_run_after_disconnect.
    let mut child = h
        .command("sleep")
        .arg("300")
        .max_run_after_disconnect(Duration::from_secs(1))
        .spawn()
        .await
        .unwrap();
    let id = child
        .session_info(Duration::from_secs(10))
        .await
        .map(|i| i.session_id);
    drop(child);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let sessions = h.sessions().await.unwrap();
        if sessions.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "session {id:?} still running 15 s after a 1 s max_run_after_disconnect: {sessions:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
