//! `[agent]`: the agent command and how prompt, model, plan mode, print mode and resume are
//! passed to it. Presets: `claude` (the default), `codex`, and `custom` (command required).

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
    /// How an earlier conversation is resumed.
    pub resume_args: Vec<String>,
}

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
            },
            AgentPreset::Codex => Self {
                preset: p,
                command: strings(&["codex"]),
                prompt_args: strings(&["{prompt}"]),
                model_args: strings(&["--model", "{model}"]),
                // Codex has no plan mode; a read-only sandbox is the nearest (it can look, not
                // change).
                plan_args: strings(&["--sandbox", "read-only"]),
                print_args: strings(&["exec"]),
                resume_args: strings(&["resume", "{resume}"]),
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
        resume: Option<&str>,
    ) -> Vec<String> {
        let mut out = self.command.clone();
        let mut add = |args: &[String], placeholder: &str, value: &str| {
            out.extend(args.iter().map(|a| a.replace(placeholder, value)));
        };
        if print {
            add(&self.print_args, "", "");
        }
        if let Some(r) = resume {
            add(&self.resume_args, "{resume}", r);
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
            a.argv(Some("fix it"), Some("opus"), true, true, Some("abc")),
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
            a.argv(None, None, false, false, Some("s1")),
            ["claude", "--resume", "s1"]
        );
    }

    #[test]
    fn codex_argv() {
        let a = AgentConfig::preset(AgentPreset::Codex);
        assert_eq!(
            a.argv(Some("go"), Some("o3"), false, true, None),
            ["codex", "exec", "--model", "o3", "go"]
        );
        assert_eq!(
            a.argv(Some("go"), None, true, false, None),
            ["codex", "--sandbox", "read-only", "go"]
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
