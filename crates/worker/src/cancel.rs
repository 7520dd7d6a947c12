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

pub use crate::cancel_state::CancelState;
use roma_ipc::{Control, ControlReceiver};
use roma_v8::Terminator;
use std::sync::Arc;

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
                    Ok(Control::Cancel { request_id }) => {
                        state.cancel(request_id, |id| terminator.cancel(id))
                    }
                    // A malformed frame from the host is dropped; closing ends the thread.
                    Err(e) if e.is_closed() => return,
                    Err(_) => continue,
                }
            }
        })
}
