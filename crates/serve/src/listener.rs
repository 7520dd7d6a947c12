//! One port's accept loop and the limits every connection on it is held to: the same code for
//! the HTTP/JSON port (HTTP/1.1) and the gRPC port (HTTP/2), so a hostile client meets the
//! same bounds on either.
//!
//! - At most `limits.max_connections` connections are open on the port; one more is closed as
//!   soon as it is accepted, without an answer, and counted. A connection's place is free again
//!   before the client can see the server close it ([`crate::admitted`]).
//! - The TLS handshake, and then the protocol's opening, must each arrive within
//!   `limits.header_read_timeout`, or the client is cut off: over HTTP/1 the opening is the
//!   first request's head, over HTTP/2 the connection preface (a gRPC client may open its
//!   channel before its first call). Every later head is held to the same bound from its first
//!   byte: over HTTP/1 what arrives while no request is in flight (a head begun in the read
//!   that brought the request before it is not seen to begin, and lasts until
//!   `limits.idle_timeout`, as an idle connection does), over HTTP/2 each header block
//!   ([`crate::h2_frames`]). An HTTP/1 answer sent before its body was read (a refusal)
//!   closes the connection, so an unread body holds nothing. (hyper's own HTTP/1 head timer is off: it runs while a
//!   kept-alive connection waits for its next request, which would end idle connections at
//!   the head timeout instead of `limits.idle_timeout`.)
//! - Each request's body must arrive within `limits.body_timeout` of its head
//!   ([`crate::body_deadline`]).
//! - Every such cut-off is counted in `roma_slow_clients_total`.
//! - A connection with no request in flight for `limits.idle_timeout` is closed gracefully
//!   (HTTP/2: `GOAWAY`), as is every connection when the server closes; one that does not
//!   finish closing within `limits.header_read_timeout` more is dropped.
//! - An HTTP/2 connection writes through [`crate::coalesce`], so that a gRPC answer up to 1 KiB
//!   leaves in one write where h2 alone would make two.

use crate::admitted::Admitted;
use crate::auth::PeerRoles;
use crate::body_deadline::{Api, TimedBody};
use crate::coalesce::Coalesced;
use crate::conn_threads::ConnThreads;
use crate::h2_frames::HeaderBlocks;
use crate::metrics::SlowPhase;
use crate::server::MAX_HEAD_BYTES;
use crate::settings::Limits;
use crate::state::AppState;
use crate::tls::Tls;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// The most requests one HTTP/2 connection may have in flight (its
/// `SETTINGS_MAX_CONCURRENT_STREAMS`); a client's further calls wait for a free stream.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// How often an HTTP/2 connection is pinged, so a peer that vanished without closing is found,
/// and how long its answer may take.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The length of HTTP/2's client connection preface (`PRI * HTTP/2.0...`, RFC 9113, 3.4).
const H2_PREFACE_BYTES: u64 = 24;

/// What a port serves.
#[derive(Clone)]
pub(crate) enum Protocol {
    /// The HTTP/JSON API over HTTP/1.1 with keep-alive.
    Http1(axum::Router),
    /// The gRPC services over HTTP/2 (prior knowledge in plain TCP, ALPN `h2` with TLS).
    Grpc(crate::grpc::Services),
}

impl Protocol {
    /// How many bytes from the client open a connection of this protocol, so that it may then
    /// wait idle for its first request: HTTP/2's preface; HTTP/1 has no opening but the
    /// first request's head.
    fn opening_bytes(&self) -> u64 {
        match self {
            Protocol::Http1(_) => u64::MAX,
            Protocol::Grpc(_) => H2_PREFACE_BYTES,
        }
    }

    fn alpn(&self) -> crate::tls::Listener {
        match self {
            Protocol::Http1(_) => crate::tls::Listener::Http,
            Protocol::Grpc(_) => crate::tls::Listener::Grpc,
        }
    }
}

/// How a connection's reader tells when a head begins and ends.
enum Heads {
    /// HTTP/1.1: what arrives while no request is in flight begins the next request's head,
    /// which ends when hyper hands the request over.
    Http1,
    /// HTTP/2: the frames say.
    Http2(HeaderBlocks),
}

