//! The CLI through the real `clauderon` binary: what it checks locally before any daemon is
//! contacted (bad flags, bad config, confirmation), local commands (config, completions), and,
//! with the daemon and the `local` test backend, the whole session lifecycle.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use crate::support::artifacts::{artifacts, fixture};
use crate::support::attached::Attached;
use crate::support::git::git_repo;
use crate::support::home::{Run, TempHome, assert_exit};

/// Nothing was made: no daemon started (no daemon.json, no log), no database.
fn assert_nothing_created(home: &TempHome) {
    for f in ["daemon.json", "db.sqlite", "api-token", "logs/daemon.log"] {
        assert!(
            !home.path().join(f).exists(),
            "{f} exists, but nothing should have been created"
        );
    }
}

#[test]
fn every_bad_create_value_is_a_usage_error_naming_the_flag_and_nothing_is_created() {
    let home = TempHome::new();
    home.install_plugin("ok", &fixture("fixture_ok"));
    home.write_config("default_backend = \"ok\"\n");
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();
    let not_git = tempfile::tempdir().unwrap();
    let not_git_s = not_git.path().to_str().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--cpu-limit", "0"],
            &["--cpu-limit", "`0`", "more than 0 and at most 256"],
        ),
        (
            &["--cpu-limit", "two"],
            &["--cpu-limit", "a number of CPUs"],
        ),
        (
            &["--memory-limit", "512"],
            &["--memory-limit", "missing unit", "512M"],
        ),
        (
            &["--memory-limit", "2X"],
            &["--memory-limit", "unknown unit"],
        ),
        (
            &["--memory-limit", "1M"],
            &["--memory-limit", "minimum of 64M"],
        ),
        (
            &["--hibernation-timeout", "10m"],
            &["--hibernation-timeout", "5m, 15m, 30m, 1h, 2h, 6h, never"],
        ),
        (
            &["--build-cache", "cargo,carg"],
            &[
                "--build-cache",
                "`carg`",
                "cargo, npm, yarn, bun, pip, docker",
            ],
        ),
        (
            &["--cache-scope", "global"],
            &["--cache-scope", "`project` or `session`"],
        ),
        (&["--model", "two words"], &["--model", "one word"]),
        (&["--name", "Bad_Name"], &["--name", "lowercase letters"]),
        (
            &["--name=x-"],
            &["--name", "must start with a letter or digit"],
        ),
        (&["--prompt", "  "], &["--prompt", "empty"]),
        (
            &["--repo", "/nonexistent/clauderon-repo"],
            &["--repo", "/nonexistent/clauderon-repo"],
        ),
        (
            &["--repo", not_git_s],
            &["--repo", "not inside a git repository"],
        ),
        (
            &["--backend", "nope"],
            &["--backend", "`nope`", "available: ok"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["create"];
        for (flag, value) in [("--repo", repo_s), ("--prompt", "do it")] {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend_from_slice(extra);
        let run = home.run(&args);
        assert_exit(&run, 2);
        for n in *needles {
            assert!(
                run.stderr.contains(n),
                "{extra:?}: missing {n:?} in:\n{}",
                run.stderr
            );
        }
        assert!(run.stdout.is_empty(), "{extra:?}: {}", run.stdout);
        assert_nothing_created(&home);
    }

    // clap's own usage errors: a missing prompt, an unknown flag.
    let run = home.run(&["create", "--repo", repo_s]);
    assert_exit(&run, 2);
    assert!(run.stderr.contains("--prompt"), "{}", run.stderr);
    let run = home.run(&["create", "--prompt", "x", "--cpus", "2"]);
    assert_exit(&run, 2);
    assert_nothing_created(&home);

    // No backend selected anywhere.
    home.write_config("");
    let run = home.run(&["create", "--repo", repo_s, "--prompt", "x"]);
    assert_exit(&run, 2);
    assert!(run.stderr.contains("no backend selected"), "{}", run.stderr);
    assert_nothing_created(&home);
}

#[test]
fn bad_config_is_reported_with_file_line_and_column() {
    let home = TempHome::new();
    home.write_config("default_backend = \"ok\"\n[server]\nlisten = \"0.0.0.0:3030\"\n");
    let file = home.path().join("config.toml");
    for args in [
        &["config", "show"][..],
        &["list"],
        &["create", "--prompt", "x"],
        &["plugins", "list"],
    ] {
        let run = home.run(args);
        assert_exit(&run, 1);
        let want = format!(
            "{}:3:10: `server.listen`: the API listens on loopback only",
            file.display()
        );
        assert!(run.stderr.contains(&want), "{args:?}:\n{}", run.stderr);
    }
    home.write_config("[agent]\npreset = \"claude\"\ncommnd = [\"x\"]\n");
    let run = home.run(&["config", "show"]);
    assert_exit(&run, 1);
    assert!(
        run.stderr.contains(&format!("{}:3:1", file.display())) && run.stderr.contains("commnd"),
        "{}",
        run.stderr
    );
    assert_nothing_created(&home);
}

#[test]
fn config_show_redacts_secrets_and_applies_plugin_defaults() {
    let home = TempHome::new();
    home.install_plugin("ok", &fixture("fixture_ok"));
    home.write_config(
        "default_backend = \"ok\"\n[secrets]\ngithub_token = \"ghp_literal_secret_value_123\"\n\
         [ok]\n\n[other]\napi_token = \"other-secret-value-456\"\nregion = \"eu\"\n",
    );
    let run = home.run(&["config", "show"]);
    assert_exit(&run, 0);
    for secret in ["ghp_literal_secret_value_123", "other-secret-value-456"] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{run:?}"
        );
    }
    assert!(run.stdout.contains("[redacted]"), "{}", run.stdout);
    // The ok plugin's declared default is shown as the plugin receives it.
    assert!(
        run.stdout.contains("greeting = \"fixture\""),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("region = \"eu\""), "{}", run.stdout);
    // The literal secret is worth a warning naming where it is and a better place.
    assert!(
        run.stderr
            .contains("secret `github_token` is written in config.toml"),
        "{}",
        run.stderr
    );

    let run = home.run(&["config", "show", "--json"]);
    assert_exit(&run, 0);
    let v = run.json();
    assert_eq!(v["secrets"]["github_token"], "[redacted]");
    assert_eq!(v["backends"]["other"]["api_token"], "[redacted]");
    assert_eq!(v["backends"]["ok"]["greeting"], "fixture");
    assert_eq!(v["default_backend"], "ok");
    assert_eq!(v["server"]["listen"], "127.0.0.1:3030");
}

