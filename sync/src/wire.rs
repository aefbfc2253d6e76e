//! The sync wire protocol between the host and a replica served inside a sandbox (over the
//! plugin's `sync_stream`, i.e. the helper's stdin and stdout). Every message is
//! `[len u32 BE][kind u8][body]` (`len` counts kind and body); strings and byte strings are
//! `[len u32 BE][bytes]`; an entry is `1 hash[32] size u64 exec u8` (file) or `2 target`
//! (link); an optional entry is `0` or an entry. Requests carry an id their answer repeats;
//! answers come in request order. The server speaks first (`Hello`), and may send `Changed` at
//! any time (something under the root changed: scan again).

use std::io::{self, Read, Write};

use crate::entry::{ContentHash, Entry};
use crate::replica::{ApplyError, Change, Probe};

/// The protocol version `Hello` carries.
pub const VERSION: u32 = 2;
/// The largest message accepted (a file's content travels in one message).
pub const MAX_MESSAGE: usize = 1 << 31;

/// A message from the host to the replica.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Scan the whole root.
    Scan {
        /// Request id.
        id: u32,
    },
    /// What is at each path outside the scan.
    Probe {
        /// Request id.
        id: u32,
        /// The paths.
        paths: Vec<String>,
    },
    /// The content of a path that should hold `expected`.
    Read {
        /// Request id.
        id: u32,
        /// The path.
        path: String,
        /// What it should hold.
        expected: Entry,
    },
    /// Put `entry` at `path` if it holds `expected`.
    Write {
        /// Request id.
        id: u32,
        /// The path.
        path: String,
        /// What it should hold now (`None`: nothing).
        expected: Option<Entry>,
        /// What to put there.
        entry: Entry,
        /// A file's bytes (empty for a link).
        content: Vec<u8>,
    },
    /// Remove `path` if it holds `expected`.
    Delete {
        /// Request id.
        id: u32,
        /// The path.
        path: String,
        /// What it should hold now.
        expected: Entry,
    },
    /// Liveness.
    Ping {
        /// Request id.
        id: u32,
    },
    /// A bundle of the replica's checked-out history without the commits of `have` it holds
    /// (since version 2).
    Bundle {
        /// Request id.
        id: u32,
        /// Commits the host has.
        have: Vec<String>,
    },
    /// Move the replica's checked-out branch from `from` to `to` if it still points at
    /// `from`, with the objects of `bundle`, then reset its index to `to` (since version 2).
    Advance {
        /// Request id.
        id: u32,
        /// The commit the branch should point at now.
        from: String,
        /// The commit it moves to.
        to: String,
        /// A bundle with `to`'s commits the replica lacks (may be empty).
        bundle: Vec<u8>,
    },
}

/// How a read or change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// The path changed since the host saw it: nothing done.
    Changed(String),
    /// The path may not be touched.
    Refused(String),
    /// The filesystem failed.
    Failed(String),
}

impl From<Result<(), ApplyError>> for Outcome {
    fn from(r: Result<(), ApplyError>) -> Outcome {
        match r {
            Ok(()) => Outcome::Ok,
            Err(ApplyError::Changed(m)) => Outcome::Changed(m),
            Err(ApplyError::Refused(m)) => Outcome::Refused(m),
            Err(ApplyError::Io(m)) => Outcome::Failed(m),
        }
    }
}

impl Outcome {
    /// The result it stands for (the inverse of `From<Result<(), ApplyError>>`).
    pub fn into_result(self) -> Result<(), ApplyError> {
        match self {
            Outcome::Ok => Ok(()),
            Outcome::Changed(m) => Err(ApplyError::Changed(m)),
            Outcome::Refused(m) => Err(ApplyError::Refused(m)),
            Outcome::Failed(m) => Err(ApplyError::Io(m)),
        }
    }
}

impl Request {
    /// The request carrying `change`.
    pub fn change(id: u32, change: Change) -> Request {
        match change {
            Change::Write {
                path,
                expected,
                entry,
                content,
            } => Request::Write {
                id,
                path,
                expected,
                entry,
                content,
            },
            Change::Delete { path, expected } => Request::Delete { id, path, expected },
        }
    }

