//! Integration tests of roma-dispatch, driven through the fake backend in `fake.rs`.
//!
//! Tests synchronise on the fake's events, gates and "started" reports, never on sleeps, and
//! assert no timings. `fake::PATIENCE` only turns a hang into a failure. One test sleeps to
//! open an observation window (`crashloop.rs`, counting respawns): its bound only a tight
//! respawn loop can break, and a slow machine makes it easier to meet.
#![allow(
    missing_debug_implementations,
    reason = "test harness types are never printed"
)]

mod api;
mod backpressure;
mod batch;
mod cancel;
mod contain;
mod crashloop;
mod direct;
mod exec;
mod fake;
mod here_or_async;
mod load;
mod low_latency;
mod recovery;
mod recycle;
mod stop;
mod stress;

use fake::{Harness, Meta, MetaLog, Reply};
use roma_core::ErrorKind;
use roma_dispatch::{Dispatcher, DispatcherConfig, DispatcherStats, ExecutionToken, WorkerHealth};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// `workers` slots with `per` queued executions each (0 = the default).
pub fn config(workers: usize, per: usize) -> DispatcherConfig {
    DispatcherConfig {
        number_of_workers: workers,
        worker_queue_max_items: per,
        ..Default::default()
    }
}

/// `workers` slots whose respawn backoff starts at `initial` and climbs to `max`.
pub fn with_backoff(workers: usize, initial: Duration, max: Duration) -> DispatcherConfig {
    DispatcherConfig {
        respawn_backoff_initial: initial,
        respawn_backoff_max: max,
        ..config(workers, 0)
    }
}

/// A dispatcher over fakes from `h`.
pub fn start<M: Send + Sync + 'static>(h: &Arc<Harness>, cfg: DispatcherConfig) -> Dispatcher<M> {
    Dispatcher::new(cfg, h.factory()).expect("dispatcher starts")
}

/// A fresh harness and a dispatcher over its fakes.
pub fn fresh<M: Send + Sync + 'static>(cfg: DispatcherConfig) -> (Arc<Harness>, Dispatcher<M>) {
    let h = Harness::new();
    let d = start(&h, cfg);
    (h, d)
}

/// [`fresh`], with version `v1` (js `js`) loaded.
pub fn loaded<M: Send + Sync + 'static>(cfg: DispatcherConfig) -> (Arc<Harness>, Dispatcher<M>) {
    let (h, d) = fresh(cfg);
    fake::load_ok(&d, fake::code("v1", "js"));
    (h, d)
}

/// Polls `stats` until `pred` holds. For states no callback or fake event announces (a slot
/// marked down after its factory failed); a hang fails after `fake::PATIENCE`.
pub fn wait_stats<M: Send + Sync + 'static>(
    d: &Dispatcher<M>,
    what: &str,
    pred: impl Fn(&DispatcherStats) -> bool,
) -> DispatcherStats {
    let deadline = std::time::Instant::now() + fake::PATIENCE;
    loop {
        let s = d.stats();
        if pred(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}; stats {s:?}"
        );
        std::thread::yield_now();
    }
}

/// Whether slot `i` is in `health`.
pub fn health_is(s: &DispatcherStats, i: usize, health: WorkerHealth) -> bool {
    s.workers.get(i).is_some_and(|w| w.health == health)
}

/// A backoff long enough that a failed respawn is not retried during a test (stop ends it).
pub const NO_RETRY: Duration = Duration::from_secs(3600);

/// Submits request `tag` of version `v1` with a handler that reports its start (`block:<gate>`,
/// `crash-after:<gate>`, `loop`), answering to `tx`, and checks it started on slot `worker`.
pub fn run_on(
    h: &Harness,
    d: &Dispatcher<Meta>,
    log: &Arc<MetaLog>,
    (tag, handler): (u32, &str),
    tx: &mpsc::Sender<Reply>,
    worker: usize,
) {
    log.submit(d, tag, handler, tx);
    assert_eq!(h.wait_started().0, worker, "slot of request {tag}");
}

/// What the tests of a request's life start from: a dispatcher of [`Meta`] requests over fakes
/// with `v1` loaded, the log of their metadata, and a channel for their answers.
pub struct Logged {
    pub h: Arc<Harness>,
    pub d: Dispatcher<Meta>,
    pub log: Arc<MetaLog>,
    pub tx: mpsc::Sender<Reply>,
    pub rx: mpsc::Receiver<Reply>,
}