#[test]
fn config_paths_lists_every_file() {
    let home = TempHome::new();
    let run = home.run(&["config", "paths"]);
    assert_exit(&run, 0);
    let root = home.path().display().to_string();
    for name in [
        "config",
        "secrets",
        "database",
        "daemon",
        "api_token",
        "installation_id",
        "logs",
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains(&root)),
            "{name}:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("config.toml  (missing)"),
        "{}",
        run.stdout
    );
    let v = home.run(&["config", "paths", "--json"]).json();
    let plugins = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "plugins")
        .unwrap();
    assert_eq!(plugins["exists"], true);
    assert_eq!(plugins["path"], format!("{root}/plugins"));
}

#[test]
fn config_credentials_names_sources_checks_the_plugin_and_never_prints_values() {
    let home = TempHome::new();
    home.install_plugin("ok", &fixture("fixture_ok"));
    let run = home.run_with(&["config", "credentials", "--json"], |c| {
        c.env("OK_FIXTURE_TOKEN", "fixture-token-value-1234567")
            .env_remove("GITHUB_TOKEN")
            .env_remove("GH_TOKEN")
            .env_remove("ANTHROPIC_API_KEY");
    });
    assert_exit(&run, 0);
    assert!(
        !run.stdout.contains("fixture-token-value-1234567"),
        "{}",
        run.stdout
    );
    let rows = run.json();
    let row = |name: &str| crate::support::row_named(&rows, name);
    let ok = row("ok_token");
    assert_eq!(ok["source"]["kind"], "env", "{ok:#}");
    assert_eq!(ok["source"]["var"], "OK_FIXTURE_TOKEN");
    assert_eq!(ok["preview"], "fixt…4567");
    assert_eq!(ok["works"], true, "the plugin's check_auth ran: {ok:#}");
    assert!(row("github_token")["source"].is_null());

    // A secret file readable by others is refused with the fix.
    let secrets = home.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    set_mode(&secrets, 0o700);
    std::fs::write(secrets.join("github_token"), "ghp_file_value_1234567890\n").unwrap();
    set_mode(&secrets.join("github_token"), 0o644);
    let run = home.run(&["config", "credentials"]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("chmod 600"), "{}", run.stdout);
    assert!(!run.stdout.contains("ghp_file_value"), "{}", run.stdout);
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn completions_for_each_shell() {
    let home = TempHome::new();
    for (shell, marker) in [
        ("bash", "_clauderon()"),
        ("zsh", "#compdef clauderon"),
        ("fish", "complete -c clauderon"),
    ] {
        let run = home.run(&["completions", shell]);
        assert_exit(&run, 0);
        assert!(
            run.stdout.contains(marker),
            "{shell}: {}",
            &run.stdout[..200.min(run.stdout.len())]
        );
        for sub in ["create", "checkpoint", "hibernate", "completions"] {
            assert!(run.stdout.contains(sub), "{shell} lacks {sub}");
        }
    }
    let run = home.run(&["completions", "powershell"]);
    assert_exit(&run, 2);
    assert!(run.stderr.contains("bash, zsh, fish"), "{}", run.stderr);
}

#[test]
fn delete_off_a_terminal_needs_yes_and_the_daemon_commands_without_a_daemon() {
    let home = TempHome::new();
    let run = home.run(&["delete", "some-session"]);
    assert_exit(&run, 2);
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);
    assert_nothing_created(&home);

    let run = home.run(&["daemon", "status"]);
    assert_exit(&run, 1);
    assert!(run.stdout.contains("daemon not running"), "{}", run.stdout);
    let run = home.run(&["daemon", "stop"]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("no daemon is running"),
        "{}",
        run.stdout
    );
    let run = home.run(&["daemon", "status", "--json"]);
    assert_exit(&run, 1);
    assert_eq!(run.json()["running"], false);
    assert_nothing_created(&home);
}