/// Returns once `rx` holds `true` (or its sender is gone).
pub(crate) async fn until_true(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// What the connections of every port are served with.
#[derive(Clone)]
pub(crate) struct Serving {
    /// The threads the connections run on.
    pub threads: Arc<ConnThreads>,
    pub state: Arc<AppState>,
    /// TLS on both ports, or on neither.
    pub tls: Option<Arc<Tls>>,
    pub limits: Limits,
    /// Turns true when the ports stop accepting and the connections finish and close.
    pub close: watch::Receiver<bool>,
}

/// Accepts connections on `listener` and serves each as `protocol` on its own task on one of
/// the connection threads, each holding one of `permits` (the port's bound) while it is open,
/// until `serving.close` turns true; the connections then finish their requests and close.
pub(crate) async fn serve(
    listener: TcpListener,
    protocol: Protocol,
    permits: Arc<Semaphore>,
    serving: Serving,
) {
    let closed = until_true(serving.close.clone());
    tokio::pin!(closed);
    loop {
        let stream = tokio::select! {
            () = &mut closed => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                // Out of file descriptors and the like: pause instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            serving
                .state
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let protocol = protocol.clone();
        let Serving {
            threads,
            state,
            tls,
            limits,
            close,
        } = serving.clone();
        // The socket leaves this runtime's reactor for the connection thread's.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand an accepted connection over");
                continue;
            }
        };
        threads.spawn(async move {
            let open = Open::new(Arc::clone(&state), permit);
            // Registered here, when first polled: on the connection thread's reactor.
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register an accepted connection");
                    return;
                }
            };
            // Without TCP_NODELAY a small answer waits for the client's delayed ACK (about
            // 40 ms on Linux).
            let _ = stream.set_nodelay(true);
            // From here the connection's place is given back before its socket closes.
            let stream = Admitted::new(stream, open);
            match tls {
                None => serve_connection(stream, None, protocol, &state, &limits, close).await,
                // The handshake is bounded like a head: a client that stalls in it is cut off.
                Some(tls) => match tokio::time::timeout(
                    limits.header_read_timeout,
                    tls.accept(stream, protocol.alpn()),
                )
                .await
                {
                    Ok(Ok(conn)) => {
                        let roles = conn.roles();
                        serve_connection(conn, Some(roles), protocol, &state, &limits, close).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => {
                        state.metrics.record_slow(SlowPhase::Handshake);
                        tracing::debug!("TLS handshake timed out");
                    }
                },
            }
        });
    }
}

/// An open connection's place: counted in `roma_connections_open`, holding its port's permit
/// until it drops ([`crate::admitted`] says when).
struct Open {
    state: Arc<AppState>,
    _permit: OwnedSemaphorePermit,
}

impl Open {
    fn new(state: Arc<AppState>, permit: OwnedSemaphorePermit) -> Self {
        state
            .metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        Open {
            state,
            _permit: permit,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.state
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection in `protocol`; `peer` holds the roles of a TLS client's certificate.
async fn serve_connection<S>(
    stream: S,
    peer: Option<PeerRoles>,
    protocol: Protocol,
    state: &Arc<AppState>,
    limits: &Limits,
    close: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new(protocol.opening_bytes()));
    let a = Arc::clone(&activity);
    let (st, body_timeout) = (Arc::clone(state), limits.body_timeout);
    // Each request's body is due `limits.body_timeout` after its head.
    let timed = move |req: hyper::Request<Incoming>, api| {
        let st = Arc::clone(&st);
        with_peer(req.map(|b| TimedBody::new(b, body_timeout, api, st)), peer)
    };
    match protocol {
        Protocol::Http1(app) => {
            let io = TokioIo::new(Counted {
                inner: stream,
                activity: Arc::clone(&activity),
                heads: Heads::Http1,
            });
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let busy = a.begin();
                a.set_head_open(false);
                tracked(busy, app.clone().oneshot(timed(req, Api::Http)))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                // Heads are timed by `supervise` (the module's doc says why).
                .header_read_timeout(None::<Duration>)
                .max_buf_size(MAX_HEAD_BYTES)
                .keep_alive(true)
                .serve_connection(io, svc);
            tokio::pin!(conn);
            supervise(conn, |c| c.graceful_shutdown(), &activity, state, close).await;
        }
        Protocol::Grpc(services) => {
            let io = TokioIo::new(Counted {
                inner: Coalesced::new(stream),
                activity: Arc::clone(&activity),
                heads: Heads::Http2(HeaderBlocks::new()),
            });
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let busy = a.begin();
                tracked(busy, services.clone().call(timed(req, Api::Grpc)))
            });
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
                .max_header_list_size(MAX_HEAD_BYTES as u32)
                .keep_alive_interval(H2_PING_INTERVAL)
                .keep_alive_timeout(H2_PING_TIMEOUT)
                .serve_connection(io, svc);
            tokio::pin!(conn);
            supervise(conn, |c| c.graceful_shutdown(), &activity, state, close).await;
        }
    }
}

fn with_peer<B>(mut req: hyper::Request<B>, peer: Option<PeerRoles>) -> hyper::Request<B> {
    if let Some(p) = peer {
        req.extensions_mut().insert(p);
    }
    req
}

/// Runs one request's future, counted busy until it ends or is dropped (an HTTP/2 stream the
/// client reset).
async fn tracked<F: Future>(busy: Busy, fut: F) -> F::Output {
    let out = fut.await;
    drop(busy);
    out
}

