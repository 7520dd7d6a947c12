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

/// The `#define`d codes of the headers besides the error kinds (those are in
/// [`ERROR_KIND_CODES`]): the one Rust definition, which the code matches on and
/// `tests/header_matches.rs` checks the headers against.
pub mod codes {
    /// `ROMA_SANDBOX_NAMESPACES`.
    pub const SANDBOX_NAMESPACES: u32 = 0;
    /// `ROMA_SANDBOX_BIRDCAGE`.
    pub const SANDBOX_BIRDCAGE: u32 = 1;
    /// `ROMA_SANDBOX_NONE`.
    pub const SANDBOX_NONE: u32 = 2;
    /// `ROMA_TRANSPORT_SHARED_MEMORY`.
    pub const TRANSPORT_SHARED_MEMORY: u32 = 0;
    /// `ROMA_TRANSPORT_SOCKET`.
    pub const TRANSPORT_SOCKET: u32 = 1;
    /// `ROMA_OVERSIZE_SLOW_PATH`.
    pub const OVERSIZE_SLOW_PATH: u32 = 0;
    /// `ROMA_OVERSIZE_REJECT`.
    pub const OVERSIZE_REJECT: u32 = 1;
    /// `ROMA_INPUT_NONE`.
    pub const INPUT_NONE: u32 = 0;
    /// `ROMA_INPUT_STRING`.
    pub const INPUT_STRING: u32 = 1;
    /// `ROMA_INPUT_LIST`.
    pub const INPUT_LIST: u32 = 2;
    /// `ROMA_INPUT_MAP`.
    pub const INPUT_MAP: u32 = 3;
    /// `ROMA_INPUT_BYTES`.
    pub const INPUT_BYTES: u32 = 4;
    /// `ROMA_INPUT_JSON`.
    pub const INPUT_JSON: u32 = 5;
    /// `ROMA_LOG_DEBUG`.
    pub const LOG_DEBUG: u32 = 0;
    /// `ROMA_LOG_INFO`.
    pub const LOG_INFO: u32 = 1;
    /// `ROMA_LOG_WARNING`.
    pub const LOG_WARNING: u32 = 2;
    /// `ROMA_LOG_ERROR`.
    pub const LOG_ERROR: u32 = 3;

    /// Every code above with its header name.
    pub const ALL: &[(&str, u32)] = &[
        ("ROMA_SANDBOX_NAMESPACES", SANDBOX_NAMESPACES),
        ("ROMA_SANDBOX_BIRDCAGE", SANDBOX_BIRDCAGE),
        ("ROMA_SANDBOX_NONE", SANDBOX_NONE),
        ("ROMA_TRANSPORT_SHARED_MEMORY", TRANSPORT_SHARED_MEMORY),
        ("ROMA_TRANSPORT_SOCKET", TRANSPORT_SOCKET),
        ("ROMA_OVERSIZE_SLOW_PATH", OVERSIZE_SLOW_PATH),
        ("ROMA_OVERSIZE_REJECT", OVERSIZE_REJECT),
        ("ROMA_INPUT_NONE", INPUT_NONE),
        ("ROMA_INPUT_STRING", INPUT_STRING),
        ("ROMA_INPUT_LIST", INPUT_LIST),
        ("ROMA_INPUT_MAP", INPUT_MAP),
        ("ROMA_INPUT_BYTES", INPUT_BYTES),
        ("ROMA_INPUT_JSON", INPUT_JSON),
        ("ROMA_LOG_DEBUG", LOG_DEBUG),
        ("ROMA_LOG_INFO", LOG_INFO),
        ("ROMA_LOG_WARNING", LOG_WARNING),
        ("ROMA_LOG_ERROR", LOG_ERROR),
    ];
}
