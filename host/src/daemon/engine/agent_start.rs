//! Starting the agent (DESIGN §12): its unattended setup, its command line and environment,
//! its task; confirming that it really started (its first hook report, or for an agent without
//! hooks a few seconds alive); resuming its conversation after its process went away (wake,
//! restore, daemon restart), falling back from its conversation id to the workspace's latest
//! conversation to a fresh start when the agent refuses one; re-attaching to it.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::AgentState;
use crate::config::Resume;
use crate::plugins::ops::{self, AttachRequest, ExecRequest};
use crate::session::{SessionId, Status};
use crate::store::SessionRecord;

use super::super::error::EngineError;
use super::{Engine, LiveAgent, agent_task};

/// Terminal size of the agent's detached session when no client is attached.
pub(super) const DEFAULT_COLS: u16 = 120;
/// Terminal rows, likewise.
pub(super) const DEFAULT_ROWS: u16 = 40;

/// How long an agent with hooks may take to report for the first time before the daemon stops
/// waiting (it then counts as started, with a warning).
const FIRST_REPORT_LIMIT: Duration = Duration::from_secs(60);

/// How many lines of the agent's last screen an error quotes.
const LAST_LINES: usize = 20;

impl Engine {
    /// Starts the agent afresh (`resume`: continue an earlier conversation) and its task. The
    /// caller confirms the start with [`Engine::confirm_start`] where it matters.
    pub(super) async fn start_agent(
        self: &Arc<Self>,
        rec: &SessionRecord,
        resume: Option<Resume>,
    ) -> Result<Arc<LiveAgent>, EngineError> {
        let client = self.backends().get(&rec.backend)?;
        let instance = Engine::instance_of(rec)
            .ok_or_else(|| EngineError::Conflict("the session has no sandbox".into()))?;
        let row = self.store().agent(rec.id).await?;
        let cwd = row
            .workspace
            .clone()
            .unwrap_or_else(|| self.workspace_for(&rec.backend));
        let o = &rec.options;
        let prompt = if resume.is_some() {
            None
        } else {
            Some(rec.prompt.as_str())
        };
        let agent_cfg = &self.config().agent;
        let argv = agent_cfg.argv(
            prompt,
            o.model.as_deref(),
            o.plan_mode,
            o.print,
            resume.as_ref(),
        );
        if argv.is_empty() {
            return Err(EngineError::BadRequest(
                "the agent command is empty; set [agent] command in config.toml".into(),
            ));
        }
        let mut env = self.agent_env(rec.id).await?;
        for (k, v) in &agent_cfg.env {
            env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in self.cache_env(rec.id).await {
            env.entry(k).or_insert(v);
        }
        self.prepare_agent(rec.id, &client, &instance, &cwd, &env)
            .await?;
        tracing::info!(session = %rec.id, "starting the agent: {}", shell_words(&argv));
        let reports_before = self.runtime(rec.id).report_count();
        let (started, stream) = if o.print {
            let req = ExecRequest {
                instance,
                command: argv,
                env,
                cwd: Some(cwd.clone()),
                tty: false,
            };
            self.plugin(
                rec.id,
                &client,
                "agent",
                |c| async move { c.exec(&req).await },
            )
            .await
            .map_err(|e| EngineError::backend(client.name(), ops::EXEC, e))?
        } else {
            let req = AttachRequest {
                instance,
                session: None,
                command: argv,
                cols: DEFAULT_COLS,
                rows: DEFAULT_ROWS,
                cwd: Some(cwd.clone()),
                env,
            };
            self.plugin(
                rec.id,
                &client,
                "agent",
                |c| async move { c.attach(&req).await },
            )
            .await
            .map_err(|e| EngineError::backend(client.name(), ops::ATTACH, e))?
        };
        if let Some(inst) = &started.instance
            && Engine::instance_of(rec).as_ref() != Some(inst)
        {
            self.save_instance(rec.id, inst).await?;
        }
        let state = if agent_cfg.reports_state {
            AgentState::Starting
        } else {
            AgentState::Running
        };
        self.store()
            .put_agent(
                rec.id,
                crate::store::AgentRecord {
                    agent_session: started.session.clone(),
                    exit_code: None,
                    workspace: Some(cwd),
                    state: Some(state),
                    conversation: row.conversation,
                },
            )
            .await?;
        self.emit_agent_state(rec.id, Some(state)).await;
        Ok(agent_task::spawn(
            self,
            rec.id,
            stream,
            o.print,
            reports_before,
        ))
    }

    /// Waits until `agent` has really started: its first hook report (an agent with hooks) or
    /// `[agent] start_grace` alive (one without). An agent that exits first is an
    /// [`EngineError::AgentExited`] quoting its last screen lines.
    pub(super) async fn confirm_start(
        &self,
        id: SessionId,
        agent: &Arc<LiveAgent>,
    ) -> Result<(), EngineError> {
        let hooks = self.config().agent.reports_state;
        let rt = self.runtime(id);
        let reported = async {
            if hooks {
                rt.wait_first_report(agent.started_after()).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let limit = if hooks {
            FIRST_REPORT_LIMIT
        } else {
            self.config().agent.start_grace
        };
        tokio::select! {
            _ = reported => Ok(()),
            _ = agent.ended() => Err(self.exited_early(id, agent).await),
            _ = tokio::time::sleep(limit) => {
                if agent.is_done() {
                    return Err(self.exited_early(id, agent).await);
                }
                if hooks {
                    self.warn(id, format!(
                        "the agent has not reported its state within {}s; attach to see its \
                         screen (`clauderon attach`)",
                        limit.as_secs()
                    ))
                    .await;
                }
                Ok(())
            }
        }
    }

    /// The error for an agent whose process ended before it started working.
    async fn exited_early(&self, id: SessionId, agent: &LiveAgent) -> EngineError {
        let code = self.store().agent(id).await.ok().and_then(|r| r.exit_code);
        let screen = last_screen_lines(&agent.recent_output(), LAST_LINES);
        let name = self
            .store()
            .get(id)
            .await
            .map(|r| r.name.to_string())
            .unwrap_or_else(|_| id.to_string());
        let how = match code {
            Some(c) => format!("exited with code {c}"),
            None => "stopped".to_owned(),
        };
        let mut msg = format!("the agent {how} before it started working");
        if screen.is_empty() {
            msg.push_str(" (it printed nothing)");
        } else {
            msg.push_str("; its last output:\n");
            msg.push_str(&screen);
        }
        msg.push_str(&format!(
            "\nfix the cause, then start it again with `clauderon restart {name}`"
        ));
        EngineError::AgentExited(msg)
    }

    /// Starts the agent again after its process went away, continuing its conversation: by its
    /// id when the agent reported one, else the workspace's latest conversation. An agent with
    /// hooks that refuses (exits before its first report) is tried with the next of those, then
    /// afresh with the prompt; `confirm` also confirms a hookless agent's start.
    pub(super) async fn resume_agent(
        self: &Arc<Self>,
        rec: &SessionRecord,
        confirm: bool,
    ) -> Result<Arc<LiveAgent>, EngineError> {
        let row = self.store().agent(rec.id).await?;
        let hooks = self.config().agent.reports_state;
        let mut tries: Vec<Option<Resume>> = Vec::new();
        if let Some(c) = row.conversation {
            tries.push(Some(Resume::Conversation(c)));
        }
        tries.push(Some(Resume::Latest));
        if hooks {
            tries.push(None);
        } else {
            tries.truncate(1);
        }
        let mut last_err = None;
        for (i, resume) in tries.iter().enumerate() {
            let what = match resume {
                Some(Resume::Conversation(c)) => format!("resuming conversation {c}"),
                Some(Resume::Latest) => "continuing the workspace's latest conversation".into(),
                None => "starting afresh with the session's prompt".into(),
            };
            self.progress(rec.id, "agent", what).await;
            let agent = self.start_agent(rec, resume.clone()).await?;
            if !(hooks || confirm) {
                return Ok(agent);
            }
            match self.confirm_start(rec.id, &agent).await {
                Ok(()) => return Ok(agent),
                Err(e) if i + 1 < tries.len() => {
                    tracing::info!(session = %rec.id, "resume attempt failed: {e}");
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| EngineError::Internal("no way to start the agent".into())))
    }

    /// The live agent of a running session: the task if one runs, else a re-attach to the
    /// agent's detached session, else (the plugin says it is gone) the agent resumed. `None`
    /// for a `--print` run, whose output stream cannot be re-joined, or an agent that exited
    /// (`clauderon restart` starts it again).
    pub async fn ensure_agent(
        self: &Arc<Self>,
        id: SessionId,
    ) -> Result<Option<Arc<LiveAgent>>, EngineError> {
        let rt = self.runtime(id);
        if let Some(a) = rt.agent() {
            return Ok(Some(a));
        }
        let _starting = rt.agent_start.lock().await;
        if let Some(a) = rt.agent() {
            return Ok(Some(a));
        }
        let rec = self.store().get(id).await?;
        if rec.status != Status::Running {
            return Err(EngineError::Conflict(format!(
                "the session is {}; the agent runs only while it is running",
                rec.status
            )));
        }
        let row = self.store().agent(id).await?;
        if rec.options.print || row.exit_code.is_some() {
            return Ok(None);
        }
        self.reattach(&rec, row.agent_session.as_deref())
            .await
            .map(Some)
    }

    /// Attaches to the agent's detached session; resumes it when it is gone.
    pub(super) async fn reattach(
        self: &Arc<Self>,
        rec: &SessionRecord,
        agent_session: Option<&str>,
    ) -> Result<Arc<LiveAgent>, EngineError> {
        if let Some(sess) = agent_session
            && let Some(a) = self.attach_to(rec, sess).await?
        {
            return Ok(a);
        }
        self.progress(
            rec.id,
            "agent",
            "the agent's process is gone; starting it again",
        )
        .await;
        self.resume_agent(rec, false).await
    }

    /// Attaches to the agent's detached session `sess` if it still exists (`None` when the
    /// plugin says it is gone).
    pub(super) async fn attach_to(
        self: &Arc<Self>,
        rec: &SessionRecord,
        sess: &str,
    ) -> Result<Option<Arc<LiveAgent>>, EngineError> {
        let client = self.backends().get(&rec.backend)?;
        let Some(instance) = Engine::instance_of(rec) else {
            return Ok(None);
        };
        let row = self.store().agent(rec.id).await?;
        let cwd = row
            .workspace
            .unwrap_or_else(|| self.workspace_for(&rec.backend));
        // The command is only used by a plugin that has to start the session anew.
        let o = &rec.options;
        let argv = self.config().agent.argv(
            None,
            o.model.as_deref(),
            o.plan_mode,
            false,
            Some(&Resume::Latest),
        );
        let before = self.runtime(rec.id).report_count();
        let req = AttachRequest {
            instance,
            session: Some(sess.to_owned()),
            command: argv,
            cols: DEFAULT_COLS,
            rows: DEFAULT_ROWS,
            cwd: Some(cwd),
            env: self.agent_env(rec.id).await?,
        };
        match self
            .plugin(
                rec.id,
                &client,
                "agent",
                |c| async move { c.attach(&req).await },
            )
            .await
        {
            Ok((started, stream)) => {
                if let Some(inst) = &started.instance {
                    self.save_instance(rec.id, inst).await?;
                }
                if let Some(s) = started.session.filter(|s| s != sess) {
                    self.store()
                        .update_agent(rec.id, move |r| r.agent_session = Some(s))
                        .await?;
                }
                Ok(Some(agent_task::spawn(self, rec.id, stream, false, before)))
            }
            Err(e) if e.kind == crate::plugins::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EngineError::backend(client.name(), ops::ATTACH, e)),
        }
    }
}

/// `argv` as a shell would show it (for progress messages; the prompt is cut short).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let a: String = if a.chars().count() > 60 {
                a.chars().take(57).chain("...".chars()).collect()
            } else {
                a.clone()
            };
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` non-empty lines the terminal showed, as text: `output` (raw terminal bytes,
/// escape codes and all) is played through a terminal emulator first.
pub fn last_screen_lines(output: &[u8], n: usize) -> String {
    let (Some(rows), Some(cols)) = (
        std::num::NonZeroU16::new(DEFAULT_ROWS),
        std::num::NonZeroU16::new(DEFAULT_COLS),
    ) else {
        return String::new();
    };
    let mut parser = vt100::Parser::new(rows, cols, 0);
    parser.process(output);
    let text = parser.screen().contents();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_screen_is_text_without_escape_codes() {
        let out = b"\x1b[2J\x1b[H\x1b[1;31mUnable to connect\x1b[0m\r\n\r\n  detail here  \r\nEXIT";
        assert_eq!(
            last_screen_lines(out, 20),
            "Unable to connect\n  detail here\nEXIT"
        );
        assert_eq!(last_screen_lines(out, 1), "EXIT");
        assert_eq!(last_screen_lines(b"", 5), "");
    }

    #[test]
    fn progress_shows_the_command_quoted() {
        let argv: Vec<String> = ["claude", "--model", "m", "fix the bug's cause"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            shell_words(&argv),
            r"claude --model m 'fix the bug'\''s cause'"
        );
    }
}