/// Drives `conn` until it ends, closing it (`shutdown`) when the rules of the module say so.
async fn supervise<C: Future>(
    mut conn: Pin<&mut C>,
    shutdown: impl Fn(Pin<&mut C>),
    activity: &Activity,
    state: &AppState,
    mut close: watch::Receiver<bool>,
) {
    let limits = &state.limits;
    let mut closing: Option<Instant> = None;
    if *close.borrow_and_update() {
        shutdown(conn.as_mut());
        closing = Some(Instant::now());
    }
    // Each look says when the next is due, so a connection is never watched in a busy loop.
    let mut next_look = Instant::now();
    loop {
        let give_up_at = closing.map(|c| c + limits.header_read_timeout);
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(next_look), if closing.is_none() => {
                match verdict(&activity.seen(), limits, Instant::now()) {
                    Verdict::Wait(at) => next_look = at,
                    Verdict::Cut => {
                        state.metrics.record_slow(SlowPhase::Head);
                        tracing::debug!("a head did not arrive within limits.header_read_timeout: cut off");
                        return;
                    }
                    Verdict::Close => {
                        shutdown(conn.as_mut());
                        closing = Some(Instant::now());
                    }
                }
            }
            r = close.changed(), if closing.is_none() => {
                if r.is_err() || *close.borrow() {
                    shutdown(conn.as_mut());
                    closing = Some(Instant::now());
                }
            }
            // A peer that does not read its last answer cannot hold the connection forever.
            () = tokio::time::sleep_until(give_up_at.unwrap_or_else(Instant::now)), if give_up_at.is_some() => return,
        }
    }
}

/// A connection's stream, counting what it reads into its [`Activity`] until the opening is
/// in, and telling it when a head begins (and, over HTTP/2, ends).
struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
    heads: Heads,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let got = buf.filled().get(before..).unwrap_or_default();
        if got.is_empty() {
            return r;
        }
        let a = &this.activity;
        if a.received.load(Ordering::Relaxed) < a.opening {
            a.received.fetch_add(got.len() as u64, Ordering::Relaxed);
        }
        match &mut this.heads {
            Heads::Http1 => {
                if a.active.load(Ordering::SeqCst) == 0 && !a.head_open() {
                    a.set_head_open(true);
                }
            }
            Heads::Http2(blocks) => {
                let was_open = blocks.open();
                blocks.scan(got);
                // A block that opens and closes within one read (the usual case) costs
                // nothing.
                if was_open != blocks.open() {
                    a.set_head_open(blocks.open());
                }
            }
        }
        r
    }
}

crate::io_forward::forward_async_write!(impl [S: AsyncWrite + Unpin] for Counted<S>);

/// What a connection has done: bytes received, requests begun and in flight, when the last
/// one ended, and since when a header block has been open.
struct Activity {
    opened: Instant,
    /// [`Protocol::opening_bytes`].
    opening: u64,
    received: AtomicU64,
    begun: AtomicU64,
    active: AtomicUsize,
    last: std::sync::Mutex<Instant>,
    /// Since when a header block has been open, in nanoseconds after `opened`, plus one; 0
    /// when none is.
    head_open_since: AtomicU64,
}

/// One look at an [`Activity`].
#[derive(Clone, Copy, Debug)]
struct Seen {
    opened: Instant,
    opening: u64,
    received: u64,
    begun: u64,
    active: usize,
    /// When the last request ended (when the connection opened, before any did).
    last: Instant,
    /// Since when a header block has been open, if one is.
    head_open_since: Option<Instant>,
}

impl Activity {
    fn new(opening: u64) -> Self {
        let now = Instant::now();
        Activity {
            opened: now,
            opening,
            received: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            last: std::sync::Mutex::new(now),
            head_open_since: AtomicU64::new(0),
        }
    }

    fn set_head_open(&self, open: bool) {
        let since = if open {
            let nanos = Instant::now().duration_since(self.opened).as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
        } else {
            0
        };
        self.head_open_since.store(since, Ordering::Relaxed);
    }

    fn head_open(&self) -> bool {
        self.head_open_since.load(Ordering::Relaxed) != 0
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.begun.fetch_add(1, Ordering::SeqCst);
        self.active.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(self))
    }

    fn seen(&self) -> Seen {
        Seen {
            opened: self.opened,
            opening: self.opening,
            received: self.received.load(Ordering::Relaxed),
            begun: self.begun.load(Ordering::SeqCst),
            active: self.active.load(Ordering::SeqCst),
            last: *self.last.lock().unwrap_or_else(|p| p.into_inner()),
            head_open_since: match self.head_open_since.load(Ordering::Relaxed) {
                0 => None,
                n => Some(self.opened + Duration::from_nanos(n - 1)),
            },
        }
    }
}

