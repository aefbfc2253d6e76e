//! What the daemon remembers about each session's agent beside the store's session row: the
//! plugin's detachable session id, the workspace path inside the sandbox, the agent's state
//! and exit code, and its own conversation id. Kept in the table `daemon_agents` of the same
//! SQLite file (made by the store's migrations v2 and v3; rows go away with their session).

use std::collections::HashMap;

use rusqlite::{OptionalExtension as _, params};

use crate::agent::AgentState;
use crate::session::SessionId;
use crate::store::{Store, StoreError};

/// The daemon's record of one session's agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentRow {
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

fn row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<AgentRow> {
    let exit_code: Option<i32> = r.get(at + 1)?;
    let state: Option<String> = r.get(at + 3)?;
    Ok(AgentRow {
        agent_session: r.get(at)?,
        exit_code,
        workspace: r.get(at + 2)?,
        state: state.and_then(|s| AgentState::from_parts(&s, exit_code)),
        conversation: r.get(at + 4)?,
    })
}

/// The row of one session (default when none was written).
pub async fn get(store: &Store, id: SessionId) -> Result<AgentRow, StoreError> {
    store
        .run(move |db| {
            let found = db
                .connection()
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM daemon_agents WHERE session_id = ?1"
                ))?
                .query_row([id.to_string()], |r| row(r, 0))
                .optional()?;
            Ok(found.unwrap_or_default())
        })
        .await
}

/// Every row, by session id (for listings).
pub async fn all(store: &Store) -> Result<HashMap<SessionId, AgentRow>, StoreError> {
    store
        .run(|db| {
            let mut stmt = db
                .connection()
                .prepare_cached(&format!("SELECT session_id, {COLUMNS} FROM daemon_agents"))?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, row(r, 1)?)))?;
            let mut out = HashMap::new();
            for r in rows {
                let (id, row) = r?;
                if let Ok(id) = id.parse() {
                    out.insert(id, row);
                }
            }
            Ok(out)
        })
        .await
}

/// Writes the whole row of a session.
pub async fn put(store: &Store, id: SessionId, row: AgentRow) -> Result<(), StoreError> {
    store
        .run(move |db| {
            let exit_code = row.exit_code.or(row.state.and_then(AgentState::exit_code));
            db.connection()
                .prepare_cached(&format!(
                    "INSERT INTO daemon_agents (session_id, {COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(session_id) DO UPDATE SET \
                     agent_session = ?2, exit_code = ?3, workspace = ?4, state = ?5, \
                     conversation = ?6"
                ))?
                .execute(params![
                    id.to_string(),
                    row.agent_session,
                    exit_code,
                    row.workspace,
                    row.state.map(AgentState::name),
                    row.conversation,
                ])?;
            Ok(())
        })
        .await
}

/// Reads, changes and writes a session's row; returns the row as written.
pub async fn update(
    store: &Store,
    id: SessionId,
    f: impl FnOnce(&mut AgentRow) + Send + 'static,
) -> Result<AgentRow, StoreError> {
    let mut row = get(store, id).await?;
    f(&mut row);
    put(store, id, row.clone()).await?;
    Ok(row)
}
