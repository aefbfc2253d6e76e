//! `[agent]`: the agent command and how prompt, model, plan mode, print mode and resume are
//! passed to it, plus files to install in the sandbox before it starts. Presets: `claude`
//! (the default), `codex`, and `custom` (command required).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The file form of `[agent]`: a preset plus optional overrides of each piece.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentFile {
    pub preset: Option<toml::Spanned<String>>,
    pub command: Option<toml::Spanned<Vec<String>>>,
    pub prompt_args: Option<toml::Spanned<Vec<String>>>,
    pub model_args: Option<toml::Spanned<Vec<String>>>,
    pub plan_args: Option<Vec<String>>,
    pub print_args: Option<Vec<String>>,
    pub resume_args: Option<toml::Spanned<Vec<String>>>,
    pub continue_args: Option<Vec<String>>,
    pub files: Option<toml::Spanned<BTreeMap<String, toml::Spanned<String>>>>,
    pub start_grace: Option<toml::Spanned<String>>,
}

/// Which agent the preset describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentPreset {
    /// Claude Code (`claude`).
    Claude,
    /// OpenAI Codex CLI (`codex`).
    Codex,
    /// Anything else; `command` must be given.
    Custom,
}

/// How to start the agent. Each `*_args` list is appended when its feature is used, with
/// `{prompt}`, `{model}` and `{resume}` replaced by the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentConfig {
    /// The preset the values came from.
    pub preset: AgentPreset,
    /// The program and its fixed arguments.
    pub command: Vec<String>,
    /// How the prompt is passed (default: the prompt as the last argument).
    pub prompt_args: Vec<String>,
    /// How a model is chosen.
    pub model_args: Vec<String>,
    /// How plan mode is turned on.
    pub plan_args: Vec<String>,
    /// How non-interactive print mode is turned on (placed right after `command`).
    pub print_args: Vec<String>,
    /// How an earlier conversation is resumed (`{resume}`: the agent's conversation id).
    pub resume_args: Vec<String>,
    /// How the workspace's latest conversation is resumed when its id is unknown.
    pub continue_args: Vec<String>,
    /// Files installed in the sandbox before every start (`[agent] files`).
    pub files: Vec<SandboxFile>,
    /// Variables the preset's agent gets besides the proxy's.
    pub env: BTreeMap<String, String>,
    /// Whether the agent reports its state through hooks (Claude Code); without, the daemon
    /// only knows whether its process runs.
    pub reports_state: bool,
    /// How long an agent without hooks must stay alive to count as started (one with hooks
    /// counts as started at its first report).
    pub start_grace: std::time::Duration,
}

/// The default [`AgentConfig::start_grace`]: long enough for an agent that cannot start
/// (no credential, no network) to have exited.
pub const DEFAULT_START_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A file copied from the host into the sandbox before the agent starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SandboxFile {
    /// Where it goes: absolute, or relative to the sandbox user's home.
    pub sandbox_path: String,
    /// The file on the host (absolute).
    pub host_path: PathBuf,
}

