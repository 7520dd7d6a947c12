//! Every method, every error mapping, auth, metadata and metrics.

use crate::common::*;
use hyper::StatusCode;
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_execute_batch_health_and_request_ids() {
    let t = TestServer::start(settings()).await;
    assert_eq!(t.get("/healthz").await.status, StatusCode::OK);
    let r = t.get("/readyz").await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no code loaded yet"
    );
    assert!(r.body.contains("no code loaded"), "{}", r.body);

    let r = t.load("v1", JS).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["id"], "v1");
    assert_eq!(t.get("/readyz").await.status, StatusCode::OK);

    let r = t
        .execute(
            "Handler",
            &[r#""Foobar""#],
            &[("x-request-id", "client-id.7")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let j = r.json();
    assert_eq!(j["id"], "r1");
    assert_eq!(j["resp"], r#""Hello world! \"Foobar\"""#);
    assert!(
        j["metrics"]["roma.execution.duration_ms"].is_number(),
        "{j}"
    );
    assert_eq!(r.headers["x-request-id"], "client-id.7");
    assert_eq!(j["request_id"], "client-id.7");
    // An id that is not a short token is replaced by one of the server's.
    let r = t
        .execute("Handler", &["1"], &[("x-request-id", "bad id!")])
        .await;
    let rid = r.headers["x-request-id"].to_str().unwrap().to_string();
    assert!(!rid.is_empty() && rid != "bad id!");
    assert_eq!(r.json()["request_id"], rid.as_str());

    let body = serde_json::json!({"requests": [
        {"id": "a", "version_string": "v1", "handler_name": "Handler", "input": ["1"]},
        {"id": "b", "version_string": "v1", "handler_name": "Throw"},
    ]})
    .to_string();
    let r = t.post("/v1/batch", Some(EXEC), &[], body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let j = r.json();
    assert_eq!(j["responses"][0]["id"], "a");
    assert_eq!(j["responses"][0]["resp"], r#""Hello world! 1""#);
    assert_eq!(j["responses"][1]["error"]["kind"], "execution");
}

/// Version, handler, inputs, headers, and the status and kind expected.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    StatusCode,
    &'a str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_kinds_map_to_statuses() {
    let t = TestServer::with_code(settings()).await;
    let cases: &[Case] = &[
        (
            "v2",
            "Handler",
            &["1"],
            &[],
            StatusCode::NOT_FOUND,
            "version_not_found",
        ),
        (
            "v1",
            "Nope",
            &["1"],
            &[],
            StatusCode::NOT_FOUND,
            "handler_not_found",
        ),
        (
            "v1",
            "Handler",
            &["{not json"],
            &[],
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
        (
            "v1",
            "Throw",
            &[],
            &[],
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution",
        ),
        (
            "v1",
            "Spin",
            &[],
            &[("x-roma-deadline-ms", "200")],
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
        ),
        (
            "v1",
            "Handler",
            &[],
            &[("x-roma-deadline-ms", "0")],
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
        ),
        (
            "v1",
            "Handler",
            &[],
            &[("x-roma-deadline-ms", "soon")],
            StatusCode::BAD_REQUEST,
            "invalid_argument",
        ),
    ];
    for (version, handler, input, headers, status, kind) in cases {
        let body = serde_json::json!({
            "version_string": version, "handler_name": handler, "input": input,
        })
        .to_string();
        let r = t.post("/v1/execute", Some(EXEC), headers, body).await;
        r.assert_error_for(handler, *status, kind);
        // The error body names the request as the header does.
        assert_eq!(
            r.json()["request_id"].as_str(),
            r.headers["x-request-id"].to_str().ok(),
            "{}",
            r.body
        );
    }
    // The client's deadline caps the 5 s default: the timeout named is the deadline's.
    let r = t
        .execute("Spin", &[], &[("x-roma-deadline-ms", "200")])
        .await;
    assert!(r.body.contains("200ms"), "{}", r.body);
    // A load that does not compile.
    let r = t.load("v3", "function (").await;
    r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "compile");
    // Malformed JSON, an unknown field, bad base64, a missing field.
    for body in [
        "{\"version_string\": ",
        r#"{"version_string":"v1","handler_name":"Handler","inptu":[]}"#,
        "[]",
        "",
    ] {
        let r = t
            .post("/v1/execute", Some(EXEC), &[], body.to_string())
            .await;
        r.assert_error_for(body, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let r = t
        .post(
            "/v1/code",
            Some(LOAD),
            &[],
            r#"{"version_string":"w","wasm":"@@@"}"#,
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    assert!(r.body.contains("base64"), "{}", r.body);
    // Still serving.
    t.execute_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_full_is_429_with_retry_after() {
    let mut s = settings();
    s.service.queue_max_items = Some(1);
    let t = TestServer::with_code(s).await;
    let [running, queued] = t.one_running_one_queued("1s").await;
    let r = t.execute("Handler", &["1"], &[]).await;
    r.assert_error(StatusCode::TOO_MANY_REQUESTS, "queue_full");
    assert_eq!(r.headers["retry-after"], "1");
    for h in [running, queued] {
        let r = h.await.unwrap();
        assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refusals_do_nothing_and_tokens_rotate() {
    let t = TestServer::start(settings()).await;
    let code = serde_json::json!({"version_string": "v1", "js": JS}).to_string();
    for token in [None, Some(EXEC), Some("wrong"), Some("")] {
        let r = t.post("/v1/code", token, &[], code.clone()).await;
        r.assert_error_for(
            format!("{token:?}"),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
        assert_eq!(r.headers["www-authenticate"], "Bearer");
    }
    // Nothing was loaded.
    assert_eq!(
        t.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    t.load_ok("v1", JS).await;
    let exec = serde_json::json!({"version_string": "v1", "handler_name": "Handler"}).to_string();
    for token in [None, Some(LOAD), Some("exec-token-456")] {
        let r = t.post("/v1/execute", token, &[], exec.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
        let r = t
            .post(
                "/v1/batch",
                token,
                &[],
                format!("{{\"requests\":[{exec}]}}"),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    // Rotation: the new token works once re-read, the old one no more.
    std::fs::write(t.dir.join("exec.tok"), "exec-rotated").unwrap();
    assert_eq!(
        t.post("/v1/execute", Some(EXEC), &[], exec.clone())
            .await
            .status,
        StatusCode::OK
    );
    t.server.as_ref().unwrap().reload_tokens().unwrap();
    assert_eq!(
        t.post("/v1/execute", Some(EXEC), &[], exec.clone())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.post("/v1/execute", Some("exec-rotated"), &[], exec.clone())
            .await
            .status,
        StatusCode::OK
    );
    // A bad file on reload keeps the tokens in force.
    std::fs::write(t.dir.join("exec.tok"), "").unwrap();
    assert!(t.server.as_ref().unwrap().reload_tokens().is_err());
    assert_eq!(
        t.post("/v1/execute", Some("exec-rotated"), &[], exec)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_reaches_host_functions() {
    let t = TestServer::with_code(settings()).await;
    let body = serde_json::json!({"version_string": "v1", "handler_name": "Meta",
        "metadata": {"tenant": "acme"}})
    .to_string();
    let r = t.post("/v1/execute", Some(EXEC), &[], body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["resp"], r#""acme/true""#);
    // The code itself sees no metadata: it is not among its globals or arguments.
    let js = r#"function Look(a) { return [typeof metadata, typeof a, JSON.stringify(globalThis).includes("acme")].join(","); }"#;
    t.load_ok("v9", js).await;
    let body = serde_json::json!({"version_string": "v9", "handler_name": "Look",
        "metadata": {"tenant": "acme"}})
    .to_string();
    let r = t.post("/v1/execute", Some(EXEC), &[], body).await;
    assert_eq!(
        r.json()["resp"],
        r#""undefined,undefined,false""#,
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_known_sequence() {
    let t = TestServer::with_code(settings()).await;
    for _ in 0..3 {
        t.execute_ok().await;
    }
    assert_eq!(
        t.execute("Throw", &[], &[]).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let body = serde_json::json!({"version_string": "nope", "handler_name": "H"}).to_string();
    assert_eq!(
        t.post("/v1/execute", Some(EXEC), &[], body).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.post("/v1/execute", None, &[], "{}").await.status,
        StatusCode::UNAUTHORIZED
    );
    let m = |p: &'static str| t.metric(p);
    assert_eq!(
        m("roma_requests_total{endpoint=\"execute\",code_id=\"v1\",outcome=\"ok\"}").await,
        Some(3.0)
    );
    assert_eq!(
        m("roma_requests_total{endpoint=\"execute\",code_id=\"v1\",outcome=\"execution\"}").await,
        Some(1.0)
    );
    assert_eq!(m("roma_requests_total{endpoint=\"execute\",code_id=\"other\",outcome=\"version_not_found\"}").await, Some(1.0));
    assert_eq!(m("roma_requests_total{endpoint=\"execute\",code_id=\"other\",outcome=\"unauthenticated\"}").await, Some(1.0));
    assert_eq!(
        m("roma_requests_total{endpoint=\"code\",code_id=\"v1\",outcome=\"ok\"}").await,
        Some(1.0)
    );
    assert_eq!(m("roma_loads_total{outcome=\"ok\"}").await, Some(1.0));
    assert_eq!(
        m("roma_request_duration_seconds_count{endpoint=\"execute\"}").await,
        Some(6.0)
    );
    assert_eq!(m("roma_workers{health=\"up\"}").await, Some(1.0));
    assert_eq!(m("roma_queue_depth").await, Some(0.0));
    // The metrics request itself is not in flight through the API.
    assert_eq!(m("roma_in_flight").await, Some(0.0));
}

/// An execution may run on its connection's own thread (the connection is alone there and a
/// worker is idle); other connections must not wait for it: new ones go to another thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_on_its_connection_thread_holds_up_no_other_connection() {
    let mut s = settings();
    s.threads = Some(2);
    s.service.workers = Some(2);
    let t = TestServer::with_code(s).await;
    let body = serde_json::json!({"version_string": "v1", "handler_name": "Signal",
        "tags": {"TimeoutDuration": "5s"}});
    let spinning = spawn_execute(t.addr, body);
    t.wait_started(1).await;
    // While it spins (until its timeout), new connections are served: three kept open (the
    // second would tie with the spinning one's thread for the fewest connections), the
    // metrics and an execution on the other worker.
    let mut kept = Vec::new();
    for _ in 0..3 {
        let mut c = sent(t.addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(PATIENCE, c.read(&mut buf))
            .await
            .expect("a kept connection is answered")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        kept.push(c);
    }
    assert_eq!(t.metric("roma_in_flight").await, Some(1.0));
    t.execute_ok().await;
    assert!(
        !spinning.is_finished(),
        "answered before the spinning execution ended"
    );
    let r = spinning.await.unwrap();
    r.assert_error(StatusCode::GATEWAY_TIMEOUT, "timeout");
    t.execute_ok().await;
}
