//! The watchdog: one thread per engine that terminates running JS when its deadline passes, or
//! at once when the request is cancelled.
//!
//! Invariants:
//! 1. An isolate pointer is stored only while an [`ArmedWatchdog`] lives. The guard borrows the
//!    [`Version`] that owns the isolate, so the version cannot be dropped (its isolate
//!    disposed) before the guard is disarmed or dropped; an FFI call that disposes an isolate
//!    (`roma_v8_snapshot_finish`) runs only after the guard is gone, as its SAFETY note says.
//! 2. Terminating happens with the state lock held, and disarming takes the same lock, so a
//!    terminate can never reach an isolate after its disarm returned.
//! 3. Each arming has a tag (the request's id); a cancel names the tag, so a late cancel of a
//!    finished request cannot terminate the next one.

use crate::ffi;
use crate::version::Version;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

/// Why JS was terminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerminateReason {
    /// The deadline passed.
    Timeout,
    /// [`Terminator::cancel`] named the running request.
    Cancelled,
}

/// How often a fired watchdog terminates again while the engine has not disarmed it.
const REFIRE: std::time::Duration = std::time::Duration::from_millis(5);

struct Armed {
    isolate: usize,
    deadline: Instant,
    tag: u64,
}

#[derive(Default)]
struct State {
    armed: Option<Armed>,
    fired: Option<TerminateReason>,
    shutdown: bool,
    /// When the watchdog thread will wake next on its own (`None`: not until notified).
    sleeping_until: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent (plain fields), so a
        // poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fire(&self, st: &mut State, reason: TerminateReason) {
        if let Some(a) = &st.armed
            && st.fired.is_none()
        {
            // SAFETY: invariant 1 and 2: the isolate is armed, so not disposed, and we hold
            // the lock disarm needs. TerminateExecution is thread-safe.
            unsafe { ffi::roma_v8_isolate_terminate(a.isolate as *mut std::ffi::c_void) };
            st.fired = Some(reason);
        }
    }
}

/// A per-engine watchdog thread.
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").finish_non_exhaustive()
    }
}

impl Watchdog {
    pub(crate) fn new() -> std::io::Result<Watchdog> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        });
        let s = shared.clone();
        let thread = thread::Builder::new()
            .name("roma-v8-watchdog".into())
            .spawn(move || run(&s))?;
        Ok(Watchdog {
            shared,
            thread: Some(thread),
        })
    }

    /// Arms the watchdog on `version`'s isolate until `deadline`, under `tag` (what
    /// [`Terminator::cancel`] names). The watchdog stays armed until the returned guard is
    /// disarmed or dropped; the guard borrows `version`, which keeps its isolate alive meanwhile.
    pub(crate) fn arm<'a>(
        &'a self,
        version: &'a Version,
        deadline: Instant,
        tag: u64,
    ) -> ArmedWatchdog<'a> {
        let mut st = self.shared.lock();
        st.armed = Some(Armed {
            isolate: version.isolate() as usize,
            deadline,
            tag,
        });
        st.fired = None;
        // Wake the thread only if it would otherwise sleep past this deadline. Deadlines of
        // back-to-back requests grow, so in steady state no arm wakes it: a request costs no
        // context switch to the watchdog.
        let wake = st.sleeping_until.is_none_or(|t| t > deadline);
        drop(st);
        if wake {
            self.shared.cv.notify_all();
        }
        ArmedWatchdog {
            shared: &self.shared,
            _version: std::marker::PhantomData,
        }
    }

    pub(crate) fn terminator(&self) -> Terminator {
        Terminator {
            shared: self.shared.clone(),
        }
    }
}

/// The watchdog armed on one version's isolate (see [`Watchdog::arm`]). Disarming, or dropping
/// it on an early return or a panic, clears the isolate pointer under the lock the watchdog
/// fires with, so no termination reaches the isolate afterwards.
#[must_use = "the watchdog disarms when this guard is dropped"]
pub(crate) struct ArmedWatchdog<'a> {
    shared: &'a Shared,
    /// The version whose isolate is armed: borrowed so that it outlives the arming.
    _version: std::marker::PhantomData<&'a Version>,
}

impl ArmedWatchdog<'_> {
    /// Disarms and says whether (and why) the JS was terminated.
    pub(crate) fn disarm(self) -> Option<TerminateReason> {
        // One lock for both: a fire between them would terminate the isolate after its reason
        // was read, and the engine would not cancel that termination.
        let fired = {
            let mut st = self.shared.lock();
            st.armed = None;
            st.fired.take()
        };
        // Disarmed already; the guard holds nothing else to release.
        std::mem::forget(self);
        fired
    }
}

impl Drop for ArmedWatchdog<'_> {
    fn drop(&mut self) {
        self.shared.lock().armed = None;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.shutdown {
            return;
        }
        let now = Instant::now();
        let wake_at = match st.armed.as_ref().map(|a| a.deadline) {
            Some(deadline) if st.fired.is_none() => {
                if now >= deadline {
                    shared.fire(&mut st, TerminateReason::Timeout);
                    continue;
                }
                Some(deadline)
            }
            // Fired but not yet disarmed: the engine is still finishing the request (formatting
            // an error, serialising a result), which can run JS again (a throwing getter, a
            // Proxy trap) after V8 has consumed the first termination. Terminate again every
            // few milliseconds until the engine disarms, so no JS outlives its deadline.
            Some(_) => {
                if let Some(a) = &st.armed {
                    // SAFETY: as in `Shared::fire`: armed (not disposed) and we hold the lock.
                    unsafe { ffi::roma_v8_isolate_terminate(a.isolate as *mut std::ffi::c_void) };
                }
                Some(now + REFIRE)
            }
            // Disarmed: keep the earlier wake-up time if it is still ahead, so that the next
            // arm (with a later deadline) need not notify us.
            None => st.sleeping_until.filter(|&t| t > now),
        };
        st.sleeping_until = wake_at;
        st = match wake_at {
            Some(t) => shared
                .cv
                .wait_timeout(st, t - now)
                .map(|r| r.0)
                .unwrap_or_else(|p| p.into_inner().0),
            None => shared.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

/// A `Send + Sync` handle that cancels the request running in an engine, from any thread.
#[derive(Clone)]
pub struct Terminator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Terminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminator").finish_non_exhaustive()
    }
}

impl Terminator {
    /// Terminates the running invocation if its tag is `tag`; returns whether it did.
    pub fn cancel(&self, tag: u64) -> bool {
        let mut st = self.shared.lock();
        if st.armed.as_ref().is_some_and(|a| a.tag == tag) && st.fired.is_none() {
            self.shared.fire(&mut st, TerminateReason::Cancelled);
            drop(st);
            // The watchdog thread keeps terminating until the engine disarms.
            self.shared.cv.notify_all();
            return true;
        }
        false
    }

    /// Terminates whatever runs now (any tag); returns whether something was running.
    pub fn cancel_any(&self) -> bool {
        let mut st = self.shared.lock();
        if st.armed.is_some() && st.fired.is_none() {
            self.shared.fire(&mut st, TerminateReason::Cancelled);
            drop(st);
            self.shared.cv.notify_all();
            return true;
        }
        false
    }
}
