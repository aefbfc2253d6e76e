//! Resolver tests: precedence, permissions, 1Password through a fake `op` on PATH, redaction.

use super::*;
use crate::config::{BackendSchema, Config, ProxyConfig};
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;

const OP_SCRIPT: &str = r#"#!/bin/sh
for a in "$@"; do ref="$a"; done
case "$ref" in
  op://v/ok/field) printf '%s' 'value-from-1password-0123456789' ;;
  op://v/other/field) printf '%s' 'other-value-from-1password-xyz' ;;
  op://v/signedout/f) echo '[ERROR] 2024/01/02 03:04:05 error initializing client: You are not currently signed in. Please run `op signin --help` for instructions' >&2; exit 1 ;;
  op://v/missing/f) echo "[ERROR] 2024/01/02 03:04:05 could not read secret 'op://v/missing/f': \"missing\" isn't an item in the \"v\" vault." >&2; exit 1 ;;
  op://v/broken/f) echo '[ERROR] 2024/01/02 03:04:05 something odd' >&2; exit 3 ;;
  op://v/empty/f) exit 0 ;;
  op://v/slow/f) exec sleep 30 ;;
  op://v/env/f) printf 'home=%s leak=%s acct=%s' "$HOME" "$LEAKY" "$OP_ACCOUNT" ;;
  *) echo "[ERROR] 2024/01/02 03:04:05 unexpected $ref" >&2; exit 1 ;;
esac
"#;

/// A directory holding the fake `op`, written once per test process (writing an executable
/// while other tests fork can make exec fail with "text file busy").
fn op_bin() -> &'static Path {
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

struct Fixture {
    _dir: tempfile::TempDir,
    home: Home,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("home"));
        home.ensure().unwrap();
        Self { _dir: dir, home }
    }
    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.home.root().join(rel), text).unwrap();
    }
    fn secret_file(&self, name: &str, value: &str, mode: u32) -> PathBuf {
        let p = self.home.secret_file(name);
        std::fs::write(&p, value).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
    fn resolver(&self, env: &[(&str, &str)]) -> SecretResolver {
        let config = Config::load(&self.home).unwrap();
        let proxy = ProxyConfig::load(&self.home).unwrap();
        let mut map: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("PATH".into())
            .or_insert_with(|| format!("{}:/usr/bin:/bin", op_bin().display()));
        SecretResolver::new(self.home.clone(), &config, &proxy).with_env(map)
    }
}

async fn value(r: &SecretResolver, name: &str) -> Option<(String, SecretSource)> {
    r.resolve(name)
        .await
        .unwrap()
        .map(|r| (r.secret.expose().to_string(), r.source))
}