// ---- end to end: the CLI, the real daemon, the `local` test backend -----------------------

/// The agent the `local` backend runs: interactive it greets with its prompt and echoes each
/// line (`size` prints its terminal's rows and columns); with `--print` it prints the prompt and
/// exits with `N` for a prompt `exit N` (for a prompt `hang` it sleeps for two minutes).
const AGENT: &str = r#"if [ "$1" = "--print" ]; then shift; echo "printing: $1"; case "$1" in exit*) exit ${1#exit };; hang) exec sleep 120;; esac; exit 0; fi; echo "agent ready: $1"; while IFS= read -r line; do if [ "$line" = size ]; then echo "size: $(stty size)"; else echo "got: $line"; fi; done"#;

/// A home with the `local` backend installed and selected, the test agent, and the API on
/// `127.0.0.1:0`.
pub(crate) fn local_home() -> TempHome {
    let home = TempHome::new();
    home.install_plugin("local", &fixture("fixture_local_backend"));
    home.write_config(&format!(
        "default_backend = \"local\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [agent]\npreset = \"custom\"\ncommand = [\"sh\", \"-c\", '''{AGENT}''', \"agent\"]\n\
         print_args = [\"--print\"]\n[local]\nroot = \"{}\"\nkill_grace_ms = 200\n",
        home.path().join("sandboxes").display()
    ));
    home
}

