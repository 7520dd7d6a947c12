//! Backend-neutral core of roma.
//!
//! roma runs untrusted JavaScript and WebAssembly in fresh V8 contexts inside jailed worker
//! processes. This crate sits at the bottom of the crate graph: it knows no engine, no sandbox
//! and no transport. It holds what every other crate speaks:
//!
//! - the request and response types ([`CodeObject`], [`InvocationRequest`], [`ResponseObject`]),
//!   and [`Invocation`], the metadata-free form of a request that crosses into a worker;
//! - the one error type, [`RomaError`], whose [`ErrorKind`] callers match on instead of text;
//! - [`EngineLimits`], the resource limits a worker's engine is started with;
//! - small parsers shared by all layers ([`parse_duration`]) and request validation.
//!
//! Trust: nothing here parses bytes from a worker; the types derive serde so `roma-ipc` can carry
//! them, and the IPC layer bounds what it decodes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod duration;
mod error;
mod limits;
mod log;
mod request;
mod validate;

pub use duration::{format_duration, parse_duration};
pub use error::{ErrorKind, RomaError};
pub use limits::{DEFAULT_MAX_HEAP_MB, EngineLimits, MAX_IDLE_POLL, WORKER_OOM_EXIT_CODE};
pub use log::LogLevel;
pub use request::{
    CodeObject, DEFAULT_REQUEST_ID, ExecOutput, Invocation, InvocationRequest, MAX_PROFILE_BYTES,
    ResponseObject, TIMEOUT_DURATION_TAG, WASM_ARRAY_NAME_TAG, WASM_RETURN_TYPE_TAG, metrics,
};
pub use validate::{CodeKind, validate_code_object, validate_invocation};

/// The timeout applied to a load's top-level run and to an invocation that sets none (Roma's
/// `kDefaultExecutionTimeout`).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
