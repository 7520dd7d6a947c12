//! Worker crashes, panicking backends, respawn with replay, and factory failures.

use crate::fake::{Event, Meta, MetaLog, code, load_ok, recv, req, sink};
use crate::{
    Logged, NO_RETRY, assert_refuses_work, config, fresh, health_is, hold, loaded, logged, run_on,
    wait_stats, with_backoff,
};
use roma_core::{ErrorKind, metrics};
use roma_dispatch::WorkerHealth;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn a_crash_fails_only_its_request_and_the_worker_comes_back_with_every_version() {
    let (h, d) = fresh::<Meta>(config(1, 0));
    load_ok(&d, code("v1", "x"));
    load_ok(&d, code("v2", "y"));
    load_ok(&d, code("v1", "z")); // replaces v1: load order is now v2, v1
    let log = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    run_on(&h, &d, &log, (1, "block:g"), &tx, 0);
    log.submit(&d, 2, "crash", &tx);
    log.submit(&d, 3, "echo", &tx);
    h.open("g");
    assert!(recv(&rx).is_ok());
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    let after = recv(&rx).unwrap();
    assert_eq!(
        after.resp, "v1|z|",
        "the queued request runs on the new worker"
    );
    for t in 1..=3 {
        log.assert_answered_once(t);
    }
    assert_eq!(h.spawns(0), 2);
    assert_eq!(h.loads(0, 2), vec!["v2", "v1"], "replayed in load order");
    // The replay finished before the new worker took work.
    let events = h.events();
    let last_replay = events
        .iter()
        .rposition(|e| matches!(e, Event::Load { generation: 2, .. }))
        .unwrap();
    let first_exec = events
        .iter()
        .position(|e| matches!(e, Event::Exec { generation: 2, .. }))
        .unwrap();
    assert!(last_replay < first_exec, "{events:?}");
    d.execute(log.req(4, req("v2", "echo", &[])), log.sink(4, &tx))
        .unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v2|y|");
}