    /// The change a `Write` or `Delete` carries, with its id (the inverse of
    /// [`Request::change`]); `None` for any other request.
    pub fn into_change(self) -> Option<(u32, Change)> {
        match self {
            Request::Write {
                id,
                path,
                expected,
                entry,
                content,
            } => Some((
                id,
                Change::Write {
                    path,
                    expected,
                    entry,
                    content,
                },
            )),
            Request::Delete { id, path, expected } => Some((id, Change::Delete { path, expected })),
            _ => None,
        }
    }
}

/// A message from the replica to the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The first message: the protocol version and the root served.
    Hello {
        /// [`VERSION`].
        version: u32,
        /// The root directory.
        root: String,
    },
    /// Something under the root changed.
    Changed,
    /// A scan's result.
    Scanned {
        /// Request id.
        id: u32,
        /// Whether the root exists.
        root_present: bool,
        /// The checked-out commit, if any.
        head: Option<String>,
        /// Every synced path.
        entries: Vec<(String, Entry)>,
    },
    /// A probe's result, one per path.
    Probed {
        /// Request id.
        id: u32,
        /// The states.
        probes: Vec<Probe>,
    },
    /// A read's result.
    Content {
        /// Request id.
        id: u32,
        /// How it ended.
        outcome: Outcome,
        /// The bytes (empty unless `Ok` and a file).
        content: Vec<u8>,
    },
    /// A write's or delete's result.
    Applied {
        /// Request id.
        id: u32,
        /// How it ended.
        outcome: Outcome,
    },
    /// Answer to `Ping`.
    Pong {
        /// Request id.
        id: u32,
    },
    /// A bundle's result (since version 2).
    Bundled {
        /// Request id.
        id: u32,
        /// How it ended.
        outcome: Outcome,
        /// The checked-out commit, if any.
        head: Option<String>,
        /// The bundle (empty when the host has every commit).
        content: Vec<u8>,
    },
    /// A request that failed as a whole (a scan that could not list the root).
    Error {
        /// Request id.
        id: u32,
        /// Why.
        message: String,
    },
}

const SCAN: u8 = 1;
const PROBE: u8 = 2;
const READ: u8 = 3;
const WRITE: u8 = 4;
const DELETE: u8 = 5;
const PING: u8 = 6;
const BUNDLE: u8 = 7;
const ADVANCE: u8 = 8;
const HELLO: u8 = 64;
const CHANGED: u8 = 65;
const SCANNED: u8 = 66;
const PROBED: u8 = 67;
const CONTENT: u8 = 68;
const APPLIED: u8 = 69;
const PONG: u8 = 70;
const ERROR: u8 = 71;
const BUNDLED: u8 = 72;

/// A malformed message.
fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sync wire: {what}"))
}

/// Builds one message.
#[derive(Debug, Default)]
struct Out {
    /// What was there before this message, then the message.
    buf: Vec<u8>,
    /// Where this message (its length prefix) starts in `buf`.
    start: usize,
}

impl Out {
    fn new(kind: u8) -> Out {
        Out::after(Vec::new(), kind)
    }
    /// A message appended to `buf`.
    fn after(mut buf: Vec<u8>, kind: u8) -> Out {
        let start = buf.len();
        buf.extend_from_slice(&[0, 0, 0, 0, kind]);
        Out { buf, start }
    }
    /// A message that starts with its request id.
    fn with_id(kind: u8, id: u32) -> Out {
        Out::with_id_after(Vec::new(), kind, id)
    }
    /// A message that starts with its request id, appended to `buf`.
    fn with_id_after(buf: Vec<u8>, kind: u8, id: u32) -> Out {
        let mut o = Out::after(buf, kind);
        o.u32(id);
        o
    }
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn strs(&mut self, v: &[String]) {
        self.u32(v.len() as u32);
        for s in v {
            self.str(s);
        }
    }
    fn entry(&mut self, e: &Entry) {
        match e {
            Entry::File { hash, size, exec } => {
                self.u8(1);
                self.buf.extend_from_slice(&hash.0);
                self.u64(*size);
                self.u8(u8::from(*exec));
            }
            Entry::Link { target } => {
                self.u8(2);
                self.str(target);
            }
        }
    }
    fn opt_entry(&mut self, e: Option<&Entry>) {
        match e {
            None => self.u8(0),
            Some(e) => self.entry(e),
        }
    }
    fn outcome(&mut self, o: &Outcome) {
        match o {
            Outcome::Ok => self.u8(0),
            Outcome::Changed(m) => {
                self.u8(1);
                self.str(m);
            }
            Outcome::Refused(m) => {
                self.u8(2);
                self.str(m);
            }
            Outcome::Failed(m) => {
                self.u8(3);
                self.str(m);
            }
        }
    }
    fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - self.start - 4) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}

