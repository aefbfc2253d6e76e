//! Event-log retention: each session keeps its newest events (by count) and its newest agent
//! output (by stored size); a deleted session's events are dropped once it has been deleted
//! for a while. The session rows themselves are kept (`list --all` shows deleted sessions).
//!
//! Trimming deletes the oldest rows, so an event stream that resumes after a trimmed `seq`
//! simply continues from the oldest event still kept. SQLite reuses the freed pages, so the
//! file stops growing once a chatty session reaches its limits.

use std::time::Duration;

use rusqlite::params;
use time::OffsetDateTime;

use super::{Db, StoreError};
use crate::session::SessionId;

/// How much of the event log is kept (`[sessions] keep_events`, `keep_output`,
/// `keep_deleted_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Retention {
    /// The newest events of each session kept, of every kind.
    pub max_events: u64,
    /// The newest `output` events of each session kept, by their stored size in bytes.
    pub max_output_bytes: u64,
    /// How long a deleted session's events are kept.
    pub deleted_for: Duration,
}

impl Default for Retention {
    /// 10,000 events and 50 MiB of output per session; a deleted session's events for 7 days.
    fn default() -> Self {
        Retention {
            max_events: 10_000,
            max_output_bytes: 50 * 1024 * 1024,
            deleted_for: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

fn as_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Db {
    /// Drops a session's events beyond `r`'s limits (oldest first); returns how many went.
    pub fn trim_events(&mut self, id: SessionId, r: &Retention) -> Result<u64, StoreError> {
        let tx = self.connection().unchecked_transaction()?;
        let sid = id.to_string();
        // Beyond the newest `max_events`: everything at or below the seq of the first one
        // past the limit.
        let by_count = tx.execute(
            "DELETE FROM events WHERE session_id = ?1 AND seq <= (
                SELECT seq FROM events WHERE session_id = ?1
                ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            params![sid, as_sql(r.max_events)],
        )?;
        // Output beyond the newest `max_output_bytes`: the newest output event at which the
        // running total (newest first) exceeds the limit, and every older output event.
        let by_size = tx.execute(
            "DELETE FROM events WHERE session_id = ?1 AND kind = 'output' AND seq <= (
                SELECT seq FROM (
                    SELECT seq, SUM(length(data)) OVER (ORDER BY seq DESC) AS total
                    FROM events WHERE session_id = ?1 AND kind = 'output')
                WHERE total > ?2 ORDER BY seq DESC LIMIT 1)",
            params![sid, as_sql(r.max_output_bytes)],
        )?;
        tx.commit()?;
        Ok((by_count + by_size) as u64)
    }

    /// Drops the events of sessions deleted before `now - r.deleted_for`; returns how many
    /// went.
    pub fn forget_deleted_events(
        &mut self,
        r: &Retention,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let cutoff = now - r.deleted_for;
        let cutoff_ms = (cutoff.unix_timestamp_nanos() / 1_000_000) as i64;
        let n = self.connection().execute(
            "DELETE FROM events WHERE session_id IN (
                SELECT id FROM sessions WHERE status = 'deleted' AND updated_at < ?1)",
            params![cutoff_ms],
        )?;
        Ok(n as u64)
    }

    /// The number of events a session has and the stored size of its output events.
    pub fn event_footprint(&self, id: SessionId) -> Result<(u64, u64), StoreError> {
        let mut stmt = self.connection().prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN kind = 'output' THEN length(data) END), 0)
             FROM events WHERE session_id = ?1",
        )?;
        let (n, bytes) = stmt.query_row(params![id.to_string()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?;
        Ok((n.max(0) as u64, bytes.max(0) as u64))
    }
}