/// [`Logged`] over `cfg`, with the `running` requests submitted through [`run_on`] in order,
/// request `i` checked to start on slot `i` (the least busy slot, lowest index first).
pub fn logged(cfg: DispatcherConfig, running: &[(u32, &str)]) -> Logged {
    let (h, d) = loaded(cfg);
    let log = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    for (slot, &request) in running.iter().enumerate() {
        run_on(&h, &d, &log, request, &tx, slot);
    }
    Logged { h, d, log, tx, rx }
}

/// A dispatcher of plain requests over fakes with `v1` loaded, behind an `Arc` so that
/// callbacks and other threads may call it too, and a channel for the answers.
pub struct Shared {
    pub h: Arc<Harness>,
    pub d: Arc<Dispatcher<()>>,
    pub tx: mpsc::Sender<Reply>,
    pub rx: mpsc::Receiver<Reply>,
}

/// [`Shared`] over `cfg`.
pub fn shared(cfg: DispatcherConfig) -> Shared {
    let (h, d) = loaded(cfg);
    let (tx, rx) = mpsc::channel();
    Shared {
        h,
        d: Arc::new(d),
        tx,
        rx,
    }
}

/// Submits `block:<gate>` of version `v1`, answering to `tx`, and checks that it started on
/// slot `worker`: that slot stays busy until the test opens `gate`. Returns its token.
pub fn hold(
    h: &Harness,
    d: &Dispatcher<()>,
    gate: &str,
    tx: &mpsc::Sender<Reply>,
    worker: usize,
) -> ExecutionToken {
    let handler = format!("block:{gate}");
    let token = d
        .execute(fake::req("v1", &handler, &[]), fake::sink(tx))
        .unwrap_or_else(|e| panic!("{handler} refused: {e}"));
    assert_eq!(h.wait_started().0, worker, "slot of {handler}");
    token
}

/// Drops `d`, which answers all it holds first, and returns the callbacks `calls` counted
/// ([`fake::counted`]): a test of "one callback" reads the count here.
pub fn callbacks_after_drop<M: Send + Sync + 'static>(
    d: Dispatcher<M>,
    calls: &AtomicUsize,
) -> usize {
    drop(d);
    calls.load(Ordering::SeqCst)
}

/// Checks that `d` refuses new work with `kind`: request `tag` (its metadata dropped, its
/// callback never run) and a load.
pub fn assert_refuses_work(d: &Dispatcher<Meta>, log: &Arc<MetaLog>, tag: u32, kind: ErrorKind) {
    let (tx, _rx) = mpsc::channel();
    let err = d
        .execute(
            log.req(tag, fake::req("v1", "echo", &[])),
            log.sink(tag, &tx),
        )
        .unwrap_err();
    assert_eq!(err.kind(), kind, "request {tag}: {err}");
    log.assert_refused(tag);
    let err = d.load(fake::code("refused", "js"), |_| {}).unwrap_err();
    assert_eq!(err.kind(), kind, "load: {err}");
}

/// Submits request `tag` as a `loop` (it runs until interrupted), cancels it once it started,
/// and checks that it was answered `Cancelled`, once. Returns its token.
pub fn cancel_a_running_loop(
    h: &Harness,
    d: &Dispatcher<Meta>,
    log: &Arc<MetaLog>,
    tag: u32,
) -> ExecutionToken {
    let (tx, rx) = mpsc::channel();
    let token = log.submit(d, tag, "loop", &tx);
    h.wait_started();
    assert!(d.cancel(&token));
    assert_eq!(fake::recv(&rx).unwrap_err().kind(), ErrorKind::Cancelled);
    log.assert_answered_once(tag);
    token
}

/// Stops `d` on another thread and fails the test if `stop` has not returned after
/// `fake::PATIENCE`: for waits that `stop` must end (a backoff of an hour, an idle poll).
pub fn stop_promptly<M: Send + Sync + 'static>(d: Dispatcher<M>) {
    let d = Arc::new(d);
    let stopper = Arc::clone(&d);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        stopper.stop();
        let _ = tx.send(());
    });
    rx.recv_timeout(fake::PATIENCE)
        .expect("stop returns promptly");
}
