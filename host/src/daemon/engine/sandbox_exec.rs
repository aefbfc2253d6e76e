//! One short command in a session's sandbox through the plugin's `exec` (non-TTY): stdin in,
//! stdout, stderr and the exit code out, bounded in time. The engine's setup steps (the proxy's
//! trust bundle, the agent's unattended start) use it; the agent itself runs as a stream.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::plugins::ops::{self, ExecRequest, Instance};
use crate::plugins::{Frame, FrameKind, PluginClient};

use super::super::error::EngineError;

/// What a command left behind.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The exit code (-1 when the stream ended without one).
    pub code: i32,
    /// Its stdout bytes.
    pub stdout: Vec<u8>,
    /// Its stderr bytes (and a stream error's message).
    pub stderr: Vec<u8>,
}

impl Ran {
    /// Stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The start of stderr, trimmed, for an error message.
    pub fn stderr_brief(&self) -> String {
        self.stderr_text().trim().chars().take(400).collect()
    }
}

/// Runs `argv` in the sandbox with `stdin`; `what` names the step in a timeout's message.
pub async fn run(
    client: &PluginClient,
    instance: &Instance,
    argv: Vec<String>,
    stdin: &[u8],
    limit: Duration,
    what: &str,
) -> Result<Ran, EngineError> {
    let (_, stream) = client
        .exec(&ExecRequest {
            instance: instance.clone(),
            command: argv,
            env: BTreeMap::new(),
            cwd: None,
            tty: false,
        })
        .await
        .map_err(|e| EngineError::backend(client.name(), ops::EXEC, e))?;
    let (mut reader, mut writer) = stream.split();
    let io_err = |e: std::io::Error| EngineError::Internal(format!("{what}: the stream: {e}"));
    // The write half is kept until the exit arrives: closing it early stops the command. A
    // command that exits without reading all of stdin may close its end; its exit code is
    // still what counts.
    let write = async {
        for chunk in stdin.chunks(64 * 1024) {
            writer
                .write_frame(&Frame::new(FrameKind::Stdin, chunk.to_vec()))
                .await?;
        }
        writer
            .write_frame(&Frame::new(FrameKind::StdinEof, Vec::new()))
            .await?;
        Ok::<_, std::io::Error>(())
    };
    let read = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match reader.read_frame().await? {
                None => return Ok((-1, out, err)),
                Some(f) => match f.kind {
                    FrameKind::Stdout => out.extend_from_slice(&f.payload),
                    FrameKind::Stderr => err.extend_from_slice(&f.payload),
                    FrameKind::Exit => return Ok((f.exit_code().unwrap_or(-1), out, err)),
                    FrameKind::Error => {
                        err.extend_from_slice(&f.payload);
                        return Ok((-1, out, err));
                    }
                    _ => {}
                },
            }
        }
    };
    let both = async {
        let (w, r) = tokio::join!(write, read);
        let r = r.map_err(io_err)?;
        if let Err(e) = w
            && r.0 == -1
        {
            return Err(io_err(e));
        }
        Ok(r)
    };
    let (code, stdout, stderr) = tokio::time::timeout(limit, both).await.map_err(|_| {
        EngineError::Internal(format!("{what} took longer than {}s", limit.as_secs()))
    })??;
    tracing::debug!(
        code,
        stdout = stdout.len(),
        stderr = stderr.len(),
        "{what}: the command ended"
    );
    Ok(Ran {
        code,
        stdout,
        stderr,
    })
}
