//! Queues, batches, cancel, stop, versions and metrics through real sandboxed workers.

use crate::common::shared::block_on;
use crate::common::*;
use roma::{ErrorKind, InvocationRequest, RomaService, metrics};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

const SPIN: &str = "function Spin() { while (true) {} }";

fn spin_request(timeout: Duration) -> InvocationRequest {
    let mut r: InvocationRequest = request("v1", "Spin", &[]);
    r.timeout = Some(timeout);
    r
}

/// A service with one worker, busy with a spinning request until `cancel` of the returned
/// token (or its 30 s timeout).
fn busy_service(queue: usize) -> (RomaService, roma::ExecutionToken, mpsc::Receiver<ErrorKind>) {
    let mut c = config::<()>(1);
    c.worker_queue_max_items(queue);
    let svc = RomaService::new(c).unwrap();
    load(&svc, code("v1", &format!("{SPIN} {HELLO}"))).unwrap();
    let (tx, rx) = mpsc::channel();
    let token = svc
        .execute(spin_request(Duration::from_secs(30)), move |r| {
            let _ = tx.send(r.map(|_| ErrorKind::Internal).unwrap_or_else(|e| e.kind()));
        })
        .unwrap();
    // Wait until the worker has taken it, so the queue below counts only what we add.
    let deadline = std::time::Instant::now() + PATIENCE;
    while svc.stats().queued > 0 || !svc.stats().workers[0].running {
        assert!(
            std::time::Instant::now() < deadline,
            "the spinner never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    (svc, token, rx)
}

/// Cancels [`busy_service`]'s running spinner and checks that it was answered `Cancelled`.
fn cancel_spinner(
    svc: &RomaService,
    token: &roma::ExecutionToken,
    spinner: &mpsc::Receiver<ErrorKind>,
) {
    assert!(svc.cancel(token), "the spinner is still running");
    assert_eq!(
        spinner.recv_timeout(PATIENCE).unwrap(),
        ErrorKind::Cancelled
    );
}

#[test]
fn hello_world_async() {
    let svc = service(1);
    block_on(svc.load_code_obj_async(code("v1", HELLO))).unwrap();
    let r = block_on(svc.execute_async(request("v1", "Handler", &[r#""Foobar""#]))).unwrap();
    assert_eq!(r.resp, r#""Hello world! \"Foobar\"""#);
    let rs = block_on(svc.batch_execute_async(vec![
        request("v1", "Handler", &[r#""a""#]),
        request("v1", "Handler", &[r#""b""#]),
    ]))
    .unwrap();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[1].as_ref().unwrap().resp, r#""Hello world! \"b\"""#);
}

#[test]
fn ten_thousand_executions_from_eight_threads_each_answered_once() {
    let mut c = config::<()>(2);
    c.worker_queue_max_items(10_000);
    let svc = Arc::new(RomaService::new(c).unwrap());
    load(&svc, code("v1", HELLO)).unwrap();
    let delivered = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (svc, delivered, ok, done_tx) = (
                Arc::clone(&svc),
                Arc::clone(&delivered),
                Arc::clone(&ok),
                done_tx.clone(),
            );
            std::thread::spawn(move || {
                for i in 0..1250 {
                    let input = format!("\"{t}-{i}\"");
                    let expect = format!(r#""Hello world! \"{t}-{i}\"""#);
                    let (delivered, ok, done_tx) =
                        (Arc::clone(&delivered), Arc::clone(&ok), done_tx.clone());
                    svc.execute(request("v1", "Handler", &[&input]), move |r| {
                        if r.is_ok_and(|r| r.resp == expect) {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        delivered.fetch_add(1, Ordering::SeqCst);
                        let _ = done_tx.send(());
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    for _ in 0..10_000 {
        done_rx
            .recv_timeout(PATIENCE)
            .expect("a callback never came");
    }
    svc.stop();
    assert_eq!(delivered.load(Ordering::SeqCst), 10_000);
    assert_eq!(ok.load(Ordering::SeqCst), 10_000);
}

#[test]
fn queue_full_at_capacity_and_a_batch_that_does_not_fit_is_refused_whole() {
    let (svc, token, spinner) = busy_service(3);
    let (tx, rx) = mpsc::channel();
    for _ in 0..3 {
        let tx = tx.clone();
        svc.execute(request("v1", "Handler", &[r#""q""#]), move |r| {
            let _ = tx.send(r.is_ok());
        })
        .unwrap();
    }
    let e = svc
        .execute(request("v1", "Handler", &[]), |_| {
            panic!("refused requests get no callback")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QueueFull);
    cancel_spinner(&svc, &token, &spinner);
    for _ in 0..3 {
        assert!(rx.recv_timeout(PATIENCE).unwrap());
    }
    // Now the queue is empty (capacity 3): a batch of 4 cannot fit even while idle workers
    // would drain it, and none of it runs.
    let (svc, token, spinner) = busy_service(3);
    let batch = (0..4).map(|_| request("v1", "Handler", &[])).collect();
    let e = svc
        .batch_execute(batch, |_| panic!("refused batches get no callback"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QueueFull);
    assert_eq!(svc.stats().queued, 0);
    cancel_spinner(&svc, &token, &spinner);
}

#[test]
fn cancel_of_a_queued_request_answers_at_once() {
    let (svc, token, spinner) = busy_service(10);
    let (tx, rx) = mpsc::channel();
    let queued = svc
        .execute(request("v1", "Handler", &[]), move |r| {
            let _ = tx.send(r.map(|_| ()).map_err(|e| e.kind()));
        })
        .unwrap();
    assert!(svc.cancel(&queued));
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        Err(ErrorKind::Cancelled)
    );
    cancel_spinner(&svc, &token, &spinner);
}

#[test]
fn stop_with_a_thousand_queued_requests_cancels_every_one() {
    let (svc, _token, spinner) = busy_service(1000);
    let cancelled = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    for _ in 0..1000 {
        let (c, d) = (Arc::clone(&cancelled), Arc::clone(&delivered));
        svc.execute(request("v1", "Handler", &[]), move |r| {
            if r.is_err_and(|e| e.kind() == ErrorKind::Cancelled) {
                c.fetch_add(1, Ordering::SeqCst);
            }
            d.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    // stop answers the queued ones at once and waits for the running spinner, whose 30 s
    // timeout would be too long: cancel it from another thread once stop has begun.
    let svc = Arc::new(svc);
    let stopper = {
        let svc = Arc::clone(&svc);
        std::thread::spawn(move || svc.stop())
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while delivered.load(Ordering::SeqCst) < 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "queued requests were not answered"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(cancelled.load(Ordering::SeqCst), 1000);
    // The running request still ends (by its timeout or here by cancel) with one answer.
    let _ = &_token;
    svc.cancel(&_token);
    assert!(spinner.recv_timeout(PATIENCE).is_ok());
    stopper.join().unwrap();
}

#[test]
fn versions_past_the_cache_size_are_evicted_least_recently_used_first() {
    let mut c = config::<()>(1);
    c.code_version_cache_size(2);
    let svc = RomaService::new(c).unwrap();
    for v in ["v1", "v2"] {
        load(
            &svc,
            code(v, &format!("function Handler() {{ return '{v}'; }}")),
        )
        .unwrap();
    }
    // Use v1 so that v2 is the least recently used, then load v3.
    assert_eq!(
        exec(&svc, request::<()>("v1", "Handler", &[]))
            .unwrap()
            .resp,
        r#""v1""#
    );
    load(&svc, code("v3", "function Handler() { return 'v3'; }")).unwrap();
    let e = exec(&svc, request::<()>("v2", "Handler", &[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VersionNotFound);
    assert_eq!(
        exec(&svc, request::<()>("v1", "Handler", &[]))
            .unwrap()
            .resp,
        r#""v1""#
    );
    assert_eq!(
        exec(&svc, request::<()>("v3", "Handler", &[]))
            .unwrap()
            .resp,
        r#""v3""#
    );
}

#[test]
fn responses_carry_the_metrics() {
    let svc = service(2);
    load(&svc, code("v1", HELLO)).unwrap();
    let r = exec(&svc, request::<()>("v1", "Handler", &[r#""m""#])).unwrap();
    for key in [
        metrics::DURATION_MS,
        metrics::WAIT_TIME_MS,
        metrics::CODE_RUN_DURATION_MS,
        metrics::CONTEXT_CREATION_MS,
        metrics::INPUT_PARSING_MS,
        metrics::HANDLER_CALL_MS,
        metrics::WORKER_INDEX,
        metrics::IPC_ROUND_TRIP_MS,
    ] {
        let v = r
            .metrics
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing: {:?}", r.metrics));
        assert!(*v >= 0.0, "{key} = {v}");
    }
    assert!(r.metrics[metrics::DURATION_MS] >= r.metrics[metrics::CODE_RUN_DURATION_MS]);
    // Every hop is there, in order, within the request's time; the worker's clock readings
    // (wire-only keys) are not.
    let hops: Vec<f64> = metrics::HOPS
        .iter()
        .map(|k| {
            *r.metrics
                .get(*k)
                .unwrap_or_else(|| panic!("{k} missing: {:?}", r.metrics))
        })
        .collect();
    assert!(hops.windows(2).all(|w| w[0] <= w[1]), "{hops:?}");
    assert!(
        hops[5] <= r.metrics[metrics::DURATION_MS],
        "{:?}",
        r.metrics
    );
    // The worker's own hops fall inside the host's window, and not all onto its edges.
    let (sent, answered) = (hops[1], hops[5]);
    let worker = hops[4] - hops[2];
    assert!(
        worker > 0.0 && worker <= answered - sent,
        "handler done - received {worker} ms, sent..answered {sent}..{answered}"
    );
    assert!(
        !r.metrics.keys().any(|k| k.starts_with("roma.wire.")),
        "{:?}",
        r.metrics
    );
}

#[test]
fn a_reloaded_version_replaces_the_old_one_everywhere() {
    let svc = service(2);
    load(&svc, code("v1", "function Handler() { return 1; }")).unwrap();
    load(&svc, code("v1", "function Handler() { return 2; }")).unwrap();
    for _ in 0..6 {
        assert_eq!(
            exec(&svc, request::<()>("v1", "Handler", &[]))
                .unwrap()
                .resp,
            "2"
        );
    }
}

#[test]
fn the_low_latency_mode_answers_blocking_clients_and_keeps_timeouts_and_cancel() {
    let mut c = config::<()>(2);
    c.low_latency(Duration::from_millis(5));
    let svc = RomaService::new(c).unwrap();
    load(&svc, code("v1", &format!("{SPIN} {HELLO}"))).unwrap();
    // Gaps inside the poll and beyond it: the slot, the worker and this thread poll, then
    // sleep, and every answer still arrives.
    for (i, gap) in [0u64, 1, 0, 12, 2, 30].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(gap));
        let input = format!("\"{i}\"");
        let r = svc
            .execute_blocking(request("v1", "Handler", &[&input]))
            .unwrap();
        assert_eq!(r.resp, format!("\"Hello world! \\\"{i}\\\"\""));
    }
    // A spinning handler still times out, on a worker that then goes on serving.
    let err = svc
        .execute_blocking(spin_request(Duration::from_millis(200)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let (tx, rx) = mpsc::channel();
    let token = svc
        .execute(spin_request(Duration::from_secs(30)), move |r| {
            let _ = tx.send(r.err().map(|e| e.kind()));
        })
        .unwrap();
    wait_for(|| svc.stats().workers.iter().any(|w| w.running));
    assert!(svc.cancel(&token));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        Some(ErrorKind::Cancelled)
    );
    assert!(svc.execute_blocking(request("v1", "Handler", &[])).is_ok());
}
