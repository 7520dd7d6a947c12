//! The auto traits and small promises of the public API.

use crate::fake::{Event, Harness, Meta, PATIENCE};
use crate::{config, fresh, start};
use roma_core::{ErrorKind, ExecOutput, ResponseObject};
use roma_dispatch::{
    DispatchFuture, Dispatcher, DispatcherConfig, DispatcherStats, ExecutionToken, WorkerHealth,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn unpin<T: Unpin>() {}

#[test]
fn public_types_are_thread_safe() {
    send_sync::<Dispatcher<()>>();
    send_sync::<Dispatcher<Meta>>();
    send_sync::<DispatcherConfig>();
    send_sync::<DispatcherStats>();
    send_sync::<ExecOutput>();
    send_sync::<ExecutionToken>();
    send_sync::<WorkerHealth>();
    send::<DispatchFuture<ResponseObject>>();
    unpin::<DispatchFuture<ResponseObject>>();
}

#[test]
fn config_is_validated() {
    let h = Harness::new();
    let err = Dispatcher::<()>::new(config(0, 0), h.factory()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let huge = config(usize::MAX, 2);
    let err = Dispatcher::<()>::new(huge, h.factory()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(h.spawns(0), 0, "no worker is started for a bad config");
}

#[test]
fn stats_report_capacity_and_workers() {
    let (h, d) = fresh::<()>(config(3, 7));
    let s = d.stats();
    assert_eq!(d.worker_count(), 3);
    assert_eq!(s.capacity, 21);
    assert_eq!(s.queued, 0);
    assert_eq!(s.cached_versions, 0);
    assert_eq!(s.workers.len(), 3);
    assert!(s.workers.iter().all(|w| w.health == WorkerHealth::Up));
    let default = start::<()>(&h, config(2, 0));
    assert_eq!(
        default.stats().capacity,
        200,
        "0 means Roma's 100 per worker"
    );
}

#[test]
fn a_failing_factory_fails_new_and_stops_the_other_slots() {
    let h = Harness::new();
    h.fail_spawns.store(1, std::sync::atomic::Ordering::SeqCst);
    let err = Dispatcher::<()>::new(config(3, 0), h.factory()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    let spawns = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Spawn { .. } | Event::SpawnFailed { .. }))
        .count();
    assert_eq!(spawns, 3, "one failed and two good spawns, no retry");
    assert!(
        h.all_dropped(),
        "the started workers were released before `new` returned"
    );
}

#[test]
fn tokens_of_another_dispatcher_do_not_cancel() {
    let h = Harness::new();
    let a = start::<()>(&h, config(1, 0));
    let b = start::<()>(&h, config(1, 0));
    crate::fake::load_ok(&a, crate::fake::code("v", "js"));
    crate::fake::load_ok(&b, crate::fake::code("v", "js"));
    let (tx, rx) = std::sync::mpsc::channel();
    let blocker = a
        .execute(
            crate::fake::req("v", "block:g", &[]),
            crate::fake::sink(&tx),
        )
        .unwrap();
    h.wait_started();
    let queued = a
        .execute(crate::fake::req("v", "echo", &[]), crate::fake::sink(&tx))
        .unwrap();
    assert!(!b.cancel(&queued), "b does not know a's token");
    assert!(!b.cancel(&blocker));
    h.open("g");
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap().unwrap().resp,
        "released g"
    );
    assert!(
        rx.recv_timeout(PATIENCE).unwrap().is_ok(),
        "a's request was not cancelled"
    );
}
