//! The cancellation bookkeeping shared by the worker's main thread and its control thread (see
//! the worker's `cancel` module for the rules). Plain atomics, no V8: its unit tests run in an ordinary test
//! binary (`tests/cancel_state.rs` compiles this file on its own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A request id or none, in one atomic.
///
/// Invariant: 0 is the encoding of none, never an id. The host's dispatcher numbers requests
/// from 1, so no request it sends is 0; an id of 0 that arrives anyway (a malformed `Cancel`)
/// reads back as none, so it neither matches a running request nor blocks one.
#[derive(Debug, Default)]
struct AtomicRequestId(AtomicU64);

impl AtomicRequestId {
    const NONE: u64 = 0;

    fn set(&self, id: u64) {
        self.0.store(id, Ordering::SeqCst);
    }

    fn clear(&self) {
        self.0.store(Self::NONE, Ordering::SeqCst);
    }

    fn get(&self) -> Option<u64> {
        let id = self.0.load(Ordering::SeqCst);
        (id != Self::NONE).then_some(id)
    }

    /// Whether it holds `id` (never true for none).
    fn holds(&self, id: u64) -> bool {
        self.get() == Some(id)
    }
}

/// State shared by the main thread and the control thread.
#[derive(Debug, Default)]
pub struct CancelState {
    /// The request id the host cancelled last.
    last_cancelled: AtomicRequestId,
    /// The request the main thread is running now.
    current: AtomicRequestId,
}

impl CancelState {
    /// Marks `id` as running; returns false if it was cancelled already (then it must not run).
    pub fn begin(&self, id: u64) -> bool {
        self.current.set(id);
        !self.last_cancelled.holds(id)
    }

    /// Marks the running request as done.
    pub fn end(&self) {
        self.current.clear();
    }

    /// Whether `id` was cancelled.
    pub fn is_cancelled(&self, id: u64) -> bool {
        self.last_cancelled.holds(id)
    }

    /// Records that the host cancelled `id` and stops it through `terminate` (the engine's
    /// terminator: true once it has taken the request's tag).
    pub fn cancel(&self, id: u64, terminate: impl Fn(u64) -> bool) {
        self.last_cancelled.set(id);
        // Between `begin` and the engine arming its watchdog the terminator cannot take the tag
        // yet; that gap is a few microseconds of Rust, so retry until it can or the request ends.
        for _ in 0..20_000 {
            if terminate(id) || !self.current.holds(id) {
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
        s.last_cancelled.set(7);
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

    #[test]
    fn zero_is_none_never_an_id() {
        let s = CancelState::default();
        assert_eq!((s.current.get(), s.last_cancelled.get()), (None, None));
        // A fresh state does not take request 0 for cancelled, as it would if 0 were an id.
        assert!(s.begin(0));
        assert!(!s.is_cancelled(0));
        assert_eq!(s.current.get(), None);
        s.cancel(0, |_| false);
        assert_eq!(s.last_cancelled.get(), None);
        assert!(s.begin(3));
        assert_eq!(s.current.get(), Some(3));
        s.end();
        assert_eq!(s.current.get(), None);
    }
}
