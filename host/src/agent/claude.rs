//! Claude Code's own state in the sandbox, merged so that an interactive session starts with
//! nobody at the keyboard (tested with the version in [`TESTED_VERSION`]):
//!
//! - `~/.claude.json`: `hasCompletedOnboarding` (skips the theme picker, the first-run
//!   connectivity check and the security notes), a `theme`, the proxy's placeholder key
//!   approved (`customApiKeyResponses.approved` holds the last 20 characters of a key; without
//!   it Claude Code asks "Do you want to use this API key?" and defaults to No), and the
//!   workspace trusted (`projects.<dir>.hasTrustDialogAccepted`; without it "Do you trust the
//!   files in this folder?" defaults to "No, exit").
//! - `~/.claude/settings.json`: hooks that report the agent's state to clauderon.
//!
//! Merges never drop what is there: other keys, other projects, the user's own hooks and
//! their order all stay; only clauderon's own hook entries are replaced.

use serde_json::{Map, Value, json};

/// The Claude Code version these keys were tested with (README pins it too).
pub const TESTED_VERSION: &str = "2.1.332";

/// `~/.claude.json`, relative to the sandbox user's home.
pub const STATE_FILE: &str = ".claude.json";

/// `~/.claude/settings.json`, relative to the sandbox user's home.
pub const SETTINGS_FILE: &str = ".claude/settings.json";

/// The hook events that report the agent's state, each long-standing in Claude Code 2.x.
pub const HOOK_EVENTS: [&str; 7] = [
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "Notification",
    "Stop",
    "SessionEnd",
];

/// How many seconds Claude Code gives one hook before it moves on.
const HOOK_TIMEOUT_SECS: u64 = 10;

/// A file that is not a JSON object cannot be merged into.
#[derive(Debug, thiserror::Error)]
#[error("{file} in the sandbox is not a JSON object ({reason})")]
pub struct NotAnObject {
    /// Which file.
    pub file: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn parse(file: &'static str, text: Option<&str>) -> Result<Map<String, Value>, NotAnObject> {
    match text.map(str::trim) {
        None | Some("") => Ok(Map::new()),
        Some(t) => match serde_json::from_str::<Value>(t) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(NotAnObject {
                file,
                reason: format!("it holds a JSON {}", kind(&other)),
            }),
            Err(e) => Err(NotAnObject {
                file,
                reason: e.to_string(),
            }),
        },
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn object<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = m.entry(key.to_owned()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    match slot {
        Value::Object(o) => o,
        _ => unreachable!("just made an object"),
    }
}

fn array<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = m.entry(key.to_owned()).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    match slot {
        Value::Array(a) => a,
        _ => unreachable!("just made an array"),
    }
}

/// The suffix of a key that Claude Code records when a key is approved.
pub fn approval_suffix(key: &str) -> String {
    let k = key.trim();
    let start = k.char_indices().rev().nth(19).map_or(0, |(i, _)| i);
    k[start..].to_owned()
}

/// `~/.claude.json` merged for an unattended start in `workspace`, with `api_key` (the
/// proxy's placeholder the agent gets, if it gets one) approved. `None` when `existing`
/// already has everything (nothing to write).
pub fn merge_state(
    existing: Option<&str>,
    workspace: &str,
    api_key: Option<&str>,
) -> Result<Option<String>, NotAnObject> {
    let mut m = parse(STATE_FILE, existing)?;
    let before = Value::Object(m.clone());
    m.insert("hasCompletedOnboarding".into(), Value::Bool(true));
    m.entry("lastOnboardingVersion")
        .or_insert_with(|| Value::String(TESTED_VERSION.into()));
    m.entry("theme")
        .or_insert_with(|| Value::String("dark".into()));
    if let Some(key) = api_key {
        let suffix = approval_suffix(key);
        let responses = object(&mut m, "customApiKeyResponses");
        array(responses, "rejected").retain(|v| v.as_str() != Some(&suffix));
        let approved = array(responses, "approved");
        if !approved.iter().any(|v| v.as_str() == Some(&suffix)) {
            approved.push(Value::String(suffix));
        }
    }
    let project = object(object(&mut m, "projects"), workspace);
    project.insert("hasTrustDialogAccepted".into(), Value::Bool(true));
    project.insert("hasCompletedProjectOnboarding".into(), Value::Bool(true));
    let after = Value::Object(m);
    Ok((after != before).then(|| pretty(&after)))
}

/// `~/.claude/settings.json` with clauderon's state hooks (each runs `hook_command EVENT`):
/// every earlier clauderon hook entry (one whose command contains `marker`) is replaced, the
/// user's own hooks stay where they are. `None` when nothing changes.
pub fn merge_settings(
    existing: Option<&str>,
    hook_command: &str,
    marker: &str,
) -> Result<Option<String>, NotAnObject> {
    let mut m = parse(SETTINGS_FILE, existing)?;
    let before = Value::Object(m.clone());
    let hooks = object(&mut m, "hooks");
    let ours = |group: &Value| {
        group["hooks"].as_array().is_some_and(|hs| {
            hs.iter()
                .any(|h| h["command"].as_str().is_some_and(|c| c.contains(marker)))
        })
    };
    for (_, groups) in hooks.iter_mut() {
        if let Value::Array(a) = groups {
            a.retain(|g| !ours(g));
        }
    }
    hooks.retain(|_, v| !v.as_array().is_some_and(Vec::is_empty));
    for event in HOOK_EVENTS {
        let mut group = json!({
            "hooks": [{
                "type": "command",
                "command": format!("{hook_command} {event}"),
                "timeout": HOOK_TIMEOUT_SECS,
            }]
        });
        if matches!(event, "PreToolUse" | "PostToolUse") {
            group["matcher"] = Value::String("*".into());
        }
        array(hooks, event).push(group);
    }
    let after = Value::Object(m);
    Ok((after != before).then(|| pretty(&after)))
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "/home/agent/workspace";
    const KEY: &str = "clauderon-placeholder-anthropic_api_key-0123456789abcdef01234567";

    #[test]
    fn a_fresh_state_file_gets_every_answer() {
        let out = merge_state(None, WS, Some(KEY)).unwrap().unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["hasCompletedOnboarding"], true);
        assert_eq!(v["theme"], "dark");
        assert_eq!(v["lastOnboardingVersion"], TESTED_VERSION);
        assert_eq!(
            v["customApiKeyResponses"]["approved"],
            json!([&KEY[KEY.len() - 20..]])
        );
        assert_eq!(v["projects"][WS]["hasTrustDialogAccepted"], true);
        // Merging again changes nothing.
        assert_eq!(merge_state(Some(&out), WS, Some(KEY)).unwrap(), None);
    }

