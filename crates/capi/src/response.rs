//! `roma_response_t` and `roma_batch_t`: the answers callbacks receive.

use crate::error::roma_error_t;
use crate::ffi::{CText, free, guard_value, text_out, write_out};
use roma::{ResponseObject, RomaError};
use std::ffi::c_char;

/// A response, owned by whoever received it; freed with `roma_response_delete`.
#[derive(Debug)]
pub struct roma_response_t {
    id: CText,
    resp: CText,
    metrics: Vec<(CText, f64)>,
    profiler_output: CText,
}

impl roma_response_t {
    pub(crate) fn new(r: &ResponseObject) -> Self {
        roma_response_t {
            id: CText::new(&r.id),
            resp: CText::new(&r.resp),
            metrics: r.metrics.iter().map(|(k, v)| (CText::new(k), *v)).collect(),
            profiler_output: CText::new(&r.profiler_output),
        }
    }
}

/// Defines a getter of one text field of a response, as `roma_response_id` documents.
macro_rules! text_getter {
    ($(#[$doc:meta])* $name:ident, $field:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `response` is null or a live response; `len` is null or writable.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            response: *const roma_response_t,
            len: *mut usize,
        ) -> *const c_char {
            // SAFETY: the caller's contract: `response` null or live, `len` null or writable.
            guard_value(c"".as_ptr(), || unsafe {
                text_out(response.as_ref().map(|r| &r.$field), len)
            })
        }
    };
}

text_getter!(
    /// The request's id, NUL-terminated, its length through `len` (may be null); valid until the
    /// response is deleted. Empty for a null `response`.
    roma_response_id, id
);
text_getter!(
    /// The handler's result (JSON text, or the raw string in byte-string mode), as
    /// `roma_response_id`.
    roma_response_resp, resp
);
text_getter!(
    /// A profiled request's V8 CPU profile of the handler call, in the Chrome DevTools
    /// `.cpuprofile` JSON form, at most 1 MiB; empty when the request was not profiled. Made
    /// inside the sandbox: treat it as untrusted text. As `roma_response_id`.
    roma_response_profiler_output, profiler_output
);

/// How many metrics the response has (names in roma's `roma.execution.*` set).
///
/// # Safety
/// `response` is null or a live response.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_response_metrics_len(response: *const roma_response_t) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract: null or live.
        unsafe { response.as_ref() }.map_or(0, |r| r.metrics.len())
    })
}

/// The metric at `index` (in name order): its NUL-terminated name through `name` and its value
/// through `value`. False (and nothing written) when out of range.
///
/// # Safety
/// `response` is null or a live response; `name` and `value` are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_response_metric(
    response: *const roma_response_t,
    index: usize,
    name: *mut *const c_char,
    value: *mut f64,
) -> bool {
    guard_value(false, || {
        // SAFETY: the caller's contract.
        let Some((n, v)) = unsafe { response.as_ref() }.and_then(|r| r.metrics.get(index)) else {
            return false;
        };
        // SAFETY: the caller's contract on the out-pointers.
        unsafe {
            write_out(name, n.out(std::ptr::null_mut()));
            write_out(value, *v);
        }
        true
    })
}

/// Frees a response. Null is ignored.
///
/// # Safety
/// `response` is null or a live response, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_response_delete(response: *mut roma_response_t) {
    // SAFETY: the caller's contract.
    unsafe { free(response) }
}

/// The results of a batch, one per request in request order; owned by the batch callback,
/// freed with `roma_batch_delete`.
#[derive(Debug)]
pub struct roma_batch_t {
    items: Vec<Result<roma_response_t, roma_error_t>>,
}

impl roma_batch_t {
    pub(crate) fn new(results: &[Result<ResponseObject, RomaError>]) -> Self {
        roma_batch_t {
            items: results
                .iter()
                .map(|r| match r {
                    Ok(r) => Ok(roma_response_t::new(r)),
                    Err(e) => Err(roma_error_t::new(e)),
                })
                .collect(),
        }
    }
}

/// How many results the batch holds (as many as requests were submitted).
///
/// # Safety
/// `batch` is null or a live batch.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_batch_len(batch: *const roma_batch_t) -> usize {
    // SAFETY: the caller's contract.
    guard_value(0, || unsafe { batch.as_ref() }.map_or(0, |b| b.items.len()))
}

/// The result at `index`: exactly one of `*response` and `*error` is set non-null, both
/// borrowed from the batch (do not delete them). False when out of range.
///
/// # Safety
/// `batch` is null or a live batch; `response` and `error` are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_batch_get(
    batch: *const roma_batch_t,
    index: usize,
    response: *mut *const roma_response_t,
    error: *mut *const roma_error_t,
) -> bool {
    guard_value(false, || {
        // SAFETY: the caller's contract.
        let Some(item) = unsafe { batch.as_ref() }.and_then(|b| b.items.get(index)) else {
            return false;
        };
        let (r, e) = match item {
            Ok(r) => (r as *const _, std::ptr::null()),
            Err(e) => (std::ptr::null(), e as *const _),
        };
        // SAFETY: the caller's contract on the out-pointers.
        unsafe {
            write_out(response, r);
            write_out(error, e);
        }
        true
    })
}

/// Frees a batch and every result in it. Null is ignored.
///
/// # Safety
/// `batch` is null or a live batch, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_batch_delete(batch: *mut roma_batch_t) {
    // SAFETY: the caller's contract.
    unsafe { free(batch) }
}
