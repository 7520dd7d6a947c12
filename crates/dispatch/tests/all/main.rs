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

/// A fresh harness and a dispatcher over its fakes, with version `v1` (js `js`) loaded.
pub fn loaded<M: Send + Sync + 'static>(cfg: DispatcherConfig) -> (Arc<Harness>, Dispatcher<M>) {
    let h = Harness::new();
    let d = start(&h, cfg);
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
