//! The unattended start as a plan of file writes, and the two small `sh` scripts that carry it
//! out through any backend's `exec`: one reads what is there (the merged files' contents, the
//! installed files' SHA-256) in one round trip, one writes a file atomically (a temporary file
//! renamed into place) and only if it is still what was read (compare and swap), so a
//! concurrent writer is never overwritten blind.

use std::collections::BTreeMap;

use sha2::Digest as _;

use super::claude;
use crate::config::{AgentConfig, AgentPreset};

/// The hook script's name; also how clauderon's own hook entries are recognized.
pub const REPORT_SCRIPT_NAME: &str = "clauderon-agent-report";

/// Where the hook script goes, relative to the sandbox user's home.
pub const REPORT_SCRIPT: &str = ".clauderon/bin/clauderon-agent-report";

/// The hook script: forwards a hook's event (its stdin) to clauderon through the session's
/// credential proxy (`HTTPS_PROXY` carries the session's own credential, so the proxy knows
/// which session reports). It prints nothing (some hook events add stdout to the agent's
/// context), gives up after 5 s, and never fails the hook.
pub const REPORT_SCRIPT_TEXT: &str = r#"#!/bin/sh
# clauderon: reports a Claude Code hook event (stdin) to the clauderon daemon through the
# session's credential proxy, so `clauderon list` shows what the agent is doing.
p="${HTTPS_PROXY:-${https_proxy:-}}"
u="http://agent.clauderon.invalid/v1/agent-report"
if [ -n "$p" ]; then
  if command -v curl >/dev/null 2>&1; then
    curl -s -m 5 -x "$p" -H 'content-type: application/json' --data-binary @- "$u" >/dev/null 2>&1
  elif command -v wget >/dev/null 2>&1; then
    t=$(mktemp) && cat > "$t" && http_proxy="$p" wget -q -T 5 -O /dev/null \
      --header='content-type: application/json' --post-file="$t" "$u" >/dev/null 2>&1
    rm -f "$t"
  fi
fi
exit 0
"#;

