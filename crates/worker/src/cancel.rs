//! Cancellation inside the worker: a thread that reads the control socket and stops the
//! request it names.
//!
//! The host may send `Cancel { request_id }` at any moment relative to the main thread:
//! before the request starts, while it runs, or after it finished. The rules, matching the
//! dispatcher's `Interrupt` contract:
//! - before: the id is remembered in `last_cancelled`, and the main thread checks it before it
//!   runs a request (the host only cancels the request a worker runs or is about to run, so
//!   remembering the last one is enough; ids are compared for equality because a worker may
//!   run an older request after a newer one when the dispatcher moves queued work);
//! - while: the engine's [`Terminator`] ends the JS with the request's tag;
//! - the gap between the main thread's check and the engine arming its watchdog: the control
//!   thread retries while `current` still names the request and the terminator has not taken it;
//! - after: `current` no longer names it and nothing happens.

use roma_ipc::{Control, ControlReceiver};
use roma_v8::Terminator;
use std::sync::Arc;
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

    fn cancel(&self, id: u64, terminator: &Terminator) {
        self.last_cancelled.store(id, Ordering::SeqCst);
        // Between `begin` and the engine arming its watchdog the terminator cannot take the tag
        // yet; that gap is a few microseconds of Rust, so retry until it can or the request ends.
        for _ in 0..20_000 {
            if terminator.cancel(id) || self.current.load(Ordering::SeqCst) != id {
                return;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// Starts the control thread. It ends when the host closes the control socket.
pub fn spawn_control_thread(
    control: ControlReceiver,
    terminator: Terminator,
    state: Arc<CancelState>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("roma-control".into())
        .spawn(move || {
            loop {
                match control.recv(None) {
                    Ok(Control::Cancel { request_id }) => state.cancel(request_id, &terminator),
                    // A malformed frame from the host is dropped; closing ends the thread.
                    Err(e) if e.is_closed() => return,
                    Err(_) => continue,
                }
            }
        })
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
    }
}
