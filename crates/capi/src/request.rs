//! `roma_request_t`: an invocation of a loaded version's handler.

use crate::binding::CMeta;
use crate::ffi::{UserPtr, entry, free, tag_setter, text_setters};
use roma::{InvocationRequest, LogLevel, RomaError};
use std::ffi::c_void;
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
    // SAFETY: the caller's contract.
    unsafe { free(request) }
}

text_setters! {
    request: roma_request_t;
    /// The caller's id, echoed in the response.
    roma_request_set_id, |r, s| r.inner.id = s.to_owned();
    /// The loaded version to run.
    roma_request_set_version, |r, s| r.inner.version_string = s.to_owned();
    /// The handler, by dotted path.
    roma_request_set_handler, |r, s| r.inner.handler_name = s.to_owned();
    /// Appends one argument: JSON text (an empty string is `undefined`), or the raw string in
    /// byte-string mode.
    roma_request_add_input, |r, s| r.inner.input.push(s.to_owned());
}

tag_setter!(
    request: roma_request_t;
    /// Sets a tag (copied), such as Roma's `TimeoutDuration` (`"100ms"`).
    roma_request_set_tag, |r, key, value| r.inner.tags.insert(key, value)
);

entry!(
    /// The request's timeout in milliseconds (more than 0); wins over the `TimeoutDuration` tag.
    ///
    /// # Safety
    /// `request` is null or a live request.
    fn roma_request_set_timeout_ms(request: *mut roma_request_t, timeout_ms: u64)
    |r| r.inner.timeout = Some(Duration::from_millis(timeout_ms))
);

entry!(
    /// Roma's `treat_input_as_byte_str`: the single input is passed as a raw JS string and the
    /// result returned raw.
    ///
    /// # Safety
    /// `request` is null or a live request.
    fn roma_request_set_treat_input_as_byte_str(request: *mut roma_request_t, on: bool)
    |r| r.inner.treat_input_as_byte_str = on
);

entry!(
    /// Console messages below `level` (`ROMA_LOG_*`) are dropped inside the sandbox.
    ///
    /// # Safety
    /// `request` is null or a live request.
    fn roma_request_set_min_log_level(request: *mut roma_request_t, level: u32)
    |r| r.inner.min_log_level = u8::try_from(level)
        .ok()
        .and_then(LogLevel::from_u8)
        .ok_or_else(|| RomaError::invalid_argument(format!("unknown log level {level}")))?
);

entry!(
    /// The metadata pointer that this request's host-function calls and log lines receive. roma
    /// never reads it; it must stay valid until the request's callback has run, and be usable
    /// from roma's threads.
    ///
    /// # Safety
    /// `request` is null or a live request.
    fn roma_request_set_metadata(request: *mut roma_request_t, metadata: *mut c_void)
    |r| r.inner.metadata = UserPtr(metadata)
);

entry!(
    /// Asks for a V8 CPU profile of the handler call, returned by `roma_response_profiler_output`
    /// (the service needs `roma_config_set_enable_profilers`, else the request fails with
    /// `ROMA_ERROR_INVALID_ARGUMENT`).
    ///
    /// # Safety
    /// `request` is null or a live request.
    fn roma_request_set_profile(request: *mut roma_request_t, on: bool)
    |r| r.inner.profile = on
);
