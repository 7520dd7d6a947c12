//! The test server and client: a server per test, on 127.0.0.1 with a port the OS picks, a
//! small HTTP/1.1 client over hyper, a tonic client for the gRPC port, and the checks the
//! tests share.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use roma::SandboxKind;
use roma_serve::pb::ExecuteRequest;
use roma_serve::{RequestMetadata, RunningServer, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const LOAD: &str = "load-token-0123";
pub const EXEC: &str = "exec-token-4567";

/// How long a test waits for something that must happen: a safety net, not a timing
/// assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Hello world, a handler that reads the metadata through host functions, one that throws,
/// one that spins forever and one that signals it started and then spins.
pub const JS: &str = r#"
function Handler(input) { return "Hello world! " + JSON.stringify(input); }
function Meta() { return meta.get("tenant") + "/" + (meta.rid().length > 0); }
function Throw() { throw new Error("boom"); }
function Spin() { while (true) {} }
function Signal() { test.started(); while (true) {} }
function SignalThenWork(ms) { test.started(); const t = Date.now(); while (Date.now() - t < ms) {} return "done"; }
"#;

/// The sandbox the tests use: `ROMA_TEST_SANDBOX` (namespaces, birdcage, none), else the
/// default (namespaces).
pub fn sandbox() -> SandboxKind {
    match std::env::var("ROMA_TEST_SANDBOX").as_deref() {
        Ok("none") => SandboxKind::None,
        Ok("birdcage") => SandboxKind::Birdcage,
        _ => SandboxKind::Namespaces,
    }
}

/// A running server and what the tests observe of it.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// How many times `test.started()` ran.
    pub started: Arc<AtomicUsize>,
    pub started_notify: Arc<Notify>,
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// Settings for a test: 127.0.0.1:0, fresh token files, one worker.
pub fn settings() -> Settings {
    let dir = std::env::temp_dir().join(format!(
        "roma-serve-test-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("load.tok"), LOAD).unwrap();
    std::fs::write(dir.join("exec.tok"), format!("{EXEC}\n")).unwrap();
    let mut s = Settings::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("load.tok"),
        dir.join("exec.tok"),
    );
    s.service.workers = Some(1);
    s.service.sandbox = sandbox();
    s
}

impl TestServer {
    pub async fn start(settings: Settings) -> TestServer {
        let started = Arc::new(AtomicUsize::new(0));
        let started_notify = Arc::new(Notify::new());
        let mut config = roma::Config::<RequestMetadata>::new();
        config.register_function("meta.get", |p| {
            let key = p.io.input_string().unwrap_or_default().to_string();
            p.io.output = roma::BindingOutput::String(
                p.metadata.values.get(&key).cloned().unwrap_or_default(),
            );
        });
        config.register_function("meta.rid", |p| {
            p.io.output = roma::BindingOutput::String(p.metadata.request_id.clone());
        });
        {
            let started = Arc::clone(&started);
            let notify = Arc::clone(&started_notify);
            config.register_function("test.started", move |_| {
                started.fetch_add(1, Ordering::SeqCst);
                notify.notify_waiters();
            });
        }
        // The test's folder: where its token files, or its TLS files, are.
        let dir = [
            settings.load_token_file.as_deref(),
            settings.execute_token_file.as_deref(),
            settings.tls.as_ref().map(|t| t.cert_file.as_path()),
        ]
        .into_iter()
        .flatten()
        .next()
        .and_then(std::path::Path::parent)
        .expect("the test's files are in its folder")
        .to_path_buf();
        let server = roma_serve::start(settings, config)
            .await
            .expect("server starts");
        TestServer {
            addr: server.http_addr(),
            server: Some(server),
            dir,
            started,
            started_notify,
        }
    }

    /// A server with `JS` loaded as `v1`.
    pub async fn with_code(settings: Settings) -> TestServer {
        let t = TestServer::start(settings).await;
        t.load_ok("v1", JS).await;
        t
    }

    /// Waits until `test.started()` has run `n` times.
    pub async fn wait_started(&self, n: usize) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let notified = self.started_notify.notified();
                if self.started.load(Ordering::SeqCst) >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("the handler started");
    }

    pub async fn load(&self, version: &str, js: &str) -> Reply {
        let body = serde_json::json!({"version_string": version, "js": js}).to_string();
        self.post("/v1/code", Some(LOAD), &[], body).await
    }

    /// Loads `js` as `version`, which must succeed.
    pub async fn load_ok(&self, version: &str, js: &str) {
        let r = self.load(version, js).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    pub async fn execute(&self, handler: &str, input: &[&str], extra: &[(&str, &str)]) -> Reply {
        let body = serde_json::json!({
            "id": "r1", "version_string": "v1", "handler_name": handler, "input": input,
        })
        .to_string();
        self.post("/v1/execute", Some(EXEC), extra, body).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        request(self.addr, "POST", path, token, headers, body.into()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, None, &[], Bytes::new()).await
    }

    /// The value of a metric line that starts with `prefix` (name and labels).
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        let text = self.get("/metrics").await.body;
        text.lines()
            .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Runs `Handler` of `v1`, which must answer 200: the server still serves.
    pub async fn execute_ok(&self) {
        let r = self.execute("Handler", &["1"], &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    /// Starts two executions of `Signal` of `v1` with the timeout `timeout`, each on a task of
    /// its own, and waits until the first runs and the second waits in the queue behind it
    /// (the server has one worker): their answers, the running one's first.
    pub async fn one_running_one_queued(&self, timeout: &str) -> [JoinHandle<Reply>; 2] {
        let spin = || {
            let body = serde_json::json!({"version_string": "v1", "handler_name": "Signal",
                "tags": {"TimeoutDuration": timeout}});
            spawn_execute(self.addr, body)
        };
        let running = spin();
        self.wait_started(1).await;
        let queued = spin();
        self.wait_metric("roma_queue_depth", 1.0).await;
        [running, queued]
    }

    /// Waits until the metric line `prefix` reads `value`.
    pub async fn wait_metric(&self, prefix: &str, value: f64) {
        tokio::time::timeout(PATIENCE, async {
            while self.metric(prefix).await != Some(value) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{prefix} never read {value}"));
    }

    /// Drains the server and waits until it finished.
    pub async fn drain(&mut self) {
        if let Some(s) = self.server.take() {
            s.drain();
            tokio::time::timeout(PATIENCE, s.finished())
                .await
                .expect("the drain finishes");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.drain();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    /// Reads all of `resp`.
    pub async fn read(resp: hyper::Response<hyper::body::Incoming>) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Asserts that this is the error answer `status` of kind `kind`.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, kind: &str) {
        self.assert_error_for("", status, kind);
    }

    /// [`Reply::assert_error`] for one of several cases: a failure names `case`.
    #[track_caller]
    pub fn assert_error_for(&self, case: impl std::fmt::Display, status: StatusCode, kind: &str) {
        assert_eq!(
            (self.status, self.kind().as_str()),
            (status, kind),
            "{case}: {}",
            self.body
        );
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    /// The error kind of an error body.
    pub fn kind(&self) -> String {
        self.json()["error"]["kind"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// One request on a new connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("handshake");
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        PATIENCE,
        send.send_request(b.body(Full::new(body)).unwrap()),
    )
    .await
    .expect("answered in time")
    .expect("answered");
    Reply::read(resp).await
}

/// `POST /v1/execute` of `body` with the execute token, on a task of its own: its answer.
pub fn spawn_execute(addr: SocketAddr, body: serde_json::Value) -> JoinHandle<Reply> {
    tokio::spawn(async move {
        let body = body.to_string().into();
        request(addr, "POST", "/v1/execute", Some(EXEC), &[], body).await
    })
}

/// A new connection to `addr` that has sent `bytes`.
pub async fn sent(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(bytes).await.unwrap();
    c
}

/// Reads until the server closes the connection (or resets it); fails after `PATIENCE`.
/// `stream` is the connection or its read half.
pub async fn closed_by_server(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    got
}

/// Asserts that at least `bound` has passed since `since`: the server kept to its limit and
/// did not act before it. `what` is what happened.
#[track_caller]
pub fn assert_waited(since: Instant, bound: Duration, what: &str) {
    let waited = since.elapsed();
    assert!(
        waited >= bound,
        "{what} after {waited:?}, sooner than {bound:?}"
    );
}

/// Awaits `task`, which ends when `what` happens (within `PATIENCE`), and asserts that it
/// ended no sooner than `bound` after `since`: its output.
pub async fn ended_after<T>(task: JoinHandle<T>, since: Instant, bound: Duration, what: &str) -> T {
    let out = tokio::time::timeout(PATIENCE, task)
        .await
        .expect(what)
        .expect("the task runs to its end");
    assert_waited(since, bound, what);
    out
}

/// A gRPC channel (plain HTTP/2) to `addr`.
pub async fn grpc_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects")
}

/// `msg` with the metadata `authorization: Bearer <token>`.
pub fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// A gRPC execution `g1` of `handler` of `v1` with `input`.
pub fn exec(handler: &str, input: &[&str]) -> ExecuteRequest {
    ExecuteRequest {
        id: "g1".into(),
        version_string: "v1".into(),
        handler_name: handler.into(),
        input: input.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}
