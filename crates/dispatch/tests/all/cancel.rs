//! Cancel of queued and running executions.

use crate::fake::{Meta, MetaLog, Seen, recv, req, sink};
use crate::{Logged, cancel_a_running_loop, config, hold, loaded, logged};
use roma_core::ErrorKind;
use std::sync::mpsc;

#[test]
fn cancel_of_a_queued_request_answers_it_at_once() {
    let Logged { h, d, log, rx, .. } = logged(config(1, 0), &[(1, "block:g")]);
    let (ctx, crx) = mpsc::channel();
    let token = log.submit(&d, 2, "echo", &ctx);
    assert!(d.cancel(&token));
    // Answered on this thread, before `cancel` returned.
    let err = crx
        .try_recv()
        .expect("answered before cancel returned")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(log.of(2), vec![Seen::Callback(2), Seen::Dropped(2)]);
    assert_eq!(d.stats().queued, 0);
    assert!(!d.cancel(&token), "a second cancel finds nothing");
    h.open("g");
    assert_eq!(recv(&rx).unwrap().resp, "released g");
    log.assert_answered_once(1);
    drop(d);
    let handlers: Vec<_> = h.execs().into_iter().map(|(_, _, h)| h).collect();
    assert_eq!(handlers, vec!["block:g"], "the cancelled request never ran");
}

#[test]
fn cancel_of_a_running_request_interrupts_it() {
    let (h, d) = loaded::<Meta>(config(1, 0));
    let log = MetaLog::new();
    let token = cancel_a_running_loop(&h, &d, &log, 1);
    assert!(!d.cancel(&token), "already answered");
    let (tx, rx) = mpsc::channel();
    log.submit(&d, 2, "echo", &tx);
    assert!(recv(&rx).is_ok());
    assert_eq!(h.spawns(0), 1, "an interrupted worker is not replaced");
}

#[test]
fn a_cancelled_running_request_reports_cancelled_whatever_the_backend_returned() {
    let (h, d) = loaded::<()>(config(1, 0));
    let (tx, rx) = mpsc::channel();
    // `block` ignores interrupts and returns success once its gate opens.
    let token = hold(&h, &d, "g", &tx, 0);
    assert!(d.cancel(&token));
    h.open("g");
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Cancelled);
}

#[test]
fn cancel_only_hits_its_own_request() {
    let (h, d) = loaded::<()>(config(2, 0));
    let (tx0, rx0) = mpsc::channel();
    let (tx1, rx1) = mpsc::channel();
    let looping = d.execute(req("v1", "loop", &[]), sink(&tx0)).unwrap();
    h.wait_started();
    hold(&h, &d, "g", &tx1, 1);
    assert!(d.cancel(&looping));
    assert_eq!(recv(&rx0).unwrap_err().kind(), ErrorKind::Cancelled);
    h.open("g");
    assert_eq!(recv(&rx1).unwrap().resp, "released g");
}
