//! `roma bench --target http://...` or `grpc://...`: the same closed loop and report as the
//! in-process bench, against a running `roma serve`, so the network API's cost is measured
//! the way a client pays it (one connection per request in flight, kept alive). The clients
//! need the `serve` feature; the flags parse in every build.

use crate::bench::Limit;
use anyhow::{Context, Result};
use roma::CodeObject;
use std::net::SocketAddr;
use std::time::Duration;

/// Where the bench sends its requests.
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
#[derive(Clone, Debug)]
pub enum Target {
    /// HTTP/JSON: `POST /v1/execute`.
    Http(SocketAddr),
    /// gRPC: `roma.v1.Roma/Execute`.
    Grpc(SocketAddr),
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?}: expected http://HOST:PORT or grpc://HOST:PORT"))?;
        let addr = rest
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("{rest:?}: {e} (an IP address and port)"))?;
        match scheme {
            "http" => Ok(Target::Http(addr)),
            "grpc" => Ok(Target::Grpc(addr)),
            other => Err(format!("{other}://: only http:// and grpc:// targets")),
        }
    }
}

/// The tokens of the server, as `roma serve` reads them.
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
pub struct Tokens {
    pub load: String,
    pub execute: String,
}

fn read_token(p: &std::path::Path) -> Result<String> {
    Ok(std::fs::read_to_string(p)
        .with_context(|| format!("cannot read the token file {}", p.display()))?
        .trim()
        .to_string())
}

impl Tokens {
    pub fn read(load: &std::path::Path, execute: &std::path::Path) -> Result<Tokens> {
        Ok(Tokens {
            load: read_token(load)?,
            execute: read_token(execute)?,
        })
    }
}

/// What `roma bench --target` was asked.
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
pub struct Args {
    pub target: Target,
    pub tokens: Tokens,
    pub code: CodeObject,
    pub handler: String,
    pub inputs: Vec<String>,
    pub concurrency: usize,
    pub warmup: usize,
    pub limit: Limit,
    pub interval: Option<Duration>,
    /// The health check instead of an execution.
    pub health: bool,
}

#[cfg(feature = "serve")]
pub use client::run;

/// Without the `serve` feature there is no client to measure a server with.
#[cfg(not(feature = "serve"))]
pub fn run(_: Args) -> Result<crate::bench::Report> {
    Err(crate::without_serve("roma bench --target"))
}

/// The HTTP/JSON and gRPC clients and the closed loop over them.
#[cfg(feature = "serve")]
mod client {
    use super::{Args, Target, Tokens};
    use crate::bench::{Limit, Report, Sample};
    use anyhow::{Context, Result, bail};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use roma::{CodeObject, ErrorKind, RomaError};
    use roma_serve::pb::roma_client::RomaClient;
    use roma_serve::pb::{ExecuteRequest, LoadCodeObjRequest};
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    use tonic_health::ServingStatus;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    /// One request in flight's connection.
    enum Conn {
        Http(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
        Grpc(Box<GrpcConn>),
    }

    /// A gRPC connection's two clients, over one channel.
    struct GrpcConn {
        roma: RomaClient<tonic::transport::Channel>,
        health: HealthClient<tonic::transport::Channel>,
    }

    struct Plan {
        target: Target,
        tokens: Tokens,
        version: String,
        handler: String,
        inputs: Vec<String>,
        health: bool,
    }

    impl Plan {
        async fn connect(&self) -> Result<Conn> {
            Ok(match self.target {
                Target::Http(addr) => {
                    let tcp = tokio::net::TcpStream::connect(addr)
                        .await
                        .with_context(|| format!("cannot connect to {addr}"))?;
                    tcp.set_nodelay(true)?;
                    let (send, conn) =
                        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                            .await?;
                    tokio::spawn(conn);
                    Conn::Http(send)
                }
                Target::Grpc(addr) => {
                    let channel =
                        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                            .tcp_nodelay(true)
                            .connect()
                            .await
                            .with_context(|| format!("cannot connect to {addr}"))?;
                    Conn::Grpc(Box::new(GrpcConn {
                        roma: RomaClient::new(channel.clone()),
                        health: HealthClient::new(channel),
                    }))
                }
            })
        }

