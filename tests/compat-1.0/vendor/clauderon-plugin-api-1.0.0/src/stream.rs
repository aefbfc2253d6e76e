//! The framing both ends of an exec/attach socketpair speak: `[kind u8][len u32 BE][payload]`.
//!
//! The plugin creates the pair, keeps one end on its own runtime and hands the other end's fd to
//! the host, which wraps it on the host runtime with [`FrameStream::from_fd`].

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// The largest payload a frame may carry.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// What a frame carries (see DESIGN.md §3.1 for directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// host→plugin: bytes for stdin.
    Stdin,
    /// plugin→host: stdout (and TTY output).
    Stdout,
    /// plugin→host: stderr.
    Stderr,
    /// plugin→host: i32 BE exit code; last frame.
    Exit,
    /// host→plugin: end of stdin.
    StdinEof,
    /// host→plugin: cols u16 BE, rows u16 BE.
    Resize,
    /// host→plugin: a signal name (`INT`, `TERM`, ...).
    Signal,
    /// plugin→host: an error message; last frame.
    Error,
    /// plugin→host: a JSON event.
    Event,
    /// host→plugin: leave a detachable remote session running.
    Detach,
}

impl FrameKind {
    /// The wire byte.
    pub fn code(self) -> u8 {
        match self {
            FrameKind::Stdin => 0,
            FrameKind::Stdout => 1,
            FrameKind::Stderr => 2,
            FrameKind::Exit => 3,
            FrameKind::StdinEof => 4,
            FrameKind::Resize => 5,
            FrameKind::Signal => 6,
            FrameKind::Error => 7,
            FrameKind::Event => 8,
            FrameKind::Detach => 9,
        }
    }

    /// The kind for a wire byte.
    pub fn from_code(code: u8) -> Option<FrameKind> {
        Some(match code {
            0 => FrameKind::Stdin,
            1 => FrameKind::Stdout,
            2 => FrameKind::Stderr,
            3 => FrameKind::Exit,
            4 => FrameKind::StdinEof,
            5 => FrameKind::Resize,
            6 => FrameKind::Signal,
            7 => FrameKind::Error,
            8 => FrameKind::Event,
            9 => FrameKind::Detach,
            _ => return None,
        })
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its kind.
    pub kind: FrameKind,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A frame of `kind` with `payload`.
    pub fn new(kind: FrameKind, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            kind,
            payload: payload.into(),
        }
    }

    /// An `Exit` frame.
    pub fn exit(code: i32) -> Frame {
        Frame::new(FrameKind::Exit, code.to_be_bytes().to_vec())
    }

    /// A `Resize` frame.
    pub fn resize(cols: u16, rows: u16) -> Frame {
        let mut p = cols.to_be_bytes().to_vec();
        p.extend_from_slice(&rows.to_be_bytes());
        Frame::new(FrameKind::Resize, p)
    }

    /// The exit code of an `Exit` frame.
    pub fn exit_code(&self) -> Option<i32> {
        let b: [u8; 4] = self.payload.as_slice().try_into().ok()?;
        (self.kind == FrameKind::Exit).then(|| i32::from_be_bytes(b))
    }

    /// `(cols, rows)` of a `Resize` frame.
    pub fn resize_size(&self) -> Option<(u16, u16)> {
        if self.kind != FrameKind::Resize || self.payload.len() != 4 {
            return None;
        }
        Some((
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            u16::from_be_bytes([self.payload[2], self.payload[3]]),
        ))
    }
}

/// A framed stream over one end of a Unix socketpair.
#[derive(Debug)]
pub struct FrameStream {
    inner: UnixStream,
}

impl FrameStream {
    /// A connected pair (must be called inside a tokio runtime).
    pub fn pair() -> io::Result<(FrameStream, FrameStream)> {
        let (a, b) = UnixStream::pair()?;
        Ok((FrameStream { inner: a }, FrameStream { inner: b }))
    }

    /// Wraps an fd this side owns (must be called inside a tokio runtime).
    pub fn from_fd(fd: OwnedFd) -> io::Result<FrameStream> {
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true)?;
        Ok(FrameStream {
            inner: UnixStream::from_std(std)?,
        })
    }

    /// Gives up the stream as an owned fd (to hand it to the other side of the ABI).
    pub fn into_fd(self) -> io::Result<OwnedFd> {
        Ok(OwnedFd::from(self.inner.into_std()?))
    }

    /// Splits into independently usable read and write halves.
    pub fn split(self) -> (FrameReader, FrameWriter) {
        let (r, w) = self.inner.into_split();
        (FrameReader { inner: r }, FrameWriter { inner: w })
    }

    /// Reads one frame; `None` at a clean end of stream.
    pub async fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        read_frame(&mut self.inner).await
    }

    /// Writes one frame.
    pub async fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        write_frame(&mut self.inner, frame).await
    }
}

/// The read half of a [`FrameStream`].
#[derive(Debug)]
pub struct FrameReader {
    inner: OwnedReadHalf,
}

impl FrameReader {
    /// Reads one frame; `None` at a clean end of stream.
    pub async fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        read_frame(&mut self.inner).await
    }
}

/// The write half of a [`FrameStream`].
#[derive(Debug)]
pub struct FrameWriter {
    inner: OwnedWriteHalf,
}

impl FrameWriter {
    /// Writes one frame.
    pub async fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        write_frame(&mut self.inner, frame).await
    }
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut header = [0u8; 5];
    let mut got = 0;
    while got < header.len() {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended inside a frame header",
            ));
        }
        got += n;
    }
    let kind = FrameKind::from_code(header[0]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown frame kind {}", header[0]),
        )
    })?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(Frame { kind, payload }))
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, frame: &Frame) -> io::Result<()> {
    if frame.payload.len() > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame payload exceeds the limit",
        ));
    }
    let mut buf = Vec::with_capacity(5 + frame.payload.len());
    buf.push(frame.kind.code());
    buf.extend_from_slice(&(frame.payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&frame.payload);
    w.write_all(&buf).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_over_a_pair_and_through_an_fd() {
        let (a, b) = FrameStream::pair().unwrap();
        let mut b = FrameStream::from_fd(b.into_fd().unwrap()).unwrap();
        let (_ra, mut wa) = a.split();
        wa.write_frame(&Frame::new(FrameKind::Stdout, b"hi".to_vec()))
            .await
            .unwrap();
        wa.write_frame(&Frame::resize(80, 24)).await.unwrap();
        wa.write_frame(&Frame::exit(-3)).await.unwrap();
        drop(wa);
        drop(_ra);
        let f = b.read_frame().await.unwrap().unwrap();
        assert_eq!(f, Frame::new(FrameKind::Stdout, b"hi".to_vec()));
        assert_eq!(
            b.read_frame().await.unwrap().unwrap().resize_size(),
            Some((80, 24))
        );
        assert_eq!(b.read_frame().await.unwrap().unwrap().exit_code(), Some(-3));
        assert!(b.read_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn unknown_kind_is_an_error() {
        let (a, mut b) = FrameStream::pair().unwrap();
        let mut raw = a.inner;
        raw.write_all(&[42, 0, 0, 0, 0]).await.unwrap();
        let err = b.read_frame().await.unwrap_err();
        assert!(err.to_string().contains("unknown frame kind 42"));
    }
}
