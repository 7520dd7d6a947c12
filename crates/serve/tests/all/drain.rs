//! A drain answers every accepted request exactly once.

use crate::common::*;
use hyper::StatusCode;
use std::time::Duration;

fn work(addr: std::net::SocketAddr, ms: u64) -> tokio::task::JoinHandle<Reply> {
    let body = serde_json::json!({"version_string": "v1", "handler_name": "SignalThenWork",
        "input": [ms.to_string()]});
    spawn_execute(addr, body)
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
    t.wait_metric("roma_in_flight", 3.0).await;
    t.server.as_ref().unwrap().drain();
    let r = t.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = t.execute("Handler", &["1"], &[]).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
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
    let [running, queued] = t.one_running_one_queued("2s").await;
    t.drain().await;
    // The running one ends at its timeout, the queued one is cancelled: one answer each.
    let r = running.await.unwrap();
    r.assert_error(StatusCode::GATEWAY_TIMEOUT, "timeout");
    let r = queued.await.unwrap();
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "cancelled");
}
