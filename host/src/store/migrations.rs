//! Versioned schema migrations, tracked with SQLite's `user_version`.

use super::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// Migration `i` moves the schema from version `i` to `i + 1`; append, never edit.
const MIGRATIONS: &[&str] = &[
    // v1: sessions, their event log and checkpoints.
    "CREATE TABLE sessions (
        id              TEXT PRIMARY KEY NOT NULL,
        name            TEXT NOT NULL,
        backend         TEXT NOT NULL,
        repository      TEXT NOT NULL,
        branch          TEXT,
        prompt          TEXT NOT NULL,
        options         TEXT NOT NULL,
        status          TEXT NOT NULL,
        instance_id     TEXT,
        instance_state  TEXT,
        failure_reason  TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    -- Names are unique among sessions that still exist; a deleted session frees its name.
    CREATE UNIQUE INDEX sessions_live_name ON sessions(name) WHERE status != 'deleted';
    CREATE INDEX sessions_created ON sessions(created_at, id);
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        at          INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        data        TEXT NOT NULL
    );
    CREATE INDEX events_session ON events(session_id, seq);
    CREATE TABLE checkpoints (
        id          TEXT PRIMARY KEY NOT NULL,
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        comment     TEXT NOT NULL,
        git_head    TEXT,
        backend_ref TEXT,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX checkpoints_session ON checkpoints(session_id, created_at);",
    // v2: what the daemon remembers about each session's agent (its detachable session id,
    // the `--print` exit code, the workspace path). Daemons before v2 made this table
    // themselves without bumping the version, hence `IF NOT EXISTS`: such a file migrates
    // and keeps its rows.
    "CREATE TABLE IF NOT EXISTS daemon_agents (
        session_id    TEXT PRIMARY KEY NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        agent_session TEXT,
        exit_code     INTEGER,
        workspace     TEXT
    );",
    // v3: the agent's state as its hooks report it (`starting`, `working`, ...; `exited`
    // with `exit_code`) and its own conversation id, which resuming hands back to it.
    "ALTER TABLE daemon_agents ADD COLUMN state TEXT;
    ALTER TABLE daemon_agents ADD COLUMN conversation TEXT;",
    // v4: the two-way sync (DESIGN §15): one row per synced session, the ancestor (last agreed
    // entry of every path) and the held conflicts.
    "CREATE TABLE sync_sessions (
        session_id   TEXT PRIMARY KEY NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        worktree     TEXT NOT NULL,
        running      INTEGER NOT NULL,
        paused       TEXT,
        new_epoch    INTEGER NOT NULL,
        agreed_head  TEXT,
        last_sync_at INTEGER
    );
    CREATE TABLE sync_paths (
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        path        TEXT NOT NULL,
        entry       TEXT NOT NULL,
        PRIMARY KEY (session_id, path)
    );
    CREATE TABLE sync_conflicts (
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        path        TEXT NOT NULL,
        local       TEXT NOT NULL,
        remote      TEXT NOT NULL,
        at          INTEGER NOT NULL,
        PRIMARY KEY (session_id, path)
    );",
    // v5: history sync (DESIGN §15): where the commits stand (`in_step`, `diverged`, `off`)
    // and why.
    "ALTER TABLE sync_sessions ADD COLUMN history TEXT NOT NULL DEFAULT 'in_step';
    ALTER TABLE sync_sessions ADD COLUMN history_reason TEXT;",
    // v6: the build-cache index (DESIGN §16): a store per project and scope (the backend's
    // instance holding the entries, e.g. a cache sprite), its entries with size and last use,
    // each session's resolved cache plan, and housekeeping state (the last collection).
    "CREATE TABLE cache_stores (
        store_key       TEXT PRIMARY KEY NOT NULL,
        backend         TEXT NOT NULL,
        project_key     TEXT NOT NULL,
        project         TEXT NOT NULL,
        scope           TEXT NOT NULL,
        session_name    TEXT,
        instance_id     TEXT,
        instance_state  TEXT,
        created_at      INTEGER NOT NULL,
        last_used       INTEGER NOT NULL
    );
    CREATE INDEX cache_stores_project ON cache_stores(project_key);
    CREATE TABLE cache_entries (
        store_key   TEXT NOT NULL REFERENCES cache_stores(store_key) ON DELETE CASCADE,
        key         TEXT NOT NULL,
        kind        TEXT NOT NULL,
        size        INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        last_used   INTEGER NOT NULL,
        PRIMARY KEY (store_key, key)
    );
    CREATE TABLE cache_plans (
        session_id  TEXT PRIMARY KEY NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        plan        TEXT NOT NULL
    );
    CREATE TABLE cache_meta (
        name   TEXT PRIMARY KEY NOT NULL,
        value  TEXT NOT NULL
    );",
    // v7: an entry saved as a layer names the entry it lies on (NULL: a whole archive).
    "ALTER TABLE cache_entries ADD COLUMN base TEXT;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`SCHEMA_VERSION`], one transaction per step, and refuses a
/// database from a newer build.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_fresh_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db.sqlite");
        let mut c = Connection::open(&p).unwrap();
        migrate(&mut c, &p).unwrap();
        migrate(&mut c, &p).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('sessions','events','checkpoints')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 3);
    }

    /// A v1 file written by a daemon that made `daemon_agents` itself (before migration v2
    /// existed) migrates to the current version and keeps its rows; a fresh file gets the
    /// table from the migration.
    #[test]
    fn daemon_agents_of_a_v1_file_survive_migration_v2() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db.sqlite");
        let mut c = Connection::open(&p).unwrap();
        let tx = c.transaction().unwrap();
        tx.execute_batch(MIGRATIONS[0]).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        tx.commit().unwrap();
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS daemon_agents (session_id TEXT PRIMARY KEY NOT NULL \
             REFERENCES sessions(id) ON DELETE CASCADE, agent_session TEXT, exit_code INTEGER, \
             workspace TEXT);
             INSERT INTO sessions VALUES ('s1','n','b','/r',NULL,'p','{}','running',NULL,NULL,NULL,1,1);
             INSERT INTO daemon_agents VALUES ('s1','agent-7',3,'/w');",
        )
        .unwrap();
        migrate(&mut c, &p).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let row: (String, i64) = c
            .query_row(
                "SELECT agent_session, exit_code FROM daemon_agents WHERE session_id = 's1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(row, ("agent-7".to_owned(), 3));

        let fresh = dir.path().join("fresh.sqlite");
        let mut c = Connection::open(&fresh).unwrap();
        migrate(&mut c, &fresh).unwrap();
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='daemon_agents'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "the migration makes the table");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db.sqlite");
        let mut c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let e = migrate(&mut c, &p).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("newer than this clauderon knows"), "{msg}");
        assert!(msg.contains(&format!("{}", SCHEMA_VERSION + 1)), "{msg}");
    }
}