        async fn load(&self, code: &CodeObject) -> Result<()> {
            match self.target {
                Target::Http(addr) => {
                    use base64::Engine;
                    let b64 = |b: &[u8]| {
                        (!b.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(b))
                    };
                    let body = serde_json::json!({
                        "version_string": code.version_string,
                        "js": (!code.js.is_empty()).then_some(&code.js),
                        "wasm": b64(&code.wasm),
                        "wasm_bin": b64(&code.wasm_bin),
                        "tags": code.tags,
                    });
                    let mut send = match self.connect().await? {
                        Conn::Http(s) => s,
                        Conn::Grpc(..) => unreachable!("an HTTP target connects over HTTP"),
                    };
                    let (status, text) = http_post(
                        &mut send,
                        addr,
                        "/v1/code",
                        &self.tokens.load,
                        body.to_string(),
                    )
                    .await?;
                    if status != 200 {
                        bail!("loading the code: {status} {text}");
                    }
                }
                Target::Grpc(_) => {
                    let mut c = match self.connect().await? {
                        Conn::Grpc(c) => c.roma,
                        Conn::Http(_) => unreachable!("a gRPC target connects over gRPC"),
                    };
                    let mut r = tonic::Request::new(LoadCodeObjRequest {
                        id: code.id.clone(),
                        version_string: code.version_string.clone(),
                        js: code.js.clone(),
                        wasm: code.wasm.clone(),
                        wasm_bin: code.wasm_bin.clone(),
                        tags: code.tags.clone().into_iter().collect(),
                    });
                    r.metadata_mut()
                        .insert("authorization", bearer(&self.tokens.load)?);
                    c.load_code_obj(r)
                        .await
                        .map_err(|s| anyhow::anyhow!("loading the code: {s}"))?;
                }
            }
            Ok(())
        }

        /// One execution (or health check) on `conn`: its sample.
        async fn execute(&self, conn: &mut Conn) -> Result<Sample> {
            let t0 = Instant::now();
            let outcome = match (conn, &self.target) {
                (Conn::Http(send), Target::Http(addr)) if self.health => {
                    let (status, text) = http_get(send, *addr, "/healthz").await?;
                    if status == 200 {
                        Ok(BTreeMap::new())
                    } else {
                        Err(RomaError::internal(format!("health: {status} {text}")))
                    }
                }
                (Conn::Grpc(c), _) if self.health => {
                    match c.health.check(HealthCheckRequest::default()).await {
                        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
                            Ok(BTreeMap::new())
                        }
                        Ok(r) => Err(RomaError::internal(format!(
                            "health: status {}",
                            r.get_ref().status
                        ))),
                        Err(s) => Err(grpc_error(&s)),
                    }
                }
                (Conn::Http(send), Target::Http(addr)) => {
                    let body = serde_json::json!({
                        "id": "bench", "version_string": self.version,
                        "handler_name": self.handler, "input": self.inputs,
                    });
                    let (status, text) = http_post(
                        send,
                        *addr,
                        "/v1/execute",
                        &self.tokens.execute,
                        body.to_string(),
                    )
                    .await?;
                    parse_http_answer(status, &text)
                }
                (Conn::Grpc(c), _) => {
                    let mut r = tonic::Request::new(ExecuteRequest {
                        id: "bench".into(),
                        version_string: self.version.clone(),
                        handler_name: self.handler.clone(),
                        input: self.inputs.clone(),
                        ..Default::default()
                    });
                    r.metadata_mut()
                        .insert("authorization", bearer(&self.tokens.execute)?);
                    match c.roma.execute(r).await {
                        Ok(resp) => Ok(resp.into_inner().metrics.into_iter().collect()),
                        Err(s) => Err(grpc_error(&s)),
                    }
                }
                _ => unreachable!("a connection matches its target"),
            };
            let latency = t0.elapsed();
            Ok(match outcome {
                Ok(metrics) => Sample {
                    latency,
                    ok: true,
                    metrics,
                    error: None,
                },
                Err(e) => Sample {
                    latency,
                    ok: false,
                    metrics: BTreeMap::new(),
                    error: Some(e),
                },
            })
        }
    }

