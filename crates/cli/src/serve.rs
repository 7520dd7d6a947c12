//! `roma serve`: roma as a network service (HTTP/JSON and gRPC), from a config file or flags.
//! The flags exist in every build; serving needs the `serve` feature.

#[cfg(feature = "serve")]
use crate::log_queue::LogQueue;
use anyhow::Result;
#[cfg(feature = "serve")]
use anyhow::{Context, bail};
use clap::Args;
#[cfg(feature = "serve")]
use roma_serve::{RequestMetadata, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
pub struct ServeArgs {
    /// A TOML config file (docs/serve.md lists its keys); the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the HTTP/JSON API listens, e.g. 127.0.0.1:8080.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Where the gRPC API (roma.v1.Roma, health, reflection) listens, e.g. 127.0.0.1:8081.
    #[arg(long)]
    pub grpc: Option<SocketAddr>,
    /// The file holding the bearer token that may load code. Without it (and without
    /// server.load_token_file) only a client certificate named by --load-client may.
    #[arg(long = "load-token-file")]
    pub load_token_file: Option<PathBuf>,
    /// The file holding the bearer token that may execute. Without it (and without
    /// server.execute_token_file) only a client certificate named by --execute-client may.
    #[arg(long = "execute-token-file")]
    pub execute_token_file: Option<PathBuf>,
    /// Worker processes (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// The timeout of an execution that sets none, e.g. 5s.
    #[arg(long = "default-timeout", value_parser = roma::tools::parse_duration)]
    pub default_timeout: Option<std::time::Duration>,
    /// Low-latency mode: idle threads keep polling this long before they sleep, e.g. 5ms
    /// (service.low_latency; default off; costs up to a core per polling thread).
    #[arg(long = "low-latency", value_parser = roma::tools::parse_duration)]
    pub low_latency: Option<std::time::Duration>,
    /// Workers do not prepare their next context while idle (service.prewarm = false).
    #[arg(long = "no-prewarm")]
    pub no_prewarm: bool,
    /// How long requests in flight may take to finish after SIGTERM, e.g. 10s.
    #[arg(long = "drain-grace", value_parser = roma::tools::parse_duration)]
    pub drain_grace: Option<std::time::Duration>,
    /// Keep code in this directory (the `dir` code store): a restarted server comes back
    /// with it.
    #[arg(long = "store-dir", conflicts_with = "etcd")]
    pub store_dir: Option<PathBuf>,
    /// Keep code in etcd, shared by every replica: its client endpoints, comma-separated
    /// (e.g. 127.0.0.1:2379).
    #[arg(long, value_delimiter = ',')]
    pub etcd: Option<Vec<String>>,
    /// TLS on both listeners: the server's certificate chain (PEM). Needs --tls-key.
    #[arg(long = "tls-cert", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long = "tls-key", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Client certificates (mTLS): the CA (PEM) they must chain to. Needs TLS.
    #[arg(long = "client-ca")]
    pub client_ca: Option<PathBuf>,
    /// A host name whose verified client certificate may load code (repeatable).
    #[arg(long = "load-client")]
    pub load_client: Vec<String>,
    /// A host name whose verified client certificate may execute (repeatable).
    #[arg(long = "execute-client")]
    pub execute_client: Vec<String>,
    /// The log lines on stderr: `text`, or `json` (one object per line, the request id a
    /// field of its own).
    #[arg(long = "log-format", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Run the workers without a jail (debugging only).
    #[arg(long = "no-sandbox")]
    pub no_sandbox: bool,
}

#[cfg(not(feature = "serve"))]
pub fn serve(_: ServeArgs) -> Result<ExitCode> {
    Err(crate::without_serve("roma serve"))
}

#[cfg(feature = "serve")]
pub fn serve(a: ServeArgs) -> Result<ExitCode> {
    let mut s = match &a.config {
        Some(path) => Settings::from_file(path)?,
        None => {
            let Some(http) = a.http else {
                bail!("without --config, --http is required");
            };
            for (token, clients, role) in [
                (&a.load_token_file, &a.load_client, "load"),
                (&a.execute_token_file, &a.execute_client, "execute"),
            ] {
                if token.is_none() && clients.is_empty() {
                    bail!(
                        "without --config, --{role}-token-file is required (or --{role}-client \
                         with TLS, for client certificates alone)"
                    );
                }
            }
            Settings::new(
                http,
                a.load_token_file.clone(),
                a.execute_token_file.clone(),
            )
        }
    };
    if let Some(h) = a.http {
        s.http = h;
    }
    if a.grpc.is_some() {
        s.grpc = a.grpc;
    }
    if a.load_token_file.is_some() {
        s.load_token_file = a.load_token_file;
    }
    if a.execute_token_file.is_some() {
        s.execute_token_file = a.execute_token_file;
    }
    if a.workers.is_some() {
        s.service.workers = a.workers;
    }
    if let Some(t) = a.default_timeout {
        s.service.default_timeout = t;
    }
    if let Some(t) = a.low_latency {
        s.service.low_latency = t;
    }
    if a.no_prewarm {
        s.service.prewarm = false;
    }
    if let Some(g) = a.drain_grace {
        s.drain_grace = g;
    }
    if let (Some(cert), Some(key)) = (a.tls_cert, a.tls_key) {
        let old = s.tls.take();
        s.tls = Some(roma_serve::TlsSettings {
            cert_file: cert,
            key_file: key,
            ..old.unwrap_or_else(|| roma_serve::TlsSettings::new(PathBuf::new(), PathBuf::new()))
        });
    }
    if a.client_ca.is_some() || !a.load_client.is_empty() || !a.execute_client.is_empty() {
        let Some(tls) = s.tls.as_mut() else {
            bail!(
                "--client-ca, --load-client and --execute-client need TLS (--tls-cert and --tls-key, or [tls])"
            );
        };
        if a.client_ca.is_some() {
            tls.client_ca_file = a.client_ca;
        }
        if !a.load_client.is_empty() {
            tls.load_clients = a.load_client;
        }
        if !a.execute_client.is_empty() {
            tls.execute_clients = a.execute_client;
        }
    }
    if a.no_sandbox {
        s.service.sandbox = roma::SandboxKind::None;
    }
    if let Some(d) = a.store_dir {
        s.store.kind = roma_serve::StoreKind::Dir(d);
    }
    if let Some(e) = a.etcd {
        let prefix = match &s.store.kind {
            roma_serve::StoreKind::Etcd(old) => old.prefix.clone(),
            _ => "/roma/".into(),
        };
        let mut e = roma_serve::EtcdSettings::new(e);
        e.prefix = prefix;
        s.store.kind = roma_serve::StoreKind::Etcd(e);
    }
    s.validate()?;
    let lines = LogQueue::start(std::io::stderr()).context("cannot start the log thread")?;
    let logs = tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .with_target(false);
    if a.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let mut config = roma::Config::<RequestMetadata>::new();
    // Console output of the code: a log line of its own, in the log's format, with the request
    // it came from; the code is untrusted, so the message is cut and its control characters
    // escaped (a line break in it cannot forge a log line).
    config.set_logging_function(|level, meta: &RequestMetadata, msg| {
        let line = crate::console::console_line(msg);
        let rid = &meta.request_id;
        match level {
            roma::LogLevel::Error => tracing::error!(request_id = %rid, console = %line, "console"),
            roma::LogLevel::Warning => {
                tracing::warn!(request_id = %rid, console = %line, "console")
            }
            // console.debug reaches the log only when a request asks for it (min_log_level).
            roma::LogLevel::Info | roma::LogLevel::Debug => {
                tracing::info!(request_id = %rid, console = %line, "console")
            }
        }
    });
    // What workers write to their stderr (already cut, escaped and rate-limited): the same log.
    config.set_worker_output_function(|worker, line| {
        tracing::warn!(worker, line, "worker stderr");
    });
    let tls = s.tls.is_some();
    let served = roma_serve::serve_until_signalled(s, config, |http, grpc| {
        // The lines a script waits for; the real ports when the settings asked for 0.
        let (h, g) = if tls {
            ("https", "grpcs")
        } else {
            ("http", "grpc")
        };
        println!("listening on {h}://{http}");
        if let Some(grpc) = grpc {
            println!("listening on {g}://{grpc}");
        }
    })
    .context("roma serve");
    lines.flush();
    served?;
    Ok(ExitCode::SUCCESS)
}
