//! Starts the service and the listener, serves each connection within the limits, and drains:
//! the accept loop, the per-connection timeouts, and the order a shutdown takes.

use crate::api::RequestMetadata;
use crate::auth::{PeerRoles, Tokens};
use crate::error::ServeError;
use crate::http::router;
use crate::settings::Settings;
use crate::state::AppState;
use crate::tls::{Listener, Tls};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::ServiceExt;

/// The largest request head (request line and headers) a client may send, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Versions the service's cache holds beyond `store.max_versions`.
const CACHE_MARGIN: usize = 16;

/// How long connections get to finish writing their last answers at the end of a drain.
const CLOSE_PATIENCE: Duration = Duration::from_secs(2);

/// A server that is running. Dropping it does not stop it: call [`drain`](Self::drain) and
/// await [`finished`](Self::finished).
#[derive(Debug)]
pub struct RunningServer {
    http: SocketAddr,
    grpc: Option<SocketAddr>,
    state: Arc<AppState>,
    tls: Option<Arc<Tls>>,
    drain: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Where the HTTP/JSON API listens (the real port when the settings asked for port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// Where the gRPC API listens, if it does.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
    }

    /// Starts a graceful drain: readiness goes false, new requests get 503, requests in
    /// flight finish (for up to `server.drain_grace`, then they are cancelled and answered),
    /// then the workers stop.
    pub fn drain(&self) {
        let _ = self.drain.send(true);
    }

    /// Reads the token files again; on an error the old tokens stay in force.
    pub fn reload_tokens(&self) -> Result<(), ServeError> {
        self.state.tokens.reload()
    }

    /// Reads the TLS certificate, key and client CA files again (when TLS is on); on an error
    /// the old ones stay in force. Connections already open keep theirs.
    pub fn reload_tls(&self) -> Result<(), ServeError> {
        match &self.tls {
            Some(t) => t.reload(),
            None => Ok(()),
        }
    }

    /// Whether the listeners speak TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Returns once a drain has finished.
    pub async fn finished(self) {
        let _ = self.task.await;
    }
}

/// Starts roma with `config` (whose host functions see each request's [`RequestMetadata`])
/// and serves it on `settings.http`. Returns once the workers are up and the port is bound.
pub async fn start(
    settings: Settings,
    mut config: roma::Config<RequestMetadata>,
) -> Result<RunningServer, ServeError> {
    settings.validate()?;
    let tokens = Tokens::load(&settings.load_token_file, &settings.execute_token_file)?;
    let tls = settings
        .tls
        .as_ref()
        .map(Tls::load)
        .transpose()?
        .map(Arc::new);
    let s = &settings.service;
    if let Some(n) = s.workers {
        config.number_of_workers(n);
    }
    if let Some(mb) = s.heap_mb {
        config.configure_js_engine_resource_constraints(0, mb);
    }
    if let Some(n) = s.queue_max_items {
        config.worker_queue_max_items(n);
    }
    config.default_timeout(s.default_timeout).sandbox(s.sandbox);
    // Every stored version fits in the service's cache, so no replica drops one the store
    // still holds; the margin holds versions compiled by loads whose write then failed (the
    // store went away between the check and the write), which are never served.
    config.code_version_cache_size(settings.store.limits.max_versions + CACHE_MARGIN);
    let store = crate::replica::open_store(&settings.store).await?;
    crate::forward::register(
        &settings.bindings,
        &mut config,
        &tokio::runtime::Handle::current(),
    );
    let listener = TcpListener::bind(settings.http)
        .await
        .map_err(|source| ServeError::Io {
            what: format!("cannot listen on {}", settings.http),
            source,
        })?;
    let http = listener.local_addr().map_err(|source| ServeError::Io {
        what: "cannot read the listener's address".into(),
        source,
    })?;
    let grpc_listener = match settings.grpc {
        None => None,
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Io {
                    what: format!("cannot listen on {addr}"),
                    source,
                })?,
        ),
    };
    let grpc = match &grpc_listener {
        None => None,
        Some(l) => Some(l.local_addr().map_err(|source| ServeError::Io {
            what: "cannot read the gRPC listener's address".into(),
            source,
        })?),
    };
    let service = tokio::task::spawn_blocking(move || roma::RomaService::new(config))
        .await
        .map_err(|e| roma::RomaError::internal(format!("the start-up thread failed: {e}")))??;
    let replica = Arc::new(crate::replica::Replica::new(store));
    let state = Arc::new(AppState::new(
        service,
        tokens,
        settings.limits.clone(),
        s.default_timeout,
        Arc::clone(&replica),
    ));
    {
        let st = Arc::clone(&state);
        tokio::spawn(replica.run(Arc::clone(&state.service), move |v| {
            st.metrics.record_load(v, "ok");
        }));
    }
    let (drain, drain_rx) = watch::channel(false);
    let task = tokio::spawn(run(
        listener,
        grpc_listener,
        Arc::clone(&state),
        tls.clone(),
        settings,
        drain_rx,
    ));
    tracing::info!(%http, ?grpc, tls = tls.is_some(), "roma serve: listening");
    Ok(RunningServer {
        http,
        grpc,
        state,
        tls,
        drain,
        task,
    })
}

