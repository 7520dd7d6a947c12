//! Starts the service and both listeners, and drains: the order a start and a shutdown
//! take. Each port's connections are served by [`crate::listener`].

use crate::api::RequestMetadata;
use crate::auth::Tokens;
use crate::conn_threads::ConnThreads;
use crate::error::ServeError;
use crate::http::router;
use crate::listener::{Protocol, until_true};
use crate::settings::Settings;
use crate::state::AppState;
use crate::tls::Tls;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

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
    let tokens = Tokens::load(
        settings.load_token_file.as_deref(),
        settings.execute_token_file.as_deref(),
    )?;
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
    config
        .default_timeout(s.default_timeout)
        .sandbox(s.sandbox)
        .low_latency(s.low_latency)
        .prewarm(s.prewarm);
    // Every stored version fits in the service's cache, so no replica drops one the store
    // still holds; the margin holds versions compiled by loads whose write then failed (the
    // store went away between the check and the write), which are never served.
    config.code_version_cache_size(settings.store.limits.max_versions + CACHE_MARGIN);
    let store = crate::replica::open_store(&settings.store).await?;
    crate::forward::register(
        &settings.bindings,
        &mut config,
        &tokio::runtime::Handle::current(),
    )?;
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
    // Both ports' connections share them; the end of a drain (of `run`) stops them.
    let threads = ConnThreads::start(settings.threads.unwrap_or_else(roma::tools::cores))
        .map(Arc::new)
        .map_err(|source| ServeError::Io {
            what: "cannot start the connection threads".into(),
            source,
        })?;
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
        threads,
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

/// Serves both ports until a drain is asked for, drains, closes every connection and stops
/// the workers.
async fn run(
    listener: TcpListener,
    grpc_listener: Option<TcpListener>,
    threads: Arc<ConnThreads>,
    state: Arc<AppState>,
    tls: Option<Arc<Tls>>,
    settings: Settings,
    drain_rx: watch::Receiver<bool>,
) {
    let max = settings.limits.max_connections;
    // Tells each port to stop accepting and each connection to finish its requests and close.
    let (close_tx, close_rx) = watch::channel(false);
    let mut ports = vec![(Protocol::Http1(router(Arc::clone(&state))), listener)];
    if let Some(l) = grpc_listener
        && let Some(services) = crate::grpc::services(Arc::clone(&state), drain_rx.clone()).await
    {
        ports.push((Protocol::Grpc(services), l));
    }
    let serving = crate::listener::Serving {
        threads,
        state: Arc::clone(&state),
        tls,
        limits: settings.limits.clone(),
        close: close_rx,
    };
    let mut accepting = Vec::new();
    let mut permits = Vec::new();
    for (protocol, l) in ports {
        // Each port has its own bound, so a flood on one does not lock the other out.
        let p = Arc::new(Semaphore::new(max));
        accepting.push(tokio::spawn(crate::listener::serve(
            l,
            protocol,
            Arc::clone(&p),
            serving.clone(),
        )));
        permits.push(p);
    }
    until_true(drain_rx).await;
    drain(&state, settings.drain_grace).await;
    let _ = close_tx.send(true);
    for a in accepting {
        let _ = a.await;
    }
    state.replica.stop();
    // Let connections write their last answers, then stop the workers.
    let until = Instant::now() + CLOSE_PATIENCE;
    while permits.iter().any(|p| p.available_permits() < max) && Instant::now() < until {
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
