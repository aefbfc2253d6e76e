//! The synchronous store over one SQLite connection.

use super::records::{
    CheckpointRecord, EventRecord, NewCheckpoint, NewSession, SessionRecord, StatusChange,
};
use super::{StoreError, migrations};
use crate::session::{Event, SessionId, SessionName, SessionOptions, Status, transition};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a writer waits for another connection's lock (a CLI reading while the daemon writes).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The columns of a session row, in the order [`RawSession::from_row`] reads them.
const SESSION_COLS: &str = "id, name, backend, repository, branch, prompt, options, status, \
     instance_id, instance_state, failure_reason, created_at, updated_at";

/// The synchronous session store. One per process; the daemon wraps it in [`super::Store`].
#[derive(Debug)]
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A session row as stored, before its text columns are parsed.
struct RawSession {
    id: String,
    name: String,
    backend: String,
    repository: String,
    branch: Option<String>,
    prompt: String,
    options: String,
    status: String,
    instance_id: Option<String>,
    instance_state: Option<String>,
    failure_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl RawSession {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            backend: r.get(2)?,
            repository: r.get(3)?,
            branch: r.get(4)?,
            prompt: r.get(5)?,
            options: r.get(6)?,
            status: r.get(7)?,
            instance_id: r.get(8)?,
            instance_state: r.get(9)?,
            failure_reason: r.get(10)?,
            created_at: r.get(11)?,
            updated_at: r.get(12)?,
        })
    }

    fn parse(self) -> Result<SessionRecord, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            id: self.id.clone(),
            what,
        };
        let id: SessionId = self.id.parse().map_err(|e| corrupt(format!("{e}")))?;
        let name = SessionName::new(&self.name).map_err(|e| corrupt(format!("name: {e}")))?;
        let options: SessionOptions =
            serde_json::from_str(&self.options).map_err(|e| corrupt(format!("options: {e}")))?;
        let status: Status = self.status.parse().map_err(|e| corrupt(format!("{e}")))?;
        let instance_state = self
            .instance_state
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt(format!("instance_state: {e}")))?;
        Ok(SessionRecord {
            id,
            name,
            backend: self.backend,
            repository: self.repository,
            branch: self.branch,
            prompt: self.prompt,
            options,
            status,
            instance_id: self.instance_id,
            instance_state,
            failure_reason: self.failure_reason,
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
        })
    }
}

fn is_unique_violation(e: &rusqlite::Error, column: &str) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, Some(msg))
        if f.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains(column))
}

