//! Clients that are slow after they opened: a request body that stalls or trickles (HTTP/1.1
//! and HTTP/2) is answered at `limits.body_timeout` (408, `DEADLINE_EXCEEDED`), and an HTTP/2
//! header block or a kept-alive HTTP/1.1 connection's next head that never ends is cut off at
//! `limits.header_read_timeout`, while requests on other connections are served meanwhile (and
//! a kept-alive connection that sends nothing lasts until `limits.idle_timeout`, as does one
//! whose pipelined next head stops short). A body the server answered early without reading
//! closes its connection. Every other bound is set far beyond the test's patience, so only the
//! bound under test can end the slow client.

use crate::common::*;
use crate::grpc_limits::{PREFACE, grpc_test_server, h2, health_check, health_request};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;

const BOUND: Duration = Duration::from_millis(300);
const FAR: Duration = Duration::from_secs(600);

/// A request body: boxed, so one HTTP/2 connection carries both a body that is sent whole
/// and [`stalled_body`].
type TestBody = BoxBody<Bytes, Infallible>;

/// A request body that never sends a byte nor ends.
fn stalled_body() -> TestBody {
    StreamBody::new(tokio_stream::pending::<Result<Frame<Bytes>, Infallible>>()).boxed()
}

/// Waits until the server cuts `stream` off, which must come no sooner than [`BOUND`] after
/// `started`; returns what the server sent before.
async fn cut_off(stream: &mut (impl AsyncRead + Unpin), started: Instant) -> String {
    let got = String::from_utf8_lossy(&closed_by_server(stream).await).into_owned();
    assert_waited(started, BOUND, "cut off");
    got
}

