//! Each limit, and hostile clients: the server answers or cuts them off and stays up.

use crate::common::*;
use hyper::StatusCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_answer_413_naming_the_limit() {
    let mut s = settings();
    s.limits.max_body_bytes = 64 * 1024;
    s.limits.max_inputs = 2;
    s.limits.max_batch = 2;
    s.limits.max_code_bytes = 1000;
    s.limits.max_metadata_entries = 1;
    let t = TestServer::start(s).await;
    let r = t
        .load("big", &format!("{}//{}", JS, "x".repeat(1000)))
        .await;
    r.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(r.body.contains("limits.max_code_bytes"), "{}", r.body);
    t.load_ok("v1", "function Handler(x) { return x; }").await;

    let r = t.execute("Handler", &["1", "2", "3"], &[]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert!(r.body.contains("limits.max_inputs"), "{}", r.body);

    let one =
        serde_json::json!({"version_string": "v1", "handler_name": "Handler", "input": ["1"]});
    let body = serde_json::json!({"requests": [one, one, one]}).to_string();
    let r = t.post("/v1/batch", Some(EXEC), &[], body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert!(r.body.contains("limits.max_batch"), "{}", r.body);
    let r = t
        .post("/v1/batch", Some(EXEC), &[], r#"{"requests":[]}"#)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    let body = serde_json::json!({"version_string": "v1", "handler_name": "Handler",
        "metadata": {"a": "1", "b": "2"}})
    .to_string();
    let r = t.post("/v1/execute", Some(EXEC), &[], body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert!(r.body.contains("limits.max_metadata_entries"), "{}", r.body);

    // A body over the limit, declared and sent.
    let body = format!(
        "{{\"version_string\":\"v1\",\"handler_name\":\"Handler\",\"id\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let r = t.post("/v1/execute", Some(EXEC), &[], body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert!(r.body.contains("limits.max_body_bytes"), "{}", r.body);

    // A client that claims 1 GB is answered 413 before it sends it.
    let head = format!(
        "POST /v1/execute HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EXEC}\r\ncontent-length: 1073741824\r\n\r\n{{"
    );
    let mut raw = sent(t.addr, head.as_bytes()).await;
    let got = String::from_utf8_lossy(&closed_by_server(&mut raw).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");

    // A chunked body with no length grows past the limit: cut off at the limit.
    let head = format!(
        "POST /v1/execute HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EXEC}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut raw = sent(t.addr, head.as_bytes()).await;
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "y".repeat(16 * 1024));
    for _ in 0..8 {
        if raw.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let got = String::from_utf8_lossy(&closed_by_server(&mut raw).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");

    t.execute_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_idle_and_connection_limits() {
    let mut s = settings();
    s.limits.header_read_timeout = Duration::from_millis(300);
    s.limits.idle_timeout = Duration::from_millis(300);
    s.limits.max_connections = 3;
    let t = TestServer::start(s).await;

    // A head that never ends is cut off.
    let mut slow = sent(
        t.addr,
        b"POST /v1/execute HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n",
    )
    .await;
    closed_by_server(&mut slow).await;

    // A kept-alive connection with no next request is closed once idle.
    let mut idle = sent(t.addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let got = String::from_utf8_lossy(&closed_by_server(&mut idle).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");

    // A head that grows past what the server buffers is cut off (431, or closed), not kept.
    let mut big = TcpStream::connect(t.addr).await.unwrap();
    let _ = big.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await;
    let line = format!("x-big: {}\r\n", "z".repeat(1000));
    for _ in 0..1024 {
        if big.write_all(line.as_bytes()).await.is_err() {
            break;
        }
    }
    let got = String::from_utf8_lossy(&closed_by_server(&mut big).await).into_owned();
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 431"), "{got}");

    // A connection the server closes is no longer counted once its client sees the close,
    // but one the client closes (the start's requests) is counted until the server reads its
    // end: wait until only the metrics request's own is open.
    connections_open_fall_to_one(&t).await;

    // max_connections: three held open (each proven accepted by an answer), the fourth is
    // closed at once without an answer.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = sent(t.addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(c);
    }
    let mut extra = TcpStream::connect(t.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    assert!(closed_by_server(&mut extra).await.is_empty());
    // The held ones go idle and are closed, and the server takes new connections again.
    for mut c in held {
        closed_by_server(&mut c).await;
    }
    let open = connections_open_fall_to_one(&t).await;
    assert!(
        open.contains("roma_connections_refused_total 1\n"),
        "{open}"
    );
}

/// Waits until `/metrics` counts one connection open (its own); returns that page.
async fn connections_open_fall_to_one(t: &TestServer) -> String {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let r = t.get("/metrics").await.body;
            if r.contains("roma_connections_open 1\n") {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the closed connections are no longer counted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_connections_do_not_stop_the_server() {
    let mut s = settings();
    s.limits.max_connections = 64;
    let t = TestServer::start(s).await;
    let mut conns = Vec::new();
    for _ in 0..200 {
        conns.push(TcpStream::connect(t.addr).await.unwrap());
    }
    drop(conns);
    // The server lets a closed connection go when it reads its EOF; until it has read them
    // all it may still be at its limit and turn a new connection away. It must answer again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = healthz_once(t.addr).await {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never answered again after its idle connections closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(status, "200");
}

/// The status code of `GET /healthz` on a new connection, or `None` if the server turned the
/// connection away (closed it without an answer).
async fn healthz_once(addr: std::net::SocketAddr) -> Option<String> {
    let mut c = TcpStream::connect(addr).await.ok()?;
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, c.read_to_end(&mut answer))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .map(|rest| rest.chars().take(3).collect())
}
