//! The direct hand-off: `execute_blocking` on an idle slot runs the request on the caller's
//! thread, on the slot's parked backend, and every exactly-once rule holds there: cancel, stop
//! during the borrowed run, crashes and respawns, a backend killed while parked, the
//! `VersionNotFound` retry, recycling, stealing from a claimed slot, loads meanwhile.

use crate::fake::{Event, PATIENCE, Seen, code, load_ok, recv, req, sink};
use crate::{Harness, MetaLog, config, start, wait_stats};
use roma_core::{ErrorKind, InvocationRequest, ResponseObject, RomaError, metrics};
use roma_dispatch::{Dispatcher, DispatcherConfig};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

/// The name of the calling thread (a test's thread is named after the test).
fn me() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned()
}

/// Waits until slot `i`'s thread has parked its backend for borrowers.
fn parked<M: Send + Sync + 'static>(d: &Dispatcher<M>, i: usize) {
    wait_stats(d, &format!("slot {i} parked"), |s| s.workers[i].parked);
}

/// A dispatcher of `workers` fakes with `v1` loaded and every slot parked.
fn ready(h: &Arc<Harness>, cfg: DispatcherConfig) -> Dispatcher<()> {
    let workers = cfg.number_of_workers;
    let d = start(h, cfg);
    load_ok(&d, code("v1", "js"));
    for i in 0..workers {
        parked(&d, i);
    }
    d
}

fn blocking<M: Send + Sync + 'static>(
    d: &Dispatcher<M>,
    r: InvocationRequest<M>,
) -> Result<ResponseObject, RomaError> {
    d.execute_blocking(r, PATIENCE, |_| {})
}

/// Runs `r` through `execute_blocking` on a client thread of its own named `client`; returns
/// that thread once `r` (a blocking or looping handler) started, and the slot it started on.
fn borrowed_run<M: Send + Sync + 'static>(
    h: &Harness,
    d: &Arc<Dispatcher<M>>,
    client: &str,
    r: InvocationRequest<M>,
) -> (JoinHandle<Result<ResponseObject, RomaError>>, usize) {
    let d = Arc::clone(d);
    let thread = std::thread::Builder::new()
        .name(client.into())
        .spawn(move || blocking(&d, r))
        .expect("the client thread starts");
    (thread, h.wait_started().0)
}

/// Backends created for slot 0 in `events`.
fn spawns(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Spawn { worker: 0, .. }))
        .count()
}

/// The thread the last execution ran on.
fn last_thread(h: &Harness) -> String {
    h.exec_threads().last().cloned().unwrap_or_default()
}

#[test]
fn an_idle_slot_runs_blocking_requests_on_the_callers_thread_and_stays_asleep() {
    let h = Harness::new();
    let d = ready(&h, config(1, 0));
    for i in 0..5 {
        let input = i.to_string();
        let r = blocking(&d, req("v1", "echo", &[&input])).unwrap();
        assert_eq!(r.resp, format!("v1|js|{i}"));
        assert_eq!(r.metrics[metrics::WORKER_INDEX], 0.0);
        assert!(r.metrics.contains_key(metrics::HOP_CALLBACK_MS));
        assert_eq!(last_thread(&h), me(), "request {i}");
        // Given back parked: nothing woke the slot thread to take it back.
        assert!(d.stats().workers[0].parked);
    }
    // The callback form goes through the slot thread, which then parks again.
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "echo", &["cb"]), sink(&tx)).unwrap();
    assert_eq!(recv(&rx).unwrap().resp, "v1|js|cb");
    assert_eq!(last_thread(&h), "roma-slot-0");
    parked(&d, 0);
    blocking(&d, req("v1", "echo", &[])).unwrap();
    assert_eq!(last_thread(&h), me());
}

