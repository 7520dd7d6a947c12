//! Batches: all or none, one callback, results in request order.

use crate::fake::{Meta, MetaLog, PATIENCE, counted, recv, req};
use crate::{Logged, callbacks_after_drop, config, fresh, loaded, logged};
use roma_core::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

#[test]
fn results_come_back_once_in_request_order() {
    let (_h, d) = loaded::<()>(config(3, 0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let requests: Vec<_> = (0..12)
        .map(|i| {
            let handler = if i % 5 == 3 { "fail" } else { "echo" };
            req("v1", handler, &[&i.to_string()])
        })
        .collect();
    let tokens = d.batch_execute(requests, counted(&calls, &tx)).unwrap();
    assert_eq!(tokens.len(), 12);
    let rs = recv(&rx);
    assert_eq!(rs.len(), 12);
    for (i, r) in rs.into_iter().enumerate() {
        if i % 5 == 3 {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Execution, "request {i}");
        } else {
            assert_eq!(r.unwrap().resp, format!("v1|js|{i}"));
        }
    }
    assert_eq!(callbacks_after_drop(d, &calls), 1);
}

#[test]
fn a_batch_that_does_not_fit_is_refused_whole() {
    let Logged { h, d, log, tx, rx } = logged(config(1, 3), &[(100, "block:g")]);
    log.submit(&d, 101, "echo", &tx);
    let calls = Arc::new(AtomicUsize::new(0));
    let (btx, brx) = mpsc::channel();
    let batch: Vec<_> = (0..3).map(|t| log.req(t, req("v1", "echo", &[]))).collect();
    let err = d.batch_execute(batch, counted(&calls, &btx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QueueFull);
    for t in 0..3 {
        log.assert_refused(t);
    }
    assert_eq!(d.stats().queued, 1, "nothing of the batch was queued");
    // Exactly the room left fits.
    let batch: Vec<_> = (10..12)
        .map(|t| log.req(t, req("v1", "echo", &[])))
        .collect();
    d.batch_execute(batch, counted(&calls, &btx)).unwrap();
    assert_eq!(d.stats().queued, 3);
    h.open("g");
    assert!(recv(&rx).is_ok());
    assert!(recv(&rx).is_ok());
    let rs = recv(&brx);
    assert!(rs.iter().all(Result::is_ok));
    assert!(brx.recv_timeout(std::time::Duration::ZERO).is_err());
    for t in [100, 101] {
        log.assert_answered_once(t);
    }
    for t in [10, 11] {
        log.assert_dropped_uncalled(t);
    }
    assert_eq!(callbacks_after_drop(d, &calls), 1);
    assert_eq!(h.execs().len(), 4, "the refused batch never ran");
}

#[test]
fn a_batch_naming_an_unknown_version_is_refused_whole() {
    let (h, d) = loaded::<Meta>(config(2, 0));
    let log = MetaLog::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, _rx) = mpsc::channel();
    let batch = vec![
        log.req(0, req("v1", "echo", &[])),
        log.req(1, req("v2", "echo", &[])),
    ];
    let err = d.batch_execute(batch, counted(&calls, &tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VersionNotFound);
    log.assert_refused(0);
    log.assert_refused(1);
    let batch = vec![
        log.req(2, req("v1", "echo", &[])),
        log.req(3, req("v1", "", &[])),
    ];
    let err = d.batch_execute(batch, counted(&calls, &tx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("batch request 1"), "{err}");
    log.assert_refused(2);
    log.assert_refused(3);
    assert_eq!(callbacks_after_drop(d, &calls), 0);
    assert!(h.execs().is_empty());
}

#[test]
fn an_empty_batch_is_answered_at_once() {
    let (_h, d) = fresh::<()>(config(1, 0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let tokens = d.batch_execute(Vec::new(), counted(&calls, &tx)).unwrap();
    assert!(tokens.is_empty());
    assert!(rx.recv_timeout(PATIENCE).unwrap().is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn cancelling_one_request_of_a_batch_reports_it_in_place() {
    let Logged { h, d, log, rx, .. } = logged(config(1, 0), &[(100, "block:g")]);
    let calls = Arc::new(AtomicUsize::new(0));
    let (btx, brx) = mpsc::channel();
    let batch: Vec<_> = (0..3)
        .map(|t| log.req(t, req("v1", "echo", &[&t.to_string()])))
        .collect();
    let tokens = d.batch_execute(batch, counted(&calls, &btx)).unwrap();
    assert!(d.cancel(&tokens[1]));
    log.wait_for(crate::fake::Seen::Dropped(1));
    h.open("g");
    assert!(recv(&rx).is_ok());
    let rs = recv(&brx);
    assert_eq!(rs[0].as_ref().unwrap().resp, "v1|js|0");
    assert_eq!(rs[1].as_ref().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(rs[2].as_ref().unwrap().resp, "v1|js|2");
    for t in 0..3 {
        log.assert_dropped_uncalled(t);
    }
    assert_eq!(callbacks_after_drop(d, &calls), 1);
}
