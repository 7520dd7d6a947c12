//! The process side of `roma serve`: a tokio runtime, and the signals an operator sends
//! (`SIGTERM`/`SIGINT` drain, `SIGHUP` re-reads the token and TLS files).

use crate::api::RequestMetadata;
use crate::error::ServeError;
use crate::settings::Settings;
use tokio::signal::unix::{SignalKind, signal};

/// Runs a server until `SIGTERM` or `SIGINT` has drained it; `SIGHUP` re-reads the tokens
/// and the TLS files.
/// Blocks the calling thread.
pub fn serve_until_signalled(
    settings: Settings,
    config: roma::Config<RequestMetadata>,
    on_listening: impl FnOnce(std::net::SocketAddr, Option<std::net::SocketAddr>),
) -> Result<(), ServeError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |source| ServeError::Io { what, source }
    };
    // The accept loops, the store and the forwarded host-function calls; the connections
    // have threads of their own (`server.threads`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("roma-serve")
        .build()
        .map_err(io("cannot start the tokio runtime"))?;
    runtime.block_on(async move {
        let mut term = signal(SignalKind::terminate()).map_err(io("cannot catch SIGTERM"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(io("cannot catch SIGINT"))?;
        let mut hup = signal(SignalKind::hangup()).map_err(io("cannot catch SIGHUP"))?;
        let server = crate::server::start(settings, config).await?;
        on_listening(server.http_addr(), server.grpc_addr());
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    match server.reload_tokens() {
                        Ok(()) => tracing::info!("tokens re-read"),
                        Err(e) => tracing::error!(error = %e, "tokens not re-read; the old ones stay"),
                    }
                    match server.reload_tls() {
                        Ok(()) => {
                            if server.tls() {
                                tracing::info!("TLS files re-read");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "TLS files not re-read; the old ones stay"),
                    }
                }
            }
        }
        server.drain();
        server.finished().await;
        Ok(())
    })
}
