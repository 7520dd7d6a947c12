//! Host functions declared in the config with a `grpc://` endpoint, against a real tonic
//! `roma.v1.HostFunctionService` the test runs on 127.0.0.1 (and stops): the call's input,
//! the request id and the client's metadata reach it, its output reaches the code, its
//! errors, failures, silences and oversize answers throw in JS, the async form awaits it,
//! calls share one connection per binding, and a binding whose endpoint went away throws
//! until the endpoint is back.

use crate::bindings::{BINDING_JS, run};
use crate::common::*;
use hyper_util::rt::{TokioExecutor, TokioIo};
use roma_serve::BindingSettings;
use roma_serve::pb::binding_value::Kind;
use roma_serve::pb::host_function_service_server::{
    HostFunctionService, HostFunctionServiceServer,
};
use roma_serve::pb::{BindingValue, CallRequest, CallResponse, call_response};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

/// What the gRPC test runs beyond [`BINDING_JS`].
const MORE_JS: &str = r#"
function Big() { try { return "got " + kv.big().length; } catch (e) { return "threw: " + e.message; } }
function Roomy() { try { return "got " + kv.roomy().length; } catch (e) { return "threw: " + e.message; } }
function Keys() { const m = kv.keys(new Map([["a", "1"], ["b", "2"]])); return m.join(","); }
async function LaterSlow() {
  try { await later.slow("x"); return "no throw"; } catch (e) { return "threw: " + e.message; }
}
"#;

/// One call as the endpoint saw it: the message, its `x-request-id` and `grpc-timeout`.
#[derive(Clone, Debug)]
struct Seen {
    call: CallRequest,
    request_id: String,
    timeout: Option<Duration>,
}

