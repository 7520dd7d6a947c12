//! The writing side of an HTTP/2 connection: each answer leaves in as few writes as h2 allows.
//!
//! h2 (under hyper's HTTP/2 server) chooses, when a connection starts, how it buffers a DATA
//! frame, by whether its stream offers vectored writes. With them it keeps any payload over
//! 256 bytes apart from its buffer and must write it out before it may buffer the next frame,
//! so a unary gRPC answer (HEADERS, a DATA frame of a few hundred bytes, the trailers) leaves
//! in two writes: two system calls, and two segments the client wakes for. Without them it
//! copies payloads up to 1 KiB into its buffer, so such an answer leaves in one write, and it
//! writes a larger payload as two calls: its buffer (ending in the frame's head), then the
//! payload.
//!
//! [`Coalesced`] says it has no vectored writes, and joins those two calls into one: a write of
//! up to [`HOLD_MAX`] bytes is held and leaves with the next write (one vectored write of the
//! stream below) or at the next flush. h2 flushes after every batch of frames it writes, so
//! what is held never waits beyond its own batch. A larger answer thus takes as many writes as
//! it did with vectored writes, and a small one half as many.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes held back for the next write: h2's whole frame buffer (its default
/// capacity), so that a batch of small frames is held as one.
pub(crate) const HOLD_MAX: usize = 16 * 1024;

/// A held buffer that grew past this is given back after it is written out, so an idle
/// connection keeps only a small allocation.
const KEEP_CAPACITY: usize = 4 * 1024;

/// A stream whose short writes wait for the next write or flush (see the module's doc).
pub(crate) struct Coalesced<S> {
    inner: S,
    /// Bytes the caller was told are written that the stream has not taken yet; at most
    /// [`HOLD_MAX`].
    held: Vec<u8>,
}

