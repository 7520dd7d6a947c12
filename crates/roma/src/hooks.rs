//! The host-side code a worker calls back into while it runs a request: the logging function
//! and the host functions (bindings), both handed the request's metadata.

use roma_core::LogLevel;
use roma_udf::{BindingCall, Executor, FunctionBindingIo, Registry, decode_io};

/// The logging function: severity, the request's metadata, the message.
pub type LogFn<M> = dyn Fn(LogLevel, &M, &str) + Send + Sync;

/// What a service's workers may call back into.
pub(crate) struct Hooks<M> {
    pub logger: Option<Box<LogFn<M>>>,
    pub bindings: Registry<M>,
    /// Runs asynchronous host functions; `None` when none is registered.
    pub executor: Option<Executor>,
}

impl<M> Hooks<M> {
    /// Passes one console message of a request to the logging function, if there is one. A
    /// panicking logger loses that message only.
    pub fn log(&self, level: LogLevel, meta: &M, message: &str) {
        if let Some(f) = &self.logger {
            let _ =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(level, meta, message)));
        }
    }

    /// Runs a binding call for the worker. `payload` comes from the worker: it is decoded
    /// with `limit`, and a malformed one is answered with an error.
    pub fn call_binding(&self, name: &str, payload: &[u8], meta: &M, limit: usize) -> BindingCall {
        let io = match decode_io(payload, limit) {
            Ok(io) => io,
            Err(e) => refuse(&format!("host function `{name}`: {e}")),
        };
        if !io.errors.is_empty() {
            return BindingCall::Done(io);
        }
        self.bindings.call(name, io, meta)
    }
}

/// The reply to a call the host will not run.
pub(crate) fn refuse(why: &str) -> FunctionBindingIo {
    let mut io = FunctionBindingIo::default();
    io.add_error(why);
    io
}
