//! Reading `application/x-ndjson` answers (checkpoints, restore, kill): one JSON object per line,
//! blank lines skipped, an `error` event turned into [`Error::InStream`].

use futures::StreamExt;
use serde::Deserialize;

use super::error::{Error, Result};

/// The longest line accepted (a guard against a server that never sends a newline).
const MAX_LINE: usize = 1 << 20;

/// One event of a progress stream (checkpoint create/restore, session kill).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StreamEvent {
    /// `info`, `complete`, `error`, `signal`, `exited`, `killed`, `timeout`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Free text (`data` in checkpoint streams).
    #[serde(default)]
    pub data: Option<String>,
    /// Free text (`message` in kill streams).
    #[serde(default)]
    pub message: Option<String>,
    /// The error text of an `error` event.
    #[serde(default)]
    pub error: Option<String>,
    /// An exit code (`complete` of a kill stream).
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// The event time, as sent.
    #[serde(default)]
    pub time: Option<serde_json::Value>,
}

impl StreamEvent {
    /// The human text of the event, whichever field carried it.
    pub fn text(&self) -> &str {
        self.data
            .as_deref()
            .or(self.message.as_deref())
            .or(self.error.as_deref())
            .unwrap_or("")
    }
}

/// Reads every event of `resp`, calling `on_event` for each; an `error` event stops the read
/// with [`Error::InStream`] (HTTP already said 200).
pub(crate) async fn read_events(
    op: &str,
    timeout: std::time::Duration,
    resp: reqwest::Response,
    mut on_event: impl FnMut(&StreamEvent),
) -> Result<Vec<StreamEvent>> {
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut body = resp.bytes_stream();
    let mut handle_line = |line: &[u8], events: &mut Vec<StreamEvent>| -> Result<()> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(());
        }
        let ev: StreamEvent = serde_json::from_slice(line).map_err(|e| {
            Error::Protocol(format!(
                "{op}: a progress line is not JSON ({e}): {}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            ))
        })?;
        on_event(&ev);
        if ev.kind == "error" {
            let text = ev.text();
            return Err(Error::InStream {
                message: if text.is_empty() {
                    "error event without a message".into()
                } else {
                    text.to_owned()
                },
            });
        }
        events.push(ev);
        Ok(())
    };
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            if e.is_timeout() {
                Error::Timeout {
                    what: op.to_owned(),
                    after: timeout,
                }
            } else {
                Error::Transport(format!(
                    "{op}: the progress stream broke: {}",
                    e.without_url()
                ))
            }
        })?;
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            handle_line(&line, &mut events)?;
        }
        if buf.len() > MAX_LINE {
            return Err(Error::Protocol(format!(
                "{op}: a progress line exceeds 1 MiB"
            )));
        }
    }
    handle_line(&buf, &mut events)?;
    Ok(events)
}
