//! What the daemon remembers about each session's agent beside the store's session row: the
//! plugin's detachable session id, the workspace path inside the sandbox, and the exit code of
//! a `--print` run. Kept in the table `daemon_agents` of the same SQLite file (made by the
//! store's migration v2; rows go away with their session).

use std::collections::HashMap;

use rusqlite::{OptionalExtension as _, params};

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
}

/// The row of one session (default when none was written).
pub async fn get(store: &Store, id: SessionId) -> Result<AgentRow, StoreError> {
    store
        .run(move |db| {
            let row = db
                .connection()
                .prepare_cached(
                    "SELECT agent_session, exit_code, workspace FROM daemon_agents \
                     WHERE session_id = ?1",
                )?
                .query_row([id.to_string()], |r| {
                    Ok(AgentRow {
                        agent_session: r.get(0)?,
                        exit_code: r.get(1)?,
                        workspace: r.get(2)?,
                    })
                })
                .optional()?;
            Ok(row.unwrap_or_default())
        })
        .await
}

/// Every row, by session id (for listings).
pub async fn all(store: &Store) -> Result<HashMap<SessionId, AgentRow>, StoreError> {
    store
        .run(|db| {
            let mut stmt = db.connection().prepare_cached(
                "SELECT session_id, agent_session, exit_code, workspace FROM daemon_agents",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    AgentRow {
                        agent_session: r.get(1)?,
                        exit_code: r.get(2)?,
                        workspace: r.get(3)?,
                    },
                ))
            })?;
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
            db.connection()
                .prepare_cached(
                    "INSERT INTO daemon_agents (session_id, agent_session, exit_code, workspace) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT(session_id) DO UPDATE SET \
                     agent_session = ?2, exit_code = ?3, workspace = ?4",
                )?
                .execute(params![
                    id.to_string(),
                    row.agent_session,
                    row.exit_code,
                    row.workspace
                ])?;
            Ok(())
        })
        .await
}

/// Reads, changes and writes a session's row.
pub async fn update(
    store: &Store,
    id: SessionId,
    f: impl FnOnce(&mut AgentRow) + Send + 'static,
) -> Result<(), StoreError> {
    let mut row = get(store, id).await?;
    f(&mut row);
    put(store, id, row).await
}
