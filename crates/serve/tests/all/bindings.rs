//! Host functions declared in the config (`[[bindings]]`) against a real HTTP endpoint the
//! test runs on 127.0.0.1: the call's input, the request id and the client's metadata reach
//! the endpoint, its output reaches the code, its errors, failures and silences throw in JS,
//! and nothing the config does not declare is callable.

use crate::common::*;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::body::Bytes;
use roma_serve::BindingSettings;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// Handlers calling the bindings both forms declare (`kv.*`, `later.*`).
pub const BINDING_JS: &str = r#"
function Kv(k) { return kv.get(k); }
function Deny() { try { kv.deny("x"); return "no throw"; } catch (e) { return "threw: " + e.message; } }
function Broken() { try { kv.broken("x"); return "no throw"; } catch (e) { return "threw: " + e.message; } }
function Slow() { try { kv.slow("x"); return "no throw"; } catch (e) { return "threw: " + e.message; } }
function Bytes() { const b = kv.bytes(new Uint8Array([1, 2, 3])); return Array.from(b).join(","); }
async function Both(k) {
  const [a, b] = await Promise.all([later.get(k + "1"), later.get(k + "2")]);
  return a + "," + b;
}
function Declared() { return [typeof kv.get, typeof kv.put, typeof later.get, typeof later.put].join(","); }
"#;

/// What the endpoint saw: each call's JSON body and its `x-request-id` header.
type Seen = Arc<Mutex<Vec<(serde_json::Value, String)>>>;

/// An endpoint on 127.0.0.1 answering by path: `/get` echoes, `/deny` answers an error,
/// `/broken` a 500, `/slow` never in time, `/bytes` reverses bytes.
async fn endpoint() -> (std::net::SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let seen2 = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen2);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = Arc::clone(&seen);
                        async move {
                            let path = req.uri().path().to_string();
                            let rid = req
                                .headers()
                                .get("x-request-id")
                                .map(|v| v.to_str().unwrap().to_string())
                                .unwrap_or_default();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let call: serde_json::Value = serde_json::from_slice(&body).unwrap();
                            seen.lock().unwrap().push((call.clone(), rid));
                            let (status, answer) = match path.as_str() {
                                "/get" => {
                                    let input = call["input"]["string"].as_str().unwrap_or("?");
                                    let tenant = call["metadata"]["tenant"].as_str().unwrap_or("-");
                                    (
                                        200,
                                        serde_json::json!({"output": {"string": format!("{input}@{tenant}")}}),
                                    )
                                }
                                "/deny" => (200, serde_json::json!({"error": "no such key"})),
                                "/broken" => (500, serde_json::json!({"error": "secret detail"})),
                                "/slow" => {
                                    tokio::time::sleep(Duration::from_secs(30)).await;
                                    (200, serde_json::json!({}))
                                }
                                "/bytes" => (200, serde_json::json!({"output": {"bytes": "AwIB"}})),
                                _ => (404, serde_json::json!({})),
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(answer.to_string())))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn server_with_bindings() -> (TestServer, Seen) {
    let (addr, seen) = endpoint().await;
    let mut s = settings();
    let url = |path: &str| format!("http://{addr}{path}").parse().unwrap();
    let mut slow = BindingSettings::new("kv.slow", url("/slow"));
    slow.timeout = Duration::from_millis(200);
    let mut both = BindingSettings::new("later.get", url("/get"));
    both.is_async = true;
    s.bindings = vec![
        BindingSettings::new("kv.get", url("/get")),
        BindingSettings::new("kv.deny", url("/deny")),
        BindingSettings::new("kv.broken", url("/broken")),
        BindingSettings::new("kv.bytes", url("/bytes")),
        slow,
        both,
    ];
    let t = TestServer::start(s).await;
    t.load_ok("v1", BINDING_JS).await;
    (t, seen)
}

/// Runs `handler` of `v1` as request `rid-42` with metadata `tenant=acme, secret=s3`: its
/// result.
pub async fn run(t: &TestServer, handler: &str, input: &[&str]) -> String {
    let body = serde_json::json!({
        "version_string": "v1", "handler_name": handler, "input": input,
        "metadata": {"tenant": "acme", "secret": "s3"},
    });
    let r = t
        .post(
            "/v1/execute",
            Some(EXEC),
            &[("x-request-id", "rid-42")],
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{handler}: {}", r.body);
    serde_json::from_str::<String>(r.json()["resp"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_forward_with_metadata_and_throw_on_failure() {
    let (t, seen) = server_with_bindings().await;
    assert_eq!(run(&t, "Kv", &["\"k\""]).await, "k@acme");
    {
        let calls = seen.lock().unwrap();
        let (call, rid) = calls.last().unwrap();
        assert_eq!(rid, "rid-42");
        assert_eq!(call["binding"], "kv.get");
        assert_eq!(call["request_id"], "rid-42");
        assert_eq!(
            call["metadata"],
            serde_json::json!({"tenant": "acme", "secret": "s3"})
        );
        assert_eq!(call["input"], serde_json::json!({"string": "k"}));
    }
    assert_eq!(run(&t, "Deny", &[]).await, "threw: no such key");
    // The endpoint's status and body stay in the server's log.
    assert_eq!(run(&t, "Broken", &[]).await, "threw: kv.broken failed");
    assert_eq!(run(&t, "Slow", &[]).await, "threw: kv.slow failed");
    assert_eq!(run(&t, "Bytes", &[]).await, "3,2,1");
    assert_eq!(
        seen.lock().unwrap().last().unwrap().0["input"],
        serde_json::json!({"bytes": "AQID"})
    );
    assert_eq!(run(&t, "Both", &["\"x\""]).await, "x1@acme,x2@acme");
    // Only what the config declares exists in JS.
    assert_eq!(
        run(&t, "Declared", &[]).await,
        "function,undefined,function,undefined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_whose_endpoint_is_down_throws() {
    // A port with nothing behind it: bind one, note it, close it.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut s = settings();
    s.bindings = vec![BindingSettings::new(
        "kv.get",
        format!("http://{addr}/get").parse().unwrap(),
    )];
    let t = TestServer::start(s).await;
    let js =
        "function Kv() { try { return kv.get('k'); } catch (e) { return 'threw: ' + e.message; } }";
    t.load_ok("v1", js).await;
    assert_eq!(run(&t, "Kv", &[]).await, "threw: kv.get failed");
}
