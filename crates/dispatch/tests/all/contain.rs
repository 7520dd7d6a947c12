//! Backend faults the dispatcher must contain: panics in any backend method or `Drop`, workers
//! that die without saying so, and metadata whose `Drop` panics.

use crate::fake::{Harness, recv, req, run, sink, with_meta};
use crate::{config, health_is, loaded, wait_stats, with_backoff};
use roma_core::ErrorKind;
use roma_dispatch::{Dispatcher, WorkerHealth};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

/// On a one-slot dispatcher, `handler` fails with `kind` and the next request is served;
/// returns the harness and the dispatcher for the test's checks of the backends.
fn fails_then_serves(handler: &str, kind: ErrorKind) -> (Arc<Harness>, Dispatcher<()>) {
    let (h, d) = loaded::<()>(config(1, 0));
    let err = run(&d, req("v1", handler, &[])).unwrap_err();
    assert_eq!(err.kind(), kind, "{handler}: {err}");
    assert_eq!(run(&d, req("v1", "echo", &[])).unwrap().resp, "v1|js|");
    (h, d)
}

#[test]
fn a_panicking_is_alive_counts_as_dead() {
    let (h, _d) = fails_then_serves("panic-alive", ErrorKind::Execution);
    assert_eq!(h.spawns(0), 2);
}

#[test]
fn a_failure_that_leaves_the_worker_dead_replaces_it() {
    let (h, _d) = fails_then_serves("dead-fail", ErrorKind::Execution);
    assert_eq!(h.loads(0, 2), vec!["v1"]);
}

#[test]
fn a_worker_that_died_after_answering_is_replaced_when_idle() {
    let (h, d) = loaded::<()>(config(1, 0));
    assert!(
        run(&d, req("v1", "zombie", &[])).is_ok(),
        "its answer stands"
    );
    h.wait_spawned(0, 2);
    assert_eq!(run(&d, req("v1", "echo", &[])).unwrap().resp, "v1|js|");
}

#[test]
fn a_worker_killed_while_idle_is_replaced_before_its_next_request() {
    let (h, d) = loaded::<()>(config(1, 0));
    assert!(run(&d, req("v1", "echo", &["before"])).is_ok());
    h.kill(0);
    assert_eq!(
        run(&d, req("v1", "echo", &["after"])).unwrap().resp,
        "v1|js|after"
    );
    assert_eq!(h.spawns(0), 2);
    assert_eq!(h.loads(0, 2), vec!["v1"]);
}

#[test]
fn a_panic_in_a_backends_drop_is_contained() {
    let (h, _d) = fails_then_serves("crash-panic-drop", ErrorKind::WorkerCrashed);
    assert_eq!(h.spawns(0), 2);
}

#[test]
fn a_panicking_interrupter_fails_startup() {
    let h = Harness::new();
    h.panic_interrupters.store(1, Ordering::SeqCst);
    let err = Dispatcher::<()>::new(config(1, 0), h.factory()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
}

#[test]
fn a_panicking_interrupter_fails_a_respawn_attempt_which_is_retried() {
    let ms = Duration::from_millis(1);
    let (h, d) = loaded::<()>(with_backoff(1, ms, ms));
    h.panic_interrupters.store(1, Ordering::SeqCst);
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "crash", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    h.wait_spawned(0, 3);
    wait_stats(&d, "slot 0 up", |s| health_is(s, 0, WorkerHealth::Up));
    // The working interrupter is the new backend's: cancel of a running request works.
    let token = d.execute(req("v1", "loop", &[]), sink(&tx)).unwrap();
    h.wait_started();
    assert!(d.cancel(&token));
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Cancelled);
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("metadata Drop bug");
    }
}

#[test]
fn a_panic_in_a_metadata_drop_is_contained() {
    let (h, d) = loaded::<Option<PanicOnDrop>>(config(1, 0));
    let (tx, rx) = mpsc::channel();
    d.execute(
        with_meta(req("v1", "echo", &["1"]), Some(PanicOnDrop)),
        sink(&tx),
    )
    .unwrap();
    assert!(recv(&rx).is_ok());
    d.execute(with_meta(req("v1", "echo", &["2"]), None), sink(&tx))
        .unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|2");
    assert_eq!(h.spawns(0), 1);
}
