//! The tunnel framing shared by `clauderon-relay` (inside the sprite) and the Sprites plugin
//! (on the host): connections multiplexed over one byte stream (the exec session's stdin and
//! stdout) in frames `[kind u8][conn u32 BE][len u32 BE][payload ≤ 64 KiB]`.
//!
//! Kinds: [`OPEN`] (relay → host, a connection was accepted), [`DATA`] (both ways), [`CLOSE`]
//! (both ways: an empty payload is EOF of that direction, a non-empty one aborts the connection
//! with that reason), [`PING`]/[`PONG`] (conn 0, payload echoed), [`WINDOW`] (both ways: the
//! receiver wrote `u32 BE` more bytes of that connection out, so the sender may send that many
//! more), [`READY`] (relay → host once, after it listens). Each direction of each connection may
//! have at most [`WINDOW_BYTES`] unacknowledged bytes in flight, so one slow stream cannot stall
//! the rest. Unknown kinds are skipped.

use std::io::Read;

/// A connection was accepted by the relay (payload: the peer address, informational).
pub const OPEN: u8 = 1;
/// Bytes of a connection.
pub const DATA: u8 = 2;
/// End of one direction (empty payload) or abort of the connection (payload: the reason).
pub const CLOSE: u8 = 3;
/// Liveness probe; answered with [`PONG`] carrying the same payload.
pub const PING: u8 = 4;
/// The answer to [`PING`].
pub const PONG: u8 = 5;
/// Flow-control credit: payload `u32 BE` bytes written out by the receiver.
pub const WINDOW: u8 = 6;
/// Sent once by the relay when it listens (payload: a human-readable line).
pub const READY: u8 = 7;

/// Largest payload of one frame.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Bytes one direction of one connection may have in flight before a [`WINDOW`] credit.
pub const WINDOW_BYTES: u32 = 256 * 1024;
/// Header length: kind, conn, len.
pub const HEADER: usize = 9;

/// Exit code of the relay when its port is already taken (another relay, or anything else).
pub const EXIT_ADDR_IN_USE: i32 = 3;
/// Exit code of the relay for bad arguments.
pub const EXIT_USAGE: i32 = 2;

/// The body of the answer to a connection the host cannot serve.
pub const UNREACHABLE_BODY: &str = "clauderon host unreachable";

/// The full `HTTP/1.1 503` response a connection gets when the host cannot be reached.
pub fn unreachable_response() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{UNREACHABLE_BODY}",
        UNREACHABLE_BODY.len()
    )
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The kind (one of the constants above, or an unknown one to skip).
    pub kind: u8,
    /// The connection id (0 for PING/PONG/READY).
    pub conn: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The credit of a [`WINDOW`] frame.
    pub fn credit(&self) -> Option<u32> {
        let b: [u8; 4] = self.payload.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b))
    }
}

/// Why a byte stream is not valid framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad tunnel frame: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

/// Encodes one frame. Panics never; payloads over [`MAX_PAYLOAD`] must be split by the caller
/// (see [`encode_data`]).
pub fn encode(kind: u8, conn: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + payload.len());
    push_header(&mut v, kind, conn, payload.len());
    v.extend_from_slice(payload);
    v
}

fn push_header(v: &mut Vec<u8>, kind: u8, conn: u32, len: usize) {
    v.push(kind);
    v.extend_from_slice(&conn.to_be_bytes());
    v.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

/// Encodes `data` as as many [`DATA`] frames as needed, appended to `out`.
pub fn encode_data(out: &mut Vec<u8>, conn: u32, data: &[u8]) {
    for chunk in data.chunks(MAX_PAYLOAD) {
        push_header(out, DATA, conn, chunk.len());
        out.extend_from_slice(chunk);
    }
}

/// A [`WINDOW`] frame granting `credit` bytes.
pub fn window(conn: u32, credit: u32) -> Vec<u8> {
    encode(WINDOW, conn, &credit.to_be_bytes())
}

fn parse_header(h: &[u8]) -> Result<(u8, u32, usize), FrameError> {
    let conn = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError(format!(
            "payload of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit (kind {}, conn {conn})",
            h[0]
        )));
    }
    Ok((h[0], conn, len))
}

/// Reads one frame from a blocking reader; `Ok(None)` at a clean end of stream between frames.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<Frame>> {
    let mut h = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the stream ended inside a frame header",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let (kind, conn, len) =
        parse_header(&h).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some(Frame {
        kind,
        conn,
        payload,
    }))
}

/// An incremental decoder for a byte stream that arrives in arbitrary chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER {
            return Ok(None);
        }
        let (kind, conn, len) = parse_header(&avail[..HEADER])?;
        if avail.len() < HEADER + len {
            return Ok(None);
        }
        let payload = avail[HEADER..HEADER + len].to_vec();
        self.start += HEADER + len;
        Ok(Some(Frame {
            kind,
            conn,
            payload,
        }))
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_both_decoders_in_any_chunking() {
        let mut wire = encode(OPEN, 7, b"127.0.0.1:5555");
        encode_data(&mut wire, 7, &vec![0xAB; MAX_PAYLOAD + 10]);
        wire.extend(window(7, 1234));
        wire.extend(encode(CLOSE, 7, b""));
        let expect = [
            (OPEN, 14usize),
            (DATA, MAX_PAYLOAD),
            (DATA, 10),
            (WINDOW, 4),
            (CLOSE, 0),
        ];
        for chunk in [1usize, 3, 9, 4096, wire.len()] {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                d.push(c);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(d.buffered(), 0);
            let shape: Vec<_> = got.iter().map(|f| (f.kind, f.payload.len())).collect();
            assert_eq!(shape, expect, "chunk {chunk}");
            assert_eq!(got[3].credit(), Some(1234));
            assert!(got.iter().all(|f| f.conn == 7));
        }
        let mut r = &wire[..];
        let mut n = 0;
        while let Some(_f) = read_frame(&mut r).unwrap() {
            n += 1;
        }
        assert_eq!(n, expect.len());
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        let mut h = vec![DATA, 0, 0, 0, 1];
        h.extend_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        let mut d = Decoder::new();
        d.push(&h);
        assert!(d.next_frame().unwrap_err().0.contains("exceeds"));
        let mut r = &h[..];
        assert!(read_frame(&mut r).is_err());
        let mut short = &encode(DATA, 1, b"abc")[..5];
        assert!(read_frame(&mut short).is_err());
    }

    #[test]
    fn the_unreachable_answer_is_a_complete_http_response() {
        let r = unreachable_response();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert_eq!(body, UNREACHABLE_BODY);
    }
}