#[test]
fn other_workers_are_untouched_by_a_crash() {
    let (h, d) = loaded::<()>(config(2, 0));
    let (tx, rx) = mpsc::channel();
    let (ctx, crx) = mpsc::channel();
    hold(&h, &d, "g", &tx, 0);
    d.execute(req("v1", "crash", &[]), sink(&ctx)).unwrap();
    assert_eq!(recv(&crx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    h.wait_spawned(1, 2);
    h.open("g");
    assert_eq!(recv(&rx).unwrap().resp, "released g");
    assert_eq!(h.spawns(0), 1);
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    assert!(recv(&rx).is_ok());
}

#[test]
fn a_panicking_backend_fails_its_request_and_is_replaced() {
    let (h, d) = loaded::<Meta>(config(1, 0));
    let log = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    log.submit(&d, 1, "panic", &tx);
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Internal);
    log.assert_answered_once(1);
    log.submit(&d, 2, "echo", &tx);
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|");
    assert_eq!(h.spawns(0), 2);
    assert_eq!(h.loads(0, 2), vec!["v1"]);
}

#[test]
fn a_version_the_engine_dropped_is_reloaded_from_the_host_cache() {
    let (h, d) = loaded::<()>(config(1, 0));
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "forget", &[]), sink(&tx)).unwrap();
    assert!(recv(&rx).is_ok());
    d.execute(req("v1", "echo", &["again"]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|again");
    assert_eq!(h.loads(0, 1), vec!["v1", "v1"], "reloaded once");
    assert_eq!(h.spawns(0), 1);
}

#[test]
fn a_failed_respawn_marks_the_slot_down_and_moves_its_queue() {
    let Logged { h, d, log, tx, rx } = logged(
        with_backoff(2, NO_RETRY, NO_RETRY),
        &[(1, "block:a"), (2, "block:b")],
    );
    // Slot 0 queue: crash, 4; slot 1 queue: 3.
    log.submit(&d, 10, "crash", &tx);
    d.execute(log.req(3, req("v1", "echo", &["3"])), log.sink(3, &tx))
        .unwrap();
    d.execute(log.req(4, req("v1", "echo", &["4"])), log.sink(4, &tx))
        .unwrap();
    let queued: Vec<usize> = d.stats().workers.iter().map(|w| w.queued).collect();
    assert_eq!(queued, vec![2, 1]);
    h.fail_spawns.store(1, Ordering::SeqCst);
    h.open("a");
    assert!(recv(&rx).is_ok());
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    let s = wait_stats(&d, "slot 0 down", |s| health_is(s, 0, WorkerHealth::Down));
    assert_eq!(s.workers[0].queued, 0);
    assert_eq!(s.workers[1].queued, 2, "request 4 moved to the live slot");
    // New work and loads go to the live slot only.
    d.execute(log.req(5, req("v1", "echo", &["5"])), log.sink(5, &tx))
        .unwrap();
    assert_eq!(d.stats().workers[1].queued, 3);
    let (ltx, lrx) = mpsc::channel();
    d.load(code("v2", "js"), sink(&ltx)).unwrap();
    h.open("b");
    for _ in 0..4 {
        let r = recv(&rx).unwrap();
        assert_eq!(r.metrics[metrics::WORKER_INDEX], 1.0);
    }
    assert!(recv(&lrx).is_ok(), "a load completes without the down slot");
    for t in [1, 2, 3, 4, 5, 10] {
        log.assert_answered_once(t);
    }
    assert_eq!(h.failed_spawns(0), 1);
    assert_eq!(h.spawns(0), 1);
    drop(d); // stop ends the backoff wait
}

#[test]
fn a_down_slot_retries_with_backoff_and_replays_everything() {
    let backoff = with_backoff(2, Duration::from_millis(1), Duration::from_millis(2));
    let (h, d) = loaded::<()>(backoff);
    h.fail_spawns.store(3, Ordering::SeqCst);
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "crash", &[]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    load_ok(&d, code("v2", "js")); // loaded while slot 0 is down or respawning
    h.wait_spawned(0, 2);
    wait_stats(&d, "slot 0 up", |s| health_is(s, 0, WorkerHealth::Up));
    assert_eq!(h.failed_spawns(0), 3);
    let mut gen2 = h.loads(0, 2);
    gen2.dedup();
    assert_eq!(
        gen2,
        vec!["v1", "v2"],
        "it has every version loaded before it came back"
    );
    // Slot 0 is least busy again and serves.
    d.execute(req("v2", "echo", &[]), sink(&tx)).unwrap();
    let r = recv(&rx).unwrap();
    assert_eq!(r.metrics[metrics::WORKER_INDEX], 0.0);
}

#[test]
fn with_every_slot_down_requests_fail_and_new_ones_are_refused() {
    let Logged { h, d, log, tx, rx } =
        logged(with_backoff(1, NO_RETRY, NO_RETRY), &[(1, "block:g")]);
    log.submit(&d, 2, "crash", &tx);
    log.submit(&d, 3, "echo", &tx);
    h.fail_spawns.store(1, Ordering::SeqCst);
    h.open("g");
    assert!(recv(&rx).is_ok());
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    let orphan = recv(&rx).unwrap_err();
    assert_eq!(orphan.kind(), ErrorKind::WorkerCrashed, "{orphan}");
    for t in 1..=3 {
        log.assert_answered_once(t);
    }
    wait_stats(&d, "slot 0 down", |s| health_is(s, 0, WorkerHealth::Down));
    assert_refuses_work(&d, &log, 4, ErrorKind::WorkerCrashed);
    drop(d); // returns although the slot waits an hour to retry
}

#[test]
fn a_worker_dying_during_a_load_fails_the_load_and_comes_back() {
    let (h, d) = loaded::<()>(config(2, 0));
    let (tx, rx) = mpsc::channel();
    d.load(code("v2", "crash-on-1"), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    let err = d.execute(req("v2", "echo", &[]), sink(&tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VersionNotFound);
    h.wait_spawned(1, 2);
    wait_stats(&d, "slot 1 up", |s| health_is(s, 1, WorkerHealth::Up));
    hold(&h, &d, "g", &tx, 0);
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    let r = recv(&rx).unwrap();
    assert_eq!(
        (r.resp.as_str(), r.metrics[metrics::WORKER_INDEX]),
        ("v1|js|", 1.0)
    );
    h.open("g");
    assert!(recv(&rx).is_ok());
    assert_eq!(h.spawns(0), 1);
}
