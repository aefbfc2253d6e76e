//! The placeholder tripwire over request bodies: a streaming scan for
//! `clauderon-placeholder-…` tokens that works across chunk boundaries in bounded memory.
//!
//! [`TokenScanner`] reports every complete token and keeps at most [`MAX_TOKEN`] bytes of an
//! unfinished one. [`ScanBody`] wraps a request body with it: it holds back exactly those bytes,
//! so a placeholder never leaves the host before it has been judged, and it can read ahead up
//! to a limit before the request goes upstream ([`ScanBody::prefetch`]) so a small body is
//! refused before the upstream sees anything.

use super::sessions::PLACEHOLDER_PREFIX;
use bytes::Bytes;
use http_body::{Body, Frame};
use memchr::memmem::Finder;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The longest token judged by its content: a placeholder is the prefix, a secret name, `-`
/// and 24 hex digits, far shorter. A longer token is judged as unknown.
pub const MAX_TOKEN: usize = 256;

const PREFIX: &[u8] = PLACEHOLDER_PREFIX.as_bytes();

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A streaming search for placeholder tokens.
pub struct TokenScanner {
    finder: Finder<'static>,
    /// The unresolved tail of the stream: a proper prefix of [`PLACEHOLDER_PREFIX`], or a token
    /// not yet ended. Never longer than [`MAX_TOKEN`].
    carry: Vec<u8>,
}

impl Default for TokenScanner {
    fn default() -> Self {
        Self {
            finder: Finder::new(PREFIX).into_owned(),
            carry: Vec::new(),
        }
    }
}

impl std::fmt::Debug for TokenScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenScanner")
            .field("held", &self.carry.len())
            .finish()
    }
}

/// Where a scan of one buffer stopped.
enum Scanned<T> {
    /// Every token in it was judged; the bytes from this offset on are unresolved.
    Hold(usize),
    /// The judge refused a token.
    Refused(T),
}

impl TokenScanner {
    /// How many bytes at the end of the stream so far are held unresolved.
    pub fn held(&self) -> usize {
        self.carry.len()
    }

    /// The held bytes.
    pub fn held_bytes(&self) -> &[u8] {
        &self.carry
    }

    /// Scans `buf` for tokens starting in `from..until`, passing each complete one to `judge`
    /// (which returns `Some` to refuse). `open` says whether more bytes may follow `buf`
    /// directly; when they may, a token running to the end, or a partial prefix at the end,
    /// is unresolved and its offset returned.
    fn scan<T>(
        &self,
        buf: &[u8],
        until: usize,
        open: bool,
        judge: &mut impl FnMut(&[u8]) -> Option<T>,
    ) -> Scanned<T> {
        let mut at = 0;
        while at < until {
            let Some(p) = self.finder.find(&buf[at..]).map(|p| p + at) else {
                break;
            };
            if p >= until {
                break;
            }
            let body = &buf[p + PREFIX.len()..];
            let limit = body.len().min(MAX_TOKEN + 1 - PREFIX.len());
            let len = body[..limit]
                .iter()
                .position(|b| !token_byte(*b))
                .unwrap_or(limit);
            let end = p + PREFIX.len() + len;
            if end - p > MAX_TOKEN {
                // Longer than any placeholder: judged as it is (unknown).
                if let Some(t) = judge(&buf[p..end]) {
                    return Scanned::Refused(t);
                }
            } else if end == buf.len() && open {
                return Scanned::Hold(p);
            } else if let Some(t) = judge(&buf[p..end]) {
                return Scanned::Refused(t);
            }
            at = end.max(p + 1);
        }
        if open {
            // A proper prefix of the placeholder prefix at the very end may continue.
            let first = buf.len().saturating_sub(PREFIX.len() - 1).max(at);
            for s in first..buf.len() {
                if PREFIX.starts_with(&buf[s..]) {
                    return Scanned::Hold(s);
                }
            }
        }
        Scanned::Hold(buf.len())
    }

