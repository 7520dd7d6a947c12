//! `roma_error_t`: an owned error with a typed kind, a message and an optional JS stack.

use crate::ffi::{CText, free, guard_value, text_out};
use roma::{ErrorKind, RomaError};
use std::ffi::c_char;

/// The kind of a `roma_error_t`; the `ROMA_ERROR_*` codes of `include/roma/error.h`.
pub type roma_error_kind_t = u32;

/// Each `ErrorKind` and its C code. The one definition of the codes on the Rust side;
/// `tests/header_matches.rs` checks `error.h` against it.
pub const ERROR_KIND_CODES: [(ErrorKind, roma_error_kind_t, &str); 13] = [
    (ErrorKind::InvalidArgument, 1, "ROMA_ERROR_INVALID_ARGUMENT"),
    (ErrorKind::Compile, 2, "ROMA_ERROR_COMPILE"),
    (ErrorKind::Execution, 3, "ROMA_ERROR_EXECUTION"),
    (
        ErrorKind::HandlerNotFound,
        4,
        "ROMA_ERROR_HANDLER_NOT_FOUND",
    ),
    (ErrorKind::BadInput, 5, "ROMA_ERROR_BAD_INPUT"),
    (ErrorKind::Timeout, 6, "ROMA_ERROR_TIMEOUT"),
    (ErrorKind::OutOfMemory, 7, "ROMA_ERROR_OUT_OF_MEMORY"),
    (
        ErrorKind::VersionNotFound,
        8,
        "ROMA_ERROR_VERSION_NOT_FOUND",
    ),
    (ErrorKind::WorkerCrashed, 9, "ROMA_ERROR_WORKER_CRASHED"),
    (ErrorKind::QueueFull, 10, "ROMA_ERROR_QUEUE_FULL"),
    (ErrorKind::Cancelled, 11, "ROMA_ERROR_CANCELLED"),
    (
        ErrorKind::PayloadTooLarge,
        12,
        "ROMA_ERROR_PAYLOAD_TOO_LARGE",
    ),
    (ErrorKind::Internal, 13, "ROMA_ERROR_INTERNAL"),
];

fn code_of(kind: ErrorKind) -> roma_error_kind_t {
    ERROR_KIND_CODES
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map_or(13, |(_, c, _)| *c)
}

/// An error owned by the caller, freed with `roma_error_delete`.
#[derive(Debug)]
pub struct roma_error_t {
    kind: roma_error_kind_t,
    message: CText,
    stack: Option<CText>,
}

impl roma_error_t {
    pub(crate) fn new(e: &RomaError) -> Self {
        roma_error_t {
            kind: code_of(e.kind()),
            message: CText::new(e.message()),
            stack: e.stack().map(CText::new),
        }
    }

    pub(crate) fn boxed(e: RomaError) -> *mut roma_error_t {
        Box::into_raw(Box::new(roma_error_t::new(&e)))
    }
}

/// The error's kind (`ROMA_ERROR_*`); `ROMA_ERROR_INVALID_ARGUMENT` for a null `error`.
///
/// # Safety
/// `error` is null or a live `roma_error_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_error_kind(error: *const roma_error_t) -> roma_error_kind_t {
    // SAFETY: the caller's contract: null or live.
    guard_value(13, || unsafe { error.as_ref() }.map_or(1, |e| e.kind))
}

/// The error's message, NUL-terminated, its length through `len` (may be null). Valid until the
/// error is deleted. An empty string for a null `error`.
///
/// # Safety
/// `error` is null or a live `roma_error_t`; `len` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_error_message(
    error: *const roma_error_t,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: the caller's contract: `error` null or live, `len` null or writable.
    guard_value(c"".as_ptr(), || unsafe {
        text_out(error.as_ref().map(|e| &e.message), len)
    })
}

/// The JS stack of an error that has one (an exception thrown by the code), else null.
///
/// # Safety
/// `error` is null or a live `roma_error_t`; `len` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_error_stack(
    error: *const roma_error_t,
    len: *mut usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract: null or live, `len` null or writable.
        match unsafe { error.as_ref() }.and_then(|e| e.stack.as_ref()) {
            // SAFETY: `len` is null or writable.
            Some(s) => unsafe { s.out(len) },
            None => std::ptr::null(),
        }
    })
}

/// Frees an error. Null is ignored.
///
/// # Safety
/// `error` is null or a `roma_error_t` not yet deleted; it is not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_error_delete(error: *mut roma_error_t) {
    // SAFETY: the caller's contract.
    unsafe { free(error) }
}
