//! Executions: the happy path, metrics, refusals, queue bounds, placement and stealing.

use crate::fake::{MetaLog, code, recv, req, sink};
use crate::{Logged, Shared, config, fresh, hold, loaded, logged, shared};
use roma_core::{ErrorKind, metrics};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

#[test]
fn echo_round_trip_with_host_metrics() {
    let (_h, d) = loaded::<()>(config(1, 0));
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "echo", &["1", "2"]), sink(&tx))
        .unwrap();
    let r = recv(&rx).unwrap();
    assert_eq!(r.id, "echo-1,2");
    assert_eq!(r.resp, "v1|js|1,2");
    assert_eq!(
        r.metrics.get("fake.metric"),
        Some(&1.5),
        "backend metrics are kept"
    );
    assert_eq!(r.metrics.get(metrics::WORKER_INDEX), Some(&0.0));
    let wait = r.metrics[metrics::WAIT_TIME_MS];
    let total = r.metrics[metrics::DURATION_MS];
    assert!(wait >= 0.0 && total >= wait, "wait {wait} total {total}");
    // The host adds only keys named in `roma_core::metrics`.
    let known = [
        metrics::DURATION_MS,
        metrics::WAIT_TIME_MS,
        metrics::CODE_RUN_DURATION_MS,
        metrics::INPUT_PARSING_MS,
        metrics::HANDLER_CALL_MS,
        metrics::CONTEXT_CREATION_MS,
        metrics::WORKER_INDEX,
    ];
    for k in r.metrics.keys().filter(|k| k.as_str() != "fake.metric") {
        assert!(
            known.contains(&k.as_str()) || metrics::HOPS.contains(&k.as_str()),
            "unknown metric key {k}"
        );
    }
    // The fake reports no backend hops: the slot's and the callback's are there, in order.
    let taken = r.metrics[metrics::HOP_TAKEN_MS];
    let called = r.metrics[metrics::HOP_CALLBACK_MS];
    assert!(
        taken == wait && taken <= total && total <= called,
        "{:?}",
        r.metrics
    );
}

#[test]
fn backend_errors_reach_the_callback_without_a_respawn() {
    let (h, d) = loaded::<()>(config(1, 0));
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "fail", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Execution);
    d.execute(req("v1", "nope", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::HandlerNotFound);
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    assert!(recv(&rx).is_ok());
    assert_eq!(h.spawns(0), 1);
}

#[test]
fn unknown_version_is_refused_at_once() {
    let (h, d) = fresh::<crate::fake::Meta>(config(2, 0));
    let log = MetaLog::new();
    let (tx, _rx) = mpsc::channel();
    let err = d
        .execute(log.req(1, req("nope", "echo", &[])), log.sink(1, &tx))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VersionNotFound);
    log.assert_refused(1);
    assert!(h.execs().is_empty(), "nothing reached a worker");
}

