//! Listing sessions a page at a time: the lean summary rows `clauderon list` and the web UI's
//! list show (one query joining the agent's state, no option or instance JSON parsed), and
//! full records, both ordered by (created_at, id) and resumable after a cursor.

use rusqlite::{Row, params};
use time::OffsetDateTime;

use super::{Db, SessionRecord, StoreError};
use crate::agent::AgentState;
use crate::session::{SessionId, SessionName, Status};

/// Where a page ends: the (created_at, id) of its last row. Its text form (`<ms>.<id>`) is
/// what the API hands out as `next` and takes back as `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    created_ms: i64,
    id: String,
}

impl ListCursor {
    /// The text form.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_ms, self.id)
    }

    /// A cursor from its text form; `None` when it is not one.
    pub fn decode(text: &str) -> Option<ListCursor> {
        let (ms, id) = text.split_once('.')?;
        let id: SessionId = id.parse().ok()?;
        Some(ListCursor {
            created_ms: ms.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// Which sessions a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Deleted sessions too.
    pub include_deleted: bool,
    /// Only sessions after this cursor.
    pub after: Option<ListCursor>,
    /// At most this many (then the answer carries the cursor of the next page).
    pub limit: Option<usize>,
}

impl ListPage {
    /// The WHERE clause and its two cursor parameters.
    fn filter(&self) -> (&'static str, i64, String) {
        let (ms, id) = self
            .after
            .as_ref()
            .map_or((i64::MIN, String::new()), |c| (c.created_ms, c.id.clone()));
        let clause = if self.include_deleted {
            "WHERE (s.created_at, s.id) > (?1, ?2)"
        } else {
            "WHERE s.status != 'deleted' AND (s.created_at, s.id) > (?1, ?2)"
        };
        (clause, ms, id)
    }

    /// The LIMIT value: one more than asked, to know whether a next page exists.
    fn sql_limit(&self) -> i64 {
        self.limit
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX - 1) + 1)
    }

    /// Cuts `rows` to the page and returns the next page's cursor, if there is one.
    fn cut<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> ListCursor) -> Option<ListCursor> {
        let n = self.limit?;
        if rows.len() <= n {
            return None;
        }
        rows.truncate(n);
        rows.last().map(key)
    }
}

/// What a session list shows of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummaryRecord {
    /// Stable id.
    pub id: SessionId,
    /// Unique name.
    pub name: SessionName,
    /// The backend plugin's name.
    pub backend: String,
    /// The repository.
    pub repository: String,
    /// The session branch.
    pub branch: Option<String>,
    /// Current status.
    pub status: Status,
    /// Why it failed, while failed.
    pub failure_reason: Option<String>,
    /// What the agent is doing, when known.
    pub agent: Option<AgentState>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed (for a hibernated session: when it went to sleep).
    pub updated_at: OffsetDateTime,
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn summary_row(r: &Row<'_>) -> rusqlite::Result<Result<SessionSummaryRecord, StoreError>> {
    let id: String = r.get(0)?;
    let name: String = r.get(1)?;
    let status: String = r.get(5)?;
    let exit: Option<i32> = r.get(10)?;
    let state: Option<String> = r.get(9)?;
    let corrupt = |what: String| StoreError::Corrupt {
        id: id.clone(),
        what,
    };
    let parsed = (|| {
        Ok(SessionSummaryRecord {
            id: id.parse().map_err(|e| corrupt(format!("{e}")))?,
            name: SessionName::new(&name).map_err(|e| corrupt(format!("name: {e}")))?,
            backend: r.get(2)?,
            repository: r.get(3)?,
            branch: r.get(4)?,
            status: status.parse().map_err(|e| corrupt(format!("{e}")))?,
            failure_reason: r.get(6)?,
            created_at: from_ms(r.get(7)?),
            updated_at: from_ms(r.get(8)?),
            agent: state.and_then(|s| AgentState::from_parts(&s, exit)),
        })
    })();
    Ok(parsed.map_err(|e: StoreError| e))
}

impl Db {
    /// One page of session summaries, oldest first, and the next page's cursor.
    pub fn list_summaries(
        &self,
        page: &ListPage,
    ) -> Result<(Vec<SessionSummaryRecord>, Option<ListCursor>), StoreError> {
        let (filter, ms, id) = page.filter();
        let sql = format!(
            "SELECT s.id, s.name, s.backend, s.repository, s.branch, s.status, s.failure_reason, \
             s.created_at, s.updated_at, a.state, a.exit_code \
             FROM sessions s LEFT JOIN daemon_agents a ON a.session_id = s.id \
             {filter} ORDER BY s.created_at, s.id LIMIT ?3"
        );
        let mut stmt = self.connection().prepare_cached(&sql)?;
        let mut rows = stmt
            .query_map(params![ms, id, page.sql_limit()], summary_row)?
            .map(|r| r.map_err(StoreError::from).and_then(|r| r))
            .collect::<Result<Vec<_>, _>>()?;
        let next = page.cut(&mut rows, |r| ListCursor {
            created_ms: to_ms(r.created_at),
            id: r.id.to_string(),
        });
        Ok((rows, next))
    }

    /// One page of full session records, oldest first, and the next page's cursor.
    pub fn list_page(
        &self,
        page: &ListPage,
    ) -> Result<(Vec<SessionRecord>, Option<ListCursor>), StoreError> {
        let (filter, ms, id) = page.filter();
        let mut rows = self.sessions_where(
            &format!("{filter} ORDER BY s.created_at, s.id LIMIT ?3"),
            params![ms, id, page.sql_limit()],
        )?;
        let next = page.cut(&mut rows, |r| ListCursor {
            created_ms: to_ms(r.created_at),
            id: r.id.to_string(),
        });
        Ok((rows, next))
    }
}