    /// Scans the next `chunk` of the stream. Every complete token goes to `judge`; the first
    /// refusal is returned. Afterwards [`held`](Self::held) bytes at the end of the stream are
    /// unresolved (kept here, at most [`MAX_TOKEN`]).
    pub fn feed<T>(
        &mut self,
        chunk: &[u8],
        judge: &mut impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<(), T> {
        if self.carry.is_empty() {
            match self.scan(chunk, chunk.len(), true, judge) {
                Scanned::Refused(t) => return Err(t),
                Scanned::Hold(h) => self.carry.extend_from_slice(&chunk[h..]),
            }
            return Ok(());
        }
        // A bounded join: enough of the chunk to finish any token that began in the carry.
        let old = std::mem::take(&mut self.carry);
        let reach = MAX_TOKEN + PREFIX.len();
        if chunk.len() <= reach {
            let mut joined = old;
            joined.extend_from_slice(chunk);
            match self.scan(&joined, joined.len(), true, judge) {
                Scanned::Refused(t) => return Err(t),
                Scanned::Hold(h) => {
                    joined.drain(..h);
                    self.carry = joined;
                }
            }
            return Ok(());
        }
        let mut joined = old;
        let until = joined.len();
        joined.extend_from_slice(&chunk[..reach]);
        // Tokens starting in the old carry end within the join, or are too long: never held.
        if let Scanned::Refused(t) = self.scan(&joined, until, false, judge) {
            return Err(t);
        }
        match self.scan(chunk, chunk.len(), true, judge) {
            Scanned::Refused(t) => Err(t),
            Scanned::Hold(h) => {
                self.carry.extend_from_slice(&chunk[h..]);
                Ok(())
            }
        }
    }

    /// Ends the stream: a held token is complete now and goes to `judge`.
    pub fn finish<T>(&mut self, judge: &mut impl FnMut(&[u8]) -> Option<T>) -> Result<(), T> {
        let carry = std::mem::take(&mut self.carry);
        if carry.starts_with(PREFIX)
            && let Some(t) = judge(&carry)
        {
            return Err(t);
        }
        Ok(())
    }
}

/// Why a [`ScanBody`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScanError<E> {
    /// The wrapped body failed.
    #[error("{0}")]
    Body(E),
    /// A placeholder that does not belong here was found (the reason is with the judge).
    #[error("the request body carries a clauderon placeholder that does not belong on this host")]
    Tripped,
}

/// A request body scanned for placeholders as it streams. `judge` decides about each token
/// (`Some(reason)` refuses it) and is called at most once with a refusal: after that the body
/// fails, before any byte of the refused token has been passed on.
pub struct ScanBody<B, J> {
    inner: B,
    ended: bool,
    scanner: TokenScanner,
    judge: J,
    /// Scanned frames ready to go, in order.
    ready: VecDeque<Frame<Bytes>>,
    ready_bytes: usize,
    tripped: bool,
}

