//! The sandbox's side as an [`Endpoint`]: the `clauderon-sync` wire protocol over the plugin's
//! `sync_stream` (requests as Stdin frames, replies as Stdout frames). Requests of a batch are
//! written while their answers are read, so a batch costs one round trip, not one per file.

use clauderon_plugin_api::stream::{Frame, FrameKind, FrameReader, FrameStream, FrameWriter};
use clauderon_sync::wire::{Decoder, Reply, Request, VERSION};
use clauderon_sync::{ApplyError, Entry, Probe, Scan};

use super::cycle::{Change, Endpoint, EndpointError};

/// A connected remote replica.
#[derive(Debug)]
pub struct RemoteEndpoint {
    reader: FrameReader,
    writer: FrameWriter,
    decoder: Decoder,
    next_id: u32,
    /// A `Changed` arrived while a request was answered.
    changed: bool,
}

fn lost(e: impl std::fmt::Display) -> EndpointError {
    EndpointError(format!("the sync stream was lost: {e}"))
}

/// Reads the next reply (`Changed` included).
async fn next_reply(
    reader: &mut FrameReader,
    decoder: &mut Decoder,
) -> Result<Reply, EndpointError> {
    loop {
        if let Some(m) = decoder.next_message().map_err(lost)? {
            return Reply::decode(&m).map_err(lost);
        }
        match reader.read_frame().await.map_err(lost)? {
            None => return Err(lost("the helper's stream ended")),
            Some(f) => match f.kind {
                FrameKind::Stdout => decoder.push(&f.payload),
                FrameKind::Exit => {
                    return Err(lost(format!(
                        "the sync helper exited with code {}",
                        f.exit_code().unwrap_or(-1)
                    )));
                }
                FrameKind::Error => {
                    return Err(lost(String::from_utf8_lossy(&f.payload)));
                }
                // The helper's stderr and plugin events: logged, never part of the protocol.
                FrameKind::Stderr => {
                    tracing::debug!(
                        "sync helper: {}",
                        String::from_utf8_lossy(&f.payload).trim()
                    );
                }
                _ => {}
            },
        }
    }
}

impl RemoteEndpoint {
    /// Wraps an opened `sync_stream` and waits for the helper's `Hello`.
    pub async fn connect(stream: FrameStream) -> Result<RemoteEndpoint, EndpointError> {
        let (mut reader, writer) = stream.split();
        let mut decoder = Decoder::default();
        match next_reply(&mut reader, &mut decoder).await? {
            Reply::Hello { version, .. } if version == VERSION => {}
            Reply::Hello { version, .. } => {
                return Err(EndpointError(format!(
                    "the sync helper speaks protocol {version}, this host {VERSION}: update the plugin"
                )));
            }
            other => {
                return Err(EndpointError(format!(
                    "the sync helper did not greet first ({other:?})"
                )));
            }
        }
        Ok(RemoteEndpoint {
            reader,
            writer,
            decoder,
            next_id: 1,
            changed: false,
        })
    }

    /// Waits until the remote reports a change (or the stream ends).
    pub async fn wait_changed(&mut self) -> Result<(), EndpointError> {
        if std::mem::take(&mut self.changed) {
            return Ok(());
        }
        loop {
            if let Reply::Changed = next_reply(&mut self.reader, &mut self.decoder).await? {
                return Ok(());
            }
        }
    }

    /// Closes the stream: the helper ends when its stdin does.
    pub async fn close(mut self) {
        let _ = self
            .writer
            .write_frame(&Frame::new(FrameKind::StdinEof, Vec::new()))
            .await;
    }

