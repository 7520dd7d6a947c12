//! The gRPC port's connection limits, the same as the HTTP port's: a client that never sends
//! its HTTP/2 preface is cut off, connections past
//! `limits.max_connections` are closed at once, an idle connection is closed after
//! `limits.idle_timeout`, and the server goes on serving. Driven by raw sockets and by
//! hyper's HTTP/2 client, which shows when the server ends a connection.

use crate::common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use roma_serve::pb::roma_client::RomaClient;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The client connection preface of HTTP/2 (RFC 9113, 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub async fn grpc_test_server(
    edit: impl FnOnce(&mut roma_serve::Settings),
) -> (TestServer, SocketAddr) {
    let mut s = settings();
    s.grpc = Some("127.0.0.1:0".parse().unwrap());
    edit(&mut s);
    let t = TestServer::start(s).await;
    let addr = t.server.as_ref().unwrap().grpc_addr().unwrap();
    (t, addr)
}

/// An HTTP/2 connection whose requests carry bodies of type `B`; the task ends when the
/// connection does.
pub async fn h2<B>(addr: SocketAddr) -> (SendRequest<B>, JoinHandle<()>)
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    try_h2(addr).await.expect("an HTTP/2 connection")
}

async fn try_h2<B>(addr: SocketAddr) -> Option<(SendRequest<B>, JoinHandle<()>)>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.ok()?;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .ok()?;
    let ended = tokio::spawn(async move {
        let _ = conn.await;
    });
    Some((send, ended))
}

/// `grpc.health.v1.Health/Check` for the whole server, by hand: one message frame holding an
/// empty HealthCheckRequest (not compressed, length 0).
pub fn health_request(addr: SocketAddr) -> hyper::Request<Full<Bytes>> {
    hyper::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap()
}

/// [`health_request`] on `send`: its `grpc-status`.
pub async fn health_check(send: &mut SendRequest<Full<Bytes>>, addr: SocketAddr) -> String {
    let resp = tokio::time::timeout(PATIENCE, send.send_request(health_request(addr)))
        .await
        .expect("answered in time")
        .expect("answered");
    let in_headers = resp.headers().get("grpc-status").cloned();
    let body = resp.into_body().collect().await.expect("the body");
    let status = in_headers.or_else(|| body.trailers().and_then(|t| t.get("grpc-status").cloned()));
    status
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_sends_its_preface_is_cut_off() {
    let idle = Duration::from_millis(900);
    let (t, addr) = grpc_test_server(|s| {
        s.limits.header_read_timeout = Duration::from_millis(300);
        s.limits.idle_timeout = idle;
    })
    .await;
    // Nothing at all.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    closed_by_server(&mut silent).await;
    // Half of the preface, then nothing.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&PREFACE[..10]).await.unwrap();
    closed_by_server(&mut half).await;
    // The whole preface but no call: an idle connection (a channel opened before its first
    // call), closed after the idle timeout.
    let opened = Instant::now();
    let (_send, ended) = h2::<Full<Bytes>>(addr).await;
    let what = "the server closes a connection that makes no call";
    ended_after(ended, opened, idle, what).await;
    // The server goes on.
    let (mut send, _ended) = h2(addr).await;
    assert_eq!(health_check(&mut send, addr).await, "0");
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_grpc_connection_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(600);
    let (t, addr) = grpc_test_server(|s| s.limits.idle_timeout = idle).await;
    let (mut send, ended) = h2(addr).await;
    let asked = Instant::now();
    assert_eq!(health_check(&mut send, addr).await, "0");
    // The client keeps its end open; the server closes it once it has been idle long enough,
    // never before.
    ended_after(ended, asked, idle, "the server closes the idle connection").await;
    // A connection with calls in flight is not idle: a running execution outlives the idle
    // timeout on its connection.
    t.load_ok("v1", JS).await;
    let mut c = RomaClient::new(grpc_channel(addr).await);
    let r = c
        .execute(with_token(exec("SignalThenWork", &["1500"]), EXEC))
        .await
        .expect("the call outlives the idle timeout");
    assert_eq!(r.into_inner().resp, "\"done\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_and_the_server_stays_up() {
    let (t, addr) = grpc_test_server(|s| s.limits.max_connections = 3).await;
    // Three held open, each proven accepted by an answer.
    let mut held = Vec::new();
    for _ in 0..3 {
        let (mut send, ended) = h2(addr).await;
        assert_eq!(health_check(&mut send, addr).await, "0");
        held.push((send, ended));
    }
    // The fourth is closed at once: not even the server's SETTINGS come back.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra.write_all(PREFACE).await;
    assert!(closed_by_server(&mut extra).await.is_empty());
    assert_eq!(t.metric("roma_connections_refused_total").await, Some(1.0));
    // The HTTP port has a bound of its own: it still answers.
    assert_eq!(t.get("/healthz").await.status, hyper::StatusCode::OK);
    // Once the held ones close, new connections are served again (the server lets a closed
    // connection go when it reads its end, so the first tries may still be turned away).
    for (send, ended) in held {
        drop(send);
        tokio::time::timeout(PATIENCE, ended)
            .await
            .unwrap()
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some((mut send, _ended)) = try_h2(addr).await {
            let req = health_request(addr);
            if let Ok(Ok(resp)) = tokio::time::timeout(PATIENCE, send.send_request(req)).await {
                assert_eq!(resp.status(), hyper::StatusCode::OK);
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gRPC port never served again after its connections closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_past_the_body_limit_is_refused_and_the_connection_goes_on() {
    let (t, addr) = grpc_test_server(|s| s.limits.max_body_bytes = 64 * 1024).await;
    t.load_ok("v1", JS).await;
    let mut c = RomaClient::new(grpc_channel(addr).await);
    let call = |input: &str| with_token(exec("Handler", &[input]), EXEC);
    // Refused from its length prefix, before it is read, as every size limit is.
    let e = c
        .execute(call(&format!("\"{}\"", "x".repeat(100 * 1024))))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert_eq!(
        e.metadata()
            .get(roma_serve::ERROR_KIND_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some("payload_too_large")
    );
    assert!(e.message().contains("limits.max_body_bytes"), "{e:?}");
    let r = c.execute(call("\"small\"")).await.expect("the next call");
    assert_eq!(r.into_inner().resp, "\"Hello world! \\\"small\\\"\"");
}
