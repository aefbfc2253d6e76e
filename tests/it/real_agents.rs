//! The real agent CLIs as a session's agent, end to end: Claude Code and Codex from npm (the
//! versions README pins, installed into /usr/local by `scripts/install-agents.sh`, which the
//! emulator's sprites see on PATH as sprites.dev's base image ships them), the real daemon, the
//! Sprites plugin and the emulator. The only stand-in is the model API: a TLS server of our own
//! answering like api.anthropic.com / api.openai.com, reached through `[upstreams."<host>"]`
//! overrides in proxy.toml; what the agent may reach at all is the default policy's.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::TestDaemon;
use crate::support::emulator::{Emulator, processes_in_sprites};
use crate::support::files::files_containing;
use crate::support::git::git;
use crate::support::home::TempHome;
use crate::support::upstream::{MODEL_REPLY, SeenRequest, Upstream};

const REAL_KEY: &str = "sk-ant-api03-real-key-0123456789abcdefghijklmnopqrstuvwxyz";
const REAL_TOKEN: &str = "sk-ant-oat01-real-token-0123456789abcdefghijklmnopqrstuvwxyz";
const REAL_OPENAI_KEY: &str = "sk-proj-real-openai-0123456789abcdefghijklmnopqrstuvwxyz";

/// Hosts the agents contact that the fake answers for (the model APIs; the others get 404s, so
/// nothing leaves loopback).
const HOSTS: [&str; 6] = [
    "api.anthropic.com",
    "platform.claude.com",
    "downloads.claude.ai",
    "raw.githubusercontent.com",
    "api.openai.com",
    "api.github.com",
];

struct Rig {
    emu: Emulator,
    upstream: Upstream,
    home: TempHome,
    d: TestDaemon,
    repo: tempfile::TempDir,
}

/// The emulator, the fake model API, a home whose default backend is sprites with `agent` as
/// its `[agent]` table (empty: the default Claude Code preset), and a daemon whose environment
/// holds `secrets` (and no other credential).
async fn rig(agent: &str, secrets: &[(&str, &str)]) -> Rig {
    crate::support::agents::ensure_installed();
    let emu = Emulator::start();
    let upstream = Upstream::start_model_api(&HOSTS).await;
    let home = TempHome::new();
    home.write_secret("sprites_api_key", emu.token(), 0o600);
    home.write_config(&format!(
        "default_backend = \"sprites\"\n[server]\nlisten = \"127.0.0.1:0\"\n{agent}\n\
         [sprites]\napi_url = \"{}\"\nhibernate_wait_seconds = 20\n",
        emu.base_url()
    ));
    upstream.write_overrides(home.path(), &HOSTS, "");
    let d = TestDaemon::start_with(&home, |c| {
        for v in [
            "ANTHROPIC_API_KEY",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "HTTPS_PROXY",
            "https_proxy",
        ] {
            c.env_remove(v);
        }
        for (k, v) in secrets {
            c.env(k, v);
        }
    });
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("README.md"), "a project\n").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    Rig {
        emu,
        upstream,
        home,
        d,
        repo,
    }
}

impl Rig {
    fn repo(&self) -> &str {
        self.repo.path().to_str().unwrap()
    }

    fn create(&self, name: &str, prompt: &str, extra: &[&str]) -> crate::support::home::Run {
        let mut args = vec![
            "create",
            "--repo",
            self.repo(),
            "--prompt",
            prompt,
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        self.home.run(&args)
    }

    /// The model requests (`/v1/messages`) whose body holds `needle`, waiting (bounded) for at
    /// least one.
    async fn messages_with(&self, needle: &str) -> Vec<SeenRequest> {
        self.messages_with_all(&[needle]).await
    }

    /// The model requests whose body holds every one of `needles`, waiting (bounded) for one.
    async fn messages_with_all(&self, needles: &[&str]) -> Vec<SeenRequest> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let hits: Vec<SeenRequest> = self
                .upstream
                .requests()
                .into_iter()
                .filter(|r| r.target.starts_with("/v1/messages?") || r.target == "/v1/messages")
                .filter(|r| {
                    let body = String::from_utf8_lossy(&r.body);
                    needles.iter().all(|n| body.contains(n))
                })
                .collect();
            if !hits.is_empty() {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "no model request with {needles:?} reached the upstream; it saw {:?}\n{}",
                self.upstream
                    .requests()
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.target))
                    .collect::<Vec<_>>(),
                self.d.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn session(&self, name: &str) -> Value {
        self.d.get(&format!("/api/sessions/{name}")).await.1
    }

