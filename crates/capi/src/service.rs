//! `roma_service_t`: the running service; load, execute (with a callback, or blocking), batch
//! execute, cancel, stop.

use crate::code::roma_code_object_t;
use crate::config::roma_config_t;
use crate::error::roma_error_t;
use crate::ffi::{UserPtr, arg_ref, free, guard, guard_value, write_out};
use crate::request::roma_request_t;
use crate::response::{roma_batch_t, roma_response_t};
use roma::{ExecutionToken, ResponseObject, RomaError, RomaService};
use std::ffi::c_void;

/// A running service.
#[derive(Debug)]
pub struct roma_service_t {
    inner: RomaService<crate::binding::CMeta>,
}

/// An accepted execution's token, for `roma_service_cancel`; owned by the caller.
#[derive(Debug)]
pub struct roma_execution_token_t {
    inner: ExecutionToken,
}

/// The callback of a load or an execution: exactly one of `response` and `error` is non-null,
/// and the callback owns it (free it with `roma_response_delete` or `roma_error_delete`).
pub type roma_callback_t = unsafe extern "C" fn(
    user_data: *mut c_void,
    response: *mut roma_response_t,
    error: *mut roma_error_t,
);
/// The callback of a batch: it owns `batch` (free it with `roma_batch_delete`).
pub type roma_batch_callback_t =
    unsafe extern "C" fn(user_data: *mut c_void, batch: *mut roma_batch_t);

/// Starts a service: its workers are started and warmed before it returns (this blocks).
/// `config` is consumed, whatever the outcome. On success `*service` is set and null is
/// returned; on failure an owned error, and nothing keeps running.
///
/// # Safety
/// `config` is null or a live configuration not used afterwards; `service` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_service_new(
    config: *mut roma_config_t,
    service: *mut *mut roma_service_t,
) -> *mut roma_error_t {
    guard(|| {
        if config.is_null() {
            return Err(RomaError::invalid_argument("config is a null pointer"));
        }
        // SAFETY: the caller's contract: a live configuration, consumed here.
        let config = unsafe { Box::from_raw(config) };
        if service.is_null() {
            return Err(RomaError::invalid_argument("service is a null pointer"));
        }
        let roma_config_t {
            mut inner,
            v8_flags,
        } = *config;
        if !v8_flags.is_empty() {
            inner.v8_flags(v8_flags);
        }
        let svc = RomaService::new(inner)?;
        // SAFETY: checked non-null; the caller's contract makes it writable.
        unsafe {
            write_out(
                service,
                Box::into_raw(Box::new(roma_service_t { inner: svc })),
            )
        };
        Ok(())
    })
}

/// Stops the service: queued requests and unanswered loads get their callback with
/// `ROMA_ERROR_CANCELLED`, running ones finish and answer, workers exit; later submits fail.
/// Blocks until the workers are told to stop. Idempotent. Not to be called from a callback.
///
/// # Safety
/// `service` is null or a live service.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_service_stop(service: *const roma_service_t) -> *mut roma_error_t {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { arg_ref(service, "service") }?.inner.stop();
        Ok(())
    })
}

/// Stops (as `roma_service_stop`) and frees the service. Null is ignored. Not to be called
/// from a callback, nor while another thread still uses the service.
///
/// # Safety
/// `service` is null or a live service, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_service_delete(service: *mut roma_service_t) {
    // SAFETY: the caller's contract.
    guard_value((), || unsafe { free(service) });
}

fn answer(
    callback: roma_callback_t,
    data: UserPtr,
) -> impl FnOnce(Result<ResponseObject, RomaError>) + Send {
    move |r| {
        let (resp, err) = match r {
            Ok(r) => (
                Box::into_raw(Box::new(roma_response_t::new(&r))),
                std::ptr::null_mut(),
            ),
            Err(e) => (std::ptr::null_mut(), roma_error_t::boxed(e)),
        };
        // SAFETY: the user's callback with the documented signature; it takes ownership.
        unsafe { callback(data.get(), resp, err) };
    }
}

/// Loads a code object (copied) into every worker. Null returned: accepted, and `callback`
/// runs once, on one of roma's threads, when every worker has it (or with the first failure,
/// or at stop). An error returned: refused, and `callback` is never called. Does not block.
///
/// # Safety
/// `service` and `code` are null or live; `callback` is null or of the type; `user_data` is
/// usable from roma's threads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_service_load(
    service: *const roma_service_t,
    code: *const roma_code_object_t,
    callback: Option<roma_callback_t>,
    user_data: *mut c_void,
) -> *mut roma_error_t {
    guard(|| {
        // SAFETY: the caller's contract.
        let (s, c) = unsafe { (arg_ref(service, "service")?, arg_ref(code, "code")?) };
        let cb =
            callback.ok_or_else(|| RomaError::invalid_argument("callback is a null pointer"))?;
        s.inner
            .load_code_obj(c.inner.clone(), answer(cb, UserPtr(user_data)))
    })
}

