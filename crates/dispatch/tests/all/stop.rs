//! Stop: queued work is cancelled, running work finishes, later calls are refused.

use crate::fake::{code, recv, req, sink};
use crate::{Logged, Shared, assert_refuses_work, config, hold, logged, shared};
use roma_core::ErrorKind;
use std::sync::Arc;
use std::sync::mpsc;

#[test]
fn stop_cancels_queued_work_and_lets_running_work_finish() {
    let Logged { h, d, log, rx, .. } = logged(config(2, 0), &[(1, "block:a"), (2, "block:b")]);
    let (qtx, qrx) = mpsc::channel();
    for t in 10..20 {
        log.submit(&d, t, "echo", &qtx);
    }
    let (ltx, lrx) = mpsc::channel();
    d.load(code("v2", "js"), sink(&ltx)).unwrap();
    std::thread::scope(|s| {
        let stopper = s.spawn(|| d.stop());
        // Queued work is answered while the running requests still block `stop`.
        for _ in 10..20 {
            assert_eq!(recv(&qrx).unwrap_err().kind(), ErrorKind::Cancelled);
        }
        assert_eq!(recv(&lrx).unwrap_err().kind(), ErrorKind::Cancelled);
        h.open("a");
        h.open("b");
        assert_eq!(recv(&rx).unwrap().resp.len(), "released a".len());
        assert_eq!(recv(&rx).unwrap().resp.len(), "released b".len());
        stopper.join().unwrap();
    });
    for t in (1..=2).chain(10..20) {
        log.assert_answered_once(t);
    }
    assert_refuses_work(&d, &log, 30, ErrorKind::Cancelled);
    let err = d
        .batch_execute(vec![log.req(31, req("v1", "echo", &[]))], |_| {})
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(h.all_dropped(), "stop released every worker");
    d.stop(); // idempotent
    let echoes = h.execs().iter().filter(|(_, _, h)| h == "echo").count();
    assert_eq!(echoes, 0, "no queued request ran");
}

#[test]
fn dropping_the_dispatcher_stops_it() {
    let Logged { h, d, log, tx, rx } = logged(config(1, 0), &[(1, "block:g")]);
    for t in 2..6 {
        log.submit(&d, t, "echo", &tx);
    }
    std::thread::scope(|s| {
        s.spawn(move || drop(d));
        for _ in 2..6 {
            assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Cancelled);
        }
        h.open("g");
        assert_eq!(recv(&rx).unwrap().resp, "released g");
    });
    for t in 1..6 {
        log.assert_answered_once(t);
    }
    assert_eq!(log.drops(), 5);
    assert!(h.all_dropped(), "drop released every worker");
}

#[test]
fn a_callback_may_stop_the_dispatcher() {
    let Shared { h: _h, d, tx, rx } = shared(config(2, 0));
    let d2 = Arc::clone(&d);
    let tx2 = tx.clone();
    d.execute(req("v1", "echo", &[]), move |r| {
        d2.stop();
        let _ = tx2.send(r);
    })
    .unwrap();
    assert!(recv(&rx).is_ok());
    let err = d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    d.stop();
}

#[test]
fn the_last_handle_may_be_dropped_inside_a_callback() {
    let Shared { h, d, tx, rx } = shared(config(1, 0));
    let d2 = Arc::clone(&d);
    let tx2 = tx.clone();
    let holder = std::sync::Mutex::new(Some(d2));
    d.execute(req("v1", "block:g", &[]), move |r| {
        // Dropping the last handle here runs `stop` on the slot thread itself.
        drop(holder.lock().unwrap().take());
        let _ = tx2.send(r);
    })
    .unwrap();
    h.wait_started();
    drop(d);
    h.open("g");
    assert_eq!(recv(&rx).unwrap().resp, "released g");
}

#[test]
fn a_stop_racing_a_cancel_answers_once() {
    let Logged { h, d, log, tx, rx } = logged(config(1, 0), &[(0, "block:g")]);
    let tokens: Vec<_> = (1..50).map(|t| log.submit(&d, t, "echo", &tx)).collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for t in &tokens {
                d.cancel(t);
            }
        });
        s.spawn(|| d.stop());
        h.open("g");
    });
    drop(tx);
    let answers: Vec<_> = rx.iter().collect();
    assert_eq!(answers.len(), 50);
    for t in 0..50 {
        log.assert_answered_once(t);
    }
}

#[test]
fn a_stop_on_a_caller_thread_waits_for_a_stop_begun_in_a_callback() {
    let Shared { h, d, tx, rx } = shared(config(2, 0));
    hold(&h, &d, "g", &tx, 0);
    let (stopping_tx, stopping_rx) = mpsc::channel();
    let d2 = Arc::clone(&d);
    d.execute(req("v1", "echo", &[]), move |_| {
        let _ = stopping_tx.send(());
        // Joins slot 0, which is still blocked.
        d2.stop();
    })
    .unwrap();
    recv(&stopping_rx);
    h.open("g");
    // Whether this call or the callback's joins the threads, it returns only once they exited.
    d.stop();
    assert!(h.all_dropped());
    assert_eq!(recv(&rx).unwrap().resp, "released g");
}
