//! The one rendering of events as text, shared by `create`'s and `wake`'s progress lines,
//! `logs`, and any other client that shows events to a person.

use base64::Engine as _;

use super::events::{ApiEvent, SessionEvent};
use super::responses::Unpushed;

/// One line for an event (`status creating -> running`, `[clone] cloning ...`); `None` for
/// agent output, which is shown as the bytes it is ([`output_bytes`]).
pub fn line(ev: &SessionEvent) -> Option<String> {
    Some(match ev {
        SessionEvent::Output { .. } => return None,
        SessionEvent::Status(s) => {
            let reason = s
                .reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .map_or(String::new(), |r| format!(" ({r})"));
            match s.from {
                Some(from) => format!("status {from} -> {}{reason}", s.to),
                None => format!("status {}{reason}", s.to),
            }
        }
        SessionEvent::Progress(p) => format!("[{}] {}", p.stage, p.message),
        SessionEvent::AgentExited { code } => format!("agent exited with code {code}"),
        SessionEvent::AgentState(s) => match s.0 {
            Some(state) => format!("agent {state}"),
            None => "agent stopped".to_owned(),
        },
        SessionEvent::Log { level, message } => format!("{level}: {message}"),
        SessionEvent::Error { message } => format!("error: {message}"),
        SessionEvent::SyncConflict { path, stored } => format!(
            "[sync] conflict: {path} changed on both sides; each keeps its own, both versions \
             are in {stored}; `clauderon sync NAME resolve {path} --take local|sprite`"
        ),
    })
}

/// The agent's output bytes an `output` event carries (`None` for other events or a payload
/// that is not base64).
pub fn output_bytes(ev: &SessionEvent) -> Option<Vec<u8>> {
    match ev {
        SessionEvent::Output { b64 } => base64::engine::general_purpose::STANDARD.decode(b64).ok(),
        _ => None,
    }
}

/// The warning before deleting session `name` (branch `branch`) when its branch has commits
/// that exist only in the sandbox; `None` when there are none (or the check was not made).
pub fn unpushed_warning(name: &str, branch: Option<&str>, u: &Unpushed) -> Option<String> {
    if !u.checked || u.count == 0 {
        return None;
    }
    let branch = u
        .branch
        .as_deref()
        .or(branch)
        .unwrap_or("the session branch");
    let commits = if u.count == 1 { "commit" } else { "commits" };
    Some(format!(
        "warning: {} unpushed {commits} on branch {branch} of session {name} (not on {}); \
         deleting the session destroys {}; `clauderon pull {name}` fetches {} into your local \
         repository first",
        u.count,
        u.against.as_deref().unwrap_or("any remote branch"),
        if u.count == 1 { "it" } else { "them" },
        if u.count == 1 { "it" } else { "them" },
    ))
}

/// A line for an event of a kind this build does not know: its kind and payload.
pub fn unknown_line(ev: &ApiEvent) -> String {
    format!("{} {}", ev.kind, ev.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::events::{AgentStateEvent, ProgressEvent, StatusEvent};
    use crate::session::Status;

    #[test]
    fn lines() {
        let cases = [
            (
                SessionEvent::Status(StatusEvent {
                    from: None,
                    to: Status::Creating,
                    reason: None,
                }),
                "status creating",
            ),
            (
                SessionEvent::Status(StatusEvent {
                    from: Some(Status::Creating),
                    to: Status::Failed,
                    reason: Some("x".into()),
                }),
                "status creating -> failed (x)",
            ),
            (
                SessionEvent::Progress(ProgressEvent::new("clone", "cloning")),
                "[clone] cloning",
            ),
            (
                SessionEvent::AgentExited { code: 2 },
                "agent exited with code 2",
            ),
            (
                SessionEvent::AgentState(AgentStateEvent(Some(crate::agent::AgentState::Working))),
                "agent working",
            ),
            (
                SessionEvent::AgentState(AgentStateEvent(None)),
                "agent stopped",
            ),
            (
                SessionEvent::Log {
                    level: "warn".into(),
                    message: "m".into(),
                },
                "warn: m",
            ),
            (
                SessionEvent::Error {
                    message: "e".into(),
                },
                "error: e",
            ),
        ];
        for (ev, want) in cases {
            assert_eq!(line(&ev).as_deref(), Some(want));
        }
        let out = SessionEvent::Output { b64: "aGkK".into() };
        assert_eq!(line(&out), None);
        assert_eq!(output_bytes(&out).as_deref(), Some(&b"hi\n"[..]));
    }

    #[test]
    fn warns_only_about_checked_unpushed_commits() {
        let none = Unpushed {
            checked: true,
            ..Default::default()
        };
        assert_eq!(unpushed_warning("demo", None, &none), None);
        let unchecked = Unpushed {
            count: 3,
            ..Default::default()
        };
        assert_eq!(unpushed_warning("demo", None, &unchecked), None);
        let two = Unpushed {
            checked: true,
            count: 2,
            ..Default::default()
        };
        let w = unpushed_warning("demo", Some("clauderon/demo"), &two).unwrap();
        assert!(
            w.contains("2 unpushed commits on branch clauderon/demo of session demo"),
            "{w}"
        );
    }

    #[test]
    fn output_events_are_bytes() {
        let out = SessionEvent::Output { b64: "aGkK".into() };
        assert_eq!(line(&out), None);
        assert_eq!(output_bytes(&out).as_deref(), Some(&b"hi\n"[..]));
    }
}
