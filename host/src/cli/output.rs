//! Rendering shared by the commands: JSON, session tables and details, ages.

use std::io::Write as _;

use crate::api::{SessionSummary, SessionView as Session};

/// Prints `v` as pretty JSON on stdout.
pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// How long ago an RFC 3339 timestamp was, compactly (`42s`, `5m`, `3h`, `2d`); `-` if it
/// does not parse.
pub fn age(rfc3339: &str, now: time::OffsetDateTime) -> String {
    let Ok(t) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return "-".into();
    };
    let secs = (now - t).whole_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The status with its reason, if any (`failed: the sandbox no longer exists`).
pub fn status_with_reason(s: &Session) -> String {
    match &s.status_reason {
        Some(r) if !r.is_empty() => format!("{}: {r}", s.status),
        _ => s.status.to_string(),
    }
}

/// `list` as an aligned table.
pub fn sessions_table(sessions: &[SessionSummary], now: time::OffsetDateTime) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "STATUS".to_owned(),
        "AGENT".to_owned(),
        "BACKEND".to_owned(),
        "AGE".to_owned(),
        "ID".to_owned(),
        "REPOSITORY".to_owned(),
    ]];
    for s in sessions {
        rows.push([
            s.name.to_string(),
            s.status.to_string(),
            s.agent.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            s.backend.clone(),
            age(&s.created_at, now),
            s.id.to_string().chars().take(8).collect(),
            s.repository.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    // One buffer, cells padded in place (10,000 rows: no allocation per cell).
    let line: usize = widths.iter().map(|w| w + 2).sum::<usize>() + 48;
    let mut out = String::with_capacity(rows.len() * line);
    for r in rows {
        for (cell, w) in r.iter().zip(&widths) {
            out.push_str(cell);
            let pad = w - cell.chars().count() + 2;
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(&r[6]);
        out.push('\n');
    }
    out
}

/// `status` as `key: value` lines.
pub fn session_details(s: &Session, now: time::OffsetDateTime) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("name", s.name.to_string()),
        ("id", s.id.to_string()),
        ("status", status_with_reason(s)),
        ("backend", s.backend.clone()),
        ("repository", s.repository.clone()),
    ];
    if let Some(b) = &s.branch {
        lines.push(("branch", b.clone()));
    }
    lines.push((
        "created",
        format!("{} ({} ago)", s.created_at, age(&s.created_at, now)),
    ));
    lines.push((
        "updated",
        format!("{} ({} ago)", s.updated_at, age(&s.updated_at, now)),
    ));
    if let Some(i) = &s.instance_id {
        lines.push(("instance", i.clone()));
    }
    if let Some(a) = s.agent {
        lines.push(("agent", a.to_string()));
    } else if let Some(c) = s.agent_exit_code {
        lines.push(("agent", format!("exited({c})")));
    }
    if let Some(c) = &s.agent_conversation {
        lines.push(("conversation", c.clone()));
    }
    let options = serde_json::to_value(&s.options).unwrap_or_default();
    if let Some(o) = options.as_object().filter(|o| !o.is_empty()) {
        let opts: Vec<String> = o
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        lines.push(("options", opts.join(" ")));
    }
    lines.push(("prompt", s.prompt.clone()));
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(&format!("{:<13} {v}\n", format!("{k}:")));
    }
    out
}

/// Rows as an aligned table: every column but the last padded to its widest cell.
pub fn aligned(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let last = r.len().saturating_sub(1);
        for (i, cell) in r.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

/// A byte count for a person (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
pub(in crate::cli) mod tests {
    use super::*;

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::parse(
            "2026-01-01T12:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    }

    /// A session (`fix-it`, running) as JSON decoded into `T`, with the fields of `v` over it.
    pub(in crate::cli) fn session<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        let mut base = serde_json::json!({
            "id": "01234567-89ab-4def-8123-456789abcdef",
            "name": "fix-it",
            "backend": "sprites",
            "repository": "/home/me/project",
            "branch": "clauderon/fix-it",
            "prompt": "fix the flaky test",
            "options": {},
            "status": "running",
            "created_at": "2026-01-01T11:55:00Z",
            "updated_at": "2026-01-01T11:59:00Z"
        });
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            for (k, v) in o {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn ages() {
        assert_eq!(age("2026-01-01T11:59:18Z", now()), "42s");
        assert_eq!(age("2026-01-01T09:00:00Z", now()), "3h");
        assert_eq!(age("2025-12-30T12:00:00Z", now()), "2d");
        assert_eq!(age("yesterday", now()), "-");
    }

    #[test]
    fn the_session_table() {
        let rows: [SessionSummary; 3] = [
            session(serde_json::json!({"agent": {"state": "working"}})),
            session(serde_json::json!({
                "id": "11111111-89ab-4def-8123-456789abcdef", "name": "docs",
                "status": "hibernated", "created_at": "2025-12-31T09:00:00Z"})),
            session(serde_json::json!({
                "id": "22222222-89ab-4def-8123-456789abcdef", "name": "broken",
                "status": "failed", "status_reason": "the agent exited with code 1",
                "agent": {"state": "exited", "code": 1}, "backend": "local",
                "repository": "/srv/other"})),
        ];
        insta::assert_snapshot!(sessions_table(&rows, now()), @r"
        NAME    STATUS      AGENT      BACKEND  AGE  ID        REPOSITORY
        fix-it  running     working    sprites  5m   01234567  /home/me/project
        docs    hibernated  -          sprites  1d   11111111  /home/me/project
        broken  failed      exited(1)  local    5m   22222222  /srv/other
        ");
    }

    #[test]
    fn the_session_details() {
        let s: Session = session(serde_json::json!({
            "instance_id": "fix-it-01234567",
            "agent": {"state": "idle"},
            "agent_conversation": "dceb9ce1-ddd9-4d6d-b599-5f5a1a3ddc5c",
            "options": {"model": "opus", "plan_mode": true, "hibernation_timeout": "1h"}
        }));
        insta::assert_snapshot!(session_details(&s, now()), @r"
        name:         fix-it
        id:           01234567-89ab-4def-8123-456789abcdef
        status:       running
        backend:      sprites
        repository:   /home/me/project
        branch:       clauderon/fix-it
        created:      2026-01-01T11:55:00Z (5m ago)
        updated:      2026-01-01T11:59:00Z (1m ago)
        instance:     fix-it-01234567
        agent:        idle
        conversation: dceb9ce1-ddd9-4d6d-b599-5f5a1a3ddc5c
        options:      cache_scope=project hibernation_timeout=1h model=opus plan_mode=true print=false
        prompt:       fix the flaky test
        ");
        let failed = session(serde_json::json!({"status": "failed",
            "status_reason": "backend `sprites` failed during `create`: no capacity"}));
        insta::assert_snapshot!(status_with_reason(&failed), @"failed: backend `sprites` failed during `create`: no capacity");
    }

    #[test]
    fn option_errors_name_the_flag() {
        let e = crate::session::RawOptions {
            memory_limit: Some("lots"),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        insta::assert_snapshot!(e.for_flag(), @"invalid value `lots` for --memory-limit: expected a size with a unit K, M, G or T (binary), e.g. 512M or 2G");
    }
}
