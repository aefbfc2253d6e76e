//! What the agent is doing, as the daemon knows it: from its hook reports (Claude Code) or,
//! for an agent without hooks, from its stream alone.

use std::fmt;

/// The agent's state. `running` is what an agent without hooks shows while its process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum AgentState {
    /// Started; it has not reported yet.
    Starting,
    /// Working on a prompt (model calls, tools).
    Working,
    /// Waiting for a person: a permission prompt or a question.
    Waiting,
    /// Done with its turn; ready for the next prompt.
    Idle,
    /// Running (an agent without hooks reports nothing finer).
    Running,
    /// Its process ended with this code.
    Exited {
        /// The exit code (-1 when the stream ended without one).
        code: i32,
    },
}

impl AgentState {
    /// The name stored and shown (`exited` without its code).
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Working => "working",
            Self::Waiting => "waiting",
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Exited { .. } => "exited",
        }
    }

    /// The state named `name` (`code` for `exited`); `None` for an unknown name.
    pub fn from_parts(name: &str, code: Option<i32>) -> Option<Self> {
        Some(match name {
            "starting" => Self::Starting,
            "working" => Self::Working,
            "waiting" => Self::Waiting,
            "idle" => Self::Idle,
            "running" => Self::Running,
            "exited" => Self::Exited {
                code: code.unwrap_or(-1),
            },
            _ => return None,
        })
    }

    /// The exit code, once exited.
    pub fn exit_code(self) -> Option<i32> {
        match self {
            Self::Exited { code } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited { code } => write!(f, "exited({code})"),
            other => f.write_str(other.name()),
        }
    }
}

/// What one hook report says: the state it moves the agent to (if any) and the agent's own
/// conversation id (Claude Code's `session_id`, what `--resume` takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReport {
    /// The event's name (`hook_event_name`).
    pub event: String,
    /// The state it implies; `None` for events that change nothing (`SessionEnd`: the exit
    /// arrives on the stream).
    pub state: Option<AgentState>,
    /// The conversation id, when the report carries one.
    pub conversation: Option<String>,
}

/// Reads a Claude Code hook event (the JSON object a hook command gets on stdin).
pub fn read_hook(body: &serde_json::Map<String, serde_json::Value>) -> HookReport {
    let s = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let event = s("hook_event_name").to_owned();
    let state = match event.as_str() {
        "SessionStart" | "Stop" => Some(AgentState::Idle),
        "UserPromptSubmit" | "PreToolUse" | "PostToolUse" => Some(AgentState::Working),
        "Notification" => match s("notification_type") {
            "idle_prompt" => Some(AgentState::Idle),
            // A permission prompt, a question (elicitation), or an older version that does
            // not say: all wait for a person.
            "permission_prompt" | "elicitation_dialog" | "" => Some(AgentState::Waiting),
            _ => None,
        },
        _ => None,
    };
    let conversation = Some(s("session_id"))
        .filter(|c| is_conversation_id(c))
        .map(str::to_owned);
    HookReport {
        event,
        state,
        conversation,
    }
}

/// Whether `s` looks like a conversation id an agent's resume flag takes (a UUID-like token:
/// letters, digits and `-`, 8 to 64 characters). Anything else is not handed to the agent.
pub fn is_conversation_id(s: &str) -> bool {
    (8..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(v: serde_json::Value) -> HookReport {
        read_hook(v.as_object().unwrap())
    }

    #[test]
    fn hook_events_map_to_states() {
        let id = "dceb9ce1-ddd9-4d6d-b599-5f5a1a3ddc5c";
        for (event, extra, want) in [
            (
                "SessionStart",
                serde_json::json!({}),
                Some(AgentState::Idle),
            ),
            (
                "UserPromptSubmit",
                serde_json::json!({}),
                Some(AgentState::Working),
            ),
            (
                "PreToolUse",
                serde_json::json!({}),
                Some(AgentState::Working),
            ),
            (
                "PostToolUse",
                serde_json::json!({}),
                Some(AgentState::Working),
            ),
            (
                "Notification",
                serde_json::json!({"notification_type": "permission_prompt"}),
                Some(AgentState::Waiting),
            ),
            (
                "Notification",
                serde_json::json!({"notification_type": "idle_prompt"}),
                Some(AgentState::Idle),
            ),
            (
                "Notification",
                serde_json::json!({"notification_type": "auth_success"}),
                None,
            ),
            ("Stop", serde_json::json!({}), Some(AgentState::Idle)),
            ("SessionEnd", serde_json::json!({}), None),
            ("Unknown", serde_json::json!({}), None),
        ] {
            let mut v = extra;
            v["hook_event_name"] = event.into();
            v["session_id"] = id.into();
            let r = report(v);
            assert_eq!(r.state, want, "{event}");
            assert_eq!(r.conversation.as_deref(), Some(id));
        }
    }

    #[test]
    fn a_conversation_id_is_only_taken_when_it_looks_like_one() {
        for bad in ["", "6", "a b c d e f g h", "--resume-x;rm", &"a".repeat(65)] {
            let r = report(serde_json::json!({"hook_event_name": "Stop", "session_id": bad}));
            assert_eq!(r.conversation, None, "{bad}");
        }
    }

    #[test]
    fn states_print_and_parse() {
        for s in [
            AgentState::Starting,
            AgentState::Working,
            AgentState::Waiting,
            AgentState::Idle,
            AgentState::Running,
            AgentState::Exited { code: 1 },
        ] {
            assert_eq!(AgentState::from_parts(s.name(), s.exit_code()), Some(s));
        }
        assert_eq!(AgentState::Exited { code: 1 }.to_string(), "exited(1)");
        assert_eq!(
            serde_json::to_value(AgentState::Exited { code: 2 }).unwrap(),
            serde_json::json!({"state": "exited", "code": 2})
        );
        assert_eq!(
            serde_json::to_value(AgentState::Idle).unwrap(),
            serde_json::json!({"state": "idle"})
        );
        assert_eq!(AgentState::from_parts("nope", None), None);
    }
}