    #[test]
    fn merging_keeps_what_the_user_and_earlier_runs_put_there() {
        let old = json!({
            "theme": "light",
            "numStartups": 7,
            "hasCompletedOnboarding": false,
            "customApiKeyResponses": {"approved": ["aaaaaaaaaaaaaaaaaaaa"], "rejected": [&KEY[KEY.len() - 20..], "bbb"]},
            "projects": {
                "/elsewhere": {"hasTrustDialogAccepted": false, "allowedTools": ["Bash"]},
                WS: {"allowedTools": ["Edit"], "history": [1, 2]}
            },
            "mcpServers": {"x": {"command": "y"}}
        })
        .to_string();
        let out = merge_state(Some(&old), WS, Some(KEY)).unwrap().unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["theme"], "light", "the user's theme stays");
        assert_eq!(v["numStartups"], 7);
        assert_eq!(v["hasCompletedOnboarding"], true);
        assert_eq!(v["mcpServers"]["x"]["command"], "y");
        assert_eq!(
            v["customApiKeyResponses"]["approved"],
            json!(["aaaaaaaaaaaaaaaaaaaa", &KEY[KEY.len() - 20..]])
        );
        assert_eq!(v["customApiKeyResponses"]["rejected"], json!(["bbb"]));
        assert_eq!(v["projects"]["/elsewhere"]["hasTrustDialogAccepted"], false);
        assert_eq!(v["projects"]["/elsewhere"]["allowedTools"], json!(["Bash"]));
        assert_eq!(v["projects"][WS]["allowedTools"], json!(["Edit"]));
        assert_eq!(v["projects"][WS]["history"], json!([1, 2]));
        assert_eq!(v["projects"][WS]["hasTrustDialogAccepted"], true);
    }

    #[test]
    fn without_an_api_key_nothing_is_approved() {
        let out = merge_state(None, WS, None).unwrap().unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert!(v.get("customApiKeyResponses").is_none());
    }

    #[test]
    fn a_file_that_is_not_an_object_is_an_error_not_a_clobber() {
        for bad in ["[1]", "{not json", "\"x\""] {
            let e = merge_state(Some(bad), WS, None).unwrap_err();
            assert!(e.to_string().contains(".claude.json"), "{e}");
            assert!(merge_settings(Some(bad), "h", "h").is_err());
        }
        // Empty or whitespace counts as absent.
        assert!(merge_state(Some("  \n"), WS, None).unwrap().is_some());
    }

    #[test]
    fn hooks_replace_only_clauderons_own() {
        let hook = "/home/agent/.clauderon/bin/clauderon-agent-report";
        let user = json!({
            "model": "opus",
            "hooks": {
                "Stop": [
                    {"hooks": [{"type": "command", "command": "notify-send done"}]},
                    {"hooks": [{"type": "command", "command": "/old/clauderon-agent-report Stop"}]}
                ],
                "PreCompact": [{"hooks": [{"type": "command", "command": "echo compact"}]}]
            }
        })
        .to_string();
        let out = merge_settings(Some(&user), hook, "clauderon-agent-report")
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["model"], "opus");
        assert_eq!(
            v["hooks"]["PreCompact"][0]["hooks"][0]["command"],
            "echo compact"
        );
        let stop = v["hooks"]["Stop"].as_array().unwrap();
        assert_eq!(stop.len(), 2, "the user's hook, then ours once: {stop:?}");
        assert_eq!(stop[0]["hooks"][0]["command"], "notify-send done");
        assert_eq!(stop[1]["hooks"][0]["command"], format!("{hook} Stop"));
        for e in HOOK_EVENTS {
            assert_eq!(
                v["hooks"][e]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|g| g.to_string().contains("clauderon-agent-report"))
                    .count(),
                1,
                "{e}"
            );
        }
        assert_eq!(
            v["hooks"]["PreToolUse"].as_array().unwrap().last().unwrap()["matcher"],
            "*"
        );
        // Idempotent.
        assert_eq!(
            merge_settings(Some(&out), hook, "clauderon-agent-report").unwrap(),
            None
        );
    }

    #[test]
    fn the_approval_suffix_is_the_last_twenty_characters() {
        assert_eq!(approval_suffix(KEY), &KEY[KEY.len() - 20..]);
        assert_eq!(approval_suffix(" short "), "short");
    }
}