impl<S> Coalesced<S> {
    pub(crate) fn new(inner: S) -> Self {
        Coalesced {
            inner,
            held: Vec::new(),
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes out everything held.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n.min(self.held.len()));
        }
        if self.held.capacity() > KEEP_CAPACITY {
            self.held = Vec::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` while nothing is held: holds it if it is short, else writes it.
    fn poll_write_unheld(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.len() <= HOLD_MAX {
            self.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // What is held leaves first, with as much of `buf` as the stream takes in the same call.
        while !this.held.is_empty() {
            let held = this.held.len();
            let both = [IoSlice::new(&this.held), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &both))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n < held {
                this.held.drain(..n);
                continue;
            }
            this.held.clear();
            let taken = (n - held).min(buf.len());
            if taken > 0 {
                return Poll::Ready(Ok(taken));
            }
        }
        this.poll_write_unheld(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    /// No: h2 then copies payloads up to 1 KiB into its buffer instead of writing each apart
    /// (the module's doc says why that matters).
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stream that takes at most the next of `takes` bytes per call (cycling), counts its
    /// calls, and keeps what it took; it offers vectored writes, as a TCP stream does.
    struct Taker {
        took: Vec<u8>,
        takes: Vec<usize>,
        calls: Arc<AtomicUsize>,
    }

    impl Taker {
        fn take(&mut self, bufs: &[IoSlice<'_>]) -> usize {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            let mut room = self
                .takes
                .get(call % self.takes.len().max(1))
                .copied()
                .unwrap_or(usize::MAX);
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(room);
                self.took.extend_from_slice(&b[..k]);
                (n, room) = (n + k, room - k);
            }
            n
        }
    }

    impl AsyncWrite for Taker {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.get_mut().take(&[IoSlice::new(buf)])))
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.get_mut().take(bufs)))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn coalesced(takes: Vec<usize>) -> (Coalesced<Taker>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let taker = Taker {
            took: Vec::new(),
            takes,
            calls: Arc::clone(&calls),
        };
        (Coalesced::new(taker), calls)
    }

    fn write_all(c: &mut Coalesced<Taker>, mut buf: &[u8]) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while !buf.is_empty() {
            match Pin::new(&mut *c).poll_write(&mut cx, buf) {
                Poll::Ready(Ok(n)) if n > 0 => buf = &buf[n..],
                other => panic!("a write that always succeeds answered {other:?}"),
            }
        }
    }

    fn flush(c: &mut Coalesced<Taker>) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            Pin::new(c).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
    }

    #[test]
    fn a_frame_head_and_its_payload_leave_in_one_call_and_a_short_write_at_the_flush() {
        let (mut c, calls) = coalesced(vec![usize::MAX]);
        write_all(&mut c, b"head");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "a short write waits");
        write_all(&mut c, &[7; HOLD_MAX + 1]);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the held head leaves with the payload"
        );
        write_all(&mut c, b"trailers");
        flush(&mut c);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(c.inner.took.len(), 4 + HOLD_MAX + 1 + 8);
        assert!(c.held.capacity() <= KEEP_CAPACITY);
    }

    /// Writes of the sizes in `ops` (0 for a flush), through a stream that takes the amounts in
    /// `takes` per call.
    fn run(ops: &[usize], takes: Vec<usize>) {
        let (mut c, _) = coalesced(takes);
        let mut written = Vec::new();
        for (i, &len) in ops.iter().enumerate() {
            if len == 0 {
                flush(&mut c);
                assert_eq!(c.inner.took, written, "after a flush the stream has all");
            } else {
                let buf: Vec<u8> = (0..len).map(|k| (i * 31 + k) as u8).collect();
                write_all(&mut c, &buf);
                written.extend_from_slice(&buf);
                assert!(written.starts_with(&c.inner.took), "bytes leave in order");
                assert!(
                    written.len() - c.inner.took.len() <= HOLD_MAX,
                    "at most HOLD_MAX held"
                );
            }
        }
        flush(&mut c);
        assert_eq!(c.inner.took, written);
    }

    proptest! {
        #[test]
        fn every_byte_leaves_once_in_order_by_the_next_flush(
            ops in proptest::collection::vec(prop_oneof![Just(0usize), 1usize..64, 1usize..40_000], 1..24),
            takes in proptest::collection::vec(1usize..20_000, 1..6),
        ) {
            run(&ops, takes);
        }
    }

    /// The writing half of a stream, counting the writes made into it and, like a TCP
    /// stream, offering vectored writes (each taken whole, as one call).
    struct WriteCounter {
        inner: tokio::io::WriteHalf<tokio::io::DuplexStream>,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncWrite for WriteCounter {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let r = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(r, Poll::Ready(Ok(_))) {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            r
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let whole: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            self.poll_write(cx, &whole)
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// The writes hyper's HTTP/2 server makes for one answer of HEADERS, a DATA frame of
    /// `payload` bytes and trailers (a unary gRPC answer), on a connection that has settled.
    async fn writes_for_one_answer(payload: usize, coalesce: bool) -> usize {
        use bytes::Bytes;
        use http_body_util::{BodyExt, Empty, StreamBody};
        use hyper::body::Frame;
        use hyper_util::rt::{TokioExecutor, TokioIo};

        let (server_end, client_end) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let (reads, inner) = tokio::io::split(server_end);
        let counter = WriteCounter {
            inner,
            writes: Arc::clone(&writes),
        };
        let stream = tokio::io::join(reads, counter);
        let svc = hyper::service::service_fn(
            move |_req: hyper::Request<hyper::body::Incoming>| async move {
                let mut trailers = hyper::HeaderMap::new();
                trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
                let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                    Ok(Frame::data(Bytes::from(vec![b'x'; payload]))),
                    Ok(Frame::trailers(trailers)),
                ];
                Ok::<_, std::convert::Infallible>(hyper::Response::new(StreamBody::new(
                    tokio_stream::iter(frames),
                )))
            },
        );
        let server = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        if coalesce {
            tokio::spawn(server.serve_connection(TokioIo::new(Coalesced::new(stream)), svc));
        } else {
            tokio::spawn(server.serve_connection(TokioIo::new(stream), svc));
        }
        let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake::<_, Empty<Bytes>>(TokioIo::new(client_end))
            .await
            .expect("an h2 handshake over a duplex");
        tokio::spawn(conn);

        let mut ask = async || {
            let req = hyper::Request::post("http://test/roma.v1.Roma/Execute").body(Empty::new());
            let answer = send
                .send_request(req.expect("a request"))
                .await
                .expect("an answer");
            let body = answer.into_body().collect().await.expect("its body");
            let status = body.trailers().map(|t| t["grpc-status"].clone());
            assert_eq!(status, Some(hyper::header::HeaderValue::from_static("0")));
            assert_eq!(body.to_bytes().len(), payload);
        };
        // The first exchange settles the connection's SETTINGS and their acknowledgements.
        ask().await;
        let before = writes.load(Ordering::SeqCst);
        ask().await;
        writes.load(Ordering::SeqCst) - before
    }

    #[tokio::test]
    async fn a_short_http2_answer_leaves_in_one_write_and_a_long_one_in_no_more_than_before() {
        assert_eq!(
            writes_for_one_answer(600, false).await,
            2,
            "h2 alone, over a TCP-like stream"
        );
        assert_eq!(writes_for_one_answer(600, true).await, 1);
        let before = writes_for_one_answer(4096, false).await;
        assert_eq!(writes_for_one_answer(4096, true).await, before);
    }
}
