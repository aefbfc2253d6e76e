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
}

/// A response body with every secret overwritten. It holds back the last `longest - 1`
/// bytes of each chunk so a secret split across chunks is still caught.
pub struct ScrubBody<B> {
    inner: B,
    scrubber: Arc<Scrubber>,
    carry: BytesMut,
    ended: bool,
}

impl<B> ScrubBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, scrubber: Arc<Scrubber>) -> Self {
        Self {
            inner,
            scrubber,
            carry: BytesMut::new(),
            ended: false,
        }
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
            if this.ended {
                if this.carry.is_empty() {
                    return Poll::Ready(None);
                }
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
                        this.carry.extend_from_slice(&data);
                        this.scrubber.scrub(&mut this.carry);
                        let keep = this.scrubber.longest.saturating_sub(1);
                        if this.carry.len() > keep {
                            let out = this.carry.split_to(this.carry.len() - keep).freeze();
                            return Poll::Ready(Some(Ok(Frame::data(out))));
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
        self.ended && self.carry.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // Same-length replacement: the total is unchanged.
        let mut h = self.inner.size_hint();
        let held = self.carry.len() as u64;
        h.set_lower(h.lower().saturating_add(held));
        if let Some(u) = h.upper() {
            h.set_upper(u.saturating_add(held));
        }
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
}