/// The endpoint: answers by binding name.
#[derive(Clone, Default)]
struct Host {
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn string(s: String) -> Option<BindingValue> {
    Some(BindingValue {
        kind: Some(Kind::StringValue(s)),
    })
}

fn output(v: Option<BindingValue>) -> Response<CallResponse> {
    Response::new(CallResponse {
        result: v.map(call_response::Result::Output),
    })
}

#[tonic::async_trait]
impl HostFunctionService for Host {
    async fn call(&self, req: Request<CallRequest>) -> Result<Response<CallResponse>, Status> {
        let header = |k: &str| {
            req.metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let seen = Seen {
            request_id: header("x-request-id").unwrap_or_default(),
            timeout: header("grpc-timeout")
                .as_deref()
                .and_then(roma_serve::parse_grpc_timeout),
            call: req.into_inner(),
        };
        self.seen.lock().unwrap().push(seen.clone());
        let call = seen.call;
        match call.binding.as_str() {
            "kv.get" | "later.get" => {
                let input = match call.input.and_then(|v| v.kind) {
                    Some(Kind::StringValue(s)) => s,
                    other => format!("{other:?}"),
                };
                let tenant = call.metadata.get("tenant").cloned().unwrap_or_default();
                Ok(output(string(format!("{input}@{tenant}"))))
            }
            "kv.deny" => Ok(Response::new(CallResponse {
                result: Some(call_response::Result::Error("no such key".into())),
            })),
            "kv.broken" => Err(Status::internal("secret detail")),
            "kv.slow" | "later.slow" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(output(None))
            }
            "kv.big" | "kv.roomy" => Ok(output(string("z".repeat(2048)))),
            "kv.bytes" => match call.input.and_then(|v| v.kind) {
                Some(Kind::BytesValue(mut b)) => {
                    b.reverse();
                    Ok(output(Some(BindingValue {
                        kind: Some(Kind::BytesValue(b)),
                    })))
                }
                other => Err(Status::invalid_argument(format!("{other:?}"))),
            },
            "kv.keys" => match call.input.and_then(|v| v.kind) {
                Some(Kind::MapValue(m)) => {
                    let mut keys: Vec<String> = m.entries.into_keys().collect();
                    keys.sort();
                    Ok(output(Some(BindingValue {
                        kind: Some(Kind::ListValue(roma_serve::pb::StringList { values: keys })),
                    })))
                }
                other => Err(Status::invalid_argument(format!("{other:?}"))),
            },
            other => Err(Status::unimplemented(other.to_string())),
        }
    }
}

/// The endpoint running on 127.0.0.1: tonic's generated server for `Host`, over hyper's
/// HTTP/2 server, one task per connection. Stopping it closes every connection.
struct Endpoint {
    addr: SocketAddr,
    host: Host,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Endpoint {
    /// Starts one on `addr` (port 0: a port the OS picks).
    async fn start(addr: SocketAddr, host: Host) -> Endpoint {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let routes =
            tonic::service::Routes::new(HostFunctionServiceServer::new(host.clone())).prepare();
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it drops the set, which ends every connection.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let routes = routes.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            tower::ServiceExt::oneshot(routes.clone(), req)
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Endpoint {
            addr,
            host,
            accepted,
            task,
        }
    }

    /// Stops it; returns where it listened and what it saw.
    async fn stop(self) -> (SocketAddr, Host) {
        self.task.abort();
        let _ = self.task.await;
        (self.addr, self.host)
    }

    fn seen(&self) -> Vec<Seen> {
        self.host.seen.lock().unwrap().clone()
    }
}

fn binding(name: &str, addr: SocketAddr) -> BindingSettings {
    BindingSettings::new(name, format!("grpc://{addr}").parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bindings_forward_with_metadata_and_throw_on_failure() {
    let host = Endpoint::start("127.0.0.1:0".parse().unwrap(), Host::default()).await;
    let a = host.addr;
    let mut s = settings();
    let mut slow = binding("kv.slow", a);
    slow.timeout = Duration::from_millis(200);
    let mut later_slow = binding("later.slow", a);
    later_slow.timeout = Duration::from_millis(200);
    later_slow.is_async = true;
    let mut big = binding("kv.big", a);
    big.max_response_bytes = 1024;
    let mut roomy = binding("kv.roomy", a);
    roomy.max_response_bytes = 4096;
    let mut both = binding("later.get", a);
    both.is_async = true;
    s.bindings = vec![
        binding("kv.get", a),
        binding("kv.deny", a),
        binding("kv.broken", a),
        binding("kv.bytes", a),
        binding("kv.keys", a),
        slow,
        later_slow,
        big,
        roomy,
        both,
    ];
    let t = TestServer::start(s).await;
    t.load_ok("v1", &format!("{BINDING_JS}{MORE_JS}")).await;

    assert_eq!(run(&t, "Kv", &["\"k\""]).await, "k@acme");
    let last = host.seen().last().cloned().unwrap();
    assert_eq!(last.call.binding, "kv.get");
    assert_eq!(last.call.request_id, "rid-42");
    assert_eq!(last.request_id, "rid-42");
    assert_eq!(last.call.metadata.len(), 2);
    assert_eq!(last.call.metadata["tenant"], "acme");
    assert_eq!(last.call.metadata["secret"], "s3");
    // The binding's timeout (1 s) travels as the call's deadline.
    let deadline = last.timeout.expect("a grpc-timeout");
    assert!(
        deadline > Duration::ZERO && deadline <= Duration::from_secs(1),
        "{deadline:?}"
    );
    // Calls of one binding share its connection: more calls, no more connections.
    let connections = host.accepted.load(Ordering::SeqCst);
    for i in 0..5 {
        let key = format!("\"k{i}\"");
        assert_eq!(run(&t, "Kv", &[key.as_str()]).await, format!("k{i}@acme"));
    }
    assert_eq!(host.accepted.load(Ordering::SeqCst), connections);

    assert_eq!(run(&t, "Deny", &[]).await, "threw: no such key");
    // The endpoint's status and message stay in the server's log.
    assert_eq!(run(&t, "Broken", &[]).await, "threw: kv.broken failed");
    assert_eq!(run(&t, "Slow", &[]).await, "threw: kv.slow failed");
    assert_eq!(run(&t, "LaterSlow", &[]).await, "threw: later.slow failed");
    // A 2 KiB answer is past kv.big's 1 KiB bound and within kv.roomy's 4 KiB.
    assert_eq!(run(&t, "Big", &[]).await, "threw: kv.big failed");
    assert_eq!(run(&t, "Roomy", &[]).await, "got 2048");
    assert_eq!(run(&t, "Bytes", &[]).await, "3,2,1");
    assert_eq!(run(&t, "Keys", &[]).await, "a,b");
    assert_eq!(run(&t, "Both", &["\"x\""]).await, "x1@acme,x2@acme");
    let inputs: Vec<_> = host
        .seen()
        .into_iter()
        .filter(|s| s.call.binding == "later.get")
        .filter_map(|s| s.call.input.and_then(|v| v.kind))
        .collect();
    assert_eq!(inputs.len(), 2, "{inputs:?}");
    for k in ["x1", "x2"] {
        assert!(inputs.contains(&Kind::StringValue(k.into())), "{inputs:?}");
    }
    drop(t);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_binding_throws_while_its_endpoint_is_down_and_recovers() {
    let host = Endpoint::start("127.0.0.1:0".parse().unwrap(), Host::default()).await;
    let mut s = settings();
    s.bindings = vec![binding("kv.get", host.addr)];
    let t = TestServer::start(s).await;
    let js =
        "function Kv(k) { try { return kv.get(k); } catch (e) { return 'threw: ' + e.message; } }";
    t.load_ok("v1", js).await;
    assert_eq!(run(&t, "Kv", &["\"a\""]).await, "a@acme");

    let (addr, host) = host.stop().await;
    assert_eq!(run(&t, "Kv", &["\"b\""]).await, "threw: kv.get failed");

    // Back on the same port: the binding's channel connects again.
    let again = Endpoint::start(addr, host).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let got = run(&t, "Kv", &["\"c\""]).await;
        if got == "c@acme" {
            break;
        }
        assert_eq!(got, "threw: kv.get failed");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the binding never reached its endpoint again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(t);
    again.stop().await;
}
