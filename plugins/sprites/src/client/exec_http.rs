//! Exec over plain HTTP (`POST /v1/sprites/{name}/exec`): for small non-TTY commands.
//!
//! The answer is the non-TTY framing without length prefixes (`[stream byte][payload]` per HTTP
//! chunk, last `0x03` + exit byte), so it relies on chunk boundaries surviving. A chunk larger than
//! what one read delivers arrives split (seen from ~64 KiB of output on loopback); a split is
//! reported as [`Error::Protocol`] when its first byte is not a stream byte, but text output can
//! be misrouted undetected. Use the WebSocket exec for anything but small output.

use futures::StreamExt;

use super::error::{Error, Result};
use super::exec::{Command, Output};
use super::retry::Idempotency;

/// The service's limit for the HTTP exec stdin body.
pub const MAX_HTTP_STDIN: usize = 10 * 1024 * 1024;

impl Command {
    /// Runs the command over HTTP POST with `stdin` as its input (`None`: no stdin) and collects
    /// the output. TTY commands are refused: the HTTP form has no terminal.
    pub async fn output_http(&self, stdin: Option<Vec<u8>>) -> Result<Output> {
        if self.tty.is_some() {
            return Err(Error::InvalidInput(
                "HTTP exec cannot run a TTY command; use spawn() (WebSocket) instead".into(),
            ));
        }
        if stdin.as_ref().is_some_and(|s| s.len() > MAX_HTTP_STDIN) {
            return Err(Error::InvalidInput(
                "HTTP exec stdin is limited to 10 MiB; use spawn() and stream stdin instead".into(),
            ));
        }
        let mut cmd = self.clone();
        cmd.stdin = Some(stdin.is_some());
        cmd.tty = None;
        let mut url = self.handle.url(&["exec"]);
        cmd.append_query(&mut url, false);
        let op = self.handle.op("POST", "exec");
        let body = stdin.unwrap_or_default();
        let resp = self
            .handle
            .client
            .send_with_timeout(
                &op,
                Idempotency::Write,
                self.handle.client.inner.stream_timeout,
                |http| {
                    http.post(url.clone())
                        .header("content-type", "application/octet-stream")
                        .body(body.clone())
                },
            )
            .await?;
        let mut out = Output {
            exit_code: -1,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let mut exit = None;
        let mut chunks = resp.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| {
                Error::Transport(format!(
                    "{op}: the output stream broke: {}",
                    e.without_url()
                ))
            })?;
            let Some((&kind, payload)) = chunk.split_first() else {
                continue;
            };
            match kind {
                0x01 => out.stdout.extend_from_slice(payload),
                0x02 => out.stderr.extend_from_slice(payload),
                0x03 => {
                    exit = payload.first().copied();
                    if exit.is_none() {
                        return Err(Error::Protocol(format!("{op}: exit frame without a code")));
                    }
                    break;
                }
                other => {
                    return Err(Error::Protocol(format!(
                        "{op}: the answer lost its frame boundaries (stream byte 0x{other:02x}); HTTP exec only suits small output, use spawn() (WebSocket) for this command"
                    )));
                }
            }
        }
        match exit {
            Some(code) => {
                out.exit_code = i32::from(code);
                Ok(out)
            }
            None => Err(Error::ExecEndedWithoutExit),
        }
    }
}
