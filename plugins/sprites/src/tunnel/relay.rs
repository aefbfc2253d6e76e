//! One running relay: started as a non-TTY exec session (`max_run_after_disconnect` 0, so it
//! outlives a dropped socket until it is killed), and the pump that carries its connections to
//! `host_addr`: every OPEN becomes a plain TCP connection on the host, bytes go both ways in
//! DATA frames within a per-connection window, CLOSE ends a direction (or, with a reason, the
//! connection), and a PING goes to the relay every second so it knows the host is alive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clauderon_relay::{
    CLOSE, DATA, Decoder, EXIT_ADDR_IN_USE, MAX_PAYLOAD, OPEN, PING, READY, WINDOW, WINDOW_BYTES,
    encode, window,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::install::REMOTE_PATH;
use crate::client::{ChildStdin, Error as ClientError, OutputStream, SpriteHandle};

/// How long a new relay may take to report that it listens.
const READY_WAIT: Duration = Duration::from_secs(30);
/// How often the host pings the relay (the relay gives up on a host silent for 5 s).
const PING_EVERY: Duration = Duration::from_secs(1);
/// How long connecting to the host address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of queued frames written to the relay's stdin in one go.
const STDIN_BATCH: usize = 256 * 1024;

/// Why a relay did not start.
#[derive(Debug)]
pub enum StartError {
    /// The port inside the sprite is taken (the relay's stderr says by what).
    PortTaken(String),
    /// Anything else, described.
    Failed(String),
    /// The Sprites API refused or failed.
    Client(ClientError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::PortTaken(m) | StartError::Failed(m) => f.write_str(m),
            StartError::Client(e) => write!(f, "{e}"),
        }
    }
}

/// A relay that reported READY.
pub struct RelayProcess {
    stdin: ChildStdin,
    stdout: OutputStream,
    stderr: OutputStream,
    exit: JoinHandle<Result<i32, ClientError>>,
    decoder: Decoder,
    /// The exec session id (for the kill endpoint), when the server reported one.
    pub session: Option<String>,
}

impl std::fmt::Debug for RelayProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayProcess")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// Starts `clauderon-relay --listen 127.0.0.1:<port>` in the sprite and waits for READY.
pub async fn start(sprite: &SpriteHandle, port: u16) -> Result<RelayProcess, StartError> {
    let mut child = sprite
        .command(REMOTE_PATH)
        .args(["--listen".to_owned(), format!("127.0.0.1:{port}")])
        .stdin(true)
        .max_run_after_disconnect(Duration::ZERO)
        .spawn()
        .await
        .map_err(StartError::Client)?;
    let (Some(stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(StartError::Failed(
            "the relay's exec session has no stdin or output".into(),
        ));
    };
    let mut decoder = Decoder::new();
    let mut err_text = Vec::new();
    let mut err_open = true;
    let ready = tokio::time::timeout(READY_WAIT, async {
        loop {
            tokio::select! {
                chunk = stdout.recv() => match chunk {
                    Some(b) => {
                        decoder.push(&b);
                        // Frames before READY cannot exist; READY itself is consumed here.
                        match decoder.next_frame() {
                            Ok(Some(f)) if f.kind == READY => return true,
                            Ok(_) => {}
                            Err(_) => return false,
                        }
                    }
                    None => return false,
                },
                e = stderr.recv(), if err_open => match e {
                    Some(b) if err_text.len() < 4096 => err_text.extend_from_slice(&b),
                    Some(_) => {}
                    None => err_open = false,
                },
            }
        }
    })
    .await;
    if matches!(ready, Ok(true)) {
        // The server sends `session_info` before any output, so it is here by now if at all.
        let session = child
            .session_info(Duration::from_secs(2))
            .await
            .map(|i| i.session_id);
        let exit = tokio::spawn(child.wait());
        return Ok(RelayProcess {
            stdin,
            stdout,
            stderr,
            exit,
            decoder,
            session,
        });
    }
    // Gather the rest of its stderr and its exit code (bounded).
    let code = match tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(b) = stderr.recv().await {
            if err_text.len() < 4096 {
                err_text.extend_from_slice(&b);
            }
        }
        child.wait().await
    })
    .await
    {
        Ok(Ok(code)) => Some(code),
        _ => None,
    };
    let text = String::from_utf8_lossy(&err_text).trim().to_owned();
    let text = if text.is_empty() {
        "no message".to_owned()
    } else {
        text
    };
    match (ready, code) {
        (_, Some(EXIT_ADDR_IN_USE)) => Err(StartError::PortTaken(text)),
        (Err(_), _) => Err(StartError::Failed(format!(
            "the relay did not report that it listens within {}s ({text})",
            READY_WAIT.as_secs()
        ))),
        (_, Some(code)) => Err(StartError::Failed(format!(
            "the relay exited with code {code}: {text}"
        ))),
        (_, None) => Err(StartError::Failed(format!(
            "the relay's exec session ended before it listened: {text}"
        ))),
    }
}

/// How a pump ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// The relay exited (killed, or the sprite hibernated): nothing to reconnect to.
    Exited(i32),
    /// The exec socket was lost without an exit: the relay may still run.
    Lost(String),
}

enum Down {
    Data(Vec<u8>),
    Eof,
    Abort,
}

struct ConnIn {
    tx: mpsc::UnboundedSender<Down>,
    credit: Arc<Semaphore>,
}

