//! Cancel of queued and running executions.

use crate::fake::{Harness, Meta, MetaLog, Seen, code, load_ok, recv, req, sink};
use crate::{config, start};
use roma_core::ErrorKind;
use std::sync::mpsc;

#[test]
fn cancel_of_a_queued_request_answers_it_at_once() {
    let h = Harness::new();
    let d = start::<Meta>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    let log = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    d.execute(log.req(1, req("v1", "block:g", &[])), log.sink(1, &tx))
        .unwrap();
    h.wait_started();
    let (ctx, crx) = mpsc::channel();
    let token = d
        .execute(log.req(2, req("v1", "echo", &[])), log.sink(2, &ctx))
        .unwrap();
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
    let h = Harness::new();
    let d = start::<Meta>(&h, config(1, 0));
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
    assert!(!d.cancel(&token), "already answered");
    d.execute(log.req(2, req("v1", "echo", &[])), log.sink(2, &tx))
        .unwrap();
    assert!(recv(&rx).is_ok());
    assert_eq!(h.spawns(0), 1, "an interrupted worker is not replaced");
}

#[test]
fn a_cancelled_running_request_reports_cancelled_whatever_the_backend_returned() {
    let h = Harness::new();
    let d = start::<()>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    let (tx, rx) = mpsc::channel();
    // `block` ignores interrupts and returns success once its gate opens.
    let token = d.execute(req("v1", "block:g", &[]), sink(&tx)).unwrap();
    h.wait_started();
    assert!(d.cancel(&token));
    h.open("g");
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Cancelled);
}

#[test]
fn cancel_only_hits_its_own_request() {
    let h = Harness::new();
    let d = start::<()>(&h, config(2, 0));
    load_ok(&d, code("v1", "js"));
    let (tx0, rx0) = mpsc::channel();
    let (tx1, rx1) = mpsc::channel();
    let looping = d.execute(req("v1", "loop", &[]), sink(&tx0)).unwrap();
    h.wait_started();
    let _blocked = d.execute(req("v1", "block:g", &[]), sink(&tx1)).unwrap();
    h.wait_started();
    assert!(d.cancel(&looping));
    assert_eq!(recv(&rx0).unwrap_err().kind(), ErrorKind::Cancelled);
    h.open("g");
    assert_eq!(recv(&rx1).unwrap().resp, "released g");
}