#[test]
fn with_the_hand_off_off_every_request_goes_through_a_slot_thread() {
    let h = Harness::new();
    let d = start::<()>(
        &h,
        DispatcherConfig {
            direct_handoff: false,
            ..config(1, 0)
        },
    );
    load_ok(&d, code("v1", "js"));
    for _ in 0..3 {
        blocking(&d, req("v1", "echo", &[])).unwrap();
        assert_eq!(last_thread(&h), "roma-slot-0");
        assert!(!d.stats().workers[0].parked);
    }
}

#[test]
fn a_claimed_slot_counts_as_running_and_its_queue_is_stolen() {
    let h = Harness::new();
    let d = Arc::new(ready(&h, config(2, 0)));
    let (a, slot) = borrowed_run(&h, &d, "client-a", req("v1", "block:a", &[]));
    assert_eq!(slot, 0, "the least busy slot, lowest index");
    assert_eq!(last_thread(&h), "client-a");
    let s = d.stats();
    assert!(s.workers[0].running && !s.workers[0].parked, "{s:?}");
    assert!(!d.is_idle());
    // Placement sees slot 0 busy: the next request goes to slot 1 ...
    let (tx, rx) = mpsc::channel();
    d.execute(req("v1", "block:b", &[]), sink(&tx)).unwrap();
    assert_eq!(h.wait_started().0, 1);
    // ... and, both busy, the one after that queues on slot 0, whose thread must not run it
    // (the backend is lent); slot 1 steals it once free.
    d.execute(req("v1", "echo", &["c"]), sink(&tx)).unwrap();
    h.open("b");
    let first = recv(&rx).unwrap();
    assert_eq!(first.resp, "released b");
    let c = recv(&rx).unwrap();
    assert_eq!(c.resp, "v1|js|c");
    assert_eq!(c.metrics[metrics::WORKER_INDEX], 1.0, "stolen by slot 1");
    h.open("a");
    assert_eq!(a.join().unwrap().unwrap().resp, "released a");
    parked(&d, 0);
    parked(&d, 1);
}

#[test]
fn cancel_reaches_a_request_running_on_the_callers_thread() {
    let h = Harness::new();
    let d = Arc::new(ready(&h, config(1, 0)));
    let (tok_tx, tok_rx) = mpsc::channel();
    let client = {
        let d = Arc::clone(&d);
        std::thread::spawn(move || {
            d.execute_blocking(req("v1", "loop", &[]), PATIENCE, |t| {
                tok_tx.send(t.clone()).unwrap();
            })
        })
    };
    let token = tok_rx.recv_timeout(PATIENCE).unwrap();
    h.wait_started();
    assert!(d.cancel(&token));
    let err = client.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(!d.cancel(&token), "answered: nothing left to cancel");
    // A cancel between acceptance and the run ends it before it starts.
    let err = d
        .execute_blocking(req("v1", "echo", &[]), PATIENCE, |t| assert!(d.cancel(t)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    parked(&d, 0);
    assert!(blocking(&d, req("v1", "echo", &[])).is_ok());
    assert_eq!(last_thread(&h), me());
}

#[test]
fn stop_waits_for_a_borrowed_run_which_is_answered_then_every_backend_is_dropped() {
    let h = Harness::new();
    let log = MetaLog::new();
    let d = Arc::new(start::<crate::fake::Meta>(&h, config(1, 0)));
    load_ok(&d, code("v1", "js"));
    parked(&d, 0);
    let (client, _) = borrowed_run(&h, &d, "client", log.req(1, req("v1", "block:g", &[])));
    let stopper = {
        let d = Arc::clone(&d);
        std::thread::spawn(move || d.stop())
    };
    // Once stop has begun, new requests are refused (one accepted before it is cancelled).
    let (tx, rx) = mpsc::channel();
    let deadline = std::time::Instant::now() + PATIENCE;
    for tag in 2.. {
        match d.execute(log.req(tag, req("v1", "echo", &[])), sink(&tx)) {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
                break;
            }
            Ok(_) => assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::Cancelled),
        }
        assert!(std::time::Instant::now() < deadline, "stop never began");
    }
    // The slot thread cannot exit while its backend is lent, so stop cannot have returned.
    assert!(!stopper.is_finished());
    assert!(!h.all_dropped());
    h.open("g");
    assert_eq!(client.join().unwrap().unwrap().resp, "released g");
    stopper.join().unwrap();
    assert!(h.all_dropped());
    assert_eq!(log.of(1), vec![Seen::Dropped(1)]);
}