fn slow_limits(s: &mut roma_serve::Settings) {
    s.limits.header_read_timeout = FAR;
    s.limits.idle_timeout = FAR;
    s.limits.body_timeout = FAR;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http_body_is_answered_408_while_others_are_served() {
    let mut s = settings();
    slow_limits(&mut s);
    s.limits.body_timeout = BOUND;
    let t = TestServer::with_code(s).await;
    let head = format!(
        "POST /v1/execute HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EXEC}\r\n\
         content-type: application/json\r\n"
    );

    // A body that stops a tenth of the way in.
    let started = Instant::now();
    let mut stalled = sent(
        t.addr,
        format!("{head}content-length: 100\r\n\r\n{{\"id\":\"r").as_bytes(),
    )
    .await;
    // Another connection is served meanwhile.
    t.execute_ok().await;
    let got = cut_off(&mut stalled, started).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("request_timeout"), "{got}");
    assert!(got.contains("limits.body_timeout"), "{got}");

    // A chunked body that never stops trickling: the bound is on the whole body, not on the
    // gaps between its bytes.
    let started = Instant::now();
    let trickle = TcpStream::connect(t.addr).await.unwrap();
    let (mut read, mut write) = trickle.into_split();
    write
        .write_all(format!("{head}transfer-encoding: chunked\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        // The attack itself: a byte every 20 ms, until the server closes.
        while write.write_all(b"1\r\n \r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let got = cut_off(&mut read, started).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    writer.abort();

    assert_eq!(
        t.metric("roma_slow_clients_total{phase=\"body\"}").await,
        Some(2.0)
    );
    assert_eq!(
        t.metric("roma_requests_total{endpoint=\"execute\",code_id=\"other\",outcome=\"request_timeout\"}")
            .await,
        Some(2.0)
    );
    t.execute_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_grpc_body_is_answered_deadline_exceeded_and_the_connection_goes_on() {
    let (t, addr) = grpc_test_server(|s| {
        slow_limits(s);
        s.limits.body_timeout = BOUND;
    })
    .await;
    let (mut stalled, _ended) = h2::<TestBody>(addr).await;
    let (mut other, _other_ended) = h2::<Full<Bytes>>(addr).await;
    let started = Instant::now();
    let call = hyper::Request::post(format!("http://{addr}/roma.v1.Roma/Execute"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {EXEC}"))
        .body(stalled_body())
        .unwrap();
    let answer = tokio::spawn(async move {
        let resp = stalled.send_request(call).await.expect("answered");
        (resp, stalled)
    });
    // Another connection is served meanwhile.
    assert_eq!(health_check(&mut other, addr).await, "0");
    let (resp, mut stalled) = ended_after(answer, started, BOUND, "answered").await;
    // Trailers-only: the status is in the headers.
    let h = resp.headers();
    assert_eq!(
        h.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"4"[..]),
        "{h:?}"
    );
    assert_eq!(
        h.get(roma_serve::ERROR_KIND_METADATA).map(|v| v.as_bytes()),
        Some(&b"request_timeout"[..]),
        "{h:?}"
    );
    // Only the stream was ended: its connection serves the next call.
    let resp = tokio::time::timeout(
        PATIENCE,
        stalled.send_request(health_request(addr).map(BodyExt::boxed)),
    )
    .await
    .expect("answered in time")
    .expect("answered");
    let trailers = resp.into_body().collect().await.unwrap();
    assert_eq!(
        trailers
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    assert_eq!(
        t.metric("roma_slow_clients_total{phase=\"body\"}").await,
        Some(1.0)
    );
}

/// An HTTP/2 frame (RFC 9113, 4.1) on stream `stream`.
fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, ty, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_header_block_that_never_ends_is_cut_off() {
    let (t, addr) = grpc_test_server(|s| {
        slow_limits(s);
        s.limits.header_read_timeout = BOUND;
    })
    .await;
    let (mut other, _other_ended) = h2::<Full<Bytes>>(addr).await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    // The preface, SETTINGS, then a HEADERS frame without END_HEADERS holding one complete
    // literal field (`:method: POST`, RFC 7541, 6.2.2): the block waits for a CONTINUATION
    // that never comes.
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(0x4, 0, 0, &[]));
    let mut field = vec![0, 7];
    field.extend_from_slice(b":method");
    field.push(4);
    field.extend_from_slice(b"POST");
    hello.extend(frame(0x1, 0, 1, &field));
    slow.write_all(&hello).await.unwrap();
    // Another connection is served meanwhile.
    assert_eq!(health_check(&mut other, addr).await, "0");
    cut_off(&mut slow, started).await;
    assert_eq!(
        t.metric("roma_slow_clients_total{phase=\"head\"}").await,
        Some(1.0)
    );
    // Header blocks that arrive whole are not held up: the other connection goes on.
    assert_eq!(health_check(&mut other, addr).await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_http_connection_waits_for_the_idle_timeout_and_its_next_head_for_the_head_timeout()
 {
    let idle = Duration::from_millis(1500);
    let mut s = settings();
    s.limits.header_read_timeout = BOUND;
    s.limits.idle_timeout = idle;
    let t = TestServer::start(s).await;
    let mut kept = sent(t.addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    // A whole request and the start of the next in one write: the second head's bytes come in
    // the read that brings the first, whose dispatch ends the head timer, so the unfinished
    // head is not timed from its first byte. The connection is then an idle one, closed at
    // the idle timeout like the other (which a client holding a connection idle gets anyway).
    let mut piped = sent(
        t.addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /healthz HTTP/1.1\r\nhost",
    )
    .await;
    let answered = Instant::now();
    for c in [&mut kept, &mut piped] {
        let got = String::from_utf8_lossy(&closed_by_server(c).await).into_owned();
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        assert_waited(answered, idle, "closed at the idle timeout");
    }
    // The next request's head, begun and never finished, is held to the head timeout: cut
    // off (and counted as a slow head, which an idle close is not).
    let mut slow = sent(t.addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let mut answer = [0u8; 512];
    let n = tokio::io::AsyncReadExt::read(&mut slow, &mut answer)
        .await
        .unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost")
        .await
        .unwrap();
    cut_off(&mut slow, started).await;
    assert_eq!(
        t.metric("roma_slow_clients_total{phase=\"head\"}").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_closes_the_connection_instead_of_waiting_for_the_unread_body() {
    let mut s = settings();
    slow_limits(&mut s);
    let t = TestServer::start(s).await;
    // No token: refused before the body is read; the client goes on trickling the body.
    let mut c = sent(
        t.addr,
        b"POST /v1/execute HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{\"id\"",
    )
    .await;
    let trickled = c.write_all(b"x").await;
    let got = String::from_utf8_lossy(&closed_by_server(&mut c).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 401"), "{got} ({trickled:?})");
    assert!(got.contains("unauthenticated"), "{got}");
}
