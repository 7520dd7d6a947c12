//! roma's V8 engine backend.
//!
//! The `v8` crate's build script downloads a prebuilt V8, which an offline build cannot do, so
//! roma binds V8 14.6, the V8 inside the official Node.js build pinned in `node_pin.rs`, through
//! a narrow C++ shim (`shim/roma_v8_shim.cc`) that the build script compiles against that
//! build's headers. The `node` executable exports the V8 API (as it does for native addons) but
//! cannot be linked against, so everything that uses this crate is a shared library that runs
//! inside `node` ([`node_main!`], [`node_entry`]); the shim's V8 symbols resolve from the
//! executable when it loads the library. The shim exposes coarse operations as flat C functions;
//! this crate keeps ownership, caching and timeouts in Rust and offers a safe API:
//!
//! - [`Engine`]: one per worker thread. [`Engine::load`] compiles a [`roma_core::CodeObject`]
//!   once per version: plain JS runs its top level inside a `v8::SnapshotCreator` and each call
//!   starts a fresh context from that snapshot, so no global state survives between calls; JS
//!   with WASM (snapshots cannot hold WASM) keeps the compiled script and the compiled
//!   `WebAssembly.Module` and binds them to each fresh context; standalone WASM is compiled once
//!   and instantiated per call (ABI in docs/wasm-abi.md).
//! - [`Engine::execute`] runs a handler (a dotted path) with JSON inputs under a timeout enforced
//!   by a per-engine watchdog thread, pumps microtasks when it returns a promise, and returns the
//!   JSON text of the result. A heap or array-buffer exhaustion ends the call with
//!   `OutOfMemory` and the engine rebuilds that version's isolate in the same process.
//! - [`Terminator`]: the one `Send + Sync` handle, to cancel a running call from another thread.
//!
//! Trust: the JS and WASM are untrusted; every failure they can cause is a typed
//! [`roma_core::RomaError`]. `unsafe` is confined to the FFI calls, each with its invariant.
//!
//! Inside a library that `node` runs ([`node_main!`]); the engine tests run this very call:
//! ```ignore
//! use roma_core::{CodeObject, EngineLimits, Invocation};
//! let mut engine = roma_v8::Engine::new(EngineLimits::default())?;
//! engine.load(&CodeObject {
//!     version_string: "v1".into(),
//!     js: r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#.into(),
//!     ..Default::default()
//! })?;
//! let out = engine.execute(&Invocation::new("v1", "Handler", vec![r#""Foobar""#.into()]), &mut |_, _| {})?;
//! assert_eq!(out.resp, r#""Hello world! \"Foobar\"""#);
//! # Ok::<(), roma_core::RomaError>(())
//! ```
#![deny(missing_docs)]

// Its layout descriptions (`CRecord`, `C_ENUM`) serve the build script, which writes the shim's
// header from them; the crate itself uses the records and constants.
#[allow(dead_code)]
mod abi;
mod engine;
mod ffi;
pub mod node_entry;
mod platform;
mod version;
mod watchdog;

pub use engine::{Engine, ExecHost, Execution, LogSink, Raw, flags_for};
pub use platform::{init, is_initialized, v8_version};
pub use version::VersionMode;
pub use watchdog::{TerminateReason, Terminator};

mod pin {
    include!("../node_pin.rs");
}
pub use pin::{NODE_INTEGRITY, NODE_VERSION};

/// The folder of the Node.js build this crate was compiled against (`bin/node` and
/// `include/node/`), as its build script found it.
pub const NODE_DIR: &str = env!("ROMA_NODE_DIR");
