//! Resource limits a worker's engine starts with, and the bound on the idle poll that host slots
//! and workers share.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The V8 heap limit of a worker whose config sets none, in MB: enough for typical handlers,
/// small enough that a handler allocating in a loop ends in about a second with `OutOfMemory`
/// rather than growing its worker by gigabytes until its timeout. Raise it on purpose
/// (`max_heap_mb`).
pub const DEFAULT_MAX_HEAP_MB: usize = 128;

/// The exit status of a worker that V8 could not keep alive through an out-of-memory (one
/// allocation beyond its heap limit and headroom): the host reports the request it was running
/// as `OutOfMemory`, not as a crash. roma-v8's shim exits with it (`ROMA_FATAL_OOM_EXIT_CODE`
/// in its generated header).
pub const WORKER_OOM_EXIT_CODE: i32 = 86;

/// The longest low-latency idle poll: a dispatcher slot's (`DispatcherConfig::idle_poll` in
/// roma-dispatch) and a worker's (the `idle_poll` of its `Init`). Polling costs up to a core for
/// as long as it lasts, so a worker clamps what the host sends to it.
pub const MAX_IDLE_POLL: Duration = Duration::from_millis(50);

/// How long an idle poller of the low-latency mode (a dispatcher slot waiting for work, a
/// worker waiting for its next request) polls, whose last gap between arrivals was `last_gap`
/// (`None`: none yet): about twice that gap, within `bound`; `bound` until a gap has been seen;
/// nothing after a gap longer than `bound`. A poll cannot catch an arrival later than its
/// bound, and a poller that gets nothing (one of several, the others taking it all) would
/// otherwise poll its bound every time, a core's worth of CPU for nothing.
pub fn idle_poll_budget(last_gap: Option<Duration>, bound: Duration) -> Duration {
    match last_gap {
        None => bound,
        Some(g) if g <= bound => g.saturating_mul(2).min(bound),
        Some(_) => Duration::ZERO,
    }
}

/// Limits and switches for one engine (one per worker). Sent by the host to each worker when it
/// starts, so every field is plain data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineLimits {
    /// Initial V8 heap size in MB (0 = V8's default). Roma's `ConfigureJsEngineResourceConstraints`.
    pub initial_heap_mb: usize,
    /// Maximum V8 heap size in MB (0 = [`DEFAULT_MAX_HEAP_MB`]). An invocation that exhausts it
    /// fails with `OutOfMemory` and the engine recovers.
    pub max_heap_mb: usize,
    /// Cap on `ArrayBuffer` backing memory per isolate in MB (0 = 4 x the effective
    /// `max_heap_mb`). Allocations past it fail the invocation with `OutOfMemory`.
    pub max_array_buffer_mb: usize,
    /// Cap on WebAssembly memory pages of 64 KiB (0 = V8's maximum).
    pub max_wasm_memory_pages: u32,
    /// Timeout for invocations that set none, and for a load's top-level run.
    pub default_timeout: Duration,
    /// How many versions the engine keeps compiled (LRU); 0 means 64.
    pub version_cache_size: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            initial_heap_mb: 0,
            max_heap_mb: 0,
            max_array_buffer_mb: 0,
            max_wasm_memory_pages: 0,
            default_timeout: crate::DEFAULT_TIMEOUT,
            version_cache_size: 64,
        }
    }
}

impl EngineLimits {
    /// The version cache capacity with the 0 default applied.
    pub fn effective_version_cache_size(&self) -> usize {
        if self.version_cache_size == 0 {
            64
        } else {
            self.version_cache_size
        }
    }

    /// The heap limit in MB with the 0 default applied ([`DEFAULT_MAX_HEAP_MB`], or the initial
    /// heap if that is larger).
    pub fn effective_max_heap_mb(&self) -> usize {
        if self.max_heap_mb == 0 {
            // An initial heap set above the default raises the default with it.
            DEFAULT_MAX_HEAP_MB.max(self.initial_heap_mb)
        } else {
            self.max_heap_mb
        }
    }

    /// The array-buffer cap in bytes with defaults applied.
    pub fn effective_array_buffer_bytes(&self) -> usize {
        let mb = if self.max_array_buffer_mb != 0 {
            self.max_array_buffer_mb
        } else {
            self.effective_max_heap_mb().saturating_mul(4)
        };
        mb.saturating_mul(1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::idle_poll_budget;
    use std::time::Duration;

    #[test]
    fn an_idle_poller_polls_twice_its_last_gap_within_the_bound_and_not_after_a_long_one() {
        let bound = Duration::from_millis(50);
        assert_eq!(idle_poll_budget(None, bound), bound);
        assert_eq!(
            idle_poll_budget(Some(Duration::from_millis(2)), bound),
            Duration::from_millis(4)
        );
        assert_eq!(
            idle_poll_budget(Some(Duration::from_millis(40)), bound),
            bound
        );
        assert_eq!(idle_poll_budget(Some(bound), bound), bound);
        assert_eq!(
            idle_poll_budget(Some(bound + Duration::from_nanos(1)), bound),
            Duration::ZERO
        );
    }
}