fn append_event_tx(
    conn: &Connection,
    id: SessionId,
    kind: &str,
    data: &serde_json::Value,
    at: OffsetDateTime,
) -> Result<i64, StoreError> {
    conn.prepare_cached("INSERT INTO events (session_id, at, kind, data) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![id.to_string(), to_ms(at), kind, data.to_string()])?;
    Ok(conn.last_insert_rowid())
}

impl Db {
    /// Opens (creating if needed) the store at `path`, enables WAL and full syncs, and runs
    /// migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL lets readers (a CLI) run beside the writer; FULL syncs the WAL on every commit,
        // so an acknowledged write survives a crash or power loss, not only a killed process.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrations::migrate(&mut conn, path)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Inserts a new session in status `creating`, with a first `status` event, in one
    /// transaction. A live session with the same name is [`StoreError::NameTaken`].
    pub fn insert_session(&mut self, new: &NewSession) -> Result<SessionRecord, StoreError> {
        let at = now();
        let options = serde_json::to_string(&new.options)
            .map_err(|e| StoreError::Task(format!("cannot encode options: {e}")))?;
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO sessions (id, name, backend, repository, branch, prompt, options, status, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
            params![
                new.id.to_string(),
                new.name.as_str(),
                new.backend,
                new.repository,
                new.branch,
                new.prompt,
                options,
                Status::Creating.as_str(),
                to_ms(at),
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e, "sessions.name") => {
                return Err(StoreError::NameTaken(new.name.to_string()));
            }
            Err(e) if is_unique_violation(&e, "sessions.id") => {
                return Err(StoreError::IdTaken(new.id.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        append_event_tx(
            &tx,
            new.id,
            "status",
            &serde_json::json!({"to": Status::Creating}),
            at,
        )?;
        tx.commit()?;
        self.get(new.id)
    }

    /// `base` if no live session has it, else the first free `base-2`, `base-3`, ...
    pub fn unique_name(&self, base: &SessionName) -> Result<SessionName, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM sessions WHERE name = ?1 AND status != 'deleted'")?;
        if !stmt.exists([base.as_str()])? {
            return Ok(base.clone());
        }
        for n in 2..10_000u32 {
            let candidate = base.with_suffix(n);
            if !stmt.exists([candidate.as_str()])? {
                return Ok(candidate);
            }
        }
        Err(StoreError::NameTaken(base.to_string()))
    }

    /// The session with this id.
    pub fn get(&self, id: SessionId) -> Result<SessionRecord, StoreError> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = ?1");
        self.conn
            .prepare_cached(&sql)?
            .query_row([id.to_string()], RawSession::from_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?
            .parse()
    }

    /// The session a user means by `query`: a live session with that exact name, else the one
    /// session whose id starts with it (case-insensitive). Several matches is
    /// [`StoreError::Ambiguous`], listing them.
    pub fn find(&self, query: &str) -> Result<SessionRecord, StoreError> {
        let q = query.trim();
        let shown: String = q.chars().take(64).collect();
        if SessionName::new(q).is_ok() {
            let sql = format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE name = ?1 AND status != 'deleted'"
            );
            if let Some(raw) = self
                .conn
                .prepare_cached(&sql)?
                .query_row([q], RawSession::from_row)
                .optional()?
            {
                return raw.parse();
            }
        }
        let prefix = q.to_ascii_lowercase();
        // Only hex digits and hyphens can start an id; this also keeps LIKE wildcards out.
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(StoreError::NotFound(shown));
        }
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE id LIKE ?1 || '%' ORDER BY created_at LIMIT 11"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt
            .query_map([&prefix], RawSession::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        match rows.len() {
            0 => Err(StoreError::NotFound(shown)),
            1 => rows.remove(0).parse(),
            _ => Err(StoreError::Ambiguous {
                query: shown,
                matches: rows
                    .iter()
                    .take(10)
                    .map(|r| format!("{} {} ({})", r.name, r.id, r.status))
                    .collect(),
            }),
        }
    }

    /// Every session, oldest first; deleted ones only if asked.
    pub fn list(&self, include_deleted: bool) -> Result<Vec<SessionRecord>, StoreError> {
        let filter = if include_deleted {
            ""
        } else {
            "WHERE status != 'deleted'"
        };
        self.sessions_where(&format!("{filter} ORDER BY created_at, id"), [])
    }

    /// The full records of the sessions `clause` selects (the sessions table is `s`).
    pub(super) fn sessions_where(
        &self,
        clause: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions s {clause}");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params, RawSession::from_row)?;
        rows.map(|r| r?.parse()).collect()
    }

    /// Moves a session through the state machine ([`crate::session::transition`]) and appends a
    /// `status` event, in one transaction; when the status stays the same nothing is written. `reason` is kept as `failure_reason` when the new
    /// status is `failed` and cleared otherwise.
    pub fn apply_event(
        &mut self,
        id: SessionId,
        event: Event,
        reason: Option<&str>,
    ) -> Result<StatusChange, StoreError> {
        let at = now();
        let tx = self.conn.transaction()?;
        let raw: Option<String> = tx
            .query_row(
                "SELECT status FROM sessions WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        let raw = raw.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let from: Status = raw.parse().map_err(|e| StoreError::Corrupt {
            id: id.to_string(),
            what: format!("{e}"),
        })?;
        let to = transition(from, event)?;
        if to == from {
            return Ok(StatusChange {
                from,
                to,
                event,
                seq: None,
            });
        }
        let reason = if to == Status::Failed { reason } else { None };
        tx.execute(
            "UPDATE sessions SET status = ?2, failure_reason = ?3, updated_at = ?4 WHERE id = ?1",
            params![id.to_string(), to.as_str(), reason, to_ms(at)],
        )
        .map_err(|e| {
            if is_unique_violation(&e, "sessions.name") {
                // Only reachable when a deleted session comes back under a name now in use.
                StoreError::Task(format!(
                    "session {id} cannot leave `deleted`: its name is taken"
                ))
            } else {
                e.into()
            }
        })?;
        let mut data = serde_json::json!({"from": from, "to": to, "event": event});
        if let Some(r) = reason {
            data["reason"] = r.into();
        }
        let seq = append_event_tx(&tx, id, "status", &data, at)?;
        tx.commit()?;
        Ok(StatusChange {
            from,
            to,
            event,
            seq: Some(seq),
        })
    }

    /// Stores the plugin's instance id and opaque state for a session.
    pub fn set_instance(
        &mut self,
        id: SessionId,
        instance_id: Option<&str>,
        state: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE sessions SET instance_id = ?2, instance_state = ?3, updated_at = ?4 \
                 WHERE id = ?1",
            )?
            .execute(params![
                id.to_string(),
                instance_id,
                state.map(|s| s.to_string()),
                to_ms(now())
            ])?;
        if n == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Records the branch the agent works on (a backend may choose it after cloning).
    pub fn set_branch(&mut self, id: SessionId, branch: Option<&str>) -> Result<(), StoreError> {
        let n = self
            .conn
            .prepare_cached("UPDATE sessions SET branch = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![id.to_string(), branch, to_ms(now())])?;
        if n == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Erases a session with its events and checkpoints (the normal path keeps `deleted` rows).
    pub fn remove_session(&mut self, id: SessionId) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM sessions WHERE id = ?1", [id.to_string()])?;
        if n == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Appends an event to a session's log and returns its `seq`; durable when this returns.
    pub fn append_event(
        &mut self,
        id: SessionId,
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        append_event_tx(&self.conn, id, kind, data, now()).map_err(|e| match e {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::NotFound(id.to_string())
            }
            other => other,
        })
    }

    /// The `seq` of a session's newest event (0 when it has none).
    pub fn last_event_seq(&self, id: SessionId) -> Result<i64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id = ?1")?;
        Ok(stmt.query_row(params![id.to_string()], |r| r.get::<_, i64>(0))?)
    }

    /// A session's events with `seq > after_seq`, oldest first, at most `limit`.
    pub fn events_since(
        &self,
        id: SessionId,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.session_events(
            id,
            "SELECT seq, at, kind, data FROM events WHERE session_id = ?1 AND seq > ?2 \
             ORDER BY seq LIMIT ?3",
            &after_seq,
            limit,
        )
    }

    /// A session's newest `limit` events, oldest first; without agent `output` events unless
    /// `with_output` (a detail pane shows what happened, not the terminal's bytes).
    pub fn recent_events(
        &self,
        id: SessionId,
        limit: usize,
        with_output: bool,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut out = self.session_events(
            id,
            "SELECT seq, at, kind, data FROM events WHERE session_id = ?1 \
             AND (?2 OR kind != 'output') ORDER BY seq DESC LIMIT ?3",
            &with_output,
            limit,
        )?;
        out.reverse();
        Ok(out)
    }

    /// One session's events by `sql`, whose parameters are the session id, `second` and the
    /// limit, and whose columns are `seq, at, kind, data`.
    fn session_events(
        &self,
        id: SessionId,
        sql: &str,
        second: &dyn rusqlite::ToSql,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(
            params![
                id.to_string(),
                second,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            event_row,
        )?;
        rows.map(|r| {
            let (seq, at, kind, data) = r?;
            event_record(id, seq, at, kind, &data)
        })
        .collect()
    }

    /// Every session's events with `seq > after_seq`, oldest first, at most `limit` (for an
    /// event stream that follows all sessions and resumes from the last `seq` it saw).
    pub fn all_events_since(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, session_id, at, kind, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![after_seq, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for r in rows {
            let (seq, sid, at, kind, data) = r?;
            let corrupt = |what: String| StoreError::Corrupt {
                id: format!("event {seq}"),
                what,
            };
            out.push(EventRecord {
                seq,
                session_id: sid.parse().map_err(|e| corrupt(format!("{e}")))?,
                at: from_ms(at),
                kind,
                data: serde_json::from_str(&data).map_err(|e| corrupt(e.to_string()))?,
            });
        }
        Ok(out)
    }

    /// Records a checkpoint of a session.
    pub fn add_checkpoint(&mut self, c: &NewCheckpoint) -> Result<CheckpointRecord, StoreError> {
        let rec = CheckpointRecord {
            id: uuid::Uuid::new_v4().to_string(),
            session_id: c.session_id,
            comment: c.comment.clone(),
            git_head: c.git_head.clone(),
            backend_ref: c.backend_ref.clone(),
            created_at: from_ms(to_ms(now())),
        };
        self.conn
            .execute(
                "INSERT INTO checkpoints (id, session_id, comment, git_head, backend_ref, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    rec.id,
                    rec.session_id.to_string(),
                    rec.comment,
                    rec.git_head,
                    rec.backend_ref,
                    to_ms(rec.created_at)
                ],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::NotFound(c.session_id.to_string())
                }
                other => other.into(),
            })?;
        Ok(rec)
    }

    /// A session's checkpoints, oldest first.
    pub fn checkpoints(&self, id: SessionId) -> Result<Vec<CheckpointRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, comment, git_head, backend_ref, created_at FROM checkpoints \
             WHERE session_id = ?1 ORDER BY created_at, rowid",
        )?;
        let rows = stmt.query_map([id.to_string()], |r| {
            Ok(CheckpointRecord {
                id: r.get(0)?,
                session_id: id,
                comment: r.get(1)?,
                git_head: r.get(2)?,
                backend_ref: r.get(3)?,
                created_at: from_ms(r.get(4)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The raw connection, for benchmarks and diagnostics only.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The raw connection for a transaction of another store module.
    pub(super) fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// `seq, at, kind, data` of an `events` row.
fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// A session's event from its row's columns.
fn event_record(
    id: SessionId,
    seq: i64,
    at: i64,
    kind: String,
    data: &str,
) -> Result<EventRecord, StoreError> {
    let data = serde_json::from_str(data).map_err(|e| StoreError::Corrupt {
        id: format!("event {seq}"),
        what: e.to_string(),
    })?;
    Ok(EventRecord {
        seq,
        session_id: id,
        at: from_ms(at),
        kind,
        data,
    })
}
