//! Host core through the real binary: config errors located by file, line, column and key
//! path, and the secret resolver's documented precedence, permissions and 1Password handling
//! (a fake `op` on PATH) as `clauderon config credentials` shows them, never with a value.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::OnceLock;

use crate::support::home::{Run, TempHome};

/// A fake 1Password CLI: `op read --no-newline REF` answers by reference.
const OP_SCRIPT: &str = r#"#!/bin/sh
for a in "$@"; do ref="$a"; done
case "$ref" in
  op://v/*/ok) printf '%s' "op-value-for-${ref#op://v/}-0123456789" ;;
  op://v/signedout/f) echo '[ERROR] 2024/01/02 03:04:05 You are not currently signed in. Please run `op signin --help` for instructions' >&2; exit 1 ;;
  op://v/slow/f) exec sleep 20 ;;
  *) echo "[ERROR] 2024/01/02 03:04:05 unexpected $ref" >&2; exit 1 ;;
esac
"#;

/// The directory holding the fake `op`, written once per test process (writing an executable
/// while other tests fork can make exec fail with "text file busy").
fn op_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("op");
        std::fs::write(&p, OP_SCRIPT).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    })
    .path()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `config credentials --json` with the fake `op` first on PATH and `env` set.
fn credentials(home: &TempHome, env: &[(&str, &str)]) -> Run {
    home.run_with(&["config", "credentials", "--json"], |c| {
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", op_dir().display()))
            .env_remove("GITHUB_TOKEN")
            .env_remove("GH_TOKEN")
            .env_remove("ANTHROPIC_API_KEY");
        for (k, v) in env {
            c.env(k, v);
        }
    })
}

fn row(rows: &serde_json::Value, name: &str) -> serde_json::Value {
    crate::support::row_named(rows, name)
}

#[test]
fn secrets_resolve_env_then_file_then_1password_then_literal_and_never_show_a_value() {
    let home = TempHome::new();
    // Every secret but `delta` is in several sources; the first in the documented order wins.
    home.write_config(
        "[secrets]\nalpha = \"alpha-literal-value-0001\"\nbeta = \"beta-literal-value-0002\"\n\
         gamma = \"gamma-literal-value-0003\"\ndelta = \"delta-literal-value-0004\"\n",
    );
    chmod(&home.path().join("config.toml"), 0o600);
    std::fs::write(
        home.path().join("proxy.toml"),
        "[onepassword]\ntimeout_seconds = 1\n[onepassword.credentials]\n\
         alpha = \"op://v/alpha/ok\"\nbeta = \"op://v/beta/ok\"\ngamma = \"op://v/gamma/ok\"\n\
         signedout = \"op://v/signedout/f\"\nslow = \"op://v/slow/f\"\n",
    )
    .unwrap();
    home.write_secret("alpha", "alpha-file-value-0005\n", 0o600);
    home.write_secret("beta", "beta-file-value-0006\n", 0o600);
    home.write_secret("loose", "loose-file-value-0007\n", 0o644);

    // Built before the clock starts (the first use builds the workspace).
    crate::support::artifacts::artifacts();
    let started = std::time::Instant::now();
    let run = credentials(&home, &[("ALPHA", "alpha-env-value-0008")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the slow `op` was not cut off: {:?}",
        started.elapsed()
    );
    for value in [
        "alpha-literal",
        "beta-literal",
        "gamma-literal",
        "delta-literal",
        "alpha-file",
        "beta-file",
        "loose-file",
        "alpha-env",
        "op-value-for",
    ] {
        assert!(
            !run.stdout.contains(value) && !run.stderr.contains(value),
            "{value} was shown:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    let rows = run.json();

    let alpha = row(&rows, "alpha");
    assert_eq!(alpha["source"]["kind"], "env", "{alpha:#}");
    assert_eq!(alpha["source"]["var"], "ALPHA");
    assert_eq!(alpha["preview"], "alph…0008", "{alpha:#}");

    let beta = row(&rows, "beta");
    assert_eq!(beta["source"]["kind"], "file", "{beta:#}");
    assert_eq!(
        beta["source"]["path"],
        home.path().join("secrets/beta").to_str().unwrap()
    );

    let gamma = row(&rows, "gamma");
    assert_eq!(gamma["source"]["kind"], "one_password", "{gamma:#}");
    assert_eq!(gamma["source"]["reference"], "op://v/gamma/ok");
    assert_eq!(gamma["preview"], "op-v…6789", "{gamma:#}");

    let delta = row(&rows, "delta");
    assert_eq!(delta["source"]["kind"], "config_literal", "{delta:#}");
    assert!(
        run.stderr
            .contains("secret `delta` is written in config.toml"),
        "a literal is allowed with a warning:\n{}",
        run.stderr
    );

    // A source that has the secret but cannot be used is an error saying how to fix it.
    let loose = row(&rows, "loose");
    assert!(loose["source"].is_null(), "{loose:#}");
    let msg = loose["error"].as_str().unwrap();
    assert!(
        msg.contains("(mode 0644)")
            && msg.ends_with(&format!(
                "Fix: chmod 600 {}",
                home.path().join("secrets/loose").display()
            )),
        "{msg}"
    );
    let signedout = row(&rows, "signedout");
    let msg = signedout["error"].as_str().unwrap();
    assert!(msg.contains("op signin"), "{msg}");
    let slow = row(&rows, "slow");
    let msg = slow["error"].as_str().unwrap();
    assert!(msg.contains("did not answer within 1s"), "{msg}");

    // The fix the message names works.
    chmod(&home.path().join("secrets/loose"), 0o600);
    let rows = credentials(&home, &[]).json();
    assert_eq!(row(&rows, "loose")["source"]["kind"], "file");

    // The text form says the same, values still hidden.
    let run = home.run_with(&["config", "credentials"], |c| {
        c.env("PATH", format!("/usr/bin:/bin:{}", op_dir().display()));
    });
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("env ALPHA") || run.stdout.contains("file "),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("file-value"), "{}", run.stdout);
}

#[test]
fn config_errors_name_file_line_column_and_key_path_for_every_command() {
    let home = TempHome::new();
    let file = home.path().join("config.toml");
    let cases = [
        (
            "[server]\nlisten = 3030\n",
            "2:10: `server.listen`: invalid type: integer `3030`, expected a string",
        ),
        (
            "default_backend = \"x\"\n[agent]\npreset = \"claude\"\nmodle = \"x\"\n",
            "4:1: `agent.modle`: unknown key `modle`",
        ),
        (
            "[server]\nlisten = \"127.0.0.1:1\"\nport = 3\n",
            "3:1: `server.port`: unknown key `port`, expected `listen`",
        ),
        ("[server\nlisten = 1\n", "1:"),
    ];
    for (text, want) in cases {
        home.write_config(text);
        for args in [&["config", "show"][..], &["list"], &["plugins", "list"]] {
            let run = home.run(args);
            assert_eq!(run.code, Some(1), "{args:?} on {text:?}: {run:?}");
            let want = format!("{}:{want}", file.display());
            assert!(
                run.stderr.contains(&want),
                "{args:?} on {text:?}: want {want:?} in\n{}",
                run.stderr
            );
        }
    }
    // Nothing was started or written because of a bad config.
    for f in ["daemon.json", "db.sqlite", "api-token"] {
        assert!(!home.path().join(f).exists(), "{f}");
    }
}
