//! Crash loops: a backend that dies before proving healthy is replaced only after a backoff
//! wait, a healthy one at once, and no request is lost or answered twice meanwhile.

use crate::fake::{Event, Harness, MetaLog, Seen, code, load_ok, recv, req};
use crate::{
    Logged, NO_RETRY, health_is, loaded, logged, start, stop_promptly, wait_stats, with_backoff,
};
use roma_core::{ErrorKind, metrics};
use roma_dispatch::{Dispatcher, WorkerHealth};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// Waits until backend `generation` of `worker` has been dropped and the slot is respawning
/// (the slot marks itself respawning right after dropping the dead backend).
fn wait_replacing<M: Send + Sync + 'static>(
    h: &Harness,
    d: &Dispatcher<M>,
    worker: usize,
    generation: usize,
) {
    h.wait_events("the backend dropped", |e| {
        e.contains(&Event::Dropped { worker, generation })
    });
    wait_stats(d, "the slot respawning", |s| {
        health_is(s, worker, WorkerHealth::Respawning)
    });
}

#[test]
fn backends_dying_in_idle_are_replaced_on_the_backoff_schedule_not_in_a_loop() {
    let h = Harness::new();
    h.die_in_idle(0);
    // Never healthy by age (the cap is an hour): every death here is early.
    let d = start::<()>(&h, with_backoff(1, Duration::from_millis(10), NO_RETRY));
    h.wait_spawned(0, 3);
    // An observation window, not a synchronisation: waits of 10, 20, 40, 80 ms allow about 5
    // backends in 200 ms, a tight loop thousands. A slow machine only lowers the count.
    std::thread::sleep(Duration::from_millis(200));
    let spawns = h.spawns(0);
    assert!(spawns < 50, "{spawns} backends in about 200 ms: no backoff");
    stop_promptly(d);
    assert!(h.all_dropped());
}

#[test]
fn a_slot_waiting_out_a_crash_loop_keeps_its_work_until_stop_which_ends_the_wait() {
    let h = Harness::new();
    // The first backend dies in its pre-warm, before completing any request: an hour's wait.
    h.die_in_idle(0);
    let d = start::<crate::fake::Meta>(&h, with_backoff(1, NO_RETRY, NO_RETRY));
    wait_replacing(&h, &d, 0, 1);
    // A respawning slot still accepts work: the load and the executions wait for it.
    let (ltx, lrx) = mpsc::channel();
    d.load(code("v1", "js"), crate::fake::sink(&ltx)).unwrap();
    let log = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    for t in 1..=3 {
        log.submit(&d, t, "echo", &tx);
    }
    let s = d.stats();
    assert_eq!((s.workers[0].queued, s.workers[0].pending_loads), (3, 1));
    stop_promptly(d);
    for _ in 1..=3 {
        assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Cancelled);
    }
    assert_eq!(recv(&lrx).unwrap_err().kind(), ErrorKind::Cancelled);
    for t in 1..=3 {
        log.assert_answered_once(t);
    }
    assert_eq!(h.spawns(0), 1, "no second backend during the wait");
    assert!(h.all_dropped());
}

#[test]
fn a_healthy_worker_crashed_by_one_bad_request_is_replaced_at_once() {
    // Any backoff wait would last an hour and fail the next `recv`.
    let (h, d) = loaded::<()>(with_backoff(1, NO_RETRY, NO_RETRY));
    let (tx, rx) = mpsc::channel();
    let run = |handler: &str| {
        d.execute(req("v1", handler, &[]), crate::fake::sink(&tx))
            .unwrap();
        recv(&rx)
    };
    // Each backend's first request completes (a request's own failure still proves the
    // worker healthy), then a bad request crashes it: the next backend must come at once.
    for proof in ["echo", "fail", "echo"] {
        let r = run(proof);
        assert_eq!(r.is_ok(), proof == "echo", "{proof}: {r:?}");
        assert_eq!(run("crash").unwrap_err().kind(), ErrorKind::WorkerCrashed);
    }
    assert_eq!(run("echo").unwrap().resp, "v1|js|");
    assert_eq!(h.spawns(0), 4);
    assert_eq!(h.failed_spawns(0), 0);
}

#[test]
fn a_backend_dying_before_its_first_request_completes_waits_while_others_take_its_queue() {
    let Logged { h, d, log, rx, .. } = logged(
        with_backoff(2, NO_RETRY, NO_RETRY),
        &[(1, "block:a"), (2, "crash-after:b")],
    );
    let (etx, erx) = mpsc::channel();
    for t in 3..=6 {
        log.submit(&d, t, "echo", &etx);
    }
    let queued: Vec<usize> = d.stats().workers.iter().map(|w| w.queued).collect();
    assert_eq!(queued, vec![2, 2]);
    h.open("b");
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    wait_replacing(&h, &d, 1, 1);
    h.open("a");
    assert_eq!(recv(&rx).unwrap().resp, "released a");
    for _ in 3..=6 {
        let r = recv(&erx).unwrap();
        assert_eq!(
            r.metrics[metrics::WORKER_INDEX],
            0.0,
            "run by the live slot"
        );
    }
    assert_eq!(h.spawns(1), 1, "slot 1 waits before its next backend");
    stop_promptly(d);
    for t in 1..=6 {
        log.assert_answered_once(t);
    }
}

#[test]
fn every_request_is_answered_once_while_a_slot_crash_loops() {
    let h = Harness::new();
    h.die_in_idle(1);
    let d = start::<crate::fake::Meta>(
        &h,
        with_backoff(2, Duration::from_millis(1), Duration::from_millis(20)),
    );
    load_ok(&d, code("v1", "js"));
    let log = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    let submit = |tag: u32| {
        let handler = if tag % 7 == 3 { "crash" } else { "echo" };
        let l = Arc::clone(&log);
        let tx = tx.clone();
        d.execute(log.req(tag, req("v1", handler, &[])), move |r| {
            l.push(Seen::Callback(tag));
            let _ = tx.send((tag, r));
        })
        .unwrap();
    };
    const N: u32 = 200;
    for tag in 0..N {
        submit(tag);
    }
    for _ in 0..N {
        let (tag, r) = recv(&rx);
        match r {
            Err(e) => assert!(tag % 7 == 3 && e.kind() == ErrorKind::WorkerCrashed, "{e}"),
            Ok(r) => assert_eq!((tag % 7 != 3, r.resp.as_str()), (true, "v1|js|")),
        }
    }
    for tag in 0..N {
        log.assert_answered_once(tag);
    }
    // More work, then a stop in the middle of it: still one answer each.
    for tag in N..2 * N {
        submit(tag);
    }
    stop_promptly(d);
    for tag in N..2 * N {
        log.assert_answered_once(tag);
    }
    assert!(h.all_dropped());
}