/// A request in flight on a connection; dropping it ends the request.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        // The end time first: whoever sees no request in flight sees when the last ended.
        *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What to do with a connection at a look.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing now; look again then.
    Wait(Instant),
    /// The client did not open the connection, or finish a header block, in time: drop it
    /// (there is nothing to answer).
    Cut,
    /// Idle too long: close it gracefully.
    Close,
}

fn verdict(seen: &Seen, limits: &Limits, now: Instant) -> Verdict {
    let head = limits.header_read_timeout;
    let cut_at = |due: Instant| {
        if now >= due {
            Verdict::Cut
        } else {
            Verdict::Wait(due)
        }
    };
    if seen.begun == 0 && seen.received < seen.opening {
        return cut_at(seen.opened + head.min(limits.idle_timeout));
    }
    // An open header block holds up the whole connection, busy or not.
    if let Some(since) = seen.head_open_since {
        return cut_at(since + head);
    }
    // Otherwise the next look comes within a head timeout, so a header block that opens
    // before it is timed from its start without the reader having to wake the supervisor.
    if seen.active > 0 {
        return Verdict::Wait(now + limits.idle_timeout.min(head));
    }
    let idle_at = seen.last + limits.idle_timeout;
    if now >= idle_at {
        Verdict::Close
    } else {
        Verdict::Wait(idle_at.min(now + head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(head_ms: u64, idle_ms: u64) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(head_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            ..Limits::default()
        }
    }

    #[test]
    fn a_connection_is_cut_closed_or_kept_by_the_rules() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let l = limits(100, 1000);
        let fresh = Seen {
            opened: t0,
            opening: u64::MAX,
            received: 0,
            begun: 0,
            active: 0,
            last: t0,
            head_open_since: None,
        };
        // No request yet: due within the head timeout, cut off after it.
        assert_eq!(verdict(&fresh, &l, t0), Verdict::Wait(t0 + ms(100)));
        assert_eq!(verdict(&fresh, &l, t0 + ms(100)), Verdict::Cut);
        // The idle timeout bounds it too when it is the shorter.
        assert_eq!(verdict(&fresh, &limits(100, 50), t0 + ms(60)), Verdict::Cut);
        // A protocol with an opening (HTTP/2's preface): cut off without it, idle with it.
        let h2 = Seen {
            opening: 24,
            received: 23,
            ..fresh
        };
        assert_eq!(verdict(&h2, &l, t0 + ms(100)), Verdict::Cut);
        let opened = Seen { received: 24, ..h2 };
        // Looked at again within a head timeout, closed at the idle timeout.
        assert_eq!(
            verdict(&opened, &l, t0 + ms(100)),
            Verdict::Wait(t0 + ms(200))
        );
        assert_eq!(
            verdict(&opened, &l, t0 + ms(950)),
            Verdict::Wait(t0 + ms(1000))
        );
        assert_eq!(verdict(&opened, &l, t0 + ms(1000)), Verdict::Close);
        // A request in flight keeps it open however long it takes.
        let busy = Seen {
            begun: 1,
            active: 1,
            ..fresh
        };
        assert_eq!(
            verdict(&busy, &l, t0 + ms(5000)),
            Verdict::Wait(t0 + ms(5100))
        );
        // Idle since its last answer: kept until the idle timeout, then closed.
        let idle = Seen {
            begun: 3,
            active: 0,
            last: t0 + ms(200),
            ..fresh
        };
        assert_eq!(
            verdict(&idle, &l, t0 + ms(1150)),
            Verdict::Wait(t0 + ms(1200))
        );
        assert_eq!(verdict(&idle, &l, t0 + ms(1200)), Verdict::Close);
        // A header block open too long is cut off, whatever else is in flight.
        let heading = Seen {
            head_open_since: Some(t0 + ms(5000)),
            ..busy
        };
        assert_eq!(
            verdict(&heading, &l, t0 + ms(5050)),
            Verdict::Wait(t0 + ms(5100))
        );
        assert_eq!(verdict(&heading, &l, t0 + ms(5100)), Verdict::Cut);
    }

    #[test]
    fn a_header_block_left_open_across_reads_is_timed() {
        let a = Arc::new(Activity::new(24));
        let before = Instant::now();
        a.set_head_open(true);
        let since = a.seen().head_open_since.expect("open");
        assert!(since >= before && since <= Instant::now(), "{since:?}");
        a.set_head_open(false);
        assert_eq!(a.seen().head_open_since, None);
    }

    #[test]
    fn a_dropped_request_is_no_longer_in_flight() {
        let a = Arc::new(Activity::new(u64::MAX));
        let busy = a.begin();
        let second = a.begin();
        assert_eq!((a.seen().begun, a.seen().active), (2, 2));
        drop(busy);
        drop(second);
        let s = a.seen();
        assert_eq!((s.begun, s.active), (2, 0));
        assert!(s.last >= s.opened);
    }
}