#[tokio::test]
async fn precedence_env_then_file_then_1password_then_literal() {
    let f = Fixture::new();
    f.write(
        "config.toml",
        "[secrets]\ngithub_token = \"literal-token\"\n",
    );
    f.write(
        "proxy.toml",
        "[onepassword.credentials]\ngithub_token = \"op://v/ok/field\"\n",
    );
    let file = f.secret_file("github_token", "file-token\n", 0o600);

    let r = f.resolver(&[("GITHUB_TOKEN", "env-token")]);
    assert_eq!(
        value(&r, "github_token").await.unwrap(),
        (
            "env-token".into(),
            SecretSource::Env {
                var: "GITHUB_TOKEN".into()
            }
        )
    );
    // The second variable of a built-in secret, and an empty variable counts as unset.
    let r = f.resolver(&[("GITHUB_TOKEN", ""), ("GH_TOKEN", "gh-token")]);
    assert_eq!(value(&r, "github_token").await.unwrap().0, "gh-token");

    let r = f.resolver(&[("GITHUB_TOKEN", "")]);
    assert_eq!(
        value(&r, "github_token").await.unwrap(),
        (
            "file-token".into(),
            SecretSource::File { path: file.clone() }
        )
    );

    std::fs::remove_file(&file).unwrap();
    let got = r.resolve("github_token").await.unwrap().unwrap();
    assert_eq!(got.secret.expose(), "value-from-1password-0123456789");
    assert_eq!(
        got.source,
        SecretSource::OnePassword {
            reference: "op://v/ok/field".into()
        }
    );

    f.write("proxy.toml", "");
    let r = f.resolver(&[]);
    let (v, src) = value(&r, "github_token").await.unwrap();
    assert_eq!(v, "literal-token");
    assert_eq!(
        src,
        SecretSource::ConfigLiteral {
            location: format!(
                "{}:2 [secrets] github_token",
                f.home.config_file().display()
            )
        }
    );

    f.write("config.toml", "");
    assert!(
        f.resolver(&[])
            .resolve("github_token")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn declared_backend_secrets() {
    let f = Fixture::new();
    f.write(
        "config.toml",
        "[sprites]\napi_key = \"sk-literal-in-table-0000\"\n",
    );
    let schema = BackendSchema::from_details(
        r#"{"secrets":[{"name":"sprites_api_key","env":"SPRITES_TOKEN","config_key":"api_key","description":"Sprites token"}]}"#,
    )
    .unwrap();
    let mut r = f.resolver(&[("SPRITES_API_KEY", "generic-env")]);
    // Undeclared: the generic rule (upper-cased name), and no table literal.
    assert_eq!(value(&r, "sprites_api_key").await.unwrap().0, "generic-env");
    assert!(!r.is_declared_by("sprites", "sprites_api_key"));
    r.declare("sprites", &schema);
    assert!(r.is_declared_by("sprites", "sprites_api_key"));
    assert!(!r.is_declared_by("other", "sprites_api_key"));
    assert!(!r.is_declared_by("sprites", "github_token"));
    assert_eq!(r.spec("sprites_api_key").env, ["SPRITES_TOKEN"]);
    let (v, src) = value(&r, "sprites_api_key").await.unwrap();
    assert_eq!(v, "sk-literal-in-table-0000");
    assert!(
        matches!(&src, SecretSource::ConfigLiteral { location } if location.ends_with(":2 [sprites] api_key")),
        "{src:?}"
    );
    assert!(r.names().contains(&"sprites_api_key".to_string()));
    let r2 = f.resolver(&[("SPRITES_TOKEN", "declared-env")]);
    let mut r2 = r2;
    r2.declare("sprites", &schema);
    assert_eq!(
        value(&r2, "sprites_api_key").await.unwrap().0,
        "declared-env"
    );
}

#[tokio::test]
async fn loose_permissions_are_refused_with_the_fix() {
    let f = Fixture::new();
    let p = f.secret_file("anthropic_api_key", "sk-ant-value", 0o644);
    let r = f.resolver(&[]);
    let e = r
        .resolve("anthropic_api_key")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "secret file {p} is accessible by group or others (mode 0644), so it is ignored; it \
             must be readable only by you. Fix: chmod 600 {p}",
            p = p.display()
        )
    );
    assert!(!e.contains("sk-ant"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(r.resolve("anthropic_api_key").await.is_err());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(
        value(&r, "anthropic_api_key").await.unwrap().0,
        "sk-ant-value"
    );

    let dir = f.home.secrets_dir();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = r
        .resolve("anthropic_api_key")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(&format!("Fix: chmod 700 {}", dir.display())),
        "{e}"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    f.secret_file("empty", "\n", 0o600);
    let e = r.resolve("empty").await.unwrap_err().to_string();
    assert!(e.contains("is empty"), "{e}");
    let e = r.resolve("../etc/passwd").await.unwrap_err().to_string();
    assert!(e.contains("is not a secret name"), "{e}");
}

#[tokio::test]
async fn onepassword_failures_are_clear() {
    let f = Fixture::new();
    f.write(
        "proxy.toml",
        "[onepassword]\ntimeout_seconds = 1\n[onepassword.credentials]\n\
         signedout = \"op://v/signedout/f\"\nmissing = \"op://v/missing/f\"\n\
         broken = \"op://v/broken/f\"\nempty = \"op://v/empty/f\"\nslow = \"op://v/slow/f\"\n",
    );
    let r = f.resolver(&[]);
    let err = |name: &'static str| {
        let r = r.clone();
        async move { r.resolve(name).await.unwrap_err() }
    };
    assert!(matches!(
        err("signedout").await,
        SecretError::OnePassword(OpError::NotSignedIn { .. })
    ));
    assert!(
        err("signedout")
            .await
            .to_string()
            .contains("run `op signin`")
    );
    let e = err("missing").await.to_string();
    assert!(
        e.contains("1Password has nothing at op://v/missing/f") && e.contains("isn't an item"),
        "{e}"
    );
    let e = err("broken").await.to_string();
    assert_eq!(
        e,
        "secret `broken`: `op read` failed (exit status 3): something odd"
    );
    let e = err("empty").await.to_string();
    assert!(e.contains("empty value"), "{e}");
    let started = std::time::Instant::now();
    let e = err("slow").await.to_string();
    assert!(e.contains("did not answer within 1s"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // No `op` on PATH at all.
    let r = f.resolver(&[("PATH", "/nonexistent")]);
    let e = r.resolve("missing").await.unwrap_err().to_string();
    assert!(
        e.contains("1Password CLI `op` was not found on PATH"),
        "{e}"
    );
}

#[tokio::test]
async fn references_anywhere_go_through_op_with_a_minimal_environment() {
    let f = Fixture::new();
    let r = f.resolver(&[
        ("ANTHROPIC_API_KEY", "op://v/other/field"),
        ("GITHUB_TOKEN", "op://v/env/f"),
        ("HOME", "/home/test"),
        ("LEAKY", "must-not-reach-op"),
        ("OP_ACCOUNT", "acct1"),
    ]);
    let got = r.resolve("anthropic_api_key").await.unwrap().unwrap();
    assert_eq!(got.secret.expose(), "other-value-from-1password-xyz");
    assert_eq!(
        got.source,
        SecretSource::Env {
            var: "ANTHROPIC_API_KEY".into()
        }
    );
    assert_eq!(got.via_reference.as_deref(), Some("op://v/other/field"));
    let got = r.resolve("github_token").await.unwrap().unwrap();
    assert_eq!(got.secret.expose(), "home=/home/test leak= acct=acct1");
    f.secret_file("gitlab_token", "op://v/ok/field\n", 0o600);
    assert_eq!(
        value(&r, "gitlab_token").await.unwrap().0,
        "value-from-1password-0123456789"
    );
}

#[tokio::test]
async fn credentials_listing_is_redacted() {
    let f = Fixture::new();
    f.secret_file("custom_token", "custom-secret-value-0123456789", 0o600);
    f.secret_file("loose", "x", 0o644);
    let r = f.resolver(&[("ANTHROPIC_API_KEY", "sk-ant-api-key-value-0123456789")]);
    let rows = r.credentials().await;
    let names: Vec<_> = rows.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["anthropic_api_key", "custom_token", "github_token", "loose"]
    );
    assert_eq!(rows[0].preview.as_deref(), Some("sk-a…6789"));
    assert!(rows[2].source.is_none() && rows[2].error.is_none());
    assert!(rows[3].error.as_deref().unwrap().contains("chmod 600"));
    let views: Vec<_> = rows
        .into_iter()
        .enumerate()
        .map(|(i, status)| crate::config::render::CredentialView {
            status,
            works: (i == 0).then_some(true),
        })
        .collect();
    let text = crate::config::render::credentials_text(&views);
    let json = crate::config::render::credentials_json(&views).to_string();
    for shown in [&text, &json, &format!("{views:?}")] {
        assert!(!shown.contains("api-key-value"), "{shown}");
        assert!(!shown.contains("custom-secret-value"), "{shown}");
    }
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("env ANTHROPIC_API_KEY"), "{text}");
    assert!(text.contains("not set"), "{text}");
    assert!(json.contains("\"works\":true"), "{json}");
    let resolved = r.resolve("anthropic_api_key").await.unwrap().unwrap();
    assert!(!format!("{resolved:?}").contains("api-key-value"));
}
