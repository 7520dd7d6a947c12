//! Integration tests of roma-core's dispatcher, driven through the fake backend in `fake.rs`.
//!
//! Tests synchronise on the fake's events, gates and "started" reports, never on sleeps, and
//! assert no timings. `fake::PATIENCE` only turns a hang into a failure.
#![allow(
    missing_debug_implementations,
    reason = "test harness types are never printed"
)]

mod api;
mod batch;
mod cancel;
mod contain;
mod exec;
mod fake;
mod load;
mod recovery;
mod stop;
mod stress;

use fake::Harness;
use roma_core::{Dispatcher, DispatcherConfig, DispatcherStats, WorkerHealth};
use std::sync::Arc;
use std::time::Duration;

/// `workers` slots with `per` queued executions each (0 = the default).
pub fn config(workers: usize, per: usize) -> DispatcherConfig {
    DispatcherConfig {
        number_of_workers: workers,
        worker_queue_max_items: per,
        ..Default::default()
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