/// Accepts connections until the drain has finished.
async fn run(
    listener: TcpListener,
    grpc_listener: Option<TcpListener>,
    state: Arc<AppState>,
    tls: Option<Arc<Tls>>,
    settings: Settings,
    mut drain_rx: watch::Receiver<bool>,
) {
    let app = router(Arc::clone(&state));
    let permits = Arc::new(Semaphore::new(settings.limits.max_connections));
    // Tells every connection to finish its current request and close.
    let (close_tx, close_rx) = watch::channel(false);
    let grpc_task = grpc_listener.map(|l| {
        tokio::spawn(crate::grpc::serve(
            l,
            Arc::clone(&state),
            tls.clone(),
            settings.limits.header_read_timeout,
            drain_rx.clone(),
            close_rx.clone(),
        ))
    });
    let drained = {
        let state = Arc::clone(&state);
        let grace = settings.drain_grace;
        let close_tx = close_tx.clone();
        async move {
            while !*drain_rx.borrow_and_update() {
                if drain_rx.changed().await.is_err() {
                    break;
                }
            }
            drain(&state, grace).await;
            let _ = close_tx.send(true);
        }
    };
    tokio::pin!(drained);
    loop {
        tokio::select! {
            () = &mut drained => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        state.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                        continue;
                    };
                    let app = app.clone();
                    let state = Arc::clone(&state);
                    let limits = settings.limits.clone();
                    let close_rx = close_rx.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        state.metrics.connections_open.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_nodelay(true);
                        match tls {
                            None => serve_connection(stream, None, app, &limits, close_rx).await,
                            // The handshake counts as part of the head: a client that stalls
                            // in it is cut off like a slow header.
                            Some(tls) => match tokio::time::timeout(
                                limits.header_read_timeout,
                                tls.accept(stream, Listener::Http),
                            )
                            .await
                            {
                                Ok(Ok(conn)) => {
                                    let roles = conn.roles();
                                    serve_connection(conn, Some(roles), app, &limits, close_rx)
                                        .await;
                                }
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            },
                        }
                        state.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
                // Out of file descriptors and the like: pause instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    drop(listener);
    state.replica.stop();
    if let Some(t) = grpc_task {
        let _ = tokio::time::timeout(CLOSE_PATIENCE, t).await;
    }
    // Let connections write their last answers, then stop the workers.
    let until = Instant::now() + CLOSE_PATIENCE;
    while permits.available_permits() < settings.limits.max_connections && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let service = Arc::clone(&state.service);
    let _ = tokio::task::spawn_blocking(move || service.stop()).await;
    tracing::info!("roma serve: drained and stopped");
}

/// Refuses new requests, waits for those in flight up to `grace`, then stops the service so
/// the rest are answered (`cancelled` → 503) and waits for those answers.
async fn drain(state: &AppState, grace: Duration) {
    state.start_draining();
    tracing::info!(grace = ?grace, "roma serve: draining");
    if state.wait_idle(grace).await {
        return;
    }
    tracing::warn!("roma serve: requests still running after the grace period; cancelling them");
    let service = Arc::clone(&state.service);
    let _ = tokio::task::spawn_blocking(move || service.stop()).await;
    // Every accepted request gets its callback once the service stops: the answers follow.
    let _ = state.wait_idle(CLOSE_PATIENCE).await;
}

/// Requests being served on one connection, and when the last one ended.
struct Activity {
    active: AtomicUsize,
    last: std::sync::Mutex<Instant>,
}

impl Activity {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves one connection: HTTP/1.1 with keep-alive, the head read within
/// `limits.header_read_timeout`, closed once idle for `limits.idle_timeout` or when a drain
/// ends. `peer` holds the roles of a TLS client's certificate.
async fn serve_connection<S>(
    stream: S,
    peer: Option<PeerRoles>,
    app: axum::Router,
    limits: &crate::settings::Limits,
    mut close_rx: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        active: AtomicUsize::new(0),
        last: std::sync::Mutex::new(Instant::now()),
    });
    let svc = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            if let Some(p) = peer {
                req.extensions_mut().insert(p);
            }
            let app = app.clone();
            let activity = Arc::clone(&activity);
            async move {
                activity.active.fetch_add(1, Ordering::SeqCst);
                let r = app.oneshot(req).await;
                activity.touch();
                activity.active.fetch_sub(1, Ordering::SeqCst);
                r
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut closing: Option<Instant> = None;
    // When to look at the connection's idleness next: while a request runs it is not idle,
    // so the next look is a whole idle period later (never a busy loop).
    let mut next_look = activity.last() + limits.idle_timeout;
    loop {
        let give_up_at = closing.map(|c| c + limits.header_read_timeout);
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(next_look), if closing.is_none() => {
                let idle_at = activity.last() + limits.idle_timeout;
                if activity.active.load(Ordering::SeqCst) > 0 {
                    next_look = Instant::now() + limits.idle_timeout;
                } else if idle_at > Instant::now() {
                    next_look = idle_at;
                } else {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
            r = close_rx.changed(), if closing.is_none() => {
                if r.is_err() || *close_rx.borrow() {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
            // A peer that does not read its last answer cannot hold the connection forever.
            () = tokio::time::sleep_until(give_up_at.unwrap_or_else(Instant::now)), if give_up_at.is_some() => return,
        }
    }
}
