//! roma: run untrusted JavaScript and WebAssembly safely and fast.
//!
//! A service owner hands roma code written by a third party; roma loads it once, then invokes
//! its handlers thousands of times a second, each time in a fresh V8 context inside a jailed
//! worker process.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use roma_core::{
    CodeObject, ErrorKind, Invocation, InvocationRequest, LogLevel, ResponseObject, RomaError,
};