    fn bearer(token: &str) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
        format!("Bearer {token}")
            .parse()
            .context("the token is not a valid header value")
    }

    async fn http_post(
        send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        addr: SocketAddr,
        path: &str,
        token: &str,
        body: String,
    ) -> Result<(u16, String)> {
        let req = hyper::Request::post(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body)))?;
        http_send(send, req).await
    }

    async fn http_get(
        send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        addr: SocketAddr,
        path: &str,
    ) -> Result<(u16, String)> {
        let req = hyper::Request::get(path)
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))?;
        http_send(send, req).await
    }

    /// Sends `req` once the connection is ready: the answer's status and body.
    async fn http_send(
        send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<(u16, String)> {
        send.ready().await.context("the connection closed")?;
        let resp = send.send_request(req).await.context("no answer")?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn kind_named(name: &str, message: &str) -> RomaError {
        match ErrorKind::ALL.iter().find(|k| k.as_str() == name) {
            Some(k) => RomaError::new(*k, message),
            // The server's own kinds (unauthenticated, unavailable) have no roma kind.
            None => RomaError::new(ErrorKind::Internal, format!("{name}: {message}")),
        }
    }

    pub(super) fn parse_http_answer(
        status: u16,
        text: &str,
    ) -> Result<BTreeMap<String, f64>, RomaError> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            RomaError::internal(format!(
                "status {status}: the body is not JSON ({e}): {text}"
            ))
        })?;
        if status == 200 {
            return Ok(v["metrics"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                        .collect()
                })
                .unwrap_or_default());
        }
        let e = &v["error"];
        Err(kind_named(
            e["kind"].as_str().unwrap_or("internal"),
            e["message"].as_str().unwrap_or(text),
        ))
    }

    fn grpc_error(s: &tonic::Status) -> RomaError {
        let kind = s
            .metadata()
            .get(roma_serve::ERROR_KIND_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("internal");
        kind_named(kind, s.message())
    }

    /// Loads the code, warms up, measures; the report is the in-process bench's.
    pub fn run(a: Args) -> Result<Report> {
        // One client thread, as the in-process bench has: each answer is read, and the next
        // request sent, on the thread the answer woke, with no hand-over to another worker.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the tokio runtime")?;
        runtime.block_on(async move {
            let plan = Arc::new(Plan {
                target: a.target,
                tokens: a.tokens,
                version: a.code.version_string.clone(),
                handler: a.handler,
                inputs: a.inputs,
                health: a.health,
            });
            plan.load(&a.code).await?;
            let mut conns = Vec::with_capacity(a.concurrency);
            for _ in 0..a.concurrency {
                conns.push(plan.connect().await?);
            }
            let (conns, _) = drive(&plan, conns, Limit::Requests(a.warmup), None).await?;
            let started = Instant::now();
            let (_, samples) = drive(&plan, conns, a.limit, a.interval).await?;
            let elapsed = started.elapsed();
            Ok(Report::new(&samples, elapsed, None, 0, a.concurrency))
        })
    }

    /// One task per connection, each sending its next request when the last one answered, until
    /// the limit; the connections come back for the next phase.
    async fn drive(
        plan: &Arc<Plan>,
        conns: Vec<Conn>,
        limit: Limit,
        interval: Option<Duration>,
    ) -> Result<(Vec<Conn>, Vec<Sample>)> {
        let submitted = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let deadline = match limit {
            Limit::Duration(d) => Some(started + d),
            Limit::Requests(_) => None,
        };
        let max = match limit {
            Limit::Requests(n) => n,
            Limit::Duration(_) => usize::MAX,
        };
        let mut tasks = Vec::new();
        for mut conn in conns {
            let (plan, submitted) = (Arc::clone(plan), Arc::clone(&submitted));
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d)
                        || submitted.fetch_add(1, Ordering::Relaxed) >= max
                    {
                        break;
                    }
                    if let Some(p) = interval {
                        tokio::time::sleep(p).await;
                    }
                    samples.push(plan.execute(&mut conn).await?);
                }
                anyhow::Ok((conn, samples))
            }));
        }
        let mut conns = Vec::new();
        let mut samples = Vec::new();
        for t in tasks {
            let (c, s) = t.await.context("a bench task panicked")??;
            conns.push(c);
            samples.extend(s);
        }
        Ok((conns, samples))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert!(matches!(
            "http://127.0.0.1:8080".parse::<Target>(),
            Ok(Target::Http(a)) if a.port() == 8080
        ));
        assert!(matches!(
            "grpc://127.0.0.1:8081/".parse::<Target>(),
            Ok(Target::Grpc(a)) if a.port() == 8081
        ));
        assert!("https://127.0.0.1:1".parse::<Target>().is_err());
        assert!("127.0.0.1:1".parse::<Target>().is_err());
        assert!("http://localhost".parse::<Target>().is_err());
    }

    #[cfg(feature = "serve")]
    #[test]
    fn answers_become_samples() {
        use client::parse_http_answer;
        use roma::ErrorKind;
        let m = parse_http_answer(200, r#"{"resp":"1","metrics":{"a":1.5}}"#).unwrap();
        assert_eq!(m["a"], 1.5);
        let e = parse_http_answer(429, r#"{"error":{"kind":"queue_full","message":"full"}}"#)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::QueueFull);
        let e = parse_http_answer(
            401,
            r#"{"error":{"kind":"unauthenticated","message":"no"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(e.message().starts_with("unauthenticated"));
        assert!(parse_http_answer(502, "Bad Gateway").is_err());
    }
}