/// Reads one message's fields.
struct In<'a>(&'a [u8]);

impl In<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(bad("message ends early"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| bad("a string is not UTF-8"))
    }
    fn count(&mut self) -> io::Result<usize> {
        let n = self.u32()? as usize;
        // Each item takes at least one byte: a count beyond the message is malformed.
        if n > self.0.len() {
            return Err(bad("a count exceeds the message"));
        }
        Ok(n)
    }
    fn entry_tagged(&mut self, tag: u8) -> io::Result<Entry> {
        match tag {
            1 => {
                let mut h = [0u8; 32];
                h.copy_from_slice(self.take(32)?);
                Ok(Entry::File {
                    hash: ContentHash(h),
                    size: self.u64()?,
                    exec: self.u8()? != 0,
                })
            }
            2 => Ok(Entry::Link {
                target: self.str()?,
            }),
            t => Err(bad(&format!("unknown entry tag {t}"))),
        }
    }
    fn entry(&mut self) -> io::Result<Entry> {
        let t = self.u8()?;
        self.entry_tagged(t)
    }
    fn opt_entry(&mut self) -> io::Result<Option<Entry>> {
        match self.u8()? {
            0 => Ok(None),
            t => self.entry_tagged(t).map(Some),
        }
    }
    fn outcome(&mut self) -> io::Result<Outcome> {
        Ok(match self.u8()? {
            0 => Outcome::Ok,
            1 => Outcome::Changed(self.str()?),
            2 => Outcome::Refused(self.str()?),
            3 => Outcome::Failed(self.str()?),
            t => return Err(bad(&format!("unknown outcome {t}"))),
        })
    }
}

impl Request {
    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_onto(&mut out);
        out
    }

    /// Appends the encoded request to `out` (a batch is written as one buffer, without a
    /// buffer per request).
    pub fn encode_onto(&self, out: &mut Vec<u8>) {
        let buf = std::mem::take(out);
        let o = match self {
            Request::Scan { id } => Out::with_id_after(buf, SCAN, *id),
            Request::Probe { id, paths } => {
                let mut o = Out::with_id_after(buf, PROBE, *id);
                o.strs(paths);
                o
            }
            Request::Read { id, path, expected } => {
                let mut o = Out::with_id_after(buf, READ, *id);
                o.str(path);
                o.entry(expected);
                o
            }
            Request::Write {
                id,
                path,
                expected,
                entry,
                content,
            } => {
                let mut buf = buf;
                buf.reserve(content.len() + path.len() + 2 * 64);
                let mut o = Out::with_id_after(buf, WRITE, *id);
                o.str(path);
                o.opt_entry(expected.as_ref());
                o.entry(entry);
                o.bytes(content);
                o
            }
            Request::Delete { id, path, expected } => {
                let mut o = Out::with_id_after(buf, DELETE, *id);
                o.str(path);
                o.entry(expected);
                o
            }
            Request::Ping { id } => Out::with_id_after(buf, PING, *id),
            Request::Bundle { id, have } => {
                let mut o = Out::with_id_after(buf, BUNDLE, *id);
                o.strs(have);
                o
            }
            Request::Advance {
                id,
                from,
                to,
                bundle,
            } => {
                let mut o = Out::with_id_after(buf, ADVANCE, *id);
                o.str(from);
                o.str(to);
                o.bytes(bundle);
                o
            }
        };
        *out = o.finish();
    }

    /// Decodes one message body (`kind` and what follows).
    pub fn decode(msg: &[u8]) -> io::Result<Request> {
        let mut i = In(msg);
        let kind = i.u8()?;
        let id = i.u32()?;
        Ok(match kind {
            SCAN => Request::Scan { id },
            PROBE => {
                let n = i.count()?;
                let paths = (0..n).map(|_| i.str()).collect::<io::Result<_>>()?;
                Request::Probe { id, paths }
            }
            READ => Request::Read {
                id,
                path: i.str()?,
                expected: i.entry()?,
            },
            WRITE => Request::Write {
                id,
                path: i.str()?,
                expected: i.opt_entry()?,
                entry: i.entry()?,
                content: i.bytes()?,
            },
            DELETE => Request::Delete {
                id,
                path: i.str()?,
                expected: i.entry()?,
            },
            PING => Request::Ping { id },
            BUNDLE => {
                let n = i.count()?;
                let have = (0..n).map(|_| i.str()).collect::<io::Result<_>>()?;
                Request::Bundle { id, have }
            }
            ADVANCE => Request::Advance {
                id,
                from: i.str()?,
                to: i.str()?,
                bundle: i.bytes()?,
            },
            k => return Err(bad(&format!("unknown request kind {k}"))),
        })
    }
}