#[test]
fn invalid_requests_are_refused_at_once() {
    let (_h, d) = loaded::<()>(config(1, 0));
    let (tx, _rx) = mpsc::channel();
    let mut bad_handler = req("v1", "a..b", &[]);
    bad_handler.id = "x".into();
    let err = d.execute(bad_handler, sink(&tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let mut bad_tag = req("v1", "echo", &[]);
    bad_tag
        .tags
        .insert(roma_core::TIMEOUT_DURATION_TAG.into(), "soon".into());
    let err = d.execute(bad_tag, sink(&tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn queue_full_at_capacity_refuses_at_once_and_drops_the_request() {
    // Occupy both workers; running requests do not count against the bound.
    let Logged { h, d, log, tx, rx } = logged(config(2, 2), &[(100, "block:a"), (101, "block:b")]);
    for tag in 0..4 {
        log.submit(&d, tag, "echo", &tx);
    }
    let s = d.stats();
    assert_eq!((s.queued, s.capacity), (4, 4));
    let err = d
        .execute(log.req(4, req("v1", "echo", &[])), log.sink(4, &tx))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QueueFull);
    log.assert_refused(4);
    assert_eq!(d.stats().queued, 4);
    h.open("a");
    h.open("b");
    for _ in 0..6 {
        assert!(recv(&rx).is_ok());
    }
    for tag in [0, 1, 2, 3, 100, 101] {
        log.assert_answered_once(tag);
    }
    assert!(
        rx.try_recv().is_err(),
        "no callback for the refused request"
    );
    // With room again, the next request is accepted.
    log.submit(&d, 5, "echo", &tx);
    log.assert_answered_once(5);
}

#[test]
fn new_work_goes_to_the_least_busy_worker() {
    let (h, d) = loaded::<()>(config(3, 0));
    let (tx, rx) = mpsc::channel();
    // Ties go to the lowest index.
    hold(&h, &d, "a", &tx, 0);
    hold(&h, &d, "b", &tx, 1);
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    let r = recv(&rx).unwrap();
    assert_eq!(r.metrics[metrics::WORKER_INDEX], 2.0, "the idle worker");
    hold(&h, &d, "c", &tx, 2);
    // Every worker runs one request; queued ones spread evenly, lowest index first.
    for _ in 0..5 {
        d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    }
    let queued: Vec<usize> = d.stats().workers.iter().map(|w| w.queued).collect();
    assert_eq!(queued, vec![2, 2, 1]);
    for g in ["a", "b", "c"] {
        h.open(g);
    }
    for _ in 0..8 {
        assert!(recv(&rx).is_ok());
    }
}

#[test]
fn an_idle_worker_steals_from_a_busy_one() {
    let (h, d) = loaded::<()>(config(2, 0));
    let (tx, rx) = mpsc::channel();
    hold(&h, &d, "a", &tx, 0);
    hold(&h, &d, "b", &tx, 1);
    for i in 0..3 {
        d.execute(req("v1", "echo", &[&i.to_string()]), sink(&tx))
            .unwrap();
    }
    let queued: Vec<usize> = d.stats().workers.iter().map(|w| w.queued).collect();
    assert_eq!(queued, vec![2, 1]);
    // Worker 1 frees up while worker 0 stays blocked: it runs its own request, then steals
    // worker 0's two.
    h.open("b");
    let mut ran = Vec::new();
    for _ in 0..4 {
        let r = recv(&rx).unwrap();
        if r.resp != "released b" {
            ran.push((r.metrics[metrics::WORKER_INDEX], r.resp));
        }
    }
    // Its own request first, then the stolen ones, oldest first.
    let expected: Vec<(f64, String)> = ["1", "0", "2"]
        .iter()
        .map(|i| (1.0, format!("v1|js|{i}")))
        .collect();
    assert_eq!(ran, expected);
    assert_eq!(d.stats().queued, 0);
    h.open("a");
    assert_eq!(recv(&rx).unwrap().resp, "released a");
}

#[test]
fn a_panicking_callback_is_contained() {
    let (h, d) = loaded::<()>(config(1, 0));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    d.execute(req("v1", "echo", &[]), move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        panic!("callback bug");
    })
    .unwrap();
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "echo", &["after"]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|after");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(h.spawns(0), 1, "the slot thread and its worker survived");
}

#[test]
fn a_callback_may_submit_follow_up_work() {
    let Shared { h: _h, d, tx, rx } = shared(config(1, 0));
    let d2 = Arc::clone(&d);
    let tx2 = tx.clone();
    d.execute(req("v1", "echo", &["first"]), move |r| {
        let _ = tx2.send(r);
        d2.execute(req("v1", "echo", &["second"]), sink(&tx2))
            .expect("follow-up accepted");
        let _ = d2.stats();
    })
    .unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|first");
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|second");
    drop(tx);
}

#[test]
fn metadata_lives_until_its_callback_returned() {
    let (_h, d) = loaded::<crate::fake::Meta>(config(1, 0));
    let log = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    for (tag, handler) in [(1, "echo"), (2, "fail"), (3, "crash"), (4, "panic")] {
        d.execute(log.req(tag, req("v1", handler, &[])), log.sink(tag, &tx))
            .unwrap();
        recv(&rx).ok();
        log.assert_answered_once(tag);
    }
}

#[test]
fn async_forms_resolve() {
    use crate::fake::block_on;
    let (_h, d) = fresh::<()>(config(2, 1));
    let loaded = block_on(d.load_async(code("v1", "js"))).unwrap();
    assert_eq!(loaded.id, "load-v1");
    let r = block_on(d.execute_async(req("v1", "echo", &["x"]))).unwrap();
    assert_eq!(r.resp, "v1|js|x");
    let f = d.execute_async(req("v1", "fail", &[]));
    assert!(f.token().is_some());
    assert_eq!(block_on(f).unwrap_err().kind(), ErrorKind::Execution);
    let rs =
        block_on(d.batch_execute_async(vec![req("v1", "echo", &["a"]), req("v1", "echo", &["b"])]))
            .unwrap();
    let resps: Vec<_> = rs.into_iter().map(|r| r.unwrap().resp).collect();
    assert_eq!(resps, vec!["v1|js|a", "v1|js|b"]);
    // Refusals resolve at once.
    let refused = d.execute_async(req("missing", "echo", &[]));
    assert!(refused.token().is_none());
    assert_eq!(
        block_on(refused).unwrap_err().kind(),
        ErrorKind::VersionNotFound
    );
    let bad_load = block_on(d.load_async(code("", "js"))).unwrap_err();
    assert_eq!(bad_load.kind(), ErrorKind::InvalidArgument);
    let too_big = block_on(d.batch_execute_async(vec![req("v1", "echo", &[]); 3])).unwrap_err();
    assert_eq!(too_big.kind(), ErrorKind::QueueFull);
    let failed_load = block_on(d.load_async(code("v2", "bad"))).unwrap_err();
    assert_eq!(failed_load.kind(), ErrorKind::Compile);
}
