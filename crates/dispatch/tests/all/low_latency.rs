//! The low-latency mode (`DispatcherConfig::idle_poll`): slot threads that poll for work
//! before sleeping still answer every request once, take work arriving during the poll and
//! after it (asleep again), steal, cancel and stop as without it.

use crate::fake::{Harness, Meta, MetaLog, code, load_ok, recv, req, sink};
use crate::{config, start};
use roma_core::{ErrorKind, MAX_IDLE_POLL};
use roma_dispatch::DispatcherConfig;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn polling(workers: usize, poll: Duration) -> DispatcherConfig {
    DispatcherConfig {
        idle_poll: poll,
        ..config(workers, 0)
    }
}

#[test]
fn requests_during_and_after_the_poll_are_answered_once() {
    let h = Harness::new();
    let d = start::<Meta>(&h, polling(2, Duration::from_millis(20)));
    load_ok(&d, code("v1", "js"));
    let log = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    // Back to back (taken while polling), then after gaps past the bound (taken from sleep).
    for (i, gap) in [0, 0, 1, 0, 60, 2, 60].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(gap));
        let id = i as u32;
        d.execute(
            log.req(id, req("v1", "echo", &[&i.to_string()])),
            log.sink(id, &tx),
        )
        .unwrap();
        assert_eq!(recv(&rx).unwrap().resp, format!("v1|js|{i}"));
        log.assert_answered_once(id);
    }
}

#[test]
fn cancel_and_stop_reach_a_polling_slot() {
    let h = Harness::new();
    let d = start::<Meta>(&h, polling(1, MAX_IDLE_POLL));
    load_ok(&d, code("v1", "js"));
    let log = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    let token = d
        .execute(log.req(1, req("v1", "loop", &[])), log.sink(1, &tx))
        .unwrap();
    h.wait_started();
    assert!(d.cancel(&token));
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Cancelled);
    log.assert_answered_once(1);
    // The slot now polls for up to the bound; stop does not wait for the poll to run out
    // with work queued behind it, and the queued request is answered.
    let (qtx, qrx) = mpsc::channel();
    d.execute(log.req(2, req("v1", "echo", &[])), log.sink(2, &qtx))
        .unwrap();
    assert!(recv(&qrx).is_ok());
    let t0 = Instant::now();
    d.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t0.elapsed()
    );
    log.assert_answered_once(2);
}

#[test]
fn an_idle_poll_above_the_bound_is_capped_and_zero_is_off() {
    for poll in [Duration::ZERO, Duration::from_secs(3600)] {
        let h = Harness::new();
        let d = start::<()>(&h, polling(1, poll));
        load_ok(&d, code("v1", "js"));
        let (tx, rx) = mpsc::channel();
        d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
        assert!(recv(&rx).is_ok());
        // A poll of an hour would hold stop for an hour if it were not capped.
        let t0 = Instant::now();
        d.stop();
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "stop took {:?}",
            t0.elapsed()
        );
    }
}
