//! The proxy's TLS streams, tuned for throughput: the socket is read through a large buffer
//! (rustls alone reads 4 KiB per system call), and a read from the TLS stream takes every
//! record whose bytes are already in memory, not one 16 KiB record at a time, so HTTP bodies
//! move in larger chunks with fewer wake-ups. Nothing is added to a read that would wait.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};

/// The crypto provider for both TLS legs: *ring*, with AES-128-GCM preferred over AES-256-GCM
/// and ChaCha20 (AES with hardware support is the fastest; 128 needs 10 rounds to 256's 14,
/// and it is TLS 1.3's mandatory suite). Every suite *ring* offers stays available.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    let rank = |s: &rustls::SupportedCipherSuite| {
        let name = format!("{:?}", s.suite());
        (
            s.version() != &rustls::version::TLS13,
            !name.contains("AES_128_GCM"),
            !name.contains("AES_256_GCM"),
        )
    };
    p.cipher_suites.sort_by_key(rank);
    Arc::new(p)
}

/// How much of a socket is read per system call.
pub const SOCKET_READ_BUFFER: usize = 64 * 1024;

/// A TLS stream that knows whether more ciphertext is already buffered in memory.
pub trait Buffered {
    /// Whether a read could make progress without a system call.
    fn has_buffered(&self) -> bool;
}

// Plaintext already decrypted (rustls no longer `wants_read`) or ciphertext in the buffer.
impl<S: AsyncRead> Buffered for tokio_rustls::client::TlsStream<BufReader<S>> {
    fn has_buffered(&self) -> bool {
        let (io, conn) = self.get_ref();
        !io.buffer().is_empty() || !conn.wants_read()
    }
}

impl<S: AsyncRead> Buffered for tokio_rustls::server::TlsStream<BufReader<S>> {
    fn has_buffered(&self) -> bool {
        let (io, conn) = self.get_ref();
        !io.buffer().is_empty() || !conn.wants_read()
    }
}

/// Wraps a TLS stream so each read returns everything ready in memory (see the module docs).
pub struct Coalesce<S> {
    inner: S,
    /// An error met after some bytes were returned, for the next read.
    pending_error: Option<io::Error>,
}

impl<S> Coalesce<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending_error: None,
        }
    }
}

impl<S: AsyncRead + Buffered + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(e) = this.pending_error.take() {
            return Poll::Ready(Err(e));
        }
        let start = buf.filled().len();
        loop {
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {
                    let got = buf.filled().len() - before;
                    // End of stream, a full buffer, or nothing more in memory: done.
                    if got == 0 || buf.remaining() == 0 || !this.inner.has_buffered() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Err(e)) => {
                    if buf.filled().len() > start {
                        this.pending_error = Some(e);
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    if buf.filled().len() > start {
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
