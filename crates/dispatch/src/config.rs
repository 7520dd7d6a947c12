//! Dispatcher settings and their defaults.

use roma_core::{DEFAULT_TIMEOUT, MAX_IDLE_POLL, RomaError};
use std::time::Duration;

/// Settings of a [`super::Dispatcher`]. Zero values mean "the default" where noted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatcherConfig {
    /// Number of worker slots (each owns one backend). Must be at least 1.
    pub number_of_workers: usize,
    /// Queued executions allowed per worker; the total queue capacity is
    /// `number_of_workers * worker_queue_max_items`. 0 means 100 (Roma's default).
    pub worker_queue_max_items: usize,
    /// Versions the host keeps to replay into respawned workers (LRU). 0 means
    /// [`crate::VersionCache::DEFAULT_CAPACITY`]. Keep it equal to the engines'
    /// [`roma_core::EngineLimits::version_cache_size`] so host and workers evict alike.
    pub code_version_cache_size: usize,
    /// How long a load may take, from acceptance until every worker has it, before its callback
    /// gets `Timeout` (the load still completes in the background). 0 means 30 s: a worker takes
    /// a load only after its running request (up to its timeout, 5 s by default) and after the
    /// loads queued before it, so the bound must cover a few top-level runs.
    pub load_timeout: Duration,
    /// Timeout of an invocation that sets none. 0 means [`roma_core::DEFAULT_TIMEOUT`].
    pub default_timeout: Duration,
    /// First wait before retrying a failed respawn, and before replacing a backend that died
    /// before proving healthy (a crash loop; see the dispatcher's "Crash recovery" docs);
    /// doubles up to `respawn_backoff_max`, and starts over once a backend proves healthy.
    /// 0 means 10 ms.
    pub respawn_backoff_initial: Duration,
    /// Longest wait between respawn attempts. Also how long a backend that has not completed
    /// an execution must live for its death to be replaced at once. 0 means 5 s.
    pub respawn_backoff_max: Duration,
    /// Planned recycling: replace a worker after it has run this many executions. 0: never.
    /// See the dispatcher's "Recycling" docs: callers never see it.
    pub recycle_after_requests: u64,
    /// Planned recycling: replace a worker once it is this old (checked between requests, and
    /// while it is idle). Zero: never.
    pub recycle_after_age: Duration,
    /// Planned recycling: replace a worker that used more CPU time than this in a second with
    /// no request (what [`super::WorkerBackend::cpu_time`] reports, sampled once a second
    /// while the slot is idle; stretches shorter than a second are not judged). Zero: never.
    pub recycle_idle_cpu_per_sec: Duration,
    /// Low-latency mode: once idle, a slot thread polls its queue (no lock, no sleep) for up
    /// to this long before it sleeps, so that a request submitted meanwhile is taken without a
    /// thread wake-up. Adaptive: it polls about twice the last idle gap, within this bound,
    /// and not after a gap longer than the bound. A client blocked in
    /// [`super::Dispatcher::execute_blocking`] polls its answer the same way, after its last
    /// wait. Costs up to a core per polling thread while it polls. Zero: off (at most
    /// [`MAX_IDLE_POLL`]).
    pub idle_poll: Duration,
    /// The direct hand-off: a blocking submit ([`super::Dispatcher::execute_blocking`]) that
    /// finds the least busy slot idle, with nothing queued anywhere, borrows that slot's
    /// backend and runs the request on its own thread instead of waking the slot thread and
    /// waiting to be woken in turn (see the dispatcher's "Direct hand-off" docs). On by
    /// default; off, every request goes through a slot thread.
    pub direct_handoff: bool,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            number_of_workers: 1,
            worker_queue_max_items: 0,
            code_version_cache_size: 0,
            load_timeout: Duration::ZERO,
            default_timeout: Duration::ZERO,
            respawn_backoff_initial: Duration::ZERO,
            respawn_backoff_max: Duration::ZERO,
            recycle_after_requests: 0,
            recycle_after_age: Duration::ZERO,
            recycle_idle_cpu_per_sec: Duration::ZERO,
            idle_poll: Duration::ZERO,
            direct_handoff: true,
        }
    }
}

/// The default queue depth per worker.
pub const DEFAULT_WORKER_QUEUE_MAX_ITEMS: usize = 100;
/// The default load timeout.
pub const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A config with every default applied and checked; what the dispatcher runs with.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub workers: usize,
    pub capacity: usize,
    pub cache_size: usize,
    pub load_timeout: Duration,
    pub default_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub recycle: Recycle,
    /// The low-latency mode's bound; `None` when off.
    pub idle_poll: Option<Duration>,
    /// Whether blocking submits may borrow an idle slot's backend.
    pub direct: bool,
}

/// When a slot replaces a healthy backend; every field `None` when off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recycle {
    pub after_requests: Option<u64>,
    pub after_age: Option<Duration>,
    pub idle_cpu_per_sec: Option<Duration>,
}

impl Recycle {
    /// Whether any rule is on.
    pub fn any(&self) -> bool {
        self.after_requests.is_some() || self.after_age.is_some() || self.idle_cpu_per_sec.is_some()
    }
}

impl DispatcherConfig {
    pub(crate) fn resolve(&self) -> Result<Resolved, RomaError> {
        if self.number_of_workers == 0 {
            return Err(RomaError::invalid_argument(
                "number_of_workers must be at least 1",
            ));
        }
        let per = or(self.worker_queue_max_items, DEFAULT_WORKER_QUEUE_MAX_ITEMS);
        let capacity = self.number_of_workers.checked_mul(per).ok_or_else(|| {
            RomaError::invalid_argument("number_of_workers * worker_queue_max_items overflows")
        })?;
        let backoff_initial = or_d(self.respawn_backoff_initial, Duration::from_millis(10));
        Ok(Resolved {
            workers: self.number_of_workers,
            capacity,
            cache_size: self.code_version_cache_size,
            load_timeout: or_d(self.load_timeout, DEFAULT_LOAD_TIMEOUT),
            default_timeout: or_d(self.default_timeout, DEFAULT_TIMEOUT),
            backoff_initial,
            backoff_max: or_d(self.respawn_backoff_max, Duration::from_secs(5))
                .max(backoff_initial),
            recycle: Recycle {
                after_requests: Some(self.recycle_after_requests).filter(|&n| n > 0),
                after_age: Some(self.recycle_after_age).filter(|d| !d.is_zero()),
                idle_cpu_per_sec: Some(self.recycle_idle_cpu_per_sec).filter(|d| !d.is_zero()),
            },
            idle_poll: Some(self.idle_poll.min(MAX_IDLE_POLL)).filter(|d| !d.is_zero()),
            direct: self.direct_handoff,
        })
    }
}

fn or(v: usize, default: usize) -> usize {
    if v == 0 { default } else { v }
}

fn or_d(v: Duration, default: Duration) -> Duration {
    if v.is_zero() { default } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply() {
        let r = DispatcherConfig {
            number_of_workers: 3,
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(r.capacity, 300);
        assert_eq!(r.load_timeout, DEFAULT_LOAD_TIMEOUT);
        assert_eq!(r.default_timeout, DEFAULT_TIMEOUT);
        assert!(r.backoff_max >= r.backoff_initial);
    }

    #[test]
    fn rejects_zero_workers_and_overflow() {
        let zero = DispatcherConfig {
            number_of_workers: 0,
            ..Default::default()
        };
        assert!(zero.resolve().is_err());
        let huge = DispatcherConfig {
            number_of_workers: usize::MAX,
            worker_queue_max_items: 2,
            ..Default::default()
        };
        assert!(huge.resolve().is_err());
    }
}