#[test]
fn a_crash_or_panic_on_the_borrowed_backend_is_answered_and_the_slot_respawns() {
    let h = Harness::new();
    let d = ready(&h, config(1, 0));
    let err = blocking(&d, req("v1", "crash", &[])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerCrashed, "{err}");
    assert_eq!(last_thread(&h), me());
    h.wait_events("the respawn", |e| spawns(e) == 2);
    parked(&d, 0);
    assert_eq!(h.loads(0, 2), vec!["v1"], "the cache is replayed");
    assert_eq!(blocking(&d, req("v1", "echo", &[])).unwrap().resp, "v1|js|");
    assert_eq!(h.execs().last().unwrap().1, 2);
    assert_eq!(last_thread(&h), me());
    let err = blocking(&d, req("v1", "panic", &[])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    h.wait_events("the second respawn", |e| spawns(e) == 3);
    parked(&d, 0);
    assert!(blocking(&d, req("v1", "echo", &[])).is_ok());
    // A backend that answers and is then found dead (a zombie) is replaced too.
    blocking(&d, req("v1", "zombie", &[])).unwrap();
    h.wait_events("the zombie's replacement", |e| spawns(e) == 4);
}

#[test]
fn a_backend_killed_while_parked_is_replaced_and_the_request_runs_on_the_new_one() {
    let h = Harness::new();
    let d = ready(&h, config(1, 0));
    h.kill(0);
    let r = blocking(&d, req("v1", "echo", &["after"])).unwrap();
    assert_eq!(r.resp, "v1|js|after");
    let execs = h.execs();
    assert_eq!(
        execs,
        vec![(0, 2, "echo".to_owned())],
        "never sent to the dead one"
    );
    assert_eq!(last_thread(&h), "roma-slot-0", "it waited in the queue");
}

#[test]
fn version_not_found_is_retried_on_the_borrowed_backend() {
    let h = Harness::new();
    let d = ready(&h, config(1, 0));
    blocking(&d, req("v1", "forget", &[])).unwrap();
    assert_eq!(
        blocking(&d, req("v1", "echo", &["x"])).unwrap().resp,
        "v1|js|x"
    );
    assert_eq!(
        h.loads(0, 1),
        vec!["v1", "v1"],
        "reloaded from the host cache"
    );
    assert_eq!(h.exec_threads(), vec![me(), me(), me()]);
}

#[test]
fn the_request_count_recycling_rule_is_never_passed_through_the_hand_off() {
    let h = Harness::new();
    let d = ready(
        &h,
        DispatcherConfig {
            recycle_after_requests: 2,
            ..config(1, 0)
        },
    );
    for _ in 0..3 {
        blocking(&d, req("v1", "echo", &[])).unwrap();
    }
    let generations: Vec<usize> = h.execs().iter().map(|e| e.1).collect();
    assert_eq!(generations, vec![1, 1, 2], "recycled after two");
    assert_eq!(
        h.exec_threads(),
        vec![me(), me(), "roma-slot-0".to_owned()],
        "the third claim was refused: the slot thread counted and recycled"
    );
    assert_eq!(d.stats().workers[0].recycled, 1);
    assert_eq!(h.loads(0, 2), vec!["v1"]);
}

#[test]
fn a_load_during_a_borrowed_run_is_applied_once_the_backend_is_back() {
    let h = Harness::new();
    let d = Arc::new(ready(&h, config(1, 0)));
    let (client, _) = borrowed_run(&h, &d, "client", req("v1", "block:g", &[]));
    let (tx, rx) = mpsc::channel();
    d.load(code("v2", "js2"), sink(&tx)).unwrap();
    h.open("g");
    assert!(client.join().unwrap().is_ok());
    recv(&rx).expect("the load completes");
    assert_eq!(h.loads(0, 1), vec!["v1", "v2"]);
    parked(&d, 0);
    assert_eq!(
        blocking(&d, req("v2", "echo", &[])).unwrap().resp,
        "v2|js2|"
    );
}

#[test]
fn a_blocking_submit_in_a_callback_is_refused() {
    let h = Harness::new();
    let d = Arc::new(ready(&h, config(1, 0)));
    let (tx, rx) = mpsc::channel();
    let inner = Arc::clone(&d);
    d.execute(req("v1", "echo", &[]), move |_| {
        let r = inner.execute_blocking(req("v1", "echo", &[]), PATIENCE, |_| {});
        let _ = tx.send(r.map(|_| ()).map_err(|e| e.kind()));
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        Err(ErrorKind::InvalidArgument)
    );
}

#[test]
fn metadata_is_dropped_once_before_the_blocking_call_returns() {
    let h = Harness::new();
    let log = MetaLog::new();
    let d = start::<crate::fake::Meta>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    parked(&d, 0);
    blocking(&d, log.req(1, req("v1", "echo", &[]))).unwrap();
    assert_eq!(log.of(1), vec![Seen::Dropped(1)]);
    assert_eq!(last_thread(&h), me());
    let err = blocking(&d, log.req(2, req("nope", "echo", &[]))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VersionNotFound);
    assert_eq!(log.of(2), vec![Seen::Dropped(2)]);
}

#[test]
fn a_panic_in_the_accepted_closure_ends_the_claim_and_drops_the_request_once() {
    let h = Harness::new();
    let log = MetaLog::new();
    let d = start::<crate::fake::Meta>(&h, config(1, 0));
    load_ok(&d, code("v1", "js"));
    parked(&d, 0);
    let request = log.req(1, req("v1", "echo", &[]));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        d.execute_blocking(request, PATIENCE, |_| panic!("the caller's closure"))
    }));
    assert!(caught.is_err(), "the panic reaches the caller");
    assert_eq!(log.of(1), vec![Seen::Dropped(1)], "never ran, dropped once");
    assert!(h.exec_threads().is_empty(), "nothing ran");
    let s = d.stats();
    assert!(
        s.workers[0].parked && !s.workers[0].running,
        "the slot is back: {s:?}"
    );
    let again = blocking(&d, log.req(2, req("v1", "echo", &["y"])));
    assert_eq!(again.unwrap().resp, "v1|js|y");
    assert_eq!(last_thread(&h), me(), "and claimable again");
}

#[test]
fn blocking_and_callback_clients_together_each_get_exactly_one_answer() {
    let h = Harness::new();
    let d = Arc::new(ready(&h, config(2, 0)));
    let clients: Vec<_> = (0..3)
        .map(|t| {
            let d = Arc::clone(&d);
            std::thread::spawn(move || {
                for i in 0..300 {
                    let input = format!("{t}-{i}");
                    let r = blocking(&d, req("v1", "echo", &[&input])).unwrap();
                    assert_eq!(r.resp, format!("v1|js|{input}"));
                }
            })
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    for i in 0..300 {
        let input = format!("cb-{i}");
        d.execute_waiting(req("v1", "echo", &[&input]), PATIENCE, sink(&tx))
            .unwrap();
    }
    for c in clients {
        c.join().unwrap();
    }
    let mut got: Vec<String> = (0..300).map(|_| recv(&rx).unwrap().resp).collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 300);
    assert!(rx.try_recv().is_err(), "no second answer");
    assert_eq!(h.execs().len(), 1200);
}