    /// Waits (bounded) until the session's agent state is `state`.
    async fn agent_becomes(&self, name: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let s = self.session(name).await;
            if s["agent"]["state"] == state {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the agent of {name} never became {state}: {s:#}\n{}\n{}",
                self.home.run(&["logs", name]).stdout,
                self.d.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The `agent_state` events of a session, in order.
    async fn agent_states(&self, name: &str) -> Vec<String> {
        let (_, v) = self.d.get(&format!("/api/sessions/{name}/events")).await;
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "agent_state")
            .map(|e| e["data"]["state"].as_str().unwrap_or("null").to_owned())
            .collect()
    }

    /// No process in a sprite and no file of a sprite's disk holds `secret`.
    fn assert_sprites_never_hold(&self, secret: &str) {
        for (pid, env, cmd) in processes_in_sprites(&self.emu) {
            assert!(
                !env.contains(secret) && !cmd.contains(secret),
                "process {pid} in a sprite holds the real credential"
            );
        }
        assert_eq!(
            files_containing(self.emu.data_dir(), secret),
            Vec::<std::path::PathBuf>::new(),
            "a sprite's disk holds the real credential"
        );
    }
}

impl Rig {
    /// Types `line` into session `name`'s agent through `clauderon attach`, then Enter, and
    /// returns the body of the model request that carries it; detaches again.
    async fn say(&self, name: &str, line: &str) -> String {
        let mut a = crate::support::attached::Attached::start(&self.home, name);
        // The attach shows the agent's screen first; the agent reads keys once it is drawn.
        std::thread::sleep(Duration::from_secs(2));
        a.send(line.as_bytes());
        std::thread::sleep(Duration::from_millis(700));
        a.send(b"\r");
        let seen = self.messages_with(line).await;
        a.send(&[0x1d]);
        let _ = a.finish();
        String::from_utf8_lossy(&seen[0].body).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_runs_unattended_with_an_api_key_and_resumes_its_conversation() {
    let r = rig("", &[("ANTHROPIC_API_KEY", REAL_KEY)]).await;

    // Interactive (the default): nobody attached, the prompt still reaches the model.
    let run = r.create(
        "cc",
        "write a haiku about sprites",
        &["--backend", "sprites"],
    );
    assert_eq!(
        run.code,
        Some(0),
        "{}\n{}\n{}",
        run.stdout,
        run.stderr,
        r.d.log()
    );
    let first = r.messages_with("write a haiku about sprites").await;
    assert_eq!(first[0].one("x-api-key"), Some(REAL_KEY));
    assert_eq!(first[0].one("authorization"), None);
    let s = r.agent_becomes("cc", "idle").await;
    assert_eq!(s["status"], "running");
    let conversation = s["agent_conversation"].as_str().unwrap().to_owned();
    let states = r.agent_states("cc").await;
    let working = states.iter().position(|s| s == "working");
    let idle = states.iter().rposition(|s| s == "idle");
    assert!(
        matches!((working, idle), (Some(w), Some(i)) if w < i),
        "the agent went through working to idle: {states:?}"
    );
    // It stays alive afterwards.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = r.session("cc").await;
    assert_eq!(s["agent"]["state"], "idle", "{s:#}");
    let list = r.home.run(&["list"]);
    assert!(list.stdout.contains("idle"), "{}", list.stdout);
    // The sandbox holds placeholders only; the agent's config was merged there.
    let procs = processes_in_sprites(&r.emu);
    let agent = procs
        .iter()
        .find(|(_, env, _)| env.contains("ANTHROPIC_API_KEY=clauderon-placeholder-"))
        .expect("the agent's process is in the sprite");
    assert!(!agent.1.contains("CLAUDE_CODE_OAUTH_TOKEN="), "{}", agent.1);
    r.assert_sprites_never_hold(REAL_KEY);

    // Hibernate, then wake: the agent's process is started again on its own conversation.
    let run = r.home.run(&["hibernate", "cc"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(r.session("cc").await["agent"], Value::Null);
    let run = r.home.run(&["wake", "cc"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, r.d.log());
    let s = r.agent_becomes("cc", "idle").await;
    assert_eq!(s["agent_conversation"], conversation.as_str());
    let log = r.home.run(&["logs", "cc"]).stdout;
    assert!(
        log.contains(&format!("[agent] resuming conversation {conversation}")),
        "{log}"
    );
    let body = r.say("cc", "and now a limerick").await;
    assert!(
        body.contains("write a haiku about sprites"),
        "the request after the wake carries the first prompt in its messages"
    );

    // The agent exits (killed): status says so, attach says how to start it again, restart
    // brings it back on the same conversation.
    let pid = processes_in_sprites(&r.emu)
        .into_iter()
        .find(|(_, env, cmd)| {
            env.contains("ANTHROPIC_API_KEY=clauderon-placeholder-") && cmd.starts_with("claude")
        })
        .map(|p| p.0)
        .expect("the agent runs");
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let s = r.agent_becomes("cc", "exited").await;
    assert_eq!(s["status"], "running");
    assert_eq!(s["agent"]["code"], 137, "{s:#}");
    let st = r.home.run(&["status", "cc"]);
    assert!(st.stdout.contains("exited(137)"), "{}", st.stdout);
    let at = r.home.run(&["attach", "cc"]);
    assert_ne!(at.code, Some(0));
    assert!(
        at.stderr.contains("`clauderon restart cc` starts it again"),
        "{}",
        at.stderr
    );
    let run = r.home.run(&["restart", "cc"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, r.d.log());
    assert!(
        run.stdout
            .contains(&format!("resuming conversation {conversation}")),
        "{}",
        run.stdout
    );
    r.agent_becomes("cc", "idle").await;
    let body = r.say("cc", "one more, a sonnet").await;
    assert!(body.contains("write a haiku about sprites"));
    r.assert_sprites_never_hold(REAL_KEY);

    // --print through the same proxy: the reply on stdout, exit 0.
    let run = r.create("cc-print", "print the answer", &["--print"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, r.d.log());
    assert!(run.stdout.contains(MODEL_REPLY), "{}", run.stdout);
    let seen = r.messages_with("print the answer").await;
    assert_eq!(seen[0].one("x-api-key"), Some(REAL_KEY));
    r.assert_sprites_never_hold(REAL_KEY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_with_a_subscription_token_gets_bearer_and_never_the_token() {
    let r = rig("", &[("CLAUDE_CODE_OAUTH_TOKEN", REAL_TOKEN)]).await;
    // With a model and plan mode: both reach the agent.
    let run = r.create(
        "sub",
        "summarize the readme",
        &["--model", "claude-opus-4-5", "--plan-mode"],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, r.d.log());
    let seen = r
        .messages_with_all(&["summarize the readme", r#""model":"claude-opus-4-5""#])
        .await;
    let body = String::from_utf8_lossy(&seen[0].body).to_lowercase();
    assert!(body.contains("plan mode"), "plan mode is on: {body}");
    assert_eq!(
        seen[0].one("authorization"),
        Some(format!("Bearer {REAL_TOKEN}").as_str())
    );
    assert_eq!(seen[0].one("x-api-key"), None);
    r.agent_becomes("sub", "idle").await;
    // The agent got the OAuth placeholder (in the shape Claude Code takes for a token) and no
    // API key variable at all.
    let procs = processes_in_sprites(&r.emu);
    let agent = procs
        .iter()
        .find(|(_, env, _)| {
            env.contains("CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-clauderon-placeholder-")
        })
        .expect("the agent's process is in the sprite");
    assert!(!agent.1.contains("ANTHROPIC_API_KEY="), "{}", agent.1);
    r.assert_sprites_never_hold(REAL_TOKEN);

    // `config credentials` says which credential sessions use when both are set, and why.
    let both = r.home.run_with(&["config", "credentials"], |c| {
        c.env("ANTHROPIC_API_KEY", REAL_KEY)
            .env("CLAUDE_CODE_OAUTH_TOKEN", REAL_TOKEN);
    });
    assert_eq!(both.code, Some(0), "{}", both.stderr);
    assert!(
        both.stdout.contains(
            "claude_code_oauth_token: set, but sessions use `anthropic_api_key` for api.anthropic.com"
        ),
        "{}",
        both.stdout
    );
    assert!(!both.stdout.contains(REAL_KEY) && !both.stdout.contains(REAL_TOKEN));
    let only = r.home.run_with(&["config", "credentials"], |c| {
        c.env_remove("ANTHROPIC_API_KEY")
            .env("CLAUDE_CODE_OAUTH_TOKEN", REAL_TOKEN);
    });
    assert!(
        only.stdout
            .contains("claude_code_oauth_token: sessions use this for api.anthropic.com"),
        "{}",
        only.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_dying_at_start_fails_create_with_its_message() {
    let r = rig(
        "[agent]\ncommand = [\"claude\", \"--no-such-flag\"]\n",
        &[("ANTHROPIC_API_KEY", REAL_KEY)],
    )
    .await;
    let run = r.create("dies", "anything", &[]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("unknown option '--no-such-flag'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("clauderon restart dies"),
        "{}",
        run.stderr
    );
    let s = r.session("dies").await;
    assert_eq!(s["status"], "failed", "{s:#}");
    assert!(
        s["status_reason"]
            .as_str()
            .unwrap()
            .contains("the agent exited with code 1 before it started working"),
        "{s:#}"
    );
    assert_eq!(s["agent"]["state"], "exited");
    // The sandbox stays, so a restart can bring the agent back once the cause is fixed; with
    // the cause still there it fails again, saying why.
    assert!(s["instance_id"].is_string(), "{s:#}");
    let again = r.home.run(&["restart", "dies"]);
    assert_eq!(again.code, Some(1), "{}", again.stderr);
    assert!(again.stderr.contains("unknown option"), "{}", again.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_prints_through_the_proxy_with_the_openai_key_injected() {
    let r = rig(
        "[agent]\npreset = \"codex\"\n",
        &[("OPENAI_API_KEY", REAL_OPENAI_KEY)],
    )
    .await;
    let run = r.create("cx", "say hello", &["--print"]);
    assert_eq!(
        run.code,
        Some(0),
        "{}\n{}\n{}",
        run.stdout,
        run.stderr,
        r.d.log()
    );
    assert!(run.stdout.contains(MODEL_REPLY), "{}", run.stdout);
    let seen: Vec<SeenRequest> = r
        .upstream
        .requests()
        .into_iter()
        .filter(|q| q.target == "/v1/responses" && q.method == "POST")
        .collect();
    assert!(!seen.is_empty(), "{:?}", r.upstream.requests());
    assert!(String::from_utf8_lossy(&seen[0].body).contains("say hello"));
    assert_eq!(
        seen[0].one("authorization"),
        Some(format!("Bearer {REAL_OPENAI_KEY}").as_str())
    );
    r.assert_sprites_never_hold(REAL_OPENAI_KEY);
    let s = r.session("cx").await;
    assert_eq!(s["agent"]["state"], "exited", "{s:#}");
    assert_eq!(s["agent"]["code"], 0, "{s:#}");
}
