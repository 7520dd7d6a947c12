//! A connection's socket bound to its place under the port's connection limit, so that the
//! place is free again before the client can see the connection end.
//!
//! `limits.max_connections` counts a connection from its accept until the server lets it go.
//! The server lets it go in one of two ways, and each gives the place back *first*: the
//! shutdown of its writing side (`poll_shutdown`, whose FIN tells the client the connection is
//! over: an idle timeout, a drain, a refusal that closes) and the socket's drop (a cut-off, a
//! failed handshake, the end of the connection's task). A client that sees the server close
//! its connection and reconnects at once therefore finds the place free, where counting until
//! the connection's task ended let it be refused in the moment between the two. (When the
//! client closes first, the server learns of it only when it reads the end, and a reconnect
//! racing that read may still meet the limit: nothing the server does can close that window.)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream holding `place` (whose drop gives the connection's place back) until the stream
/// is shut down or dropped, whichever comes first.
///
/// Invariant: `place` is `None` from the moment the writing side's shutdown begins, and it
/// drops before `stream` does (fields drop in declaration order).
pub(crate) struct Admitted<S, P> {
    place: Option<P>,
    stream: S,
}

impl<S, P> Admitted<S, P> {
    pub(crate) fn new(stream: S, place: P) -> Self {
        Admitted {
            place: Some(place),
            stream,
        }
    }
}

impl<S: AsyncRead + Unpin, P: Unpin> AsyncRead for Admitted<S, P> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin, P: Unpin> AsyncWrite for Admitted<S, P> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The connection is over once its end is sent: nothing more is served on it.
        this.place = None;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncWriteExt;

    /// The place: sets its flag when given back.
    struct Place(Arc<AtomicBool>);

    impl Drop for Place {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A socket that records, at its shutdown and at its close, whether the place was given
    /// back by then.
    struct Socket {
        given_back: Arc<AtomicBool>,
        at_shutdown: Arc<AtomicBool>,
        at_close: Arc<AtomicBool>,
    }

    impl AsyncRead for Socket {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            let given_back = self.given_back.load(Ordering::SeqCst);
            self.at_shutdown.store(given_back, Ordering::SeqCst);
            Poll::Ready(Ok(()))
        }
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            let given_back = self.given_back.load(Ordering::SeqCst);
            self.at_close.store(given_back, Ordering::SeqCst);
        }
    }

    fn admitted() -> (Admitted<Socket, Place>, [Arc<AtomicBool>; 3]) {
        let flags = [(); 3].map(|()| Arc::new(AtomicBool::new(false)));
        let socket = Socket {
            given_back: Arc::clone(&flags[0]),
            at_shutdown: Arc::clone(&flags[1]),
            at_close: Arc::clone(&flags[2]),
        };
        (Admitted::new(socket, Place(Arc::clone(&flags[0]))), flags)
    }

    #[tokio::test]
    async fn the_place_is_back_before_the_shutdown_is_sent() {
        let (mut a, [given_back, at_shutdown, at_close]) = admitted();
        a.write_all(b"answer").await.unwrap();
        assert!(!given_back.load(Ordering::SeqCst), "held while serving");
        a.shutdown().await.unwrap();
        assert!(at_shutdown.load(Ordering::SeqCst));
        drop(a);
        assert!(at_close.load(Ordering::SeqCst));
    }

    #[test]
    fn the_place_is_back_before_a_dropped_socket_closes() {
        let (a, [given_back, at_shutdown, at_close]) = admitted();
        assert!(!given_back.load(Ordering::SeqCst));
        drop(a);
        assert!(at_close.load(Ordering::SeqCst));
        assert!(!at_shutdown.load(Ordering::SeqCst), "never shut down");
    }
}
