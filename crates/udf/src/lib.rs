//! Host functions callable from roma's sandboxed JavaScript.
//!
//! A service registers Rust functions by (dotted) name; JS calls them like any function; each
//! call leaves the sandbox as a message on the request's channel, runs in the host with the
//! request's metadata, and returns. The metadata never enters the sandbox.
//!
//! - [`FunctionBindingIo`]: a call's input and output, mirroring Roma's
//!   `FunctionBindingIoProto` (string, list of strings, map, bytes, a JSON object; `errors`).
//! - [`FunctionBindingObject`] / [`FunctionBindingPayload`]: a registered function and what it
//!   is handed (the io and `&M`, the request's metadata).
//! - [`Registry`]: the validated set of a service's bindings, and the one place a call runs
//!   (panics contained, unknown names refused).
//! - [`wire`]: the compact encoding between the engine's C++ shim and Rust, used inside the
//!   worker; [`encode_io`] / [`decode_io`]: the bincode form that crosses the process boundary,
//!   decoded by the host with a size limit because the worker is untrusted.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod binding;
mod executor;
mod io;
mod registry;
pub mod wire;

pub use binding::{BindingFuture, FunctionBindingObject, FunctionBindingPayload};
pub use executor::{Executor, MAX_PENDING_PER_REQUEST};
pub use io::{BindingInput, BindingOutput, FunctionBindingIo, UdfError, decode_io, encode_io};
pub use registry::{BindingCall, RESERVED_GLOBALS, Registry};