impl Reply {
    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        let o = match self {
            Reply::Hello { version, root } => {
                let mut o = Out::new(HELLO);
                o.u32(*version);
                o.str(root);
                o
            }
            Reply::Changed => Out::new(CHANGED),
            Reply::Scanned {
                id,
                root_present,
                head,
                entries,
            } => {
                let mut o = Out::with_id(SCANNED, *id);
                o.u8(u8::from(*root_present));
                o.str(head.as_deref().unwrap_or(""));
                o.u32(entries.len() as u32);
                for (p, e) in entries {
                    o.str(p);
                    o.entry(e);
                }
                o
            }
            Reply::Probed { id, probes } => {
                let mut o = Out::with_id(PROBED, *id);
                o.u32(probes.len() as u32);
                for p in probes {
                    o.u8(u8::from(p.exists) | (u8::from(p.ignored) << 1));
                }
                o
            }
            Reply::Content {
                id,
                outcome,
                content,
            } => {
                let mut o = Out::with_id(CONTENT, *id);
                o.outcome(outcome);
                o.bytes(content);
                o
            }
            Reply::Applied { id, outcome } => {
                let mut o = Out::with_id(APPLIED, *id);
                o.outcome(outcome);
                o
            }
            Reply::Pong { id } => Out::with_id(PONG, *id),
            Reply::Error { id, message } => {
                let mut o = Out::with_id(ERROR, *id);
                o.str(message);
                o
            }
            Reply::Bundled {
                id,
                outcome,
                head,
                content,
            } => {
                let mut o = Out::with_id(BUNDLED, *id);
                o.outcome(outcome);
                o.str(head.as_deref().unwrap_or(""));
                o.bytes(content);
                o
            }
        };
        o.finish()
    }

    /// Decodes one message body (`kind` and what follows).
    pub fn decode(msg: &[u8]) -> io::Result<Reply> {
        let mut i = In(msg);
        let kind = i.u8()?;
        if kind == CHANGED {
            return Ok(Reply::Changed);
        }
        if kind == HELLO {
            return Ok(Reply::Hello {
                version: i.u32()?,
                root: i.str()?,
            });
        }
        let id = i.u32()?;
        Ok(match kind {
            SCANNED => {
                let root_present = i.u8()? != 0;
                let head = Some(i.str()?).filter(|h| !h.is_empty());
                let n = i.count()?;
                let entries = (0..n)
                    .map(|_| Ok((i.str()?, i.entry()?)))
                    .collect::<io::Result<_>>()?;
                Reply::Scanned {
                    id,
                    root_present,
                    head,
                    entries,
                }
            }
            PROBED => {
                let n = i.count()?;
                let probes = (0..n)
                    .map(|_| {
                        let b = i.u8()?;
                        Ok(Probe {
                            exists: b & 1 != 0,
                            ignored: b & 2 != 0,
                        })
                    })
                    .collect::<io::Result<_>>()?;
                Reply::Probed { id, probes }
            }
            CONTENT => Reply::Content {
                id,
                outcome: i.outcome()?,
                content: i.bytes()?,
            },
            APPLIED => Reply::Applied {
                id,
                outcome: i.outcome()?,
            },
            PONG => Reply::Pong { id },
            ERROR => Reply::Error {
                id,
                message: i.str()?,
            },
            BUNDLED => Reply::Bundled {
                id,
                outcome: i.outcome()?,
                head: Some(i.str()?).filter(|h| !h.is_empty()),
                content: i.bytes()?,
            },
            k => return Err(bad(&format!("unknown reply kind {k}"))),
        })
    }
}

