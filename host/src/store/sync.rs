//! The two-way sync's durable state (migration v4): per session the worktree, whether the sync
//! runs, why it paused, the agreed commit; the ancestor (one row per path) and the held
//! conflicts. Rows go away with their session.

use std::collections::BTreeMap;

use clauderon_sync::{Entry, Tree};
use rusqlite::{OptionalExtension as _, params};

use super::{Db, StoreError};
use crate::session::SessionId;
use crate::sync::history::HistoryState;
use crate::sync::{Conflict, SyncState};

/// A synced session's record besides its ancestor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRecord {
    /// The local worktree.
    pub worktree: String,
    /// Whether the sync runs (`clauderon sync NAME --stop` clears it).
    pub running: bool,
    /// Why it paused (a mass deletion, diverged history), if it did.
    pub paused: Option<String>,
    /// The commit both sides last agreed on.
    pub agreed_head: Option<String>,
    /// When a cycle last finished (Unix ms).
    pub last_sync_at: Option<i64>,
    /// Where the commits stand (migration v5).
    pub history: HistoryState,
    /// Why history is not in step, when it is not.
    pub history_reason: Option<String>,
}

fn bad_row(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

impl Db {
    /// A session's sync record, if it syncs.
    pub fn sync_record(&self, id: SessionId) -> Result<Option<SyncRecord>, StoreError> {
        Ok(self
            .connection()
            .prepare_cached(
                "SELECT worktree, running, paused, agreed_head, last_sync_at, history, \
                 history_reason FROM sync_sessions WHERE session_id = ?1",
            )?
            .query_row([id.to_string()], |r| {
                Ok(SyncRecord {
                    worktree: r.get(0)?,
                    running: r.get::<_, i64>(1)? != 0,
                    paused: r.get(2)?,
                    agreed_head: r.get(3)?,
                    last_sync_at: r.get(4)?,
                    history: HistoryState::from_name(&r.get::<_, String>(5)?),
                    history_reason: r.get(6)?,
                })
            })
            .optional()?)
    }

    /// Writes a session's sync record (the ancestor and conflicts are [`Db::put_sync_state`]).
    pub fn put_sync_record(&self, id: SessionId, rec: &SyncRecord) -> Result<(), StoreError> {
        self.connection()
            .prepare_cached(
                "INSERT INTO sync_sessions (session_id, worktree, running, paused, new_epoch, \
                 agreed_head, last_sync_at, history, history_reason) \
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8) \
                 ON CONFLICT(session_id) DO UPDATE SET worktree = ?2, running = ?3, \
                 paused = ?4, agreed_head = ?5, last_sync_at = ?6, history = ?7, \
                 history_reason = ?8",
            )?
            .execute(params![
                id.to_string(),
                rec.worktree,
                i64::from(rec.running),
                rec.paused,
                rec.agreed_head,
                rec.last_sync_at,
                rec.history.name(),
                rec.history_reason,
            ])?;
        Ok(())
    }

    /// The three-way state of a session (empty, new epoch, when it never synced).
    pub fn sync_state(&self, id: SessionId) -> Result<SyncState, StoreError> {
        let sid = id.to_string();
        let conn = self.connection();
        let new_epoch = conn
            .prepare_cached("SELECT new_epoch FROM sync_sessions WHERE session_id = ?1")?
            .query_row([&sid], |r| r.get::<_, i64>(0))
            .optional()?
            .is_none_or(|v| v != 0);
        let mut ancestor = Tree::new();
        let mut stmt =
            conn.prepare_cached("SELECT path, entry FROM sync_paths WHERE session_id = ?1")?;
        let rows = stmt.query_map([&sid], |r| {
            let (p, e): (String, String) = (r.get(0)?, r.get(1)?);
            Ok((p, Entry::from_text(&e).ok_or_else(|| bad_row("entry"))?))
        })?;
        for row in rows {
            let (p, e) = row?;
            ancestor.insert(p, e);
        }
        let conflicts = self.sync_conflicts(id)?;
        Ok(SyncState {
            ancestor,
            conflicts,
            new_epoch,
        })
    }

    /// The paths a session holds in conflict.
    pub fn sync_conflicts(&self, id: SessionId) -> Result<BTreeMap<String, Conflict>, StoreError> {
        let mut conflicts = BTreeMap::new();
        let mut stmt = self.connection().prepare_cached(
            "SELECT path, local, remote FROM sync_conflicts WHERE session_id = ?1",
        )?;
        let rows = stmt.query_map([id.to_string()], |r| {
            let (p, l, rm): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            Ok(Conflict {
                path: p,
                local: Entry::from_text(&l).ok_or_else(|| bad_row("local"))?,
                remote: Entry::from_text(&rm).ok_or_else(|| bad_row("remote"))?,
            })
        })?;
        for row in rows {
            let c = row?;
            conflicts.insert(c.path.clone(), c);
        }
        Ok(conflicts)
    }

    /// How many paths a session's ancestor holds (what `sync NAME` shows as synced), without
    /// loading them.
    pub fn sync_path_count(&self, id: SessionId) -> Result<usize, StoreError> {
        let n: i64 = self
            .connection()
            .prepare_cached("SELECT COUNT(*) FROM sync_paths WHERE session_id = ?1")?
            .query_row([id.to_string()], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Replaces the three-way state of a session in one transaction (only rows that changed
    /// are written).
    pub fn put_sync_state(&mut self, id: SessionId, state: &SyncState) -> Result<(), StoreError> {
        let old = self.sync_state(id)?;
        self.put_sync_state_since(id, &old, state)
    }

    /// [`Db::put_sync_state`] for a caller that holds what is stored now (`old`, as it loaded
    /// it and nobody wrote since): a large ancestor is not read back only to be compared.
    pub fn put_sync_state_since(
        &mut self,
        id: SessionId,
        old: &SyncState,
        state: &SyncState,
    ) -> Result<(), StoreError> {
        let sid = id.to_string();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let tx = self.connection_mut().transaction()?;
        {
            let mut del =
                tx.prepare_cached("DELETE FROM sync_paths WHERE session_id = ?1 AND path = ?2")?;
            for p in old
                .ancestor
                .keys()
                .filter(|p| !state.ancestor.contains_key(*p))
            {
                del.execute(params![sid, p])?;
            }
            let mut put = tx.prepare_cached(
                "INSERT INTO sync_paths (session_id, path, entry) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(session_id, path) DO UPDATE SET entry = ?3",
            )?;
            for (p, e) in &state.ancestor {
                if old.ancestor.get(p) != Some(e) {
                    put.execute(params![sid, p, e.to_text()])?;
                }
            }
            tx.execute("DELETE FROM sync_conflicts WHERE session_id = ?1", [&sid])?;
            let mut c = tx.prepare_cached(
                "INSERT INTO sync_conflicts (session_id, path, local, remote, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for k in state.conflicts.values() {
                c.execute(params![
                    sid,
                    k.path,
                    k.local.to_text(),
                    k.remote.to_text(),
                    now
                ])?;
            }
            tx.execute(
                "UPDATE sync_sessions SET new_epoch = ?2 WHERE session_id = ?1",
                params![sid, i64::from(state.new_epoch)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets a session's sync (its worktree is removed by the caller).
    pub fn remove_sync(&mut self, id: SessionId) -> Result<(), StoreError> {
        let sid = id.to_string();
        let tx = self.connection_mut().transaction()?;
        for t in ["sync_paths", "sync_conflicts", "sync_sessions"] {
            tx.execute(&format!("DELETE FROM {t} WHERE session_id = ?1"), [&sid])?;
        }
        tx.commit()?;
        Ok(())
    }
}
