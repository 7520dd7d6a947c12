//! The low-latency mode (`DispatcherConfig::idle_poll`): slot threads that poll for work
//! before sleeping still answer every request once, take work arriving during the poll and
//! after it (asleep again), steal, cancel and stop as without it.

use crate::fake::{Meta, MetaLog, recv, req, sink};
use crate::{cancel_a_running_loop, config, loaded, stop_promptly};
use roma_core::MAX_IDLE_POLL;
use roma_dispatch::DispatcherConfig;
use std::sync::mpsc;
use std::time::Duration;

fn polling(workers: usize, poll: Duration) -> DispatcherConfig {
    DispatcherConfig {
        idle_poll: poll,
        ..config(workers, 0)
    }
}

#[test]
fn requests_during_and_after_the_poll_are_answered_once() {
    let (_h, d) = loaded::<Meta>(polling(2, Duration::from_millis(20)));
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
    let (h, d) = loaded::<Meta>(polling(1, MAX_IDLE_POLL));
    let log = MetaLog::new();
    cancel_a_running_loop(&h, &d, &log, 1);
    // The slot now polls for up to the bound; stop does not wait for the poll to run out
    // with work queued behind it, and the queued request is answered.
    let (qtx, qrx) = mpsc::channel();
    log.submit(&d, 2, "echo", &qtx);
    assert!(recv(&qrx).is_ok());
    stop_promptly(d);
    log.assert_answered_once(2);
}

#[test]
fn an_idle_poll_above_the_bound_is_capped_and_zero_is_off() {
    for poll in [Duration::ZERO, Duration::from_secs(3600)] {
        let (_h, d) = loaded::<()>(polling(1, poll));
        let (tx, rx) = mpsc::channel();
        d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
        assert!(recv(&rx).is_ok());
        // A poll of an hour would hold stop for an hour if it were not capped.
        stop_promptly(d);
    }
}
