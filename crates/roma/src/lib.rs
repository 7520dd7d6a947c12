//! roma: run untrusted JavaScript and WebAssembly safely and fast.
//!
//! A service owner hands roma code written by a third party; roma loads it once, then invokes
//! its handlers thousands of times a second, each time in a fresh V8 context inside a jailed
//! worker process.
//!
//! ```no_run
//! use roma::{CodeObject, Config, InvocationRequest, RomaService};
//! use std::sync::mpsc;
//!
//! let mut config: Config = Config::default();
//! config.number_of_workers = 2;
//! let roma = RomaService::new(config)?;
//! let code = CodeObject {
//!     id: "foo".into(),
//!     version_string: "v1".into(),
//!     js: r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#.into(),
//!     ..Default::default()
//! };
//! let (tx, rx) = mpsc::channel();
//! roma.load_code_obj(code, move |r| tx.send(r).unwrap())?;
//! rx.recv().unwrap()?;
//! let (tx, rx) = mpsc::channel();
//! roma.execute(InvocationRequest {
//!     id: "foo".into(),
//!     version_string: "v1".into(),
//!     handler_name: "Handler".into(),
//!     input: vec![r#""Foobar""#.into()],
//!     ..Default::default()
//! }, move |r| tx.send(r).unwrap())?;
//! assert_eq!(rx.recv().unwrap()?.resp, r#""Hello world! \"Foobar\"""#);
//! roma.stop()?;
//! # Ok::<(), roma::RomaError>(())
//! ```
//!
//! More examples, all run by `cargo test -p roma` (after `cargo build -p roma-worker`):
//! `crates/roma/examples/hello.rs` (the snippet above) and `crates/roma/examples/udf.rs` (host
//! functions, sync and async, with request metadata). [`Config`] documents each setting;
//! `docs/config.md` lists them all with their defaults.
//!
//! # How a request travels
//! [`RomaService`] hands requests to roma-core's dispatcher, which queues them (bounded, per
//! worker) and gives each to the least busy worker slot. A slot owns one `roma-worker` process,
//! started through a roma-sandbox backend and reached over roma-ipc (shared memory with a futex
//! doorbell, or a socket). The worker runs the request in a fresh V8 context of the version's
//! snapshot and answers; console output and host-function calls travel as nested messages on
//! the same channel, served by the slot's thread with the request's metadata.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod check;
mod config;
mod exchange;
mod hooks;
mod locate;
mod service;
mod udf_thread;
mod worker_client;
mod worker_stderr;

pub use check::{ProbeResult, check};
pub use config::{
    Config, DEFAULT_RECYCLE_IDLE_CPU_PER_SEC, DEFAULT_WORKER_DATA_LIMIT_MB, SandboxKind,
};
pub use hooks::LogFn;
pub use locate::WORKER_BINARY_NAME;
pub use roma_core::{
    CodeObject, DEFAULT_MAX_HEAP_MB, DispatchFuture, DispatcherStats, EngineLimits, ErrorKind,
    ExecutionToken, InvocationRequest, LogLevel, ResponseObject, RomaError, TIMEOUT_DURATION_TAG,
    WASM_ARRAY_NAME_TAG, WASM_RETURN_TYPE_TAG, format_duration, metrics, parse_duration,
};
pub use roma_ipc::{OversizePolicy, TransportKind};
pub use roma_udf::{
    BindingFuture, BindingInput, BindingOutput, FunctionBindingIo, FunctionBindingObject,
    FunctionBindingPayload,
};
pub use service::RomaService;
pub use worker_stderr::{MAX_LINE_BYTES, MAX_LINES_PER_SECOND, WorkerOutputFn};