/// The Codex CLI reaches api.openai.com through the credential proxy over plain HTTPS: its
/// built-in provider first tries a WebSocket, which the proxy does not carry, and falls back
/// only after retries; this provider is the same API without WebSockets.
const CODEX_PROVIDER: &str = "model_providers.clauderon={name=\"OpenAI\",\
base_url=\"https://api.openai.com/v1\",env_key=\"OPENAI_API_KEY\",wire_api=\"responses\",\
supports_websockets=false}";

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl AgentConfig {
    /// The values of a preset.
    pub fn preset(p: AgentPreset) -> Self {
        match p {
            AgentPreset::Claude | AgentPreset::Custom => Self {
                preset: p,
                command: if p == AgentPreset::Claude {
                    strings(&["claude"])
                } else {
                    Vec::new()
                },
                prompt_args: strings(&["{prompt}"]),
                model_args: strings(&["--model", "{model}"]),
                plan_args: strings(&["--permission-mode", "plan"]),
                print_args: strings(&["-p"]),
                resume_args: strings(&["--resume", "{resume}"]),
                continue_args: strings(&["--continue"]),
                files: Vec::new(),
                env: if p == AgentPreset::Claude {
                    // clauderon pins the agent it tested; the sandbox's install is the image's.
                    BTreeMap::from([("DISABLE_AUTOUPDATER".to_owned(), "1".to_owned())])
                } else {
                    BTreeMap::new()
                },
                reports_state: p == AgentPreset::Claude,
                start_grace: DEFAULT_START_GRACE,
            },
            AgentPreset::Codex => Self {
                preset: p,
                command: strings(&[
                    "codex",
                    "-c",
                    "model_provider=clauderon",
                    "-c",
                    CODEX_PROVIDER,
                ]),
                prompt_args: strings(&["{prompt}"]),
                model_args: strings(&["--model", "{model}"]),
                // Codex has no plan mode; a read-only sandbox is the nearest (it can look, not
                // change).
                plan_args: strings(&["--sandbox", "read-only"]),
                print_args: strings(&["exec"]),
                resume_args: strings(&["resume", "{resume}"]),
                continue_args: strings(&["resume", "--last"]),
                files: Vec::new(),
                env: BTreeMap::new(),
                reports_state: false,
                start_grace: DEFAULT_START_GRACE,
            },
        }
    }

    /// The full argv: command, then print, resume, model, plan and prompt arguments for each
    /// one asked for.
    pub fn argv(
        &self,
        prompt: Option<&str>,
        model: Option<&str>,
        plan: bool,
        print: bool,
        resume: Option<&Resume>,
    ) -> Vec<String> {
        let mut out = self.command.clone();
        let mut add = |args: &[String], placeholder: &str, value: &str| {
            out.extend(args.iter().map(|a| a.replace(placeholder, value)));
        };
        if print {
            add(&self.print_args, "", "");
        }
        match resume {
            Some(Resume::Conversation(r)) => add(&self.resume_args, "{resume}", r),
            Some(Resume::Latest) => add(&self.continue_args, "", ""),
            None => {}
        }
        if let Some(m) = model {
            add(&self.model_args, "{model}", m);
        }
        if plan {
            add(&self.plan_args, "", "");
        }
        if let Some(p) = prompt {
            add(&self.prompt_args, "{prompt}", p);
        }
        out
    }
}

/// How an agent start continues an earlier conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// This conversation (the agent's own id, from its hooks): `resume_args`.
    Conversation(String),
    /// The workspace's latest conversation: `continue_args`.
    Latest,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self::preset(AgentPreset::Claude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_argv() {
        let a = AgentConfig::default();
        assert_eq!(
            a.argv(Some("fix it"), None, false, false, None),
            ["claude", "fix it"]
        );
        assert_eq!(
            a.argv(
                Some("fix it"),
                Some("opus"),
                true,
                true,
                Some(&Resume::Conversation("abc".into()))
            ),
            [
                "claude",
                "-p",
                "--resume",
                "abc",
                "--model",
                "opus",
                "--permission-mode",
                "plan",
                "fix it"
            ]
        );
        assert_eq!(
            a.argv(
                None,
                None,
                false,
                false,
                Some(&Resume::Conversation("s1".into()))
            ),
            ["claude", "--resume", "s1"]
        );
        assert_eq!(
            a.argv(None, None, false, false, Some(&Resume::Latest)),
            ["claude", "--continue"]
        );
    }

    #[test]
    fn codex_argv() {
        let a = AgentConfig::preset(AgentPreset::Codex);
        let argv = a.argv(Some("go"), Some("o3"), false, true, None);
        assert_eq!(argv[..3], ["codex", "-c", "model_provider=clauderon"]);
        assert!(argv[4].contains("supports_websockets=false"), "{argv:?}");
        assert_eq!(argv[5..], ["exec", "--model", "o3", "go"]);
        assert_eq!(
            a.argv(Some("go"), None, true, false, None)[5..],
            ["--sandbox", "read-only", "go"]
        );
    }

    #[test]
    fn a_prompt_is_one_argument_even_with_braces() {
        let a = AgentConfig::default();
        assert_eq!(
            a.argv(
                Some("print {model} and $(rm -rf)"),
                Some("m"),
                false,
                false,
                None
            ),
            ["claude", "--model", "m", "print {model} and $(rm -rf)"]
        );
    }
}
