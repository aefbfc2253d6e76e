//! The agent's unattended start (DESIGN §12): before every start (create, restart, resume after
//! a wake, a restore or a daemon restart) the preset's plan ([`crate::agent::setup::Plan`]) is
//! carried out in the sandbox through the plugin's `exec`: one read of what is there, then one
//! atomic, compare-and-swap write per file that must change. A file that changed between the
//! read and the write is read again (at most [`ATTEMPTS`] rounds).

use std::sync::Arc;
use std::time::Duration;

use crate::agent::setup::{self, Plan};
use crate::plugins::ops::Instance;
use crate::plugins::{Capabilities, PluginClient};
use crate::session::SessionId;

use super::super::error::EngineError;
use super::{Engine, sandbox_exec};

/// How long one read or write in the sandbox may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// How many read-merge-write rounds before giving up on a file that keeps changing.
const ATTEMPTS: usize = 3;

impl Engine {
    /// Prepares the sandbox for an agent that works in `workspace` and gets `env`.
    pub(super) async fn prepare_agent(
        &self,
        id: SessionId,
        client: &Arc<PluginClient>,
        instance: &Instance,
        workspace: &str,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let plan = Plan::for_agent(&self.config().agent)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        if plan.is_empty() {
            return Ok(());
        }
        if !client.capabilities().contains(Capabilities::EXEC) {
            self.warn(
                id,
                format!(
                    "backend `{}` cannot run commands, so the agent's own settings cannot be \
                     prepared; it may ask questions before it starts",
                    client.name()
                ),
            )
            .await;
            return Ok(());
        }
        let api_key = env.get("ANTHROPIC_API_KEY").map(String::as_str);
        let paths: Vec<String> = plan.needs.keys().cloned().collect();
        for _ in 0..ATTEMPTS {
            let mut argv = vec![
                "sh".to_owned(),
                "-c".to_owned(),
                setup::READ_SCRIPT.to_owned(),
                "sh".to_owned(),
            ];
            argv.extend(plan.read_args());
            let read = sandbox_exec::run(
                client,
                instance,
                argv,
                &[],
                STEP_TIMEOUT,
                "reading the agent's settings in the sandbox",
            )
            .await?;
            if read.code != 0 {
                return Err(EngineError::Internal(format!(
                    "cannot read the agent's settings in the sandbox (`sh` exited {}): {}",
                    read.code,
                    read.stderr_brief()
                )));
            }
            let found = setup::parse_found(&read.stdout, &paths)
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            let mut changed_under_us = false;
            for w in plan.writes(&found, workspace, api_key) {
                if let Some(why) = &w.warning {
                    self.warn(id, why.clone()).await;
                }
                let argv = vec![
                    "sh".to_owned(),
                    "-c".to_owned(),
                    setup::WRITE_SCRIPT.to_owned(),
                    "sh".to_owned(),
                    w.path.clone(),
                    format!("{:o}", w.mode),
                    w.expect.clone(),
                    if w.keep_old { "keep" } else { "" }.to_owned(),
                ];
                let wrote = sandbox_exec::run(
                    client,
                    instance,
                    argv,
                    &w.content,
                    STEP_TIMEOUT,
                    "writing the agent's settings in the sandbox",
                )
                .await?;
                match wrote.code {
                    0 => tracing::debug!(session = %id, path = %w.path, "agent file written"),
                    setup::CHANGED_UNDER_US => {
                        changed_under_us = true;
                        break;
                    }
                    code => {
                        return Err(EngineError::Internal(format!(
                            "cannot write ~/{} in the sandbox (`sh` exited {code}): {}",
                            w.path.trim_start_matches('/'),
                            wrote.stderr_brief()
                        )));
                    }
                }
            }
            if !changed_under_us {
                return Ok(());
            }
        }
        Err(EngineError::Internal(format!(
            "the agent's settings in the sandbox kept changing while clauderon merged them \
             ({ATTEMPTS} attempts); is another program writing them?"
        )))
    }
}