/// Reads the files named in its arguments (`m:PATH` for a file to merge: its size and bytes;
/// `h:PATH` for an installed file: its SHA-256), after a first line with `$HOME`. Relative
/// paths are relative to `$HOME`.
pub const READ_SCRIPT: &str = r#"printf 'home %s\n' "$HOME"
for a in "$@"; do
  k=${a%%:*}; p=${a#*:}
  case "$p" in /*) ;; *) p="$HOME/$p" ;; esac
  if [ ! -f "$p" ]; then echo absent
  elif [ "$k" = h ]; then echo "sha $(sha256sum < "$p" | cut -d' ' -f1)"
  else echo "size $(wc -c < "$p" | tr -d ' ')"; cat "$p"; fi
done
"#;

/// Writes stdin to `$1` (relative to `$HOME` unless absolute) with mode `$2`, atomically, if
/// the file is still `$3` (`absent`, a SHA-256, or `-` for "whatever it is"); exits 75 when
/// it is not. With `$4` = `keep`, the old file is first copied aside (`.clauderon-corrupt-*`).
pub const WRITE_SCRIPT: &str = r#"set -e
p="$1"; case "$p" in /*) ;; *) p="$HOME/$p" ;; esac
mkdir -p "$(dirname "$p")"
t="$p.clauderon-$$"
cat > "$t"
chmod "$2" "$t"
if [ "$3" != "-" ]; then
  cur=absent
  if [ -f "$p" ]; then cur=$(sha256sum < "$p" | cut -d' ' -f1); fi
  if [ "$cur" != "$3" ]; then rm -f "$t"; exit 75; fi
fi
if [ "${4-}" = keep ] && [ -f "$p" ]; then cp -p "$p" "$p.clauderon-corrupt-$(date +%s)"; fi
mv -f "$t" "$p"
"#;

/// The write script's exit code when the file changed under it.
pub const CHANGED_UNDER_US: i32 = 75;

/// What the read script found for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No such file.
    Absent,
    /// A merged file's bytes.
    Content(Vec<u8>),
    /// An installed file's SHA-256 (hex).
    Sha(String),
}

impl Seen {
    /// What the write script must find to replace it (`absent` or the SHA-256).
    pub fn expectation(&self) -> String {
        match self {
            Self::Absent => "absent".into(),
            Self::Content(b) => sha256_hex(b),
            Self::Sha(s) => s.clone(),
        }
    }
}

/// The read script's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The sandbox user's `$HOME`.
    pub home: String,
    /// Per path asked, in order.
    pub files: BTreeMap<String, Seen>,
}

/// The read script's output did not have the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("unexpected answer from the sandbox while reading the agent's files: {0}")]
pub struct BadAnswer(String);

/// The SHA-256 of `b`, lowercase hex.
pub fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// One file the agent needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A JSON file merged with what is there (Claude Code's own config).
    Merge(MergeKind),
    /// A file installed as is (the hook script, `[agent] files`), with its mode.
    Install {
        /// Its bytes.
        content: Vec<u8>,
        /// Its mode (e.g. 0o755).
        mode: u32,
    },
}

/// Which merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeKind {
    /// `~/.claude.json`.
    ClaudeState,
    /// `~/.claude/settings.json`.
    ClaudeSettings,
}

/// One write to make: the file, its bytes and mode, what it must still be, and whether the
/// old (unreadable) file is kept aside first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Absolute, or relative to `$HOME`.
    pub path: String,
    /// The new bytes.
    pub content: Vec<u8>,
    /// The new mode.
    pub mode: u32,
    /// The read state it replaces (compare and swap).
    pub expect: String,
    /// Copy the old file aside first (it could not be merged).
    pub keep_old: bool,
    /// Why the old file is kept aside, for a warning.
    pub warning: Option<String>,
}

/// Everything one agent start needs in the sandbox, by path.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Path (absolute or relative to `$HOME`) → what it must hold.
    pub needs: BTreeMap<String, Need>,
}

impl Plan {
    /// The plan for `agent`: Claude Code's merged config and the hook script for the Claude
    /// preset, and the files `[agent] files` names (read from the host now).
    pub fn for_agent(agent: &AgentConfig) -> Result<Self, std::io::Error> {
        let mut needs = BTreeMap::new();
        if agent.preset == AgentPreset::Claude {
            needs.insert(
                claude::STATE_FILE.to_owned(),
                Need::Merge(MergeKind::ClaudeState),
            );
            needs.insert(
                claude::SETTINGS_FILE.to_owned(),
                Need::Merge(MergeKind::ClaudeSettings),
            );
            needs.insert(
                REPORT_SCRIPT.to_owned(),
                Need::Install {
                    content: REPORT_SCRIPT_TEXT.as_bytes().to_vec(),
                    mode: 0o755,
                },
            );
        }
        for f in &agent.files {
            let content = std::fs::read(&f.host_path).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("[agent] files: cannot read {}: {e}", f.host_path.display()),
                )
            })?;
            let mode = file_mode(&f.host_path);
            needs.insert(f.sandbox_path.clone(), Need::Install { content, mode });
        }
        Ok(Self { needs })
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.needs.is_empty()
    }

    /// The read script's arguments.
    pub fn read_args(&self) -> Vec<String> {
        self.needs
            .iter()
            .map(|(p, n)| match n {
                Need::Merge(_) => format!("m:{p}"),
                Need::Install { .. } => format!("h:{p}"),
            })
            .collect()
    }

    /// The writes that bring the sandbox from `found` to this plan, for an agent working in
    /// `workspace` with `api_key` (the placeholder in its `ANTHROPIC_API_KEY`, if any).
    pub fn writes(&self, found: &Found, workspace: &str, api_key: Option<&str>) -> Vec<Write> {
        let mut out = Vec::new();
        for (path, need) in &self.needs {
            let seen = found.files.get(path).cloned().unwrap_or(Seen::Absent);
            match need {
                Need::Install { content, mode } => {
                    if seen != Seen::Sha(sha256_hex(content)) {
                        out.push(Write {
                            path: path.clone(),
                            content: content.clone(),
                            mode: *mode,
                            expect: "-".into(),
                            keep_old: false,
                            warning: None,
                        });
                    }
                }
                Need::Merge(kind) => {
                    let text = match &seen {
                        Seen::Content(b) => Some(String::from_utf8_lossy(b).into_owned()),
                        _ => None,
                    };
                    let hook = format!("{}/{REPORT_SCRIPT}", found.home.trim_end_matches('/'));
                    let merge = |t: Option<&str>| match kind {
                        MergeKind::ClaudeState => claude::merge_state(t, workspace, api_key),
                        MergeKind::ClaudeSettings => {
                            claude::merge_settings(t, &hook, REPORT_SCRIPT_NAME)
                        }
                    };
                    let (merged, keep_old, warning) = match merge(text.as_deref()) {
                        Ok(m) => (m, false, None),
                        Err(e) => (
                            merge(None).ok().flatten(),
                            true,
                            Some(format!(
                                "{e}; it was kept aside as {path}.clauderon-corrupt-* and \
                                 written anew"
                            )),
                        ),
                    };
                    if let Some(m) = merged {
                        out.push(Write {
                            path: path.clone(),
                            content: m.into_bytes(),
                            mode: 0o600,
                            expect: seen.expectation(),
                            keep_old,
                            warning,
                        });
                    }
                }
            }
        }
        out
    }
}

#[cfg(unix)]
fn file_mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    let m = std::fs::metadata(p).map_or(0o644, |m| m.permissions().mode() & 0o777);
    // Readable by the sandbox user at least; executable stays executable.
    m | 0o600
}

#[cfg(not(unix))]
fn file_mode(_: &std::path::Path) -> u32 {
    0o644
}

/// Parses the read script's output for the paths it was asked about (`args` order).
pub fn parse_found(out: &[u8], paths: &[String]) -> Result<Found, BadAnswer> {
    let mut rest = out;
    let first = next_line(&mut rest)?;
    let home = first
        .strip_prefix("home ")
        .ok_or_else(|| BadAnswer(format!("expected `home ...`, got `{}`", cut(&first))))?
        .to_owned();
    if !home.starts_with('/') {
        return Err(BadAnswer(format!(
            "$HOME is not absolute: `{}`",
            cut(&home)
        )));
    }
    let mut files = BTreeMap::new();
    for p in paths {
        let l = next_line(&mut rest)?;
        let seen = if l == "absent" {
            Seen::Absent
        } else if let Some(sha) = l.strip_prefix("sha ") {
            Seen::Sha(sha.trim().to_owned())
        } else if let Some(n) = l.strip_prefix("size ") {
            let n: usize = n
                .trim()
                .parse()
                .map_err(|_| BadAnswer(format!("bad size `{}`", cut(n))))?;
            if rest.len() < n {
                return Err(BadAnswer(format!("{p}: fewer than {n} bytes arrived")));
            }
            let (content, tail) = rest.split_at(n);
            rest = tail;
            Seen::Content(content.to_vec())
        } else {
            return Err(BadAnswer(format!("{p}: unexpected `{}`", cut(&l))));
        };
        files.insert(p.clone(), seen);
    }
    Ok(Found { home, files })
}

fn next_line(rest: &mut &[u8]) -> Result<String, BadAnswer> {
    let end = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| BadAnswer("a line ended early".into()))?;
    let l = String::from_utf8_lossy(&rest[..end]).into_owned();
    *rest = &rest[end + 1..];
    Ok(l)
}

fn cut(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claude_plan() -> Plan {
        Plan::for_agent(&AgentConfig::default()).unwrap()
    }

    #[test]
    fn the_read_answer_parses_including_binary_and_newlines() {
        let plan = claude_plan();
        let paths: Vec<String> = plan.needs.keys().cloned().collect();
        assert_eq!(
            plan.read_args(),
            [
                "m:.claude.json",
                "m:.claude/settings.json",
                "h:.clauderon/bin/clauderon-agent-report"
            ]
        );
        let body = b"{\n\"a\": 1}\n";
        let mut out = b"home /home/agent\n".to_vec();
        out.extend_from_slice(format!("size {}\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"absent\nsha abc\n");
        let f = parse_found(&out, &paths).unwrap();
        assert_eq!(f.home, "/home/agent");
        assert_eq!(f.files[".claude.json"], Seen::Content(body.to_vec()));
        assert_eq!(f.files[".claude/settings.json"], Seen::Absent);
        assert_eq!(f.files[REPORT_SCRIPT], Seen::Sha("abc".into()));
        for bad in [
            &b""[..],
            b"nohome\n",
            b"home relative\n",
            b"home /h\nsize 99\nab",
        ] {
            assert!(parse_found(bad, &paths).is_err());
        }
    }

    #[test]
    fn writes_only_what_differs_and_swaps_only_what_was_read() {
        let plan = claude_plan();
        let empty = Found {
            home: "/home/agent".into(),
            files: BTreeMap::new(),
        };
        let w = plan.writes(
            &empty,
            "/home/agent/workspace",
            Some("k".repeat(30).as_str()),
        );
        assert_eq!(w.len(), 3);
        assert!(w.iter().all(|w| !w.keep_old));
        let state = w.iter().find(|w| w.path == claude::STATE_FILE).unwrap();
        assert_eq!(state.expect, "absent");
        let settings = w.iter().find(|w| w.path == claude::SETTINGS_FILE).unwrap();
        let text = String::from_utf8(settings.content.clone()).unwrap();
        assert!(text.contains("/home/agent/.clauderon/bin/clauderon-agent-report Stop"));
        // After the writes, the same start needs nothing.
        let after = Found {
            home: "/home/agent".into(),
            files: w
                .iter()
                .map(|w| {
                    let seen = if w.path == REPORT_SCRIPT {
                        Seen::Sha(sha256_hex(&w.content))
                    } else {
                        Seen::Content(w.content.clone())
                    };
                    (w.path.clone(), seen)
                })
                .collect(),
        };
        assert!(
            plan.writes(
                &after,
                "/home/agent/workspace",
                Some("k".repeat(30).as_str())
            )
            .is_empty()
        );
        // A corrupt file is kept aside and written anew.
        let mut broken = after.clone();
        broken
            .files
            .insert(claude::STATE_FILE.into(), Seen::Content(b"{oops".to_vec()));
        let w = plan.writes(&broken, "/home/agent/workspace", None);
        assert_eq!(w.len(), 1);
        assert!(w[0].keep_old && w[0].warning.is_some());
        assert_eq!(w[0].expect, sha256_hex(b"{oops"));
    }

    #[test]
    fn other_presets_need_nothing_unless_files_are_named() {
        let codex = AgentConfig::preset(AgentPreset::Codex);
        assert!(Plan::for_agent(&codex).unwrap().is_empty());
    }
}
