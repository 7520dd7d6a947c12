//! The roma worker process.
//!
//! One worker hosts one V8 engine and serves the host over the channel it inherits: loads,
//! executions and the nested messages of binding calls. It installs its seccomp allow-list after
//! V8 has initialised and before it accepts any code, and exits when the channel closes.
#![deny(missing_docs)]