/// Carries the relay's connections to `host_addr` until the relay or its socket ends.
pub async fn pump(relay: RelayProcess, host_addr: String) -> PumpEnd {
    let RelayProcess {
        mut stdin,
        mut stdout,
        mut stderr,
        exit,
        mut decoder,
        ..
    } = relay;
    let (ftx, mut frx) = mpsc::channel::<Vec<u8>>(128);
    let writer = tokio::spawn(async move {
        while let Some(first) = frx.recv().await {
            let mut buf = first;
            while buf.len() < STDIN_BATCH {
                match frx.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if stdin.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    let mut conns: HashMap<u32, ConnIn> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u32>();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stderr_open = true;
    let mut protocol_error = None;
    // Frames already decoded along with READY.
    let mut pending: Option<Bytes> = Some(Bytes::new());
    'outer: loop {
        let chunk = if let Some(b) = pending.take() {
            Some(b)
        } else {
            tokio::select! {
                c = stdout.recv() => match c {
                    Some(b) => Some(b),
                    None => break 'outer,
                },
                e = stderr.recv(), if stderr_open => {
                    match e {
                        Some(b) => tracing::info!(
                            "tunnel relay: {}",
                            String::from_utf8_lossy(&b).trim_end()
                        ),
                        None => stderr_open = false,
                    }
                    None
                }
                Some(id) = done_rx.recv() => {
                    conns.remove(&id);
                    None
                }
                _ = ping.tick() => {
                    let _ = ftx.try_send(encode(PING, 0, b""));
                    None
                }
            }
        };
        let Some(chunk) = chunk else { continue };
        decoder.push(&chunk);
        loop {
            let f = match decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    protocol_error = Some(e.to_string());
                    break 'outer;
                }
            };
            match f.kind {
                OPEN => {
                    if conns.contains_key(&f.conn) {
                        continue;
                    }
                    let (tx, rx) = mpsc::unbounded_channel();
                    let credit = Arc::new(Semaphore::new(WINDOW_BYTES as usize));
                    tokio::spawn(connection(
                        f.conn,
                        host_addr.clone(),
                        ftx.clone(),
                        rx,
                        Arc::clone(&credit),
                        done_tx.clone(),
                    ));
                    conns.insert(f.conn, ConnIn { tx, credit });
                }
                DATA => {
                    if let Some(c) = conns.get(&f.conn) {
                        let _ = c.tx.send(Down::Data(f.payload));
                    }
                }
                CLOSE => {
                    if let Some(c) = conns.get(&f.conn) {
                        let _ = c.tx.send(if f.payload.is_empty() {
                            Down::Eof
                        } else {
                            Down::Abort
                        });
                    }
                }
                WINDOW => {
                    if let (Some(c), Some(n)) = (conns.get(&f.conn), f.credit()) {
                        c.credit.add_permits(n as usize);
                    }
                }
                _ => {}
            }
        }
    }
    // Every host connection ends with the relay's stream.
    drop(conns);
    writer.abort();
    if let Some(e) = protocol_error {
        exit.abort();
        return PumpEnd::Lost(format!("the relay sent {e}"));
    }
    match tokio::time::timeout(Duration::from_secs(10), exit).await {
        Ok(Ok(Ok(code))) => PumpEnd::Exited(code),
        Ok(Ok(Err(e))) => PumpEnd::Lost(e.to_string()),
        Ok(Err(_)) => PumpEnd::Lost("the relay's exec task failed".into()),
        Err(_) => PumpEnd::Lost("the relay's exec socket did not end".into()),
    }
}

/// One relayed connection on the host side.
async fn connection(
    id: u32,
    host_addr: String,
    ftx: mpsc::Sender<Vec<u8>>,
    mut down: mpsc::UnboundedReceiver<Down>,
    credit: Arc<Semaphore>,
    done: mpsc::UnboundedSender<u32>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&host_addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let why = format!("cannot connect to {host_addr}: {e}");
            let _ = ftx.send(encode(CLOSE, id, why.as_bytes())).await;
            let _ = done.send(id);
            return;
        }
        Err(_) => {
            let why = format!("connecting to {host_addr} timed out");
            let _ = ftx.send(encode(CLOSE, id, why.as_bytes())).await;
            let _ = done.send(id);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let up = async {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        loop {
            let Ok(permit) = credit.acquire().await else {
                return;
            };
            let avail = (1 + credit.available_permits()).min(MAX_PAYLOAD);
            match rd.read(&mut buf[..avail]).await {
                Ok(0) => {
                    let _ = ftx.send(encode(CLOSE, id, b"")).await;
                    return;
                }
                Ok(n) => {
                    permit.forget();
                    if n > 1
                        && let Ok(more) = credit.try_acquire_many(u32::try_from(n - 1).unwrap_or(0))
                    {
                        more.forget();
                    }
                    if ftx.send(encode(DATA, id, &buf[..n])).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let why = format!("reading from {host_addr} failed: {e}");
                    let _ = ftx.send(encode(CLOSE, id, why.as_bytes())).await;
                    return;
                }
            }
        }
    };
    let down_half = async {
        while let Some(d) = down.recv().await {
            match d {
                Down::Data(b) => {
                    if let Err(e) = wr.write_all(&b).await {
                        let why = format!("writing to {host_addr} failed: {e}");
                        let _ = ftx.send(encode(CLOSE, id, why.as_bytes())).await;
                        return false;
                    }
                    let n = u32::try_from(b.len()).unwrap_or(0);
                    if ftx.send(window(id, n)).await.is_err() {
                        return false;
                    }
                }
                Down::Eof => {
                    let _ = wr.shutdown().await;
                    return true;
                }
                Down::Abort => return false,
            }
        }
        false
    };
    tokio::pin!(up, down_half);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            () = &mut up, if !up_done => up_done = true,
            graceful = &mut down_half, if !down_done => {
                down_done = true;
                if !graceful {
                    break;
                }
            }
        }
    }
    let _ = done.send(id);
}
