//! The CLI through the real `clauderon` binary: what it checks locally before any daemon is
//! contacted (bad flags, bad config, confirmation), local commands (config, completions), and,
//! with the daemon and the `local` test backend, the whole session lifecycle.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::artifacts::artifacts;
use crate::support::home::{Run, TempHome};

fn assert_exit(run: &Run, code: i32) {
    assert_eq!(
        run.code,
        Some(code),
        "exit code (None = killed by a signal)\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

fn fixture(lib: &str) -> PathBuf {
    let p = artifacts().cdylib(lib);
    assert!(p.exists(), "fixture {} was not built", p.display());
    p
}

/// A git repository with one commit, in its own temporary directory.
fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("clauderon-repo-")
        .tempdir()
        .unwrap();
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .current_dir(dir.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(st.status.success(), "git {args:?}: {st:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("README.md"), "hello\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    dir
}

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
            &["--cpu-limit", "`0`", "from 1 to 256"],
        ),
        (&["--cpu-limit", "two"], &["--cpu-limit", "whole number"]),
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
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {rows:#}"))
            .clone()
    };
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
