//! What the daemon remembers about each session's agent beside the session row: the plugin's
//! detachable session id, the workspace path inside the sandbox, the agent's state and exit code,
//! and its own conversation id. The table `daemon_agents` (migrations v2 and v3); rows go away
//! with their session.

use std::collections::HashMap;

use rusqlite::{OptionalExtension as _, params};

use super::{Db, StoreError};
use crate::agent::AgentState;
use crate::session::SessionId;

/// The daemon's record of one session's agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentRecord {
    /// The plugin's detachable session id (`StreamStarted.session`).
    pub agent_session: Option<String>,
    /// The agent's exit code once it exited.
    pub exit_code: Option<i32>,
    /// The workspace path inside the sandbox.
    pub workspace: Option<String>,
    /// What the agent is doing (`None`: no agent process is expected, e.g. hibernated).
    pub state: Option<AgentState>,
    /// The agent's own conversation id (from its hooks), which resuming hands back to it.
    pub conversation: Option<String>,
}

const COLUMNS: &str = "agent_session, exit_code, workspace, state, conversation";

fn row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<AgentRecord> {
    let exit_code: Option<i32> = r.get(at + 1)?;
    let state: Option<String> = r.get(at + 3)?;
    Ok(AgentRecord {
        agent_session: r.get(at)?,
        exit_code,
        workspace: r.get(at + 2)?,
        state: state.and_then(|s| AgentState::from_parts(&s, exit_code)),
        conversation: r.get(at + 4)?,
    })
}

impl Db {
    /// The agent record of a session (default when none was written).
    pub fn agent(&self, id: SessionId) -> Result<AgentRecord, StoreError> {
        let found = self
            .connection()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM daemon_agents WHERE session_id = ?1"
            ))?
            .query_row([id.to_string()], |r| row(r, 0))
            .optional()?;
        Ok(found.unwrap_or_default())
    }

    /// Every agent record, by session id (for listings).
    pub fn agents(&self) -> Result<HashMap<SessionId, AgentRecord>, StoreError> {
        let mut stmt = self
            .connection()
            .prepare_cached(&format!("SELECT session_id, {COLUMNS} FROM daemon_agents"))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, row(r, 1)?)))?;
        let mut out = HashMap::new();
        for r in rows {
            let (id, rec) = r?;
            if let Ok(id) = id.parse() {
                out.insert(id, rec);
            }
        }
        Ok(out)
    }

    /// Writes the whole agent record of a session.
    pub fn put_agent(&self, id: SessionId, rec: &AgentRecord) -> Result<(), StoreError> {
        let exit_code = rec.exit_code.or(rec.state.and_then(AgentState::exit_code));
        self.connection()
            .prepare_cached(&format!(
                "INSERT INTO daemon_agents (session_id, {COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(session_id) DO UPDATE SET \
                 agent_session = ?2, exit_code = ?3, workspace = ?4, state = ?5, \
                 conversation = ?6"
            ))?
            .execute(params![
                id.to_string(),
                rec.agent_session,
                exit_code,
                rec.workspace,
                rec.state.map(AgentState::name),
                rec.conversation,
            ])?;
        Ok(())
    }
}