/// Runs a request (copied) on the least busy worker. Null returned: accepted; `callback`
/// runs exactly once, on one of roma's threads (also at stop, with `ROMA_ERROR_CANCELLED`),
/// and `*token` (when `token` is non-null) is set to an owned token for
/// `roma_service_cancel`. An error returned (queues full, unknown version, bad request,
/// stopped): refused, `callback` is never called and `*token` is untouched. Does not block.
///
/// # Safety
/// `service` and `request` are null or live; `callback` is null or of the type; `user_data`
/// is usable from roma's threads; `token` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_service_execute(
    service: *const roma_service_t,
    request: *const roma_request_t,
    callback: Option<roma_callback_t>,
    user_data: *mut c_void,
    token: *mut *mut roma_execution_token_t,
) -> *mut roma_error_t {
    guard(|| {
        // SAFETY: the caller's contract.
        let (s, r) = unsafe { (arg_ref(service, "service")?, arg_ref(request, "request")?) };
        let cb =
            callback.ok_or_else(|| RomaError::invalid_argument("callback is a null pointer"))?;
        let t = s
            .inner
            .execute(r.inner.clone(), answer(cb, UserPtr(user_data)))?;
        if !token.is_null() {
            let t = Box::into_raw(Box::new(roma_execution_token_t { inner: t }));
            // SAFETY: non-null, and the caller's contract makes it writable.
            unsafe { token.write(t) };
        }
        Ok(())
    })
}

/// Runs a request (copied) and waits on the calling thread for its answer, as the Rust API's
/// `execute_blocking`: while the queues are full it waits for room (up to the queue wait
/// timeout), then for the answer, which the request's timeout bounds. When the worker the
/// request would go to is idle and nothing is queued, the calling thread runs the request
/// itself (the direct hand-off: no roma thread is woken for it, and the answer needs no
/// wake-up). Null returned: `*response` is set to an owned response (free it with
/// `roma_response_delete`). An error returned (a null argument, queues full past the wait,
/// unknown version, the handler's failure, a timeout, stopped): an owned error, and
/// `*response` is untouched. No callback is involved. Thread-safe: any number of threads may
/// wait at once. On one of the service's own threads (in its callback, or a host function run
/// inline) it is refused with `ROMA_ERROR_INVALID_ARGUMENT`: the thread it would block may be
/// the one to answer. A host function that calls it holds its own request until that answer.
///
/// # Safety
/// `service` and `request` are null or live; `response` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_service_execute_blocking(
    service: *const roma_service_t,
    request: *const roma_request_t,
    response: *mut *mut roma_response_t,
) -> *mut roma_error_t {
    guard(|| {
        // SAFETY: the caller's contract.
        let (s, r) = unsafe { (arg_ref(service, "service")?, arg_ref(request, "request")?) };
        if response.is_null() {
            return Err(RomaError::invalid_argument("response is a null pointer"));
        }
        let answer = s.inner.execute_blocking(r.inner.clone())?;
        let out = Box::into_raw(Box::new(roma_response_t::new(&answer)));
        // SAFETY: checked non-null; the caller's contract makes it writable.
        unsafe { response.write(out) };
        Ok(())
    })
}

/// Runs `n` requests (copied) as Roma's `BatchExecute`: they are enqueued in order as room
/// frees (blocking up to the queue wait timeout while the queues are full), and `callback`
/// runs once with one result per request, in order. Error returned: refused before any was
/// enqueued, and `callback` is never called. Not to be called from a callback.
///
/// # Safety
/// `service` is null or live; `requests` is null or `n` pointers to live requests; `callback`
/// is null or of the type; `user_data` is usable from roma's threads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_service_batch_execute(
    service: *const roma_service_t,
    requests: *const *const roma_request_t,
    n: usize,
    callback: Option<roma_batch_callback_t>,
    user_data: *mut c_void,
) -> *mut roma_error_t {
    guard(|| {
        // SAFETY: the caller's contract.
        let s = unsafe { arg_ref(service, "service") }?;
        let cb =
            callback.ok_or_else(|| RomaError::invalid_argument("callback is a null pointer"))?;
        if requests.is_null() {
            return Err(RomaError::invalid_argument("requests is a null pointer"));
        }
        // SAFETY: non-null, and the caller guarantees `n` pointers.
        let ptrs = unsafe { std::slice::from_raw_parts(requests, n) };
        let batch = ptrs
            .iter()
            // SAFETY: the caller's contract: each null or live.
            .map(|p| unsafe { arg_ref(*p, "requests[i]") }.map(|r| r.inner.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let data = UserPtr(user_data);
        s.inner.batch_execute_waiting(batch, move |results| {
            let b = Box::into_raw(Box::new(roma_batch_t::new(&results)));
            // SAFETY: the user's callback with the documented signature; it takes ownership.
            unsafe { cb(data.get(), b) };
        })?;
        Ok(())
    })
}

/// Cancels an accepted execution: a queued one is answered `ROMA_ERROR_CANCELLED` at once, a
/// running one is stopped and answered so. False if it had already finished (or on null).
/// The token stays owned by the caller.
///
/// # Safety
/// `service` and `token` are null or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_service_cancel(
    service: *const roma_service_t,
    token: *const roma_execution_token_t,
) -> bool {
    guard_value(false, || {
        // SAFETY: the caller's contract.
        match unsafe { (service.as_ref(), token.as_ref()) } {
            (Some(s), Some(t)) => s.inner.cancel(&t.inner),
            _ => false,
        }
    })
}

/// Frees a token. Null is ignored.
///
/// # Safety
/// `token` is null or a live token, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_execution_token_delete(token: *mut roma_execution_token_t) {
    // SAFETY: the caller's contract.
    unsafe { free(token) }
}
