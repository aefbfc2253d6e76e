//! Scrubbing real secrets out of responses before they reach the sandbox: every occurrence
//! is overwritten with `*` of the same length, so lengths (and `Content-Length`) stay right
//! and a body can be scrubbed as it streams.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use memchr::memmem::Finder;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The secret values to look for. The copies here are zeroed when dropped.
pub struct Scrubber {
    finders: Vec<Finder<'static>>,
    longest: usize,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("secrets", &self.finders.len())
            .finish()
    }
}

impl Scrubber {
    /// A scrubber for `values` (empty ones are ignored).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let finders: Vec<Finder<'static>> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(|v| Finder::new(v.as_bytes()).into_owned())
            .collect();
        let longest = finders.iter().map(|f| f.needle().len()).max().unwrap_or(0);
        Self { finders, longest }
    }

    /// Whether there is nothing to look for.
    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    /// Overwrites every occurrence in `buf`; returns whether anything was found.
    pub fn scrub(&self, buf: &mut [u8]) -> bool {
        let mut found = false;
        for f in &self.finders {
            let n = f.needle().len();
            let mut at = 0;
            while let Some(p) = f.find(&buf[at..]) {
                buf[at + p..at + p + n].fill(b'*');
                at += p + n;
                found = true;
            }
        }
        found
    }

    /// Whether `buf` holds a secret.
    pub fn contains(&self, buf: &[u8]) -> bool {
        self.finders.iter().any(|f| f.find(buf).is_some())
    }

    /// How many bytes at the end of `buf` could be the start of a secret that continues past
    /// it: the longest suffix, shorter than the secret, that is a prefix of one.
    pub fn partial_tail(&self, buf: &[u8]) -> usize {
        let mut from = buf.len();
        for f in &self.finders {
            let needle = f.needle();
            let window = buf.len().saturating_sub(needle.len() - 1);
            // Only positions before the current best can do better.
            let mut at = window;
            while at < from {
                let Some(p) = memchr::memchr(needle[0], &buf[at..from]).map(|p| p + at) else {
                    break;
                };
                if needle.starts_with(&buf[p..]) {
                    from = p;
                    break;
                }
                at = p + 1;
            }
        }
        buf.len() - from
    }
}

/// A response body with every secret overwritten. Bytes at the end of a chunk that could be
/// the start of a secret are held back until the next chunk settles it, so a secret split
/// across chunks is still caught. A chunk holding no secret is passed on without a copy.
pub struct ScrubBody<B> {
    inner: B,
    scrubber: Arc<Scrubber>,
    /// Held back, or being scrubbed.
    carry: BytesMut,
    /// Scrubbed and ready, after what is returned now.
    queued: Option<Bytes>,
    ended: bool,
}

impl<B> ScrubBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, scrubber: Arc<Scrubber>) -> Self {
        Self {
            inner,
            scrubber,
            carry: BytesMut::new(),
            queued: None,
            ended: false,
        }
    }

    /// Takes everything in `carry` but what may start a secret, after scrubbing it.
    fn settle_carry(&mut self) -> Option<Bytes> {
        self.scrubber.scrub(&mut self.carry);
        let hold = self.scrubber.partial_tail(&self.carry);
        let out = self.carry.split_to(self.carry.len() - hold);
        (!out.is_empty()).then(|| out.freeze())
    }

    /// A chunk with nothing held before it: passed on as is (minus a held tail) unless it
    /// holds a secret.
    fn fresh(&mut self, data: Bytes) -> Option<Bytes> {
        if self.scrubber.contains(&data) {
            self.carry.extend_from_slice(&data);
            return self.settle_carry();
        }
        let hold = self.scrubber.partial_tail(&data);
        if hold > 0 {
            self.carry.extend_from_slice(&data[data.len() - hold..]);
        }
        let out = data.slice(..data.len() - hold);
        (!out.is_empty()).then_some(out)
    }

    /// The next chunk: what to return now and what to return after it.
    fn process(&mut self, data: Bytes) -> (Option<Bytes>, Option<Bytes>) {
        if self.carry.is_empty() {
            return (self.fresh(data), None);
        }
        let reach = self.scrubber.longest - 1;
        if data.len() > reach {
            // Does a secret start in what is held? Its end lies within `reach` more bytes.
            let mut join = Vec::with_capacity(self.carry.len() + reach);
            join.extend_from_slice(&self.carry);
            join.extend_from_slice(&data[..reach]);
            if !self.contains(&join) {
                let held = self.carry.split().freeze();
                return (Some(held), self.fresh(data));
            }
        }
        self.carry.extend_from_slice(&data);
        (self.settle_carry(), None)
    }

    fn contains(&self, buf: &[u8]) -> bool {
        self.scrubber.contains(buf)
    }
}