    fn id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Sends `reqs` while reading as many answers (skipping `Changed`, which is remembered).
    async fn exchange(&mut self, reqs: Vec<Request>) -> Result<Vec<Reply>, EndpointError> {
        let n = reqs.len();
        let writer = &mut self.writer;
        let write = async move {
            // Frames of about a mebibyte, each encoded in place.
            const FRAME: usize = 1 << 20;
            let fresh = || Vec::with_capacity(FRAME + (64 << 10));
            let mut buf = fresh();
            for r in reqs {
                r.encode_onto(&mut buf);
                if buf.len() >= FRAME {
                    let full = std::mem::replace(&mut buf, fresh());
                    writer
                        .write_frame(&Frame::new(FrameKind::Stdin, full))
                        .await?;
                }
            }
            if !buf.is_empty() {
                writer
                    .write_frame(&Frame::new(FrameKind::Stdin, buf))
                    .await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (reader, decoder, changed) = (&mut self.reader, &mut self.decoder, &mut self.changed);
        let read = async move {
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                match next_reply(reader, decoder).await? {
                    Reply::Changed => *changed = true,
                    Reply::Error { message, .. } => return Err(EndpointError(message)),
                    r => out.push(r),
                }
            }
            Ok(out)
        };
        let (w, r) = tokio::join!(write, read);
        let replies = r?;
        w.map_err(lost)?;
        Ok(replies)
    }
}

impl super::history::HistoryRemote for RemoteEndpoint {
    async fn bundle(
        &mut self,
        have: Vec<String>,
    ) -> Result<Result<clauderon_sync::history::Bundled, String>, EndpointError> {
        let id = self.id();
        match self
            .exchange(vec![Request::Bundle { id, have }])
            .await?
            .pop()
        {
            Some(Reply::Bundled {
                outcome,
                head,
                content,
                ..
            }) => Ok(outcome
                .into_result()
                .map(|()| clauderon_sync::history::Bundled {
                    head,
                    bytes: content,
                })
                .map_err(|e| e.to_string())),
            Some(other) => Err(unexpected(&other)),
            None => Err(lost("no answer")),
        }
    }

    async fn advance(
        &mut self,
        from: String,
        to: String,
        bundle: Vec<u8>,
    ) -> Result<Result<(), ApplyError>, EndpointError> {
        let id = self.id();
        let req = Request::Advance {
            id,
            from,
            to,
            bundle,
        };
        match self.exchange(vec![req]).await?.pop() {
            Some(Reply::Applied { outcome, .. }) => Ok(outcome.into_result()),
            Some(other) => Err(unexpected(&other)),
            None => Err(lost("no answer")),
        }
    }
}

fn unexpected(r: &Reply) -> EndpointError {
    EndpointError(format!("the sync helper answered out of turn: {r:?}"))
}

impl Endpoint for RemoteEndpoint {
    async fn scan(&mut self) -> Result<Scan, EndpointError> {
        // A change announced before this scan is in what it returns (the helper re-arms its
        // notice when it starts a scan, so a later change is announced again): remembered, it
        // would only make the host scan once more for nothing after every applied batch.
        self.changed = false;
        let id = self.id();
        let mut r = self.exchange(vec![Request::Scan { id }]).await?;
        match r.pop() {
            Some(Reply::Scanned {
                root_present,
                head,
                entries,
                ..
            }) => Ok(Scan {
                root_present,
                head,
                entries: entries
                    .into_iter()
                    .filter(|(p, _)| clauderon_sync::check_path(p).is_ok())
                    .collect(),
            }),
            Some(other) => Err(unexpected(&other)),
            None => Err(lost("no answer")),
        }
    }

    async fn probe(&mut self, paths: Vec<String>) -> Result<Vec<Probe>, EndpointError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let (id, n) = (self.id(), paths.len());
        let mut r = self.exchange(vec![Request::Probe { id, paths }]).await?;
        match r.pop() {
            Some(Reply::Probed { probes, .. }) if probes.len() == n => Ok(probes),
            Some(other) => Err(unexpected(&other)),
            None => Err(lost("no answer")),
        }
    }

    async fn read(
        &mut self,
        items: Vec<(String, Entry)>,
    ) -> Result<Vec<Result<Vec<u8>, ApplyError>>, EndpointError> {
        let reqs = items
            .into_iter()
            .map(|(path, expected)| Request::Read {
                id: self.id(),
                path,
                expected,
            })
            .collect();
        self.exchange(reqs)
            .await?
            .into_iter()
            .map(|r| match r {
                Reply::Content {
                    outcome, content, ..
                } => Ok(outcome.into_result().map(|()| content)),
                other => Err(unexpected(&other)),
            })
            .collect()
    }

    async fn apply(
        &mut self,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<(), ApplyError>>, EndpointError> {
        let reqs = changes
            .into_iter()
            .map(|c| Request::change(self.id(), c))
            .collect();
        self.exchange(reqs)
            .await?
            .into_iter()
            .map(|r| match r {
                Reply::Applied { outcome, .. } => Ok(outcome.into_result()),
                other => Err(unexpected(&other)),
            })
            .collect()
    }
}