impl<B, J> ScanBody<B, J>
where
    B: Body<Data = Bytes> + Unpin,
    J: FnMut(&[u8]) -> Option<String>,
{
    /// Wraps `inner`.
    pub fn new(inner: B, judge: J) -> Self {
        Self {
            inner,
            ended: false,
            scanner: TokenScanner::default(),
            judge,
            ready: VecDeque::new(),
            ready_bytes: 0,
            tripped: false,
        }
    }

    /// Reads and scans ahead until `limit` bytes are ready or the body ends. `Ok(Some(reason))`
    /// when a placeholder was refused (nothing has been passed on), `Err` when the body failed.
    pub async fn prefetch(&mut self, limit: usize) -> Result<Option<String>, B::Error> {
        while !self.ended && self.ready_bytes < limit {
            match poll_fn(|cx| self.pull(cx)).await {
                Ok(Some(reason)) => return Ok(Some(reason)),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Pulls one frame from the inner body into `ready`. `Ok(Some(reason))` on a refusal.
    fn pull(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<String>, B::Error>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(None) => {
                self.ended = true;
                return Poll::Ready(Ok(self.end()));
            }
        };
        let data = match frame.into_data() {
            Ok(d) => d,
            Err(trailers) => {
                // Trailers end the data: whatever is held is complete now.
                self.ended = true;
                if let Some(reason) = self.end() {
                    return Poll::Ready(Ok(Some(reason)));
                }
                self.ready.push_back(trailers);
                return Poll::Ready(Ok(None));
            }
        };
        if data.is_empty() {
            return Poll::Ready(Ok(None));
        }
        let held_before = self.scanner.held();
        let old: Option<Bytes> =
            (held_before > 0).then(|| Bytes::copy_from_slice(self.scanner.held_bytes()));
        if let Err(reason) = self.scanner.feed(&data, &mut self.judge) {
            self.tripped = true;
            return Poll::Ready(Ok(Some(reason)));
        }
        // Pass on the old held bytes and the chunk, minus what is held now (a suffix of both).
        let held = self.scanner.held();
        let total = held_before + data.len();
        let pass = total - held;
        if let Some(old) = old {
            let from_old = pass.min(held_before);
            if from_old > 0 {
                self.push(old.slice(..from_old));
            }
        }
        if pass > held_before {
            self.push(data.slice(..pass - held_before));
        }
        Poll::Ready(Ok(None))
    }

    fn push(&mut self, b: Bytes) {
        self.ready_bytes += b.len();
        self.ready.push_back(Frame::data(b));
    }

    /// The stream ended: judge the held token, pass on the held bytes.
    fn end(&mut self) -> Option<String> {
        let held = Bytes::copy_from_slice(self.scanner.held_bytes());
        if let Err(reason) = self.scanner.finish(&mut self.judge) {
            self.tripped = true;
            return Some(reason);
        }
        if !held.is_empty() {
            self.push(held);
        }
        None
    }
}

impl<B, J> Body for ScanBody<B, J>
where
    B: Body<Data = Bytes> + Unpin,
    J: FnMut(&[u8]) -> Option<String> + Unpin,
{
    type Data = Bytes;
    type Error = ScanError<B::Error>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if this.tripped {
                return Poll::Ready(Some(Err(ScanError::Tripped)));
            }
            if let Some(f) = this.ready.pop_front() {
                if let Some(d) = f.data_ref() {
                    this.ready_bytes -= d.len();
                }
                return Poll::Ready(Some(Ok(f)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match this.pull(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(ScanError::Body(e)))),
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.tripped && self.ended && self.ready.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // Nothing is added or removed: the inner body's remainder plus what is buffered here.
        let mut h = if self.ended {
            http_body::SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        };
        let here = (self.ready_bytes + self.scanner.held()) as u64;
        // Upper first: a lower bound above the old upper would be refused.
        if let Some(u) = h.upper() {
            h.set_upper(u.saturating_add(here));
        }
        h.set_lower(h.lower().saturating_add(here));
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    const GOOD: &str = "clauderon-placeholder-github_token-0123456789abcdef01234567";
    const BAD: &str = "clauderon-placeholder-anthropic_api_key-ffffffffffffffffffffffff";

    fn judge(t: &[u8]) -> Option<String> {
        (t != GOOD.as_bytes()).then(|| String::from_utf8_lossy(t).into_owned())
    }

    fn chunks(b: &[u8], cuts: &[usize]) -> Vec<Result<Frame<Bytes>, std::convert::Infallible>> {
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts {
            out.push(Ok(Frame::data(Bytes::copy_from_slice(&b[at..c]))));
            at = c;
        }
        out.push(Ok(Frame::data(Bytes::copy_from_slice(&b[at..]))));
        out
    }

    async fn run(b: &[u8], cuts: &[usize]) -> Result<Bytes, String> {
        let body = StreamBody::new(futures::stream::iter(chunks(b, cuts)));
        let mut s = ScanBody::new(body, judge);
        let mut out = Vec::new();
        loop {
            match s.frame().await {
                None => return Ok(out.into()),
                Some(Ok(f)) => {
                    let d = f.into_data().unwrap();
                    out.extend_from_slice(&d);
                    // Never pass on a byte of a refused token.
                    assert!(!String::from_utf8_lossy(&out).contains(&BAD[..PREFIX.len() + 9]));
                }
                Some(Err(ScanError::Tripped)) => return Err(String::from_utf8_lossy(&out).into()),
                Some(Err(ScanError::Body(e))) => match e {},
            }
        }
    }

    #[tokio::test]
    async fn every_split_of_a_refused_token_is_caught_and_nothing_else_is_changed() {
        let text =
            format!("{{\"a\":\"clauderon-placeholde\",\"ok\":\"{GOOD}\",\"b\":\"{BAD}\"}} tail");
        let b = text.as_bytes();
        for cut in 1..b.len() {
            let r = run(b, &[cut]).await;
            let passed = r.expect_err(&format!("cut {cut}"));
            assert!(text.starts_with(&passed), "order kept at cut {cut}");
            for cut2 in (cut + 1..b.len()).step_by(7) {
                assert!(run(b, &[cut, cut2]).await.is_err(), "cuts {cut},{cut2}");
            }
        }
        // Every split of a body without a refused token passes it through unchanged.
        let clean = format!("x clauderon-placeholde {GOOD} y clauderon-placeholder");
        let c = clean.as_bytes();
        for cut in 1..c.len() {
            assert_eq!(
                run(c, &[cut]).await.unwrap(),
                Bytes::copy_from_slice(c),
                "cut {cut}"
            );
        }
        // A bare prefix at the very end is an (unknown) token of its own.
        assert!(run(b"x clauderon-placeholder-", &[5]).await.is_err());
    }

    #[tokio::test]
    async fn tokens_longer_than_any_placeholder_are_refused_in_bounded_memory() {
        let long = format!("{}{}", PLACEHOLDER_PREFIX, "x".repeat(100_000));
        let b = long.as_bytes();
        for cut in [1, 10, 300, 5000, 99_000] {
            assert!(run(b, &[cut]).await.is_err());
        }
        let mut s = TokenScanner::default();
        for piece in b.chunks(100) {
            if s.feed(piece, &mut judge).is_err() {
                break;
            }
            assert!(s.held() <= MAX_TOKEN);
        }
    }

    #[tokio::test]
    async fn a_large_clean_body_passes_without_holding_anything() {
        let big = vec![b'a'; 1 << 20];
        let cuts: Vec<usize> = (1..64).map(|i| i * 16 * 1024).collect();
        assert_eq!(run(&big, &cuts).await.unwrap().len(), big.len());
    }

    #[tokio::test]
    async fn prefetch_refuses_before_anything_is_passed_on() {
        let text = format!("{}{BAD} more", "y".repeat(1000));
        let body = StreamBody::new(futures::stream::iter(chunks(text.as_bytes(), &[500, 1010])));
        let mut s = ScanBody::new(body, judge);
        assert!(s.prefetch(64 * 1024).await.unwrap().is_some());
        let body = StreamBody::new(futures::stream::iter(chunks(b"hello world", &[3])));
        let mut s = ScanBody::new(body, judge);
        assert_eq!(s.prefetch(64 * 1024).await.unwrap(), None);
        let out = s.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"hello world");
        // An exact size stays exact (and consistent) across the read-ahead.
        let text = format!("{} clauderon-place", "z".repeat(100));
        let full = http_body_util::Full::new(Bytes::from(text.clone()));
        let mut s = ScanBody::new(full, judge);
        assert_eq!(s.size_hint().exact(), Some(text.len() as u64));
        assert_eq!(s.prefetch(10).await.unwrap(), None);
        assert_eq!(s.size_hint().exact(), Some(text.len() as u64));
        assert_eq!(s.collect().await.unwrap().to_bytes(), text.as_bytes());
    }
}
