//! Checkpoints: create (NDJSON progress, new id parsed), list, get, restore, delete.

use serde::Deserialize;
use time::OffsetDateTime;

use super::error::{Error, Result};
use super::handle::SpriteHandle;
use super::lenient;
use super::ndjson::{StreamEvent, read_events};
use super::retry::Idempotency;

/// The pseudo-entry naming the live filesystem in a checkpoint list.
pub const CURRENT: &str = "Current";

/// A checkpoint as listed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// `v0`, `v1`, ..., `auto-...`, or the `Current` pseudo-entry.
    #[serde(deserialize_with = "lenient::string_or_number")]
    pub id: String,
    /// When it was taken.
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    pub create_time: Option<OffsetDateTime>,
    /// The comment given at creation.
    #[serde(default)]
    pub comment: Option<String>,
    /// Taken automatically.
    #[serde(default)]
    pub is_auto: bool,
    /// History lines, when present.
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub history: Vec<String>,
    /// The parent checkpoint.
    #[serde(default, deserialize_with = "lenient::opt_string_or_number")]
    pub source_id: Option<String>,
    /// Empty when healthy (e.g. `mount_failed` otherwise).
    #[serde(default)]
    pub health: Option<String>,
}

impl Checkpoint {
    /// True for the `Current` pseudo-entry (the live state, not a snapshot).
    pub fn is_current(&self) -> bool {
        self.id == CURRENT
    }
}

/// What creating a checkpoint reported.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedCheckpoint {
    /// The new checkpoint's id (parsed from the progress text, else the newest listed one).
    pub id: String,
    /// Every progress event in order.
    pub events: Vec<StreamEvent>,
}

/// Finds a checkpoint id in progress text: `ID: v3`, `Checkpoint v3 created ...`.
pub(crate) fn parse_checkpoint_id(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let next = words
            .get(i + 1)
            .map(|n| n.trim_matches(|c: char| c == ',' || c == '.'));
        if (*w == "ID:" || w.eq_ignore_ascii_case("checkpoint"))
            && let Some(id) = next
            && looks_like_id(id)
        {
            return Some(id.to_owned());
        }
    }
    None
}

fn looks_like_id(s: &str) -> bool {
    (s.starts_with('v') && s.len() > 1 && s[1..].chars().all(|c| c.is_ascii_digit()))
        || s.starts_with("auto-")
}

impl SpriteHandle {
    /// Takes a checkpoint, reporting each progress event to `on_progress`. An in-stream error is
    /// an error although HTTP says 200.
    pub async fn create_checkpoint(
        &self,
        comment: Option<&str>,
        on_progress: impl FnMut(&StreamEvent),
    ) -> Result<CreatedCheckpoint> {
        let op = self.op("POST", "checkpoint");
        let body = match comment {
            Some(c) => serde_json::json!({ "comment": c }),
            None => serde_json::json!({}),
        };
        let timeout = self.client.inner.stream_timeout;
        let resp = self
            .client
            .send_with_timeout(&op, Idempotency::Write, timeout, |http| {
                http.post(self.url(&["checkpoint"])).json(&body)
            })
            .await?;
        let events = read_events(&op, timeout, resp, on_progress).await?;
        if !events.iter().any(|e| e.kind == "complete") {
            return Err(Error::Protocol(format!(
                "{op}: the progress stream ended without a complete event"
            )));
        }
        let parsed = events
            .iter()
            .rev()
            .find_map(|e| parse_checkpoint_id(e.text()));
        let id = match parsed {
            Some(id) => id,
            None => self
                .checkpoints()
                .await?
                .into_iter()
                .find(|c| !c.is_current() && !c.is_auto)
                .map(|c| c.id)
                .ok_or_else(|| {
                    Error::Protocol(format!(
                        "{op}: no checkpoint id in the progress or the list"
                    ))
                })?,
        };
        Ok(CreatedCheckpoint { id, events })
    }

    /// Lists checkpoints, newest first, the `Current` pseudo-entry included when the server
    /// sends it (see [`Checkpoint::is_current`]).
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let op = self.op("GET", "checkpoints");
        let mut list: Vec<Checkpoint> = self
            .client
            .send_json(&op, Idempotency::Read, |http| {
                http.get(self.url(&["checkpoints"]))
            })
            .await?;
        // Newest first, `Current` on top; a stable sort keeps the server's order for ties.
        list.sort_by(|a, b| {
            b.is_current()
                .cmp(&a.is_current())
                .then_with(|| b.create_time.cmp(&a.create_time))
        });
        Ok(list)
    }

    /// Gets one checkpoint (the service answers 500 text for a missing id, 404 is documented).
    pub async fn checkpoint(&self, id: &str) -> Result<Checkpoint> {
        check_id(id)?;
        let op = self.op("GET", &format!("checkpoints/{id}"));
        self.client
            .send_json(&op, Idempotency::Read, |http| {
                http.get(self.url(&["checkpoints", id]))
            })
            .await
    }

    /// Restores a checkpoint (destructive: files roll back, sessions end). The service answers
    /// 200 even when the restore fails; the in-stream error is returned as [`Error::InStream`].
    pub async fn restore_checkpoint(
        &self,
        id: &str,
        on_progress: impl FnMut(&StreamEvent),
    ) -> Result<Vec<StreamEvent>> {
        check_id(id)?;
        let op = self.op("POST", &format!("checkpoints/{id}/restore"));
        let timeout = self.client.inner.stream_timeout;
        let resp = self
            .client
            .send_with_timeout(&op, Idempotency::Write, timeout, |http| {
                http.post(self.url(&["checkpoints", id, "restore"]))
            })
            .await?;
        let events = read_events(&op, timeout, resp, on_progress).await?;
        if !events.iter().any(|e| e.kind == "complete") {
            return Err(Error::Protocol(format!(
                "{op}: the restore stream ended without a complete event; the restore may not have happened"
            )));
        }
        Ok(events)
    }

    /// Deletes a checkpoint (the active one cannot be deleted: 409).
    pub async fn delete_checkpoint(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let op = self.op("DELETE", &format!("checkpoints/{id}"));
        self.client
            .send(&op, Idempotency::Write, |http| {
                http.delete(self.url(&["checkpoints", id]))
            })
            .await?;
        Ok(())
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id == CURRENT {
        return Err(Error::InvalidInput(format!(
            "{id:?} is not a checkpoint id; list checkpoints to see the ids (v0, v1, ...)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_from_progress_text() {
        assert_eq!(parse_checkpoint_id("  ID: v1").as_deref(), Some("v1"));
        assert_eq!(
            parse_checkpoint_id("Checkpoint v12 created successfully").as_deref(),
            Some("v12")
        );
        assert_eq!(parse_checkpoint_id("Creating checkpoint..."), None);
        assert_eq!(parse_checkpoint_id("Checkpoint vX created"), None);
    }

    #[test]
    fn decodes_recorded_list_entries() {
        let l: Vec<Checkpoint> = serde_json::from_str(r#"[{"id":"Current","create_time":"2026-01-31T10:00:05Z","is_auto":false},{"id":"v1","create_time":"2026-01-31T10:00:01Z","comment":"c","is_auto":false,"history":null,"source_id":"v0","health":""},{"id":"v0","create_time":"2026-01-31T10:00:00Z"}]"#).unwrap();
        assert!(l[0].is_current());
        assert_eq!(l[1].source_id.as_deref(), Some("v0"));
    }
}
