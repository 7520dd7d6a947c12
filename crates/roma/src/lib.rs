//! roma: run untrusted JavaScript and WebAssembly safely and fast.
//!
//! A service owner hands roma code written by a third party; roma loads it once, then invokes
//! its handlers thousands of times a second, each time in a fresh V8 context inside a jailed
//! worker process.
//!
//! ```no_run
//! use roma::{CodeObject, Config, InvocationRequest, RomaService};
//!
//! let mut config = Config::default();
//! config.number_of_workers(2);
//! let roma = RomaService::new(config)?;
//! let js = r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#;
//! roma.load_blocking(CodeObject::js("v1", js))?;
//! let input = vec![r#""Foobar""#.to_string()];
//! let response = roma.execute_blocking(InvocationRequest::new("v1", "Handler", input))?;
//! assert_eq!(response.resp, r#""Hello world! \"Foobar\"""#);
//! # Ok::<(), roma::RomaError>(())
//! ```
//!
//! Beside the blocking forms, every submit has a callback form (`execute`, `load_code_obj`,
//! `batch_execute`), a future for any executor (`execute_async`, ...), and a form that waits
//! for room in the queues instead of failing with `QueueFull` (`execute_waiting`,
//! `batch_execute_waiting` for a batch of any size). The service stops when it is dropped:
//! requests still queued then are answered `Cancelled`, so keep it until the answers are in.
//!
//! More examples, all run by `cargo test -p roma` (after `cargo build -p roma-worker`, which builds the worker library):
//! `crates/roma/examples/hello.rs` (the snippet above) and `crates/roma/examples/udf.rs` (host
//! functions, sync and async, with request metadata). [`Config`] documents each setting;
//! `docs/config.md` lists them all with their defaults.
//!
//! # How a request travels
//! [`RomaService`] hands requests to roma-dispatch's dispatcher, which queues them (bounded, per
//! worker) and gives each to the least busy worker slot. A slot owns one worker process (the
//! pinned `node` carrying `libroma_worker.so`; see [`Config::node_binary`]), started through a
//! roma-sandbox backend and reached over roma-ipc (shared memory with a futex
//! doorbell, or a socket). The worker runs the request in a fresh V8 context of the version's
//! snapshot and answers; console output and host-function calls travel as nested messages on
//! the same channel, served by the slot's thread with the request's metadata.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod check;
mod config;
mod exchange;
mod hooks;
mod hops;
mod locate;
mod service;
mod tenant;
mod udf_thread;
mod worker_client;
mod worker_stderr;

pub use check::{ProbeResult, check};
pub use config::{
    Config, DEFAULT_MAX_TENANTS, DEFAULT_RECYCLE_IDLE_CPU_PER_SEC, DEFAULT_WORKER_DATA_LIMIT_MB,
    SandboxKind,
};
pub use hooks::LogFn;
pub use locate::worker_versions;
pub use roma_core::{
    CodeObject, DEFAULT_MAX_HEAP_MB, EngineLimits, ErrorKind, InvocationRequest, LogLevel,
    MAX_IDLE_POLL, MAX_PROFILE_BYTES, ResponseObject, RomaError, TIMEOUT_DURATION_TAG,
    WASM_ARRAY_NAME_TAG, WASM_RETURN_TYPE_TAG, metrics,
};
pub use roma_dispatch::{
    DirectRun, DispatchFuture, DispatcherStats, ExecutionToken, Submitted, WorkerHealth,
    WorkerStats,
};
pub use roma_ipc::{OversizePolicy, TransportKind};
pub use roma_udf::{
    BindingFuture, BindingInput, BindingOutput, FunctionBindingIo, FunctionBindingObject,
    FunctionBindingPayload,
};
pub use service::RomaService;
pub use tenant::TENANT_TAG;
pub use worker_stderr::WorkerOutputFn;

/// What roma's own programs (the `roma` CLI, `roma serve`, the benchmarks and `cargo xtask`)
/// share with the library. Not the service API: a service owner needs none of it, and it
/// changes with those programs.
pub mod tools {
    pub use crate::locate::{WORKER_LIBRARY_NAME, WORKER_PROCESS_NAME, unjailed_worker_command};
    pub use crate::worker_stderr::{
        MAX_LINE_BYTES, MAX_LINES_PER_SECOND, escape_control, escape_control_json,
    };
    pub use roma_core::parse_duration;

    /// The cores this process may run on (1 where that cannot be told): the default number of
    /// workers, of `roma serve`'s connection threads, and what the benches print.
    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
