//! What `config show`, `config paths` and `config credentials` print, as text and as JSON.
//! Every secret is redacted here; nothing in this module can print a value.

use super::{BackendSchema, Config};
use crate::home::Home;
use crate::secrets::{CredentialStatus, REDACTED};
use std::collections::BTreeMap;

/// Key names treated as secrets in a backend table even when the plugin did not declare them.
fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["key", "token", "secret", "password", "credential"]
        .iter()
        .any(|w| k.contains(w))
}

/// The effective configuration as JSON: defaults applied, `[agent]` expanded, each backend
/// table as its plugin would see it (when its schema is known) and every secret redacted.
pub fn show_json(config: &Config, schemas: &BTreeMap<String, BackendSchema>) -> serde_json::Value {
    let mut backends = serde_json::Map::new();
    for name in config.backend_names() {
        let raw = config
            .backend_table(name)
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        let schema = schemas.get(name);
        // With a schema, show what the plugin gets (defaults applied) plus redacted secret keys.
        let mut table = match schema.map(|s| config.backend_config(name, s)) {
            Some(Ok(v)) => v,
            _ => raw.clone(),
        };
        if let (Some(obj), Some(raw)) = (table.as_object_mut(), raw.as_object()) {
            for (k, v) in raw {
                let declared = schema.is_some_and(|s| s.secret_for_key(k).is_some());
                if declared || looks_secret(k) {
                    obj.insert(k.clone(), serde_json::json!(REDACTED));
                } else if !obj.contains_key(k) {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
        backends.insert(name.to_string(), table);
    }
    let secrets: serde_json::Map<String, serde_json::Value> = config
        .literal_secret_names()
        .map(|n| (n.to_string(), serde_json::json!(REDACTED)))
        .collect();
    let plugins: serde_json::Map<String, serde_json::Value> = config
        .plugins()
        .iter()
        .map(|(n, p)| (n.clone(), serde_json::json!({"path": p.path})))
        .collect();
    let mut out = serde_json::json!({
        "file": config.file(),
        "server": {"listen": config.server.listen.to_string()},
        "proxy": {"listen": config.proxy.listen.to_string()},
        "cache": {
            "max_age": humantime::format_duration(config.cache.max_age).to_string(),
            "max_size": config.cache.max_size,
            "direct": config.cache.direct,
        },
        "agent": config.agent,
        "plugins": plugins,
        "secrets": secrets,
        "backends": backends,
    });
    if let Some(b) = config.default_backend() {
        out["default_backend"] = b.into();
    }
    out
}

fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The effective configuration as TOML text (the same content as [`show_json`]).
pub fn show_text(config: &Config, schemas: &BTreeMap<String, BackendSchema>) -> String {
    let mut v = show_json(config, schemas);
    let file = config.file().display().to_string();
    drop_nulls(&mut v);
    if let Some(m) = v.as_object_mut() {
        m.remove("file");
        // Backend tables print at top level, as they are written.
        if let Some(serde_json::Value::Object(b)) = m.remove("backends") {
            for (k, t) in b {
                m.insert(k, t);
            }
        }
    }
    let body = toml::to_string(&v).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
    format!("# effective configuration from {file} (defaults applied, secrets redacted)\n{body}")
}

/// Every path of the home, and whether it exists, as JSON.
pub fn paths_json(home: &Home) -> serde_json::Value {
    serde_json::Value::Array(
        home.paths()
            .into_iter()
            .map(|(name, path)| {
                serde_json::json!({"name": name, "path": path, "exists": path.exists()})
            })
            .collect(),
    )
}

/// Every path of the home as aligned text, one per line.
pub fn paths_text(home: &Home) -> String {
    let mut out = String::new();
    for (name, path) in home.paths() {
        let missing = if path.exists() { "" } else { "  (missing)" };
        out.push_str(&format!("{name:<10} {}{missing}\n", path.display()));
    }
    out
}

/// One row of `config credentials`: the resolver's status plus whether the credential works
/// (checked by the plugin that uses it; `None` when not checked).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialView {
    /// What the resolver found.
    #[serde(flatten)]
    pub status: CredentialStatus,
    /// Whether an authenticated call with it succeeded.
    pub works: Option<bool>,
}

/// `config credentials --json`.
pub fn credentials_json(rows: &[CredentialView]) -> serde_json::Value {
    serde_json::to_value(rows).unwrap_or(serde_json::Value::Null)
}

/// `config credentials` as a table: name, source, preview, works.
pub fn credentials_text(rows: &[CredentialView]) -> String {
    let mut lines = vec![(
        "NAME".to_string(),
        "SOURCE".to_string(),
        "PREVIEW".to_string(),
        "WORKS".to_string(),
    )];
    let mut errors = Vec::new();
    for r in rows {
        let s = &r.status;
        let source = match (&s.source, &s.error) {
            (Some(src), _) => src.to_string(),
            (None, Some(_)) => "error (see below)".to_string(),
            (None, None) => "not set".to_string(),
        };
        let works = match r.works {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        lines.push((
            s.name.clone(),
            source,
            s.preview.clone().unwrap_or_else(|| "-".into()),
            works.to_string(),
        ));
        if let Some(e) = &s.error {
            errors.push(format!("{}: {e}", s.name));
        }
    }
    let w0 = lines.iter().map(|l| l.0.chars().count()).max().unwrap_or(0);
    let w1 = lines.iter().map(|l| l.1.chars().count()).max().unwrap_or(0);
    let w2 = lines.iter().map(|l| l.2.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (a, b, c, d) in lines {
        out.push_str(&format!("{a:<w0$}  {b:<w1$}  {c:<w2$}  {d}\n"));
    }
    for e in errors {
        out.push_str(&format!("\n{e}"));
    }
    if out.ends_with('\n') { out } else { out + "\n" }
}

/// `config credentials --json` with the credential proxy's rules: every row gets
/// `proxy_rules` (`[{host, header, format, builtin, resolved}]`, the rules that inject that
/// secret), and a secret only a rule uses gets a row of its own. Never a value.
pub fn credentials_json_with_rules(
    rows: &[CredentialView],
    rules: &[crate::proxy::RuleCredential],
) -> serde_json::Value {
    let mut out = match credentials_json(rows) {
        serde_json::Value::Array(a) => a,
        _ => Vec::new(),
    };
    let rule_json = |r: &crate::proxy::RuleCredential| {
        serde_json::json!({
            "host": r.host,
            "header": r.header,
            "format": r.format,
            "builtin": r.builtin,
            "resolved": r.source.is_some(),
            "used": r.used,
            "note": r.note,
        })
    };
    for row in &mut out {
        let name = row["name"].as_str().unwrap_or_default().to_owned();
        let mine: Vec<serde_json::Value> = rules
            .iter()
            .filter(|r| r.secret == name)
            .map(rule_json)
            .collect();
        row["proxy_rules"] = serde_json::Value::Array(mine);
    }
    for r in rules {
        if out.iter().any(|row| row["name"] == r.secret.as_str()) {
            continue;
        }
        let mine: Vec<serde_json::Value> = rules
            .iter()
            .filter(|x| x.secret == r.secret)
            .map(rule_json)
            .collect();
        out.push(serde_json::json!({
            "name": r.secret,
            "description": format!("used by the credential proxy for {}", r.host),
            "source": r.source,
            "preview": r.preview,
            "error": r.error,
            "works": null,
            "proxy_rules": mine,
        }));
    }
    serde_json::Value::Array(out)
}

/// The credential proxy's rules as a table: host, header, secret, source, resolved.
pub fn proxy_rules_text(rules: &[crate::proxy::RuleCredential]) -> String {
    let mut lines = vec![[
        "HOST".to_string(),
        "HEADER".to_string(),
        "SECRET".to_string(),
        "SOURCE".to_string(),
        "RESOLVED".to_string(),
    ]];
    for r in rules {
        let source = match (&r.source, &r.error) {
            (Some(s), _) => s.to_string(),
            (None, Some(_)) => "error (see above)".to_string(),
            (None, None) => "not set".to_string(),
        };
        let resolved = if r.source.is_some() { "yes" } else { "no" };
        lines.push([
            r.host.clone(),
            r.header.clone(),
            r.secret.clone(),
            source,
            resolved.to_string(),
        ]);
    }
    let mut widths = [0usize; 4];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::from("\ncredential proxy rules (proxy.toml and built-ins):\n");
    for [a, b, c, d, e] in lines {
        out.push_str(&format!(
            "{a:<w0$}  {b:<w1$}  {c:<w2$}  {d:<w3$}  {e}\n",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        ));
    }
    for r in rules {
        if let Some(n) = &r.note {
            out.push_str(&format!("{}: {n}\n", r.secret));
        }
    }
    out
}
