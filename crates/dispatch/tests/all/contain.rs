//! Backend faults the dispatcher must contain: panics in any backend method or `Drop`, workers
//! that die without saying so, and metadata whose `Drop` panics.

use crate::fake::{Event, Harness, code, load_ok, recv, req, sink, with_meta};
use crate::{config, health_is, start, wait_stats};
use roma_core::ErrorKind;
use roma_dispatch::{Dispatcher, DispatcherConfig, WorkerHealth};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

fn gen2(h: &Harness, worker: usize) {
    h.wait_events("a second backend", |e| {
        e.contains(&Event::Spawn {
            worker,
            generation: 2,
        })
    });
}

#[test]
fn a_panicking_is_alive_counts_as_dead() {
    let h = Harness::new();
    let d = start::<()>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "panic-alive", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Execution);
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|");
    assert_eq!(h.spawns(0), 2);
}

#[test]
fn a_failure_that_leaves_the_worker_dead_replaces_it() {
    let h = Harness::new();
    let d = start::<()>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "dead-fail", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Execution);
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|");
    assert_eq!(h.loads(0, 2), vec!["v1"]);
}

#[test]
fn a_worker_that_died_after_answering_is_replaced_when_idle() {
    let h = Harness::new();
    let d = start::<()>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "zombie", &[]), sink(&tx)).unwrap();
    assert!(recv(&rx).is_ok(), "its answer stands");
    gen2(&h, 0);
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|");
}

#[test]
fn a_worker_killed_while_idle_is_replaced_before_its_next_request() {
    let h = Harness::new();
    let d = start::<()>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "echo", &["before"]), sink(&tx))
        .unwrap();
    assert!(recv(&rx).is_ok());
    h.kill(0);
    d.execute(req("v1", "echo", &["after"]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|after");
    assert_eq!(h.spawns(0), 2);
    assert_eq!(h.loads(0, 2), vec!["v1"]);
}

#[test]
fn a_panic_in_a_backends_drop_is_contained() {
    let h = Harness::new();
    let d = start::<()>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "crash-panic-drop", &[]), sink(&tx))
        .unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|");
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
    let h = Harness::new();
    let cfg = DispatcherConfig {
        respawn_backoff_initial: Duration::from_millis(1),
        respawn_backoff_max: Duration::from_millis(1),
        ..config(1, 0)
    };
    let d = start::<()>(&h, cfg);
    load_ok(&d, code("v1", "js"));
    h.panic_interrupters.store(1, Ordering::SeqCst);
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "crash", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    h.wait_events("a third backend", |e| {
        e.contains(&Event::Spawn {
            worker: 0,
            generation: 3,
        })
    });
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
    let h = Harness::new();
    let d = start::<Option<PanicOnDrop>>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
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
