//! The C ABI of roma: `libroma_c.so` and `libroma_c.a`, declared by the hand-written headers in
//! `include/roma/` (one per concept, in the manner of Wasmtime's C API) and wrapped by the
//! header-only C++ layer `include/roma/roma.hpp`, which mirrors Google Roma's C++ names.
//!
//! C and C++ services cannot link a Rust generic API, so this crate fixes the metadata type to
//! an opaque pointer and turns every Rust value into an opaque handle with an explicit
//! `_delete`. Every entry point catches panics (they become `ROMA_ERROR_INTERNAL` errors) and
//! checks its pointers and strings: a null pointer or invalid UTF-8 is an error return.
//!
//! The headers are written by hand; `tests/header_matches.rs` checks that every function they
//! declare is defined here and every `roma_*` function defined here is declared there, and that
//! the error-kind codes agree.
#![deny(missing_docs)]
#![allow(non_camel_case_types)]

mod binding;
mod code;
mod config;
mod error;
mod ffi;
mod request;
mod response;
mod service;

pub use binding::*;
pub use code::*;
pub use config::*;
pub use error::*;
pub use request::*;
pub use response::*;
pub use service::*;
