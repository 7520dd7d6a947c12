//! Backpressure: submits that wait for room in the queues, batches larger than the queues, and
//! queue-full errors that name the setting to raise.

use crate::fake::{PATIENCE, Reply, recv, req, sink};
use crate::{Shared, config, hold, loaded, shared, wait_stats};
use roma_core::{ErrorKind, InvocationRequest, RomaError};
use roma_dispatch::Dispatcher;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

/// `execute_waiting` of `r` (up to [`PATIENCE`]) on a thread of its own, answering to `tx`.
fn submit_waiting(
    d: &Arc<Dispatcher<()>>,
    r: InvocationRequest,
    tx: &mpsc::Sender<Reply>,
) -> JoinHandle<Result<(), RomaError>> {
    let d = Arc::clone(d);
    let tx = tx.clone();
    std::thread::spawn(move || d.execute_waiting(r, PATIENCE, sink(&tx)).map(|_| ()))
}

#[test]
fn four_threads_submit_four_thousand_requests_without_a_retry() {
    // Room for 10 queued requests: far fewer than the 4,000 submitted.
    let (_h, d) = loaded::<()>(config(2, 5));
    let d = Arc::new(d);
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let d = Arc::clone(&d);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..1000 {
                    let input = format!("{t}-{i}");
                    d.execute_waiting(req("v1", "echo", &[&input]), PATIENCE, sink(&tx))
                        .expect("a waiting submit is accepted");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut ok = 0;
    for _ in 0..4000 {
        recv(&rx).expect("every request runs");
        ok += 1;
    }
    assert_eq!(ok, 4000);
}

#[test]
fn queue_full_names_the_setting_and_a_wait_ends_at_its_deadline() {
    let (h, d) = loaded::<()>(config(1, 1));
    let (tx, rx) = mpsc::channel();
    hold(&h, &d, "g", &tx, 0);
    d.execute(req("v1", "echo", &["queued"]), sink(&tx))
        .unwrap();
    let full = d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap_err();
    assert_eq!(full.kind(), ErrorKind::QueueFull);
    assert!(full.message().contains("worker_queue_max_items"), "{full}");
    let waited = d
        .execute_waiting(req("v1", "echo", &[]), Duration::from_millis(20), sink(&tx))
        .unwrap_err();
    assert_eq!(waited.kind(), ErrorKind::QueueFull);
    assert!(
        waited.message().starts_with("waited 20ms for room"),
        "{waited}"
    );
    assert!(
        waited.message().contains("worker_queue_max_items"),
        "{waited}"
    );
    h.open("g");
    recv(&rx).unwrap();
    recv(&rx).unwrap();
}

#[test]
fn a_waiting_submit_takes_the_room_a_started_request_frees() {
    let Shared { h, d, tx, rx } = shared(config(1, 1));
    hold(&h, &d, "a", &tx, 0);
    d.execute(req("v1", "block:b", &[]), sink(&tx)).unwrap();
    let waiter = submit_waiting(&d, req("v1", "echo", &["late"]), &tx);
    // `block:b` leaves the queue when `block:a` finishes: that frees the waiter's room.
    h.open("a");
    h.wait_started();
    waiter
        .join()
        .unwrap()
        .expect("the waiter got the freed room");
    h.open("b");
    let mut resps: Vec<String> = (0..3).map(|_| recv(&rx).unwrap().resp).collect();
    resps.sort();
    assert_eq!(resps, ["released a", "released b", "v1|js|late"]);
}

#[test]
fn stop_ends_a_wait_for_room() {
    let Shared { h, d, tx, rx } = shared(config(1, 1));
    hold(&h, &d, "g", &tx, 0);
    d.execute(req("v1", "echo", &[]), sink(&tx)).unwrap();
    let waiter = submit_waiting(&d, req("v1", "echo", &[]), &tx);
    let stopper = {
        let d = Arc::clone(&d);
        std::thread::spawn(move || d.stop())
    };
    let refused = waiter.join().unwrap().unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Cancelled, "{refused}");
    h.open("g");
    stopper.join().unwrap();
    let mut kinds: Vec<_> = (0..2)
        .map(|_| recv(&rx).map_or_else(|e| e.kind().as_str(), |_| "ok"))
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["cancelled", "ok"]);
}

#[test]
fn a_batch_larger_than_the_queues_runs_when_it_may_wait() {
    let (_h, d) = loaded::<()>(config(1, 3));
    let requests = || -> Vec<_> {
        (0..20)
            .map(|i| req("v1", "echo", &[&i.to_string()]))
            .collect()
    };
    let (tx, rx) = mpsc::channel();
    let refused = d.batch_execute(requests(), sink(&tx)).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::QueueFull);
    assert!(
        refused.message().contains("worker_queue_max_items")
            && refused.message().contains("batch_execute_waiting"),
        "{refused}"
    );
    let tokens = d
        .batch_execute_waiting(requests(), PATIENCE, sink(&tx))
        .unwrap();
    assert_eq!(tokens.len(), 20);
    let results = recv(&rx);
    let resps: Vec<String> = results.into_iter().map(|r| r.unwrap().resp).collect();
    let want: Vec<String> = (0..20).map(|i| format!("v1|js|{i}")).collect();
    assert_eq!(resps, want);
    assert!(rx.try_recv().is_err(), "one batch callback");
}

#[test]
fn a_later_piece_that_finds_no_room_is_answered_in_the_batch_callback() {
    let (h, d) = loaded::<()>(config(1, 2));
    let (tx, rx) = mpsc::channel();
    hold(&h, &d, "g", &tx, 0);
    let (btx, brx) = mpsc::channel();
    let batch: Vec<_> = (0..4)
        .map(|i| req("v1", "echo", &[&i.to_string()]))
        .collect();
    let tokens = d
        .batch_execute_waiting(batch, Duration::from_millis(20), sink(&btx))
        .unwrap();
    assert_eq!(tokens.len(), 2, "the first piece filled the queues");
    wait_stats(&d, "the first piece queued", |s| s.queued == 2);
    h.open("g");
    recv(&rx).unwrap();
    let results = recv(&brx);
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().unwrap().resp, "v1|js|0");
    assert_eq!(results[1].as_ref().unwrap().resp, "v1|js|1");
    for r in &results[2..] {
        assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::QueueFull);
    }
}

#[test]
fn a_callback_does_not_wait_for_room_on_its_own_thread() {
    let Shared { h, d, tx, rx } = shared(config(1, 1));
    d.execute(req("v1", "echo", &["queued"]), sink(&tx))
        .unwrap();
    recv(&rx).unwrap();
    // From the slot thread, with the queue held full by `block:g` queued behind this
    // callback's own request, a waiting submit refuses at once instead of waiting for its
    // own thread.
    let (otx, orx) = mpsc::channel();
    let inner = Arc::clone(&d);
    let itx = tx.clone();
    d.execute(req("v1", "echo", &["outer"]), move |_| {
        let first = inner.execute(req("v1", "block:g", &[]), sink(&itx));
        let second = inner.execute_waiting(req("v1", "echo", &[]), PATIENCE, sink(&itx));
        let _ = otx.send((first.is_ok(), second.map(|_| ()).map_err(|e| e.kind())));
    })
    .unwrap();
    let (first, second) = recv(&orx);
    assert!(first);
    assert_eq!(second, Err(ErrorKind::QueueFull));
    h.open("g");
    recv(&rx).unwrap();
}
