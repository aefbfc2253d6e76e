//! The build-cache index (migration v6, DESIGN §16): stores (one per project and scope, with
//! the backend's instance that holds the entries), their entries (key, type, size, creation
//! and last use), each session's cache plan, and housekeeping state. Times are written by the
//! caller's clock (the engine's cache clock), so housekeeping can be tested with any.

use rusqlite::{OptionalExtension as _, params};
use time::OffsetDateTime;

use super::{Db, StoreError};
use crate::cache::Plan;
use crate::session::{CacheScope, SessionId};

/// One cache store.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheStoreRecord {
    /// Its key (`p-…`, `s-…`): the `clauderon.cache` label of its instance.
    pub store_key: String,
    /// The backend holding it.
    pub backend: String,
    /// The project's key.
    pub project_key: String,
    /// The project as a person reads it.
    pub project: String,
    /// Its scope.
    pub scope: CacheScope,
    /// For scope `session`: the session name it belongs to.
    pub session_name: Option<String>,
    /// The backend's instance id (none until the first save made it).
    pub instance_id: Option<String>,
    /// The backend's opaque instance state.
    pub instance_state: Option<serde_json::Value>,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When one of its entries was last saved or restored.
    pub last_used: OffsetDateTime,
}

/// One entry of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntryRecord {
    /// The store.
    pub store_key: String,
    /// The entry's key.
    pub key: String,
    /// The cache type (`cargo`, `./dir`, ...).
    pub kind: String,
    /// The archive's size in bytes.
    pub size: u64,
    /// When it was saved.
    pub created_at: OffsetDateTime,
    /// When it was last saved or restored.
    pub last_used: OffsetDateTime,
    /// The entry this one is a layer over (it cannot be restored without it); `None`: a
    /// whole archive.
    pub base: Option<String>,
}

impl CacheEntryRecord {
    /// The entry as housekeeping sees it.
    pub fn aged(&self) -> crate::cache::gc::Aged {
        crate::cache::gc::Aged {
            key: self.key.clone(),
            size: self.size,
            last_used: self.last_used,
            base: self.base.clone(),
        }
    }
}

fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

const STORE_COLS: &str = "store_key, backend, project_key, project, scope, session_name, \
     instance_id, instance_state, created_at, last_used";

fn store_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(CacheStoreRecord, String, Option<String>)> {
    Ok((
        CacheStoreRecord {
            store_key: r.get(0)?,
            backend: r.get(1)?,
            project_key: r.get(2)?,
            project: r.get(3)?,
            scope: CacheScope::Project,
            session_name: r.get(5)?,
            instance_id: r.get(6)?,
            instance_state: None,
            created_at: from_ms(r.get(8)?),
            last_used: from_ms(r.get(9)?),
        },
        r.get(4)?,
        r.get(7)?,
    ))
}

fn parse_store(
    (mut rec, scope, state): (CacheStoreRecord, String, Option<String>),
) -> Result<CacheStoreRecord, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt {
        id: format!("cache store {}", rec.store_key),
        what,
    };
    rec.scope = scope
        .parse()
        .map_err(|e: crate::session::OptionError| corrupt(e.to_string()))?;
    rec.instance_state = state
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt(format!("instance_state: {e}")))?;
    Ok(rec)
}

const ENTRY_COLS: &str = "store_key, key, kind, size, created_at, last_used, base";

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CacheEntryRecord> {
    Ok(CacheEntryRecord {
        store_key: r.get(0)?,
        key: r.get(1)?,
        kind: r.get(2)?,
        size: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        created_at: from_ms(r.get(4)?),
        last_used: from_ms(r.get(5)?),
        base: r.get(6)?,
    })
}

impl Db {
    /// The store with this key.
    pub fn cache_store(&self, store_key: &str) -> Result<Option<CacheStoreRecord>, StoreError> {
        self.connection()
            .prepare_cached(&format!(
                "SELECT {STORE_COLS} FROM cache_stores WHERE store_key = ?1"
            ))?
            .query_row([store_key], store_row)
            .optional()?
            .map(parse_store)
            .transpose()
    }

    /// Every store, oldest first.
    pub fn cache_stores(&self) -> Result<Vec<CacheStoreRecord>, StoreError> {
        let mut stmt = self.connection().prepare_cached(&format!(
            "SELECT {STORE_COLS} FROM cache_stores ORDER BY created_at, store_key"
        ))?;
        let rows = stmt.query_map([], store_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(parse_store(r?)?);
        }
        Ok(out)
    }