impl<B> Body for ScrubBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.queued.take() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.ended {
                if this.carry.is_empty() {
                    return Poll::Ready(None);
                }
                // What was held is not the start of a secret after all.
                let rest = this.carry.split().freeze();
                return Poll::Ready(Some(Ok(Frame::data(rest))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.ended = true;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if this.scrubber.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        let (now, next) = this.process(data);
                        this.queued = next;
                        if let Some(b) = now {
                            return Poll::Ready(Some(Ok(Frame::data(b))));
                        }
                    }
                    // Trailers: pass them on after what is held back would break order, and
                    // HTTP/1 responses here rarely carry them; drop them.
                    Err(_trailers) => {}
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.carry.is_empty() && self.queued.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // Same-length replacement: the total is unchanged.
        let mut h = self.inner.size_hint();
        let held = (self.carry.len() + self.queued.as_ref().map_or(0, |q| q.len())) as u64;
        // Upper first: a lower bound above the old upper would be refused.
        if let Some(u) = h.upper() {
            h.set_upper(u.saturating_add(held));
        }
        h.set_lower(h.lower().saturating_add(held));
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn secrets_split_across_chunks_are_scrubbed() {
        let secret = "sk-ant-api03-REALKEY";
        let text = format!("echo: x-api-key={secret} and again {secret}!");
        let bytes = text.into_bytes();
        for cut in 1..bytes.len() {
            let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                Ok(Frame::data(Bytes::copy_from_slice(&bytes[..cut]))),
                Ok(Frame::data(Bytes::copy_from_slice(&bytes[cut..]))),
            ];
            let body = StreamBody::new(futures::stream::iter(chunks));
            let s = Arc::new(Scrubber::new([secret, "other"]));
            let out = ScrubBody::new(body, s).collect().await.unwrap().to_bytes();
            assert_eq!(out.len(), bytes.len());
            let out = String::from_utf8(out.to_vec()).unwrap();
            assert!(!out.contains(secret), "cut {cut}: {out}");
            assert!(out.starts_with("echo: x-api-key=********************"));
        }
    }

    #[tokio::test]
    async fn every_three_way_split_is_scrubbed_and_clean_chunks_are_not_copied() {
        let secrets = ["sk-ant-api03-REALKEY", "ghp_tok", "sk-other"];
        let text = "sk-ant- sk-sk-ant-api03-REALKEYghp_tokghp_to sk-othe sk-other!".as_bytes();
        let want = "sk-ant- sk-***************************ghp_to sk-othe ********!";
        let s = Arc::new(Scrubber::new(secrets));
        for a in 1..text.len() {
            for b in a..text.len() {
                let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                    Ok(Frame::data(Bytes::copy_from_slice(&text[..a]))),
                    Ok(Frame::data(Bytes::copy_from_slice(&text[a..b]))),
                    Ok(Frame::data(Bytes::copy_from_slice(&text[b..]))),
                ];
                let body = StreamBody::new(futures::stream::iter(chunks));
                let out = ScrubBody::new(body, s.clone()).collect().await.unwrap();
                assert_eq!(out.to_bytes(), want.as_bytes(), "cuts {a},{b}");
            }
        }
        // A chunk with no secret and no possible start of one at its end goes through as is.
        let clean = Bytes::from(vec![b'a'; 64 * 1024]);
        let ptr = clean.as_ptr();
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
            vec![Ok(Frame::data(clean))];
        let mut body = ScrubBody::new(StreamBody::new(futures::stream::iter(chunks)), s);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.as_ptr(), ptr, "passed on without a copy");
        assert!(body.frame().await.is_none());
    }
}
