//! `roma_request_t`: an invocation of a loaded version's handler.

use crate::binding::CMeta;
use crate::error::roma_error_t;
use crate::ffi::{UserPtr, arg_mut, guard, str_arg};
use roma::{InvocationRequest, LogLevel, RomaError};
use std::ffi::{c_char, c_void};
use std::time::Duration;

/// A request, owned by the caller (executing copies it, so one request may be run many times).
#[derive(Debug, Default)]
pub struct roma_request_t {
    pub(crate) inner: InvocationRequest<CMeta>,
}

/// A new request with no version, handler or input. Never null; free with `roma_request_delete`.
#[unsafe(no_mangle)]
pub extern "C" fn roma_request_new() -> *mut roma_request_t {
    Box::into_raw(Box::default())
}

/// Frees a request. Null is ignored.
///
/// # Safety
/// `request` is null or a live request, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_request_delete(request: *mut roma_request_t) {
    if !request.is_null() {
        // SAFETY: the caller's contract: roma allocated it and it is deleted once.
        drop(unsafe { Box::from_raw(request) });
    }
}

/// Runs a setter on a checked request pointer.
///
/// # Safety
/// `request` is null or a live request.
unsafe fn set(
    request: *mut roma_request_t,
    f: impl FnOnce(&mut InvocationRequest<CMeta>) -> Result<(), RomaError>,
) -> *mut roma_error_t {
    // SAFETY: the caller's contract.
    guard(|| f(&mut unsafe { arg_mut(request, "request") }?.inner))
}

macro_rules! text_setter {
    ($(#[$doc:meta])* $name:ident, |$r:ident, $s:ident| $body:expr) => {
        $(#[$doc])*
        ///
        /// The text is copied. A null pointer or invalid UTF-8 is `ROMA_ERROR_INVALID_ARGUMENT`.
        ///
        /// # Safety
        /// `request` is null or a live request; `s` is null or `len` readable bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            request: *mut roma_request_t,
            s: *const c_char,
            len: usize,
        ) -> *mut roma_error_t {
            // SAFETY: the caller's contract.
            unsafe {
                set(request, |$r| {
                    let $s = str_arg(s, len, stringify!($name))?;
                    $body;
                    Ok(())
                })
            }
        }
    };
}

text_setter!(
    /// The caller's id, echoed in the response.
    roma_request_set_id, |r, s| r.id = s.to_owned()
);
text_setter!(
    /// The loaded version to run.
    roma_request_set_version, |r, s| r.version_string = s.to_owned()
);
text_setter!(
    /// The handler, by dotted path.
    roma_request_set_handler, |r, s| r.handler_name = s.to_owned()
);
text_setter!(
    /// Appends one argument: JSON text (an empty string is `undefined`), or the raw string in
    /// byte-string mode.
    roma_request_add_input, |r, s| r.input.push(s.to_owned())
);

/// Sets a tag (copied), such as Roma's `TimeoutDuration` (`"100ms"`).
///
/// # Safety
/// `request` is null or a live request; `key` and `value` null or their lengths readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_request_set_tag(
    request: *mut roma_request_t,
    key: *const c_char,
    key_len: usize,
    value: *const c_char,
    value_len: usize,
) -> *mut roma_error_t {
    // SAFETY: the caller's contract.
    unsafe {
        set(request, |r| {
            let k = str_arg(key, key_len, "key")?;
            let v = str_arg(value, value_len, "value")?;
            r.tags.insert(k.to_owned(), v.to_owned());
            Ok(())
        })
    }
}

/// The request's timeout in milliseconds (more than 0); wins over the `TimeoutDuration` tag.
///
/// # Safety
/// `request` is null or a live request.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_request_set_timeout_ms(
    request: *mut roma_request_t,
    timeout_ms: u64,
) -> *mut roma_error_t {
    // SAFETY: the caller's contract.
    unsafe {
        set(request, |r| {
            r.timeout = Some(Duration::from_millis(timeout_ms));
            Ok(())
        })
    }
}

/// Roma's `treat_input_as_byte_str`: the single input is passed as a raw JS string and the
/// result returned raw.
///
/// # Safety
/// `request` is null or a live request.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_request_set_treat_input_as_byte_str(
    request: *mut roma_request_t,
    on: bool,
) -> *mut roma_error_t {
    // SAFETY: the caller's contract.
    unsafe {
        set(request, |r| {
            r.treat_input_as_byte_str = on;
            Ok(())
        })
    }
}

/// Console messages below `level` (`ROMA_LOG_*`) are dropped inside the sandbox.
///
/// # Safety
/// `request` is null or a live request.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_request_set_min_log_level(
    request: *mut roma_request_t,
    level: u32,
) -> *mut roma_error_t {
    // SAFETY: the caller's contract.
    unsafe {
        set(request, |r| {
            r.min_log_level = u8::try_from(level)
                .ok()
                .and_then(LogLevel::from_u8)
                .ok_or_else(|| RomaError::invalid_argument(format!("unknown log level {level}")))?;
            Ok(())
        })
    }
}

/// The metadata pointer that this request's host-function calls and log lines receive. roma
/// never reads it; it must stay valid until the request's callback has run, and be usable from
/// roma's threads.
///
/// # Safety
/// `request` is null or a live request.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_request_set_metadata(
    request: *mut roma_request_t,
    metadata: *mut c_void,
) -> *mut roma_error_t {
    // SAFETY: the caller's contract.
    unsafe {
        set(request, |r| {
            r.metadata = UserPtr(metadata);
            Ok(())
        })
    }
}

/// Asks for a V8 CPU profile of the handler call, returned by `roma_response_profiler_output`
/// (the service needs `roma_config_set_enable_profilers`, else the request fails with
/// `ROMA_ERROR_INVALID_ARGUMENT`).
///
/// # Safety
/// `request` is null or a live request.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_request_set_profile(
    request: *mut roma_request_t,
    on: bool,
) -> *mut roma_error_t {
    // SAFETY: the caller's contract.
    unsafe {
        set(request, |r| {
            r.profile = on;
            Ok(())
        })
    }
}
