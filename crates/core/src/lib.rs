//! What every layer of roma speaks.
//!
//! roma runs untrusted JavaScript and WebAssembly in fresh V8 contexts inside jailed worker
//! processes. This crate sits at the bottom of the crate graph: it knows no engine, no sandbox,
//! no transport and no threads. It holds the types that the host, the wire (`roma-ipc`), the
//! worker and the engine (`roma-v8`) share, so that none of them depends on another for them:
//!
//! - the request and response types ([`CodeObject`], [`InvocationRequest`], [`ResponseObject`]),
//!   [`Invocation`], the metadata-free form of a request that crosses into a worker, and
//!   [`ExecOutput`], the one result type from the worker's engine to the host's callback;
//! - the one error type, [`RomaError`], whose [`ErrorKind`] callers match on instead of text;
//! - [`EngineLimits`], the resource limits a worker's engine is started with, and the bound on
//!   the idle poll ([`MAX_IDLE_POLL`]) that host and worker share;
//! - small parsers shared by all layers ([`parse_duration`]), the log level, request
//!   validation, and [`wire_bytes`], which carries byte buffers across serde as one run.
//!
//! The host's dispatcher (its slots, queues, version cache and crash recovery) is the
//! `roma-dispatch` crate, above this one; nothing on the worker's side depends on it.
//!
//! Trust: nothing here parses bytes from a worker; the types derive serde so `roma-ipc` can carry
//! them, and the IPC layer bounds what it decodes. `roma-ipc`'s build id hashes all of this
//! crate's sources, so a worker built from other wire types is refused by name.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod duration;
mod error;
mod limits;
mod log;
mod request;
mod validate;
pub mod wire_bytes;

pub use duration::{format_duration, parse_duration};
pub use error::{ErrorKind, RomaError};
pub use limits::{
    DEFAULT_MAX_HEAP_MB, EngineLimits, MAX_IDLE_POLL, WORKER_OOM_EXIT_CODE, idle_poll_budget,
};
pub use log::LogLevel;
pub use request::{
    CodeObject, DEFAULT_REQUEST_ID, ExecOutput, Invocation, InvocationRequest, MAX_PROFILE_BYTES,
    ResponseObject, TIMEOUT_DURATION_TAG, WASM_ARRAY_NAME_TAG, WASM_RETURN_TYPE_TAG, metrics,
};
pub use validate::{CodeKind, validate_code_object, validate_invocation};

/// The timeout applied to a load's top-level run and to an invocation that sets none (Roma's
/// `kDefaultExecutionTimeout`).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
