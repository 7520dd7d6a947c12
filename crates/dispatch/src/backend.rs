//! The contract between the dispatcher and whatever actually runs code: [`WorkerBackend`].
//!
//! The dispatcher knows nothing about engines or processes; a backend does. The production
//! backend drives one jailed worker process over roma-ipc; tests use in-memory fakes. Each slot
//! thread owns exactly one backend and calls it from that thread only, one call at a time.

use roma_core::{CodeObject, ExecOutput, Invocation, RomaError};
use std::sync::Arc;

/// Stops a running execution from another thread (the dispatcher's `cancel`).
///
/// # Contract
/// `interrupt(id)` must return promptly (no waiting on the worker) and affect only the
/// execution with that request id:
/// - if `execute(id, ..)` is running, make it return soon, preferably with
///   [`roma_core::ErrorKind::Cancelled`] (the dispatcher reports `Cancelled` whatever it returns);
/// - the call may arrive just *before* `execute(id, ..)` begins (the dispatcher marks a request
///   running, then calls the backend): the backend must then end that execution at once;
/// - it may arrive just *after* `execute(id, ..)` returned: it must then be ignored.
///
/// Request ids increase over the dispatcher's life, so storing the latest interrupted id in an
/// atomic and checking it when an execution starts and while it runs satisfies all three.
pub trait Interrupt: Send + Sync {
    /// Ends the execution of `request_id` if it is (about to be) running.
    fn interrupt(&self, request_id: u64);
}

/// One worker, as the dispatcher sees it. `M` is the caller's per-request metadata, which stays
/// in the host: bindings the worker calls back into may read it; it is never sent to a worker.
///
/// # Contract
/// - **Threading.** A backend is created by the dispatcher's factory on its slot thread and used
///   only there, one call at a time.
/// - **Bounded calls.** Every method must return in bounded time, even when the worker hangs or
///   is hostile: `execute` within about `inv.timeout` plus a grace period, `load` within the
///   backend's load timeout. The dispatcher has no second watchdog; a backend that never returns
///   stalls its slot (the other slots go on), and `stop` waits for it.
/// - **Crashes.** When the worker is gone, return [`roma_core::ErrorKind::WorkerCrashed`] (or make
///   [`is_alive`](Self::is_alive) false). The dispatcher then drops this backend and creates a
///   new one through the factory, and replays every cached version into it.
/// - **Panics** are caught: the call's request fails with `Internal` and the backend is
///   replaced, as after a crash.
/// - **Versions.** `load` of an existing version replaces it. `execute` of a version the backend
///   does not hold returns [`roma_core::ErrorKind::VersionNotFound`]; if the host still caches that
///   version, the dispatcher loads it into this backend and retries once.
pub trait WorkerBackend<M>: Send + 'static {
    /// Compiles `code` and keeps it under `code.version_string`, replacing any earlier copy.
    fn load(&mut self, code: &CodeObject) -> Result<(), RomaError>;

    /// Runs one invocation. `request_id` is the id [`Interrupt::interrupt`] will be called with.
    /// `meta` is the request's metadata; a backend may keep a clone of the `Arc` past the call
    /// (a host function that outlives its request's timeout), which delays its drop until then.
    fn execute(
        &mut self,
        request_id: u64,
        inv: &Invocation,
        meta: &Arc<M>,
    ) -> Result<ExecOutput, RomaError>;

    /// Whether the worker is still usable. Checked after a failed call, when the slot runs
    /// out of work, and right before each load and execution (a backend found dead then is
    /// replaced, and the call goes to the new one), so it must be cheap (a `try_wait`, no round
    /// trip to the worker), and `load` and `execute` need not check again.
    fn is_alive(&mut self) -> bool;

    /// Called when the slot has nothing to do, once each time it runs out of work: the place to
    /// pre-warm a context. Must return quickly; work that arrives meanwhile waits for it.
    fn idle(&mut self) {}

    /// The CPU time the worker has used so far (all its processes and threads), for planned
    /// recycling of a worker that works while it has no request
    /// ([`super::DispatcherConfig::recycle_idle_cpu_per_sec`]). `None` (the default) when it
    /// cannot be measured; the rule is then never met. Called about once a second while the slot
    /// is idle, so it must be cheap.
    fn cpu_time(&mut self) -> Option<std::time::Duration> {
        None
    }

    /// The handle `cancel` uses to end a running execution of this backend from another thread.
    /// Called once per backend, right after it is created.
    fn interrupter(&self) -> Arc<dyn Interrupt>;
}