/// Stops a daemon the CLI started in the background, whatever the test's outcome.
struct StopDaemon<'a>(&'a TempHome);

impl Drop for StopDaemon<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["daemon", "stop"]);
        let info = std::fs::read_to_string(self.0.path().join("daemon.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&info)
            && let Some(pid) = v["pid"].as_u64()
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn session_lifecycle_through_the_cli_with_an_autostarted_daemon() {
    let home = local_home();
    let _stop = StopDaemon(&home);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();
    assert!(!home.path().join("daemon.json").exists());

    // No daemon runs: create starts one in the background, logging to logs/daemon.log.
    let run = home.run(&[
        "create", "--repo", repo_s, "--prompt", "hello", "--name", "demo",
    ]);
    assert_exit(&run, 0);
    assert!(
        run.stdout
            .contains("session demo is running (backend local)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("clauderon attach demo"),
        "{}",
        run.stdout
    );
    let log = std::fs::read_to_string(home.path().join("logs/daemon.log")).unwrap();
    assert!(log.contains("clauderon daemon listening"), "{log}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.path().join("daemon.json")).unwrap())
            .unwrap();
    let status = home.run(&["daemon", "status", "--json"]);
    assert_exit(&status, 0);
    assert_eq!(status.json()["pid"], info["pid"]);

    // list, as text and JSON.
    let list = home.run(&["list"]);
    assert_exit(&list, 0);
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with("demo "))
        .unwrap();
    assert!(
        row.contains("running") && row.contains("local") && row.contains(repo_s),
        "{row}"
    );
    let sessions = home.run(&["list", "--json"]).json();
    let id = sessions[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(sessions[0]["name"], "demo");

    // status by name and by id prefix.
    let st = home.run(&["status", "demo"]);
    assert_exit(&st, 0);
    assert!(st.stdout.contains("status:       running"), "{}", st.stdout);
    assert!(
        st.stdout.contains("branch:       clauderon/demo"),
        "{}",
        st.stdout
    );
    let by_prefix = home.run(&["status", &id[..8], "--json"]);
    assert_exit(&by_prefix, 0);
    assert_eq!(by_prefix.json()["name"], "demo");

    // logs: progress, status changes and the agent's own output.
    let logs = home.run(&["logs", "demo"]);
    assert_exit(&logs, 0);
    for needle in [
        "status creating -> running",
        "[clone] ",
        "agent ready: hello",
    ] {
        assert!(logs.stdout.contains(needle), "{needle}:\n{}", logs.stdout);
    }

    // attach: input reaches the agent, Ctrl-] detaches and leaves it running.
    let mut a = Attached::start(&home, "demo");
    a.send(b"ping\n");
    a.expect("got: ping");
    a.send(&[0x1d]);
    let (code, err) = a.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("detached from demo") && err.contains("clauderon attach demo"),
        "{err}"
    );
    let st = home.run(&["status", "demo", "--json"]).json();
    assert_eq!(st["status"], "running");

    // hibernate and wake.
    let run = home.run(&["hibernate", "demo"]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("demo is hibernated"), "{}", run.stdout);
    assert_eq!(
        home.run(&["status", "demo", "--json"]).json()["status"],
        "hibernated"
    );
    let run = home.run(&["wake", "demo"]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("demo is running (woke in "),
        "{}",
        run.stdout
    );

    // checkpoints: create, list, restore (with its safety checkpoint).
    let run = home.run(&["checkpoint", "create", "demo", "first one"]);
    assert_exit(&run, 0);
    let cps = home.run(&["checkpoint", "list", "demo", "--json"]).json();
    assert_eq!(cps.as_array().unwrap().len(), 1, "{cps:#}");
    assert_eq!(cps[0]["comment"], "first one");
    let cp = cps[0]["id"].as_str().unwrap().to_owned();
    let run = home.run(&["checkpoint", "restore", "demo", &cp]);
    assert_exit(&run, 0);
    assert!(
        run.stdout
            .contains(&format!("restored demo to checkpoint {cp}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("undo with"), "{}", run.stdout);
    let table = home.run(&["checkpoint", "list", "demo"]);
    assert_exit(&table, 0);
    assert_eq!(table.stdout.lines().count(), 3, "{}", table.stdout);

    // Ctrl-C is a byte for the agent: its shell gets SIGINT and attach reports the exit.
    let mut a = Attached::start(&home, "demo");
    a.send(b"again\n");
    a.expect("got: again");
    a.send(&[0x03]);
    let (code, err) = a.finish();
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("exited with code 130"), "{err}");

    // delete: refused off a terminal without --yes, then done.
    let run = home.run(&["delete", "demo"]);
    assert_exit(&run, 2);
    let run = home.run(&["delete", "demo", "--yes"]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("deleted demo"), "{}", run.stdout);
    let gone = home.run(&["status", "demo"]);
    assert_exit(&gone, 1);
    assert!(
        gone.stderr.contains("no session named `demo`"),
        "{}",
        gone.stderr
    );
    let all = home.run(&["list", "--all", "--json"]).json();
    assert_eq!(all[0]["status"], "deleted");

    // daemon stop: SIGTERM, it exits and removes daemon.json.
    let run = home.run(&["daemon", "stop"]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("daemon stopped"), "{}", run.stdout);
    assert!(!home.path().join("daemon.json").exists());
}

#[test]
fn print_streams_output_and_passes_the_exit_code_through() {
    use crate::support::daemon::TestDaemon;
    let home = local_home();
    // A daemon someone else started: the CLI finds it through daemon.json.
    let _d = TestDaemon::start(&home);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();
    for (prompt, code) in [("exit 3", 3), ("exit 0", 0)] {
        let run = home.run(&["create", "--repo", repo_s, "--prompt", prompt, "--print"]);
        assert_exit(&run, code);
        assert_eq!(
            run.stdout.trim_end(),
            format!("printing: {prompt}"),
            "{}",
            run.stderr
        );
    }
    assert!(
        !home.path().join("logs/daemon.log").exists(),
        "no second daemon was started"
    );
}

#[test]
fn two_clis_at_once_start_one_daemon_and_both_succeed() {
    let home = local_home();
    let _stop = StopDaemon(&home);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();
    let spawn = |name: &str| {
        home.clauderon()
            .args([
                "create", "--repo", repo_s, "--prompt", "hi", "--name", name, "--json",
            ])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("one"));
        let b = s.spawn(|| spawn("two"));
        (a.join().unwrap(), b.join().unwrap())
    });
    for (out, name) in [(a, "one"), (b, "two")] {
        let run = Run::from(out);
        assert_exit(&run, 0);
        assert_eq!(run.json()["name"], name);
        assert_eq!(run.json()["status"], "running");
    }
    let log = std::fs::read_to_string(home.path().join("logs/daemon.log")).unwrap();
    assert_eq!(
        log.matches("clauderon daemon listening").count(),
        1,
        "exactly one daemon started:\n{log}"
    );
    let names: Vec<String> = home
        .run(&["list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn on_a_terminal_attach_is_raw_and_restored_and_delete_asks_first() {
    use crate::support::daemon::TestDaemon;
    let home = local_home();
    let _d = TestDaemon::start(&home);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();
    let exe = artifacts().clauderon();
    let exe = exe.to_str().unwrap();

    // create on a terminal (progress on stderr) ends with the next commands.
    let mut t = Attached::on_a_tty(
        &home,
        &format!("{exe} create --repo {repo_s} --prompt hello --name tty"),
    );
    t.expect("clauderon attach tty");
    let (code, _) = t.finish();
    assert_eq!(code, Some(0));

    // attach: the terminal is raw while attached (Enter arrives as \r, the agent's terminal
    // turns it into a line), Ctrl-] detaches, and the terminal is back in canonical mode with
    // echo after clauderon exits.
    let mut t = Attached::on_a_tty(
        &home,
        &format!("{exe} attach tty; echo attach-exit=$?; stty -a"),
    );
    t.expect("attached to tty");
    t.send(b"ping\r");
    t.expect("got: ping");
    t.send(&[0x1d]);
    t.expect("attach-exit=0");
    t.expect("extproc");
    let after = t.seen[t.seen.find("attach-exit=0").unwrap()..].to_owned();
    let flags: Vec<&str> = after.split_whitespace().collect();
    for flag in ["icanon", "echo", "isig"] {
        assert!(flags.contains(&flag), "{flag} not restored:\n{after}");
    }
    let (code, _) = t.finish();
    assert_eq!(code, Some(0));

    // delete asks on a terminal: "n" keeps the session (exit 1), "y" deletes it.
    let mut t = Attached::on_a_tty(&home, &format!("{exe} delete tty"));
    t.expect("[y/N]");
    t.send(b"n\r");
    t.expect("not deleted");
    let (code, _) = t.finish();
    assert_eq!(code, Some(1));
    assert_eq!(
        home.run(&["status", "tty", "--json"]).json()["status"],
        "running"
    );
    let mut t = Attached::on_a_tty(&home, &format!("{exe} delete tty"));
    t.expect("[y/N]");
    t.send(b"y\r");
    t.expect("deleted tty");
    let (code, _) = t.finish();
    assert_eq!(code, Some(0));
}

#[test]
fn a_failed_create_says_why_and_exits_1() {
    use crate::support::daemon::TestDaemon;
    let home = local_home();
    let config = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    home.write_config(&format!("{config}fail_create = \"no capacity left\"\n"));
    let _d = TestDaemon::start(&home);
    let repo = git_repo();
    let run = home.run(&[
        "create",
        "--repo",
        repo.path().to_str().unwrap(),
        "--prompt",
        "hi",
        "--name",
        "doomed",
    ]);
    assert_exit(&run, 1);
    assert!(
        run.stderr.contains("session doomed failed: ") && run.stderr.contains("no capacity left"),
        "{}",
        run.stderr
    );
    let list = home.run(&["list", "--json"]).json();
    assert_eq!(list[0]["status"], "failed", "{list:#}");
    let st = home.run(&["status", "doomed"]);
    assert_exit(&st, 0);
    assert!(
        st.stdout.contains("status:       failed: "),
        "{}",
        st.stdout
    );
}

#[test]
fn attach_follows_terminal_resizes() {
    use crate::support::daemon::TestDaemon;
    let home = local_home();
    let _d = TestDaemon::start(&home);
    let repo = git_repo();
    let run = home.run(&[
        "create",
        "--repo",
        repo.path().to_str().unwrap(),
        "--prompt",
        "hi",
        "--name",
        "rs",
    ]);
    assert_exit(&run, 0);
    let exe = artifacts().clauderon();
    // A helper on the same terminal resizes it once the test says so; the kernel then sends
    // SIGWINCH to clauderon, which tells the daemon, which resizes the agent's terminal.
    let go = home.path().join("resize-now");
    let script = format!(
        "(i=0; while [ ! -e {go} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; \
         stty cols 100 rows 40 </dev/tty; touch {go}.done) & exec {exe} attach rs",
        go = go.display(),
        exe = exe.display()
    );
    let mut t = Attached::on_a_tty(&home, &script);
    t.expect("attached to rs");
    // The unsized test terminal counts as 80x24.
    t.send(b"size\r");
    t.expect("size: 24 80");
    std::fs::write(&go, "").unwrap();
    let done = home.path().join("resize-now.done");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the resize helper did not run"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The resize travels asynchronously; ask until the agent sees it (bounded).
    let mut seen = false;
    for _ in 0..50 {
        t.send(b"size\r");
        std::thread::sleep(std::time::Duration::from_millis(100));
        while let Ok(chunk) = t.out.try_recv() {
            t.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        if t.seen.contains("size: 40 100") {
            seen = true;
            break;
        }
    }
    assert!(seen, "the agent never saw 40x100:\n{}", t.seen);
    t.send(&[0x1d]);
    let (code, _) = t.finish();
    assert_eq!(code, Some(0));
}

/// The pid in `daemon.json` (panics when there is none).
fn daemon_pid(home: &TempHome) -> u64 {
    let info = std::fs::read_to_string(home.path().join("daemon.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&info).unwrap()["pid"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_print_run_whose_daemon_crashes_ends_with_the_reason_not_a_hang() {
    use std::io::Read as _;
    let home = local_home();
    let _stop = StopDaemon(&home);
    let repo = git_repo();
    let mut child = home
        .clauderon()
        .args([
            "create",
            "--repo",
            repo.path().to_str().unwrap(),
            "--prompt",
            "hang",
            "--name",
            "pr",
            "--print",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // The agent's first output reached the CLI through the daemon it autostarted.
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen.contains("printing: hang") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let chunk = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no agent output ({e}); so far {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The daemon dies mid-run.
    let first = daemon_pid(&home);
    assert!(
        Command::new("kill")
            .args(["-KILL", &first.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // The CLI reconnects (starting a new daemon), which reconciles the run: it ends with the
    // reason and exit 1, in bounded time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "create --print still waits after the daemon crash:\n{}",
                std::fs::read_to_string(home.path().join("logs/daemon.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    reader.join().unwrap();
    while let Ok(chunk) = rx.try_recv() {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(status.code(), Some(1), "stdout {seen:?}\nstderr {err}");
    assert!(
        err.contains("session pr failed: the daemon restarted during this --print run"),
        "{err}"
    );
    assert_eq!(seen.matches("printing: hang").count(), 1, "{seen:?}");
    assert_ne!(daemon_pid(&home), first, "a new daemon serves");
    let st = home.run(&["status", "pr", "--json"]);
    assert_exit(&st, 0);
    assert_eq!(st.json()["status"], "failed");
    // Delete stops the agent still sleeping in the sandbox.
    assert_exit(&home.run(&["delete", "pr", "--yes"]), 0);
}

/// Writes sessions with chosen ids straight into a home's store (no daemon runs yet), so
/// prefixes can be made ambiguous on purpose.
fn seed_sessions(home: &TempHome, sessions: &[(&str, &str)]) {
    use clauderon::session::{SessionName, SessionOptions};
    use clauderon::store::{Db, NewSession};
    let mut db = Db::open(&home.path().join("db.sqlite")).unwrap();
    for (id, name) in sessions {
        db.insert_session(&NewSession {
            id: id.parse().unwrap(),
            name: SessionName::new(name).unwrap(),
            backend: "local".into(),
            repository: "/nonexistent/repo".into(),
            branch: Some(format!("clauderon/{name}")),
            prompt: "seeded".into(),
            options: SessionOptions::default(),
        })
        .unwrap();
    }
}

#[test]
fn daemon_start_prefixes_json_listings_logs_follow_and_exit_codes() {
    let home = local_home();
    let _stop = StopDaemon(&home);
    seed_sessions(
        &home,
        &[
            ("abcdef01-0000-4000-8000-000000000001", "first"),
            ("abcdef02-0000-4000-8000-000000000002", "second"),
        ],
    );

    // daemon start: in the background, once; JSON too.
    let run = home.run(&["daemon", "start"]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("daemon started (pid "),
        "{}",
        run.stdout
    );
    let run = home.run(&["daemon", "start", "--json"]);
    assert_exit(&run, 0);
    let v = run.json();
    assert_eq!(v["started"], false, "{v}");
    assert_eq!(v["pid"].as_u64(), Some(daemon_pid(&home)));
    let st = home.run(&["daemon", "status", "--json"]);
    assert_exit(&st, 0);
    assert_eq!(st.json()["pid"].as_u64(), Some(daemon_pid(&home)));

    // The seeded sessions were `creating` with a repository that does not exist: reconcile
    // (before serving) restarts their create, which fails. Bounded wait for both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list = home.run(&["list", "--json"]).json();
        let rows = list.as_array().unwrap();
        assert_eq!(rows.len(), 2, "{list:#}");
        if rows.iter().all(|r| r["status"] == "failed") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{list:#}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Names, unique id prefixes, and an ambiguous prefix that says what it matched.
    for r in ["second", "abcdef02", "abcdef02-0000"] {
        let run = home.run(&["status", r, "--json"]);
        assert_exit(&run, 0);
        assert_eq!(run.json()["name"], "second", "{r}");
    }
    let run = home.run(&["status", "abcdef"]);
    assert_exit(&run, 2);
    assert!(
        run.stderr.contains("`abcdef` matches 2 sessions")
            && run.stderr.contains("first")
            && run.stderr.contains("second"),
        "{}",
        run.stderr
    );
    for cmd in ["wake", "hibernate", "logs", "attach"] {
        let run = home.run(&[cmd, "abcdef"]);
        assert_exit(&run, 2);
        assert!(run.stderr.contains("matches 2 sessions"), "{cmd}: {run:?}");
        let run = home.run(&[cmd, "nobody"]);
        assert_exit(&run, 1);
        assert!(
            run.stderr.contains("no session named `nobody`"),
            "{cmd}: {}",
            run.stderr
        );
    }

    // logs --json: one event per line.
    let run = home.run(&["logs", "first", "--json"]);
    assert_exit(&run, 0);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|e| e["kind"] == "status" && e["data"]["to"] == "failed"),
        "{lines:#?}"
    );

    // logs -f follows live events and ends once the session is deleted.
    let mut follower = home
        .clauderon()
        .args(["logs", "first", "-f"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // It is following once its history (which ends in the failure) has arrived.
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("-> failed")) {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("logs -f printed no history ({e}): {seen:?}"));
        seen.push(line);
    }
    let run = home.run(&["delete", "first", "--yes"]);
    assert_exit(&run, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(st) = follower.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = follower.kill();
            panic!("logs -f did not end after the delete: {seen:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    reader.join().unwrap();
    seen.extend(rx.try_iter());
    assert_eq!(status.code(), Some(0), "{seen:?}");
    assert!(
        seen.iter().any(|l| l.contains("-> deleted")),
        "the live deletion was followed: {seen:?}"
    );

    // Every other listing has --json.
    for args in [
        &["config", "show", "--json"][..],
        &["config", "paths", "--json"],
        &["config", "credentials", "--json"],
        &["plugins", "list", "--json"],
        &["plugins", "info", "local", "--json"],
        &["list", "--all", "--json"],
        &["daemon", "status", "--json"],
    ] {
        let run = home.run(args);
        assert_exit(&run, 0);
        let _ = run.json();
    }

    // Usage errors are exit 2: an unknown command, a missing argument, a bad value.
    assert_exit(&home.run(&["frobnicate"]), 2);
    assert_exit(&home.run(&["status"]), 2);
    assert_exit(&home.run(&["logs"]), 2);
    assert_exit(&home.run(&["completions", "tcsh"]), 2);

    // Plain `daemon` (the foreground daemon) refuses to run beside the background one.
    let run = home.run(&["daemon"]);
    assert_exit(&run, 1);
    assert!(run.stderr.contains("already running"), "{}", run.stderr);
    let run = home.run(&["daemon", "stop"]);
    assert_exit(&run, 0);
    let run = home.run(&["daemon", "status"]);
    assert_exit(&run, 1);
}
