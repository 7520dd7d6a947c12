//! The cancellation bookkeeping shared by the worker's main thread and its control thread (see
//! the worker's `cancel` module for the rules). Plain atomics, no V8: its unit tests run in an ordinary test
//! binary (`tests/cancel_state.rs` compiles this file on its own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// State shared by the main thread and the control thread.
#[derive(Debug, Default)]
pub struct CancelState {
    /// The request id the host cancelled last (0: none).
    last_cancelled: AtomicU64,
    /// The request the main thread is running now (0: none).
    current: AtomicU64,
}

impl CancelState {
    /// Marks `id` as running; returns false if it was cancelled already (then it must not run).
    pub fn begin(&self, id: u64) -> bool {
        self.current.store(id, Ordering::SeqCst);
        self.last_cancelled.load(Ordering::SeqCst) != id
    }

    /// Marks the running request as done.
    pub fn end(&self) {
        self.current.store(0, Ordering::SeqCst);
    }

    /// Whether `id` was cancelled.
    pub fn is_cancelled(&self, id: u64) -> bool {
        self.last_cancelled.load(Ordering::SeqCst) == id
    }

    /// Records that the host cancelled `id` and stops it through `terminate` (the engine's
    /// terminator: true once it has taken the request's tag).
    pub fn cancel(&self, id: u64, terminate: impl Fn(u64) -> bool) {
        self.last_cancelled.store(id, Ordering::SeqCst);
        // Between `begin` and the engine arming its watchdog the terminator cannot take the tag
        // yet; that gap is a few microseconds of Rust, so retry until it can or the request ends.
        for _ in 0..20_000 {
            if terminate(id) || self.current.load(Ordering::SeqCst) != id {
                return;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_refuses_a_request_cancelled_before_it_started() {
        let s = CancelState::default();
        s.last_cancelled.store(7, Ordering::SeqCst);
        assert!(!s.begin(7));
        assert!(s.is_cancelled(7));
        // An older request run later (moved from another queue) is not affected.
        assert!(s.begin(5));
        assert!(s.begin(8));
        assert!(!s.is_cancelled(8));
        // A cancel of the running request retries until the terminator takes it.
        let tries = std::sync::atomic::AtomicU32::new(0);
        s.cancel(8, |_| tries.fetch_add(1, Ordering::SeqCst) == 2);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert!(s.is_cancelled(8));
        // Once the request has ended, a late cancel tries the terminator once and gives up.
        s.end();
        let tries = std::sync::atomic::AtomicU32::new(0);
        s.cancel(8, |_| {
            tries.fetch_add(1, Ordering::SeqCst);
            false
        });
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }
}