    /// Inserts or replaces a store.
    pub fn put_cache_store(&self, rec: &CacheStoreRecord) -> Result<(), StoreError> {
        self.connection()
            .prepare_cached(&format!(
                "INSERT INTO cache_stores ({STORE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                 ?9, ?10) ON CONFLICT(store_key) DO UPDATE SET backend = ?2, project_key = ?3, \
                 project = ?4, scope = ?5, session_name = ?6, instance_id = ?7, \
                 instance_state = ?8, last_used = ?10"
            ))?
            .execute(params![
                rec.store_key,
                rec.backend,
                rec.project_key,
                rec.project,
                rec.scope.to_string(),
                rec.session_name,
                rec.instance_id,
                rec.instance_state.as_ref().map(|s| s.to_string()),
                to_ms(rec.created_at),
                to_ms(rec.last_used),
            ])?;
        Ok(())
    }

    /// Forgets a store and its entries.
    pub fn remove_cache_store(&self, store_key: &str) -> Result<(), StoreError> {
        self.connection()
            .prepare_cached("DELETE FROM cache_stores WHERE store_key = ?1")?
            .execute([store_key])?;
        Ok(())
    }

    /// A store's entries, oldest first.
    pub fn cache_entries(&self, store_key: &str) -> Result<Vec<CacheEntryRecord>, StoreError> {
        let mut stmt = self.connection().prepare_cached(&format!(
            "SELECT {ENTRY_COLS} FROM cache_entries WHERE store_key = ?1 ORDER BY created_at, key"
        ))?;
        let rows = stmt.query_map([store_key], entry_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every entry of every store.
    pub fn all_cache_entries(&self) -> Result<Vec<CacheEntryRecord>, StoreError> {
        let mut stmt = self.connection().prepare_cached(&format!(
            "SELECT {ENTRY_COLS} FROM cache_entries ORDER BY store_key, created_at, key"
        ))?;
        let rows = stmt.query_map([], entry_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a saved entry (replacing one of the same key: the last complete save wins) and
    /// marks its store used, in one transaction.
    pub fn put_cache_entry(&mut self, e: &CacheEntryRecord) -> Result<(), StoreError> {
        let tx = self.connection_mut().transaction()?;
        tx.execute(
            &format!(
                "INSERT INTO cache_entries ({ENTRY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT(store_key, key) DO UPDATE SET kind = ?3, size = ?4, \
                 created_at = ?5, last_used = ?6, base = ?7"
            ),
            params![
                e.store_key,
                e.key,
                e.kind,
                i64::try_from(e.size).unwrap_or(i64::MAX),
                to_ms(e.created_at),
                to_ms(e.last_used),
                e.base
            ],
        )?;
        tx.execute(
            "UPDATE cache_stores SET last_used = MAX(last_used, ?2) WHERE store_key = ?1",
            params![e.store_key, to_ms(e.last_used)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks an entry (and its store) used at `at` (a restore).
    pub fn touch_cache_entry(
        &mut self,
        store_key: &str,
        key: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let tx = self.connection_mut().transaction()?;
        tx.execute(
            "UPDATE cache_entries SET last_used = ?3 WHERE store_key = ?1 AND key = ?2",
            params![store_key, key, to_ms(at)],
        )?;
        tx.execute(
            "UPDATE cache_stores SET last_used = MAX(last_used, ?2) WHERE store_key = ?1",
            params![store_key, to_ms(at)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets entries of a store.
    pub fn remove_cache_entries(
        &mut self,
        store_key: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        let tx = self.connection_mut().transaction()?;
        for k in keys {
            tx.execute(
                "DELETE FROM cache_entries WHERE store_key = ?1 AND key = ?2",
                params![store_key, k],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A session's cache plan, if it has one.
    pub fn cache_plan(&self, id: SessionId) -> Result<Option<Plan>, StoreError> {
        let raw: Option<String> = self
            .connection()
            .prepare_cached("SELECT plan FROM cache_plans WHERE session_id = ?1")?
            .query_row([id.to_string()], |r| r.get(0))
            .optional()?;
        raw.map(|p| {
            serde_json::from_str(&p).map_err(|e| StoreError::Corrupt {
                id: id.to_string(),
                what: format!("cache plan: {e}"),
            })
        })
        .transpose()
    }

    /// Stores a session's cache plan.
    pub fn set_cache_plan(&self, id: SessionId, plan: &Plan) -> Result<(), StoreError> {
        let text = serde_json::to_string(plan)
            .map_err(|e| StoreError::Task(format!("cannot encode the cache plan: {e}")))?;
        self.connection()
            .prepare_cached(
                "INSERT INTO cache_plans (session_id, plan) VALUES (?1, ?2) \
                 ON CONFLICT(session_id) DO UPDATE SET plan = ?2",
            )?
            .execute(params![id.to_string(), text])?;
        Ok(())
    }

    /// A housekeeping value (`last_gc`, ...).
    pub fn cache_meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .connection()
            .prepare_cached("SELECT value FROM cache_meta WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?)
    }

    /// Sets a housekeeping value.
    pub fn set_cache_meta(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.connection()
            .prepare_cached(
                "INSERT INTO cache_meta (name, value) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO UPDATE SET value = ?2",
            )?
            .execute(params![name, value])?;
        Ok(())
    }
}
