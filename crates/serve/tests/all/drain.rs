//! A drain answers every accepted request exactly once.

use crate::common::*;
use hyper::StatusCode;
use std::time::Duration;

fn work(addr: std::net::SocketAddr, ms: u64) -> tokio::task::JoinHandle<Reply> {
    tokio::spawn(async move {
        let body = serde_json::json!({"version_string": "v1", "handler_name": "SignalThenWork",
            "input": [ms.to_string()]})
        .to_string();
        request(addr, "POST", "/v1/execute", Some(EXEC), &[], body.into()).await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_lets_requests_in_flight_finish_and_refuses_new_ones() {
    let mut s = settings();
    s.service.workers = Some(2);
    s.drain_grace = Duration::from_secs(30);
    let mut t = TestServer::with_code(s).await;
    let in_flight: Vec<_> = (0..2).map(|_| work(t.addr, 400)).collect();
    t.wait_started(2).await;
    // A third, queued behind them.
    let queued = work(t.addr, 10);
    tokio::time::timeout(PATIENCE, async {
        while t.metric("roma_in_flight").await != Some(3.0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    t.server.as_ref().unwrap().drain();
    let r = t.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = t.execute("Handler", &["1"], &[]).await;
    assert_eq!(
        (r.status, r.kind().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{}",
        r.body
    );
    for h in in_flight.into_iter().chain([queued]) {
        let r = h.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["resp"], "\"done\"");
    }
    t.drain().await;
    assert!(
        tokio::net::TcpStream::connect(t.addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_past_the_grace_answers_every_request() {
    let mut s = settings();
    s.drain_grace = Duration::from_millis(100);
    let mut t = TestServer::with_code(s).await;
    let spin = |addr| {
        tokio::spawn(async move {
            let body = serde_json::json!({"version_string": "v1", "handler_name": "Signal",
                "tags": {"TimeoutDuration": "2s"}})
            .to_string();
            request(addr, "POST", "/v1/execute", Some(EXEC), &[], body.into()).await
        })
    };
    let running = spin(t.addr);
    t.wait_started(1).await;
    let queued = spin(t.addr);
    tokio::time::timeout(PATIENCE, async {
        while t.metric("roma_queue_depth").await != Some(1.0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    t.drain().await;
    // The running one ends at its timeout, the queued one is cancelled: one answer each.
    let r = running.await.unwrap();
    assert_eq!(
        (r.status, r.kind().as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        "{}",
        r.body
    );
    let r = queued.await.unwrap();
    assert_eq!(
        (r.status, r.kind().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "cancelled"),
        "{}",
        r.body
    );
}
