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
mod load;
mod low_latency;
mod recovery;
mod recycle;
mod stop;
mod stress;

use fake::{Harness, Meta, MetaLog, req};
use roma_core::{ResponseObject, RomaError};
use roma_dispatch::{Dispatcher, DispatcherConfig, DispatcherStats, WorkerHealth};
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
    tx: &mpsc::Sender<Result<ResponseObject, RomaError>>,
    worker: usize,
) {
    d.execute(log.req(tag, req("v1", handler, &[])), log.sink(tag, tx))
        .unwrap();
    assert_eq!(h.wait_started().0, worker, "slot of request {tag}");
}
