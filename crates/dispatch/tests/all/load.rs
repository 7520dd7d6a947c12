//! Loads: broadcast to every worker, one callback, failures, timeout, replacement, eviction.

use crate::fake::{Harness, PATIENCE, code, counted, load_ok, recv, req, sink};
use crate::{callbacks_after_drop, config, fresh, hold, loaded, start};
use roma_core::ErrorKind;
use roma_dispatch::DispatcherConfig;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn a_load_reaches_every_worker_before_its_callback() {
    let (h, d) = fresh::<()>(config(3, 0));
    let (tx, rx) = mpsc::channel();
    d.load(code("v1", "js"), sink(&tx)).unwrap();
    let r = recv(&rx).unwrap();
    assert_eq!(r.id, "load-v1");
    assert!(r.metrics.contains_key(roma_core::metrics::DURATION_MS));
    for w in 0..3 {
        assert_eq!(h.loads(w, 1), vec!["v1"], "worker {w}");
    }
    assert_eq!(d.stats().cached_versions, 1);
}

#[test]
fn the_callback_waits_for_the_slowest_worker() {
    let (h, d) = loaded::<()>(config(2, 0));
    let (etx, erx) = mpsc::channel();
    hold(&h, &d, "g", &etx, 0);
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    d.load(code("v2", "js"), counted(&calls, &tx)).unwrap();
    h.wait_loaded(1, 1, "v2");
    assert!(rx.try_recv().is_err(), "worker 0 has not answered yet");
    h.open("g");
    assert!(recv(&erx).is_ok());
    assert!(recv(&rx).is_ok());
    assert_eq!(h.loads(0, 1), vec!["v1", "v2"]);
    assert_eq!(callbacks_after_drop(d, &calls), 1);
}

#[test]
fn a_failure_on_one_worker_fails_the_load_and_uncaches_the_version() {
    let (h, d) = fresh::<()>(config(3, 0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    d.load(code("v1", "bad-on-1"), counted(&calls, &tx))
        .unwrap();
    let err = recv(&rx).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Compile);
    for w in 0..3 {
        assert_eq!(h.loads(w, 1), vec!["v1"], "every worker was tried");
    }
    assert_eq!(d.stats().cached_versions, 0);
    let (etx, _erx) = mpsc::channel();
    let refused = d.execute(req("v1", "echo", &[]), sink(&etx)).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::VersionNotFound);
    // A failure everywhere is still one callback.
    d.load(code("v2", "bad"), counted(&calls, &tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Compile);
    assert_eq!(callbacks_after_drop(d, &calls), 2);
}

#[test]
fn a_failed_reload_keeps_no_stale_copy_and_a_good_one_replaces() {
    let (_h, d) = fresh::<()>(config(2, 0));
    let (tx, rx) = mpsc::channel();
    load_ok(&d, code("v1", "first"));
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|first|");
    load_ok(&d, code("v1", "second"));
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|second|");
    d.load(code("v1", "bad"), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Compile);
    let err = d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VersionNotFound);
}

#[test]
fn a_load_that_takes_too_long_times_out_and_still_completes() {
    let (h, d) = loaded::<()>(DispatcherConfig {
        load_timeout: Duration::from_millis(20),
        ..config(2, 0)
    });
    let (etx, erx) = mpsc::channel();
    hold(&h, &d, "g", &etx, 0);
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    d.load(code("v2", "js"), counted(&calls, &tx)).unwrap();
    let err = recv(&rx).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    h.open("g");
    assert!(recv(&erx).is_ok());
    h.wait_loaded(0, 1, "v2");
    // The load finished in the background; v2 is served.
    d.execute(req("v2", "echo", &[]), sink(&etx)).unwrap();
    assert_eq!(recv(&erx).unwrap().resp, "v2|js|");
    assert_eq!(callbacks_after_drop(d, &calls), 1, "no second callback");
}

#[test]
fn loads_past_the_cache_size_evict_the_least_recently_used() {
    let h = Harness::new();
    let cfg = DispatcherConfig {
        code_version_cache_size: 2,
        ..config(1, 0)
    };
    let d = start::<()>(&h, cfg);
    let (tx, rx) = mpsc::channel();
    load_ok(&d, code("a", "js"));
    load_ok(&d, code("b", "js"));
    d.execute(req("a", "echo", &[]), sink(&tx)).unwrap(); // a is now the most recent
    assert!(recv(&rx).is_ok());
    load_ok(&d, code("c", "js"));
    let err = d.execute(req("b", "echo", &[]), sink(&tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VersionNotFound);
    for v in ["a", "c"] {
        d.execute(req(v, "echo", &[]), sink(&tx)).unwrap();
        assert!(recv(&rx).is_ok());
    }
    assert_eq!(d.stats().cached_versions, 2);
}

#[test]
fn invalid_code_is_refused_at_once() {
    let (h, d) = fresh::<()>(config(1, 0));
    let (tx, rx) = mpsc::channel();
    let err = d.load(code("", "js"), sink(&tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = d.load(code("v", ""), sink(&tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    drop(tx);
    assert!(rx.recv_timeout(PATIENCE).is_err(), "no callback");
    drop(d);
    assert!(h.loads(0, 1).is_empty());
}

#[test]
fn an_execution_accepted_after_a_load_runs_the_new_version() {
    let (_h, d) = fresh::<()>(config(2, 0));
    load_ok(&d, code("v1", "old"));
    let (tx, rx) = mpsc::channel();
    let (ltx, lrx) = mpsc::channel();
    // Submitted right after the load is accepted, before its callback: loads go first.
    d.load(code("v1", "new"), sink(&ltx)).unwrap();
    for _ in 0..4 {
        d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    }
    for _ in 0..4 {
        assert_eq!(recv(&rx).unwrap().resp, "v1|new|");
    }
    assert!(recv(&lrx).is_ok());
}

/// Roma reports the first worker to finish and loses a failure on another; here a failure on
/// any worker fails the load, whichever finishes first.
#[test]
fn a_failure_is_reported_whichever_worker_finishes_first() {
    for failing in [0, 1] {
        let (h, d) = loaded::<()>(config(2, 0));
        let (etx, erx) = mpsc::channel();
        // Worker 1 is blocked, so worker 0 answers the load first.
        hold(&h, &d, "x", &etx, 0);
        hold(&h, &d, "g", &etx, 1);
        h.open("x");
        assert!(recv(&erx).is_ok());
        let calls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        d.load(
            code("v2", &format!("bad-on-{failing}")),
            counted(&calls, &tx),
        )
        .unwrap();
        h.wait_loaded(0, 1, "v2");
        h.open("g");
        assert!(recv(&erx).is_ok());
        let err = recv(&rx).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Compile, "worker {failing} failed");
        assert_eq!(callbacks_after_drop(d, &calls), 1);
    }
}