/// Reads one message body from a blocking reader (`None` at a clean end of stream).
pub fn read_message(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n == 0 || n > MAX_MESSAGE {
        return Err(bad(&format!("a message of {n} bytes")));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Splits a byte stream into message bodies (for readers that get arbitrary chunks).
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
}

impl Decoder {
    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message body, if one has arrived.
    pub fn next_message(&mut self) -> io::Result<Option<Vec<u8>>> {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let n = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if n == 0 || n > MAX_MESSAGE {
            return Err(bad(&format!("a message of {n} bytes")));
        }
        if avail.len() < 4 + n {
            return Ok(None);
        }
        let msg = avail[4..4 + n].to_vec();
        self.start += 4 + n;
        if self.start > (1 << 20) && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(msg))
    }
}

/// Writes one encoded message.
pub fn write_message(w: &mut impl Write, encoded: &[u8]) -> io::Result<()> {
    w.write_all(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let f = Entry::File {
            hash: ContentHash::of(b"x"),
            size: 1,
            exec: true,
        };
        let l = Entry::Link { target: "t".into() };
        let reqs = vec![
            Request::Scan { id: 1 },
            Request::Probe {
                id: 2,
                paths: vec!["a".into(), "b/c".into()],
            },
            Request::Read {
                id: 3,
                path: "a".into(),
                expected: f.clone(),
            },
            Request::Write {
                id: 4,
                path: "a".into(),
                expected: None,
                entry: l.clone(),
                content: vec![],
            },
            Request::Write {
                id: 5,
                path: "a".into(),
                expected: Some(l.clone()),
                entry: f.clone(),
                content: b"x".to_vec(),
            },
            Request::Delete {
                id: 6,
                path: "a".into(),
                expected: f.clone(),
            },
            Request::Ping { id: 7 },
            Request::Bundle {
                id: 8,
                have: vec!["a".repeat(40)],
            },
            Request::Advance {
                id: 9,
                from: "a".repeat(40),
                to: "b".repeat(40),
                bundle: b"bundle".to_vec(),
            },
        ];
        let mut d = Decoder::default();
        for r in &reqs {
            d.push(&r.encode());
        }
        for r in &reqs {
            let m = d.next_message().unwrap().unwrap();
            assert_eq!(&Request::decode(&m).unwrap(), r);
        }
        // The same requests appended to one buffer (as a batch is sent) read back alike.
        let mut batch = b"already there".to_vec();
        for r in &reqs {
            r.encode_onto(&mut batch);
        }
        let mut d = Decoder::default();
        d.push(&batch[b"already there".len()..]);
        for r in &reqs {
            let m = d.next_message().unwrap().unwrap();
            assert_eq!(&Request::decode(&m).unwrap(), r);
        }
        assert!(d.next_message().unwrap().is_none());
        let replies = vec![
            Reply::Hello {
                version: VERSION,
                root: "/w".into(),
            },
            Reply::Changed,
            Reply::Scanned {
                id: 1,
                root_present: true,
                head: Some("abc".into()),
                entries: vec![("a".into(), f.clone()), ("l".into(), l)],
            },
            Reply::Probed {
                id: 2,
                probes: vec![
                    Probe {
                        exists: true,
                        ignored: false,
                    },
                    Probe {
                        exists: false,
                        ignored: true,
                    },
                ],
            },
            Reply::Content {
                id: 3,
                outcome: Outcome::Ok,
                content: b"x".to_vec(),
            },
            Reply::Applied {
                id: 4,
                outcome: Outcome::Changed("c".into()),
            },
            Reply::Pong { id: 7 },
            Reply::Error {
                id: 8,
                message: "m".into(),
            },
            Reply::Bundled {
                id: 9,
                outcome: Outcome::Ok,
                head: Some("c".repeat(40)),
                content: b"b".to_vec(),
            },
        ];
        for r in &replies {
            let enc = r.encode();
            let m = read_message(&mut &enc[..]).unwrap().unwrap();
            assert_eq!(&Reply::decode(&m).unwrap(), r);
        }
        assert!(Request::decode(&[99, 0, 0, 0, 0]).is_err());
        // A change and the request carrying it convert both ways; other requests carry none.
        for r in &reqs[3..6] {
            let (id, change) = r.clone().into_change().unwrap();
            assert_eq!(&Request::change(id, change), r);
        }
        assert_eq!(Request::Ping { id: 7 }.into_change(), None);
    }
}
