//! `execute_here_or_async`: a request that finds its slot idle holds it and runs on the
//! caller's thread when the caller says so; one that does not is queued and its future
//! answers; a claim dropped unrun gives the slot back untouched. Also the same guard inside
//! `execute_blocking`, whose `accepted` closure may panic.

use crate::fake::{PATIENCE, Seen, block_on, code, load_ok, req};
use crate::{Harness, MetaLog, config, start, wait_stats};
use roma_core::{ErrorKind, InvocationRequest, ResponseObject, RomaError};
use roma_dispatch::{Dispatcher, Submitted};
use std::sync::{Arc, mpsc};

fn me() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned()
}

/// A dispatcher of one fake with `v1` loaded and its slot parked for borrowers.
fn ready<M: Send + Sync + 'static>(h: &Arc<Harness>) -> Dispatcher<M> {
    let d = start(h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    parked(&d);
    d
}

fn parked<M: Send + Sync + 'static>(d: &Dispatcher<M>) {
    wait_stats(d, "slot 0 parked", |s| s.workers[0].parked);
}

/// What the request came back as, run or awaited.
fn settle<M: Send + Sync + 'static>(s: Submitted<M>) -> (bool, Result<ResponseObject, RomaError>) {
    match s {
        Submitted::Here(run) => (true, run.run()),
        Submitted::Queued(fut) => (false, block_on(fut)),
    }
}

#[test]
fn an_idle_slot_is_held_for_the_caller_and_runs_on_its_thread() {
    let h = Harness::new();
    let d = ready::<()>(&h);
    let Submitted::Here(run) = d.execute_here_or_async(req("v1", "echo", &["a"])) else {
        panic!("an idle slot with nothing queued is claimed");
    };
    let s = d.stats();
    assert!(s.workers[0].running && !s.workers[0].parked, "held: {s:?}");
    assert!(!d.is_idle());
    assert_eq!(run.run().unwrap().resp, "v1|js|a");
    assert_eq!(h.exec_threads().last().cloned().unwrap_or_default(), me());
    assert!(
        d.stats().workers[0].parked,
        "given back parked, no slot thread woken"
    );
    assert!(d.is_idle());
}

#[test]
fn a_busy_slot_queues_the_request_and_its_future_answers() {
    let h = Harness::new();
    let d = Arc::new(ready::<()>(&h));
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "block:a", &[]), move |r| {
        let _ = tx.send(r);
    })
    .unwrap();
    h.wait_started();
    let s = d.execute_here_or_async(req("v1", "echo", &["b"]));
    assert!(matches!(s, Submitted::Queued(_)), "{s:?}");
    let Submitted::Queued(fut) = s else {
        unreachable!()
    };
    assert!(fut.token().is_some(), "a queued request has a token");
    h.open("a");
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap().unwrap().resp,
        "released a"
    );
    let r = block_on(fut).unwrap();
    assert_eq!(r.resp, "v1|js|b");
    assert_eq!(
        h.exec_threads().last().cloned().unwrap_or_default(),
        "roma-slot-0"
    );
}

#[test]
fn a_claim_dropped_unrun_gives_the_slot_back_and_drops_the_request_once() {
    let h = Harness::new();
    let log = MetaLog::new();
    let d = ready::<crate::fake::Meta>(&h);
    let s = d.execute_here_or_async(log.req(1, req("v1", "echo", &[])));
    assert!(matches!(s, Submitted::Here(_)), "{s:?}");
    drop(s);
    assert_eq!(
        log.of(1),
        vec![Seen::Dropped(1)],
        "never ran, never answered"
    );
    let s = d.stats();
    assert!(s.workers[0].parked && !s.workers[0].running, "{s:?}");
    assert!(h.exec_threads().is_empty(), "nothing ran");
    let (here, r) = settle(d.execute_here_or_async(log.req(2, req("v1", "echo", &["x"]))));
    assert!(here, "the slot is claimable again");
    assert_eq!(r.unwrap().resp, "v1|js|x");
}

#[test]
fn refusals_come_back_as_a_future_that_answers_the_error() {
    let h = Harness::new();
    let log = MetaLog::new();
    let d = ready::<crate::fake::Meta>(&h);
    let (here, r) = settle(d.execute_here_or_async(log.req(1, req("nope", "echo", &[]))));
    assert!(!here);
    assert_eq!(r.unwrap_err().kind(), ErrorKind::VersionNotFound);
    assert_eq!(log.of(1), vec![Seen::Dropped(1)]);
    let bad: InvocationRequest<crate::fake::Meta> = log.req(2, req("v1", "", &[]));
    let (here, r) = settle(d.execute_here_or_async(bad));
    assert!(!here);
    assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument);
    d.stop();
    let (here, r) = settle(d.execute_here_or_async(log.req(3, req("v1", "echo", &[]))));
    assert!(!here, "a stopped dispatcher claims nothing");
    assert!(r.is_err());
    assert!(h.exec_threads().is_empty());
}

#[test]
fn in_a_callback_the_request_is_always_queued() {
    let h = Harness::new();
    let d = Arc::new(ready::<()>(&h));
    let (tx, rx) = mpsc::channel();
    let inner = Arc::clone(&d);
    d.execute(req("v1", "echo", &["outer"]), move |r| {
        r.unwrap();
        // A slot thread must not hold a slot for itself (it may be that slot's own thread).
        let s = inner.execute_here_or_async(req("v1", "echo", &["inner"]));
        let _ = tx.send(matches!(s, Submitted::Queued(_)));
        drop(s);
    })
    .unwrap();
    assert!(rx.recv_timeout(PATIENCE).unwrap());
}

#[test]
fn cancel_reaches_a_held_request_through_its_token() {
    let h = Harness::new();
    let d = Arc::new(ready::<()>(&h));
    let Submitted::Here(run) = d.execute_here_or_async(req("v1", "loop", &[])) else {
        panic!("claimed");
    };
    let token = run.token().clone();
    let runner = std::thread::spawn(move || run.run());
    h.wait_started();
    assert!(d.cancel(&token));
    let err = runner.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    parked(&d);
}

#[test]
fn a_panic_in_execute_blockings_accepted_closure_gives_the_slot_back() {
    let h = Harness::new();
    let log = MetaLog::new();
    let d = ready::<crate::fake::Meta>(&h);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        d.execute_blocking(log.req(1, req("v1", "echo", &[])), PATIENCE, |_| {
            panic!("the caller's closure")
        })
    }));
    assert!(caught.is_err(), "the panic reaches the caller");
    assert_eq!(log.of(1), vec![Seen::Dropped(1)], "never ran, dropped once");
    let s = d.stats();
    assert!(s.workers[0].parked && !s.workers[0].running, "{s:?}");
    let r = d.execute_blocking(log.req(2, req("v1", "echo", &["y"])), PATIENCE, |_| {});
    assert_eq!(r.unwrap().resp, "v1|js|y");
    assert_eq!(h.exec_threads().last().cloned().unwrap_or_default(), me());
}
