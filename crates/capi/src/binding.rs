//! Host functions, the logging and worker-output functions: C function pointers behind roma's
//! closures; `roma_host_io_t`, the input and output of one host-function call; and
//! `roma_host_call_t`, an asynchronous call the C side finishes when it likes.

use crate::codes;
use crate::error::roma_error_t;
use crate::ffi::{
    CText, UserPtr, arg_ref, bytes_arg, entry, guard, guard_value, str_arg, write_out,
};
use roma::{
    BindingFuture, BindingInput, BindingOutput, FunctionBindingIo, FunctionBindingPayload,
    LogLevel, RomaError,
};
use std::collections::BTreeMap;
use std::ffi::{c_char, c_void};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A request's metadata as the C ABI carries it: the caller's pointer, never read by roma.
pub(crate) type CMeta = UserPtr;

impl Default for UserPtr {
    fn default() -> Self {
        UserPtr(std::ptr::null_mut())
    }
}

/// A host function: `env` as registered, the call's input and output, the request's metadata.
pub type roma_host_function_t =
    unsafe extern "C" fn(env: *mut c_void, io: *mut roma_host_io_t, metadata: *mut c_void);
/// The logging function: `level` is `ROMA_LOG_*`, `message` NUL-terminated and `len` long.
pub type roma_log_function_t = unsafe extern "C" fn(
    env: *mut c_void,
    level: u32,
    message: *const c_char,
    len: usize,
    metadata: *mut c_void,
);
/// An asynchronous host function: `env` as registered, the call (owned by the function until
/// it hands it to `roma_host_call_finish`), the request's metadata.
pub type roma_async_host_function_t =
    unsafe extern "C" fn(env: *mut c_void, call: *mut roma_host_call_t, metadata: *mut c_void);
/// The worker-output function: the worker's index and one line, NUL-terminated, `len` long.
pub type roma_worker_output_function_t =
    unsafe extern "C" fn(env: *mut c_void, worker: usize, line: *const c_char, len: usize);
/// Frees a user pointer handed to roma (a host function's `env`).
pub type roma_user_delete_t = unsafe extern "C" fn(env: *mut c_void);

/// A user pointer with its deleter, called once when roma drops the last use.
pub(crate) struct Env {
    ptr: UserPtr,
    delete: Option<roma_user_delete_t>,
}

impl Env {
    pub(crate) fn new(ptr: *mut c_void, delete: Option<roma_user_delete_t>) -> Self {
        Env {
            ptr: UserPtr(ptr),
            delete,
        }
    }

    /// The pointer, through a method on the whole `Env`: a closure that calls it owns the
    /// `Env` (and so runs its deleter only when the closure is dropped), where reading the
    /// field would capture that field alone and drop the `Env` at once.
    fn ptr(&self) -> *mut c_void {
        self.ptr.get()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(delete) = self.delete {
            // SAFETY: the user registered `delete` for this pointer; roma calls it once.
            unsafe { delete(self.ptr.0) };
        }
    }
}

/// Calls `f` with `s` as C text: NUL-terminated, and its length without the NUL.
fn with_c_text<R>(s: &str, f: impl FnOnce(*const c_char, usize) -> R) -> R {
    let text = CText::new(s);
    // SAFETY: a null `len` is not written.
    f(unsafe { text.out(std::ptr::null_mut()) }, s.len())
}

/// The host function (for `Config::register_function`) that calls the C `function`.
pub(crate) fn host_function(
    function: roma_host_function_t,
    env: Env,
) -> impl Fn(&mut FunctionBindingPayload<'_, CMeta>) + Send + Sync + 'static {
    move |p| {
        let mut io = roma_host_io_t {
            io: std::mem::take(&mut p.io),
            texts: Vec::new(),
        };
        // SAFETY: `function` is the user's host function with the documented signature; `io`
        // lives across the call and the pointers handed out through it live as long as it.
        unsafe { function(env.ptr(), &mut io, p.metadata.get()) };
        p.io = io.io;
    }
}

/// The logging function (for `Config::set_logging_function`) that calls the C `function`.
pub(crate) fn logging_function(
    function: roma_log_function_t,
    env: Env,
) -> impl Fn(LogLevel, &CMeta, &str) + Send + Sync + 'static {
    move |level, meta, msg| {
        let level = match level {
            LogLevel::Debug => codes::LOG_DEBUG,
            LogLevel::Info => codes::LOG_INFO,
            LogLevel::Warning => codes::LOG_WARNING,
            LogLevel::Error => codes::LOG_ERROR,
        };
        with_c_text(msg, |text, len| {
            // SAFETY: the user's logging function with the documented signature; the text
            // lives across the call.
            unsafe { function(env.ptr(), level, text, len, meta.get()) }
        });
    }
}

/// The worker-output function (for `Config::set_worker_output_function`) that calls the C
/// `function`.
pub(crate) fn worker_output_function(
    function: roma_worker_output_function_t,
    env: Env,
) -> impl Fn(usize, &str) + Send + Sync + 'static {
    move |worker, line| {
        with_c_text(line, |text, len| {
            // SAFETY: the user's worker-output function with the documented signature; the
            // text lives across the call.
            unsafe { function(env.ptr(), worker, text, len) }
        });
    }
}

/// The asynchronous host function (for `Config::register_async_function`) that calls the C
/// `function`.
pub(crate) fn async_host_function(
    function: roma_async_host_function_t,
    env: Env,
) -> impl Fn(FunctionBindingIo, &CMeta) -> BindingFuture + Send + Sync + 'static {
    move |io, meta| {
        let slot = Arc::new(Mutex::new(CallSlot::default()));
        let call = Box::into_raw(Box::new(roma_host_call_t {
            io: roma_host_io_t {
                io,
                texts: Vec::new(),
            },
            slot: Arc::clone(&slot),
        }));
        // SAFETY: the user's function with the documented signature; it owns `call` and hands
        // it back through `roma_host_call_finish`.
        unsafe { function(env.ptr(), call, meta.get()) };
        Box::pin(CallFuture(slot))
    }
}

/// Where an asynchronous call's io waits for its future: put by `roma_host_call_finish`,
/// taken by the future's poll.
#[derive(Default)]
struct CallSlot {
    io: Option<FunctionBindingIo>,
    waker: Option<Waker>,
}

/// The future roma's async executor drives for one C asynchronous call.
struct CallFuture(Arc<Mutex<CallSlot>>);

impl Future for CallFuture {
    type Output = FunctionBindingIo;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FunctionBindingIo> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.io.take() {
            Some(io) => Poll::Ready(io),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// An asynchronous host-function call, owned by the C function it was handed to until
/// `roma_host_call_finish` takes it.
pub struct roma_host_call_t {
    io: roma_host_io_t,
    slot: Arc<Mutex<CallSlot>>,
}

impl std::fmt::Debug for roma_host_call_t {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("roma_host_call_t").finish_non_exhaustive()
    }
}

/// The call's input and output, to read and set with the `roma_host_io_*` functions; valid
/// (as every pointer read from it) until `roma_host_call_finish`. Null for a null `call`.
///
/// # Safety
/// `call` is null or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_host_call_io(call: *mut roma_host_call_t) -> *mut roma_host_io_t {
    guard_value(std::ptr::null_mut(), || {
        // SAFETY: the caller's contract: null or live.
        unsafe { call.as_mut() }.map_or(std::ptr::null_mut(), |c| &mut c.io)
    })
}

/// Ends the call with the output (or errors) set on its io: the JS Promise resolves (or
/// rejects). Frees `call`; may be called from any thread. Null is ignored.
///
/// # Safety
/// `call` is null or a live call, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_host_call_finish(call: *mut roma_host_call_t) {
    if call.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: the caller's contract: roma allocated it and it is finished once.
        let call = unsafe { Box::from_raw(call) };
        let waker = {
            let mut slot = call.slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.io = Some(call.io.io);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    });
}

/// One host-function call's input and output; valid only during the call.
#[derive(Debug)]
pub struct roma_host_io_t {
    io: FunctionBindingIo,
    /// NUL-terminated copies of the input strings, made on first read.
    texts: Vec<CText>,
}

/// What JS passed: `ROMA_INPUT_*`.
pub type roma_input_kind_t = u32;

/// The kind of argument JS passed: `ROMA_INPUT_NONE`, `_STRING`, `_LIST`, `_MAP`, `_BYTES`
/// or `_JSON` (another plain object, as JSON text, read with `roma_host_io_input_string`).
///
/// # Safety
/// `io` is null or the live io of a call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_host_io_input_kind(io: *const roma_host_io_t) -> roma_input_kind_t {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        match unsafe { io.as_ref() }.map(|io| &io.io.input) {
            None | Some(BindingInput::None) => codes::INPUT_NONE,
            Some(BindingInput::String(_)) => codes::INPUT_STRING,
            Some(BindingInput::List(_)) => codes::INPUT_LIST,
            Some(BindingInput::Map(_)) => codes::INPUT_MAP,
            Some(BindingInput::Bytes(_)) => codes::INPUT_BYTES,
            Some(BindingInput::Json(_)) => codes::INPUT_JSON,
        }
    })
}

/// The error of an input read that does not match the input's kind or length.
fn bad_input(message: &str) -> RomaError {
    RomaError::new(roma::ErrorKind::BadInput, message)
}

fn texts<'a>(io: &'a mut roma_host_io_t, s: &str) -> &'a CText {
    io.texts.push(CText::new(s));
    io.texts.last().unwrap_or_else(|| unreachable!())
}

entry!(
    /// The string (or JSON) input: NUL-terminated through `*out`, its length through `*len`;
    /// valid until the call returns. Not a string: `ROMA_ERROR_BAD_INPUT`.
    ///
    /// # Safety
    /// `io` is null or the live io of a call; `out` and `len` are null or writable.
    fn roma_host_io_input_string(io: *mut roma_host_io_t, out: *mut *const c_char, len: *mut usize)
    |io| {
        let s = match &io.io.input {
            BindingInput::String(s) | BindingInput::Json(s) => s.clone(),
            _ => return Err(bad_input("the input is not a string")),
        };
        write_out(out, texts(io, &s).out(len))
    }
);

/// How many strings a list input has (0 when it is not a list), or entries a map input has.
///
/// # Safety
/// `io` is null or the live io of a call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_host_io_input_len(io: *const roma_host_io_t) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        match unsafe { io.as_ref() }.map(|io| &io.io.input) {
            Some(BindingInput::List(l)) => l.len(),
            Some(BindingInput::Map(m)) => m.len(),
            Some(BindingInput::Bytes(b)) => b.len(),
            _ => 0,
        }
    })
}

entry!(
    /// The string at `index` of a list input (as `roma_host_io_input_string`). Not a list, or
    /// out of range: `ROMA_ERROR_BAD_INPUT`.
    ///
    /// # Safety
    /// `io` is null or the live io of a call; `out` and `len` are null or writable.
    fn roma_host_io_input_list_get(
        io: *mut roma_host_io_t,
        index: usize,
        out: *mut *const c_char,
        len: *mut usize,
    )
    |io| {
        let s = match &io.io.input {
            BindingInput::List(l) => l.get(index).cloned(),
            _ => None,
        }
        .ok_or_else(|| bad_input("no list item at that index"))?;
        write_out(out, texts(io, &s).out(len))
    }
);

entry!(
    /// The entry at `index` (in key order) of a map input. Not a map, or out of range:
    /// `ROMA_ERROR_BAD_INPUT`.
    ///
    /// # Safety
    /// `io` is null or the live io of a call; the out-pointers are null or writable.
    fn roma_host_io_input_map_get(
        io: *mut roma_host_io_t,
        index: usize,
        key: *mut *const c_char,
        key_len: *mut usize,
        value: *mut *const c_char,
        value_len: *mut usize,
    )
    |io| {
        let (k, v) = match &io.io.input {
            BindingInput::Map(m) => m.iter().nth(index).map(|(k, v)| (k.clone(), v.clone())),
            _ => None,
        }
        .ok_or_else(|| bad_input("no map entry at that index"))?;
        write_out(key, texts(io, &k).out(key_len));
        write_out(value, texts(io, &v).out(value_len))
    }
);

/// The bytes of a `Uint8Array` input, valid until the call returns. Not bytes:
/// `ROMA_ERROR_BAD_INPUT`.
///
/// # Safety
/// `io` is null or the live io of a call; `out` and `len` are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_host_io_input_bytes(
    io: *const roma_host_io_t,
    out: *mut *const u8,
    len: *mut usize,
) -> *mut roma_error_t {
    guard(|| {
        // SAFETY: the caller's contract.
        let io = unsafe { arg_ref(io, "io") }?;
        let BindingInput::Bytes(b) = &io.io.input else {
            return Err(bad_input("the input is not bytes"));
        };
        // SAFETY: the caller's contract on `out` and `len`.
        unsafe {
            write_out(out, b.as_ptr());
            write_out(len, b.len());
        }
        Ok(())
    })
}

entry!(
    /// Returns a string to JS (copied). Invalid UTF-8 or null: `ROMA_ERROR_INVALID_ARGUMENT`.
    ///
    /// # Safety
    /// `io` is null or the live io of a call; `s` is null or `len` readable bytes.
    fn roma_host_io_set_output_string(io: *mut roma_host_io_t, s: *const c_char, len: usize)
    |io| io.io.set_output_string(str_arg(s, len, "output")?)
);

entry!(
    /// Returns an `Array` of `n` strings to JS (copied): `items[i]` is `lens[i]` bytes.
    ///
    /// # Safety
    /// `io` is null or the live io of a call; `items` and `lens` are null or `n` long, each item
    /// null or `lens[i]` readable bytes.
    fn roma_host_io_set_output_list(
        io: *mut roma_host_io_t,
        items: *const *const c_char,
        lens: *const usize,
        n: usize,
    )
    |io| io.io.set_output_list(strings(items, lens, n, "items")?)
);

entry!(
    /// Returns a `Map` of `n` entries to JS (copied): `keys[i]` to `values[i]`.
    ///
    /// # Safety
    /// As `roma_host_io_set_output_list`, for both arrays.
    fn roma_host_io_set_output_map(
        io: *mut roma_host_io_t,
        keys: *const *const c_char,
        key_lens: *const usize,
        values: *const *const c_char,
        value_lens: *const usize,
        n: usize,
    )
    |io| {
        let k = strings(keys, key_lens, n, "keys")?;
        let v = strings(values, value_lens, n, "values")?;
        io.io.set_output_map(k.into_iter().zip(v).collect::<BTreeMap<_, _>>())
    }
);

entry!(
    /// Returns a `Uint8Array` to JS (copied).
    ///
    /// # Safety
    /// `io` is null or the live io of a call; `bytes` is null or `len` readable bytes.
    fn roma_host_io_set_output_bytes(io: *mut roma_host_io_t, bytes: *const u8, len: usize)
    |io| io.io.output = BindingOutput::Bytes(bytes_arg(bytes, len, "bytes")?.to_vec())
);

entry!(
    /// Makes the JS call throw an `Error` with this message (added to any earlier ones) instead
    /// of returning the output.
    ///
    /// # Safety
    /// `io` is null or the live io of a call; `message` is null or `len` readable bytes.
    fn roma_host_io_add_error(io: *mut roma_host_io_t, message: *const c_char, len: usize)
    // Invalid UTF-8 is replaced, so the call still fails.
    |io| io.io.add_error(String::from_utf8_lossy(bytes_arg(message.cast(), len, "message")?))
);

/// `n` strings from parallel pointer and length arrays.
///
/// # Safety
/// `items` and `lens` are null or `n` long; each item null or `lens[i]` readable bytes.
pub(crate) unsafe fn strings(
    items: *const *const c_char,
    lens: *const usize,
    n: usize,
    what: &str,
) -> Result<Vec<String>, RomaError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the caller's contract: `n` pointers.
    let items = unsafe { bytes_arg(items.cast::<u8>(), 0, what) }
        .map(|_| unsafe { std::slice::from_raw_parts(items, n) })?;
    // SAFETY: the caller's contract: `n` lengths.
    let lens = unsafe { bytes_arg(lens.cast::<u8>(), 0, "lengths") }
        .map(|_| unsafe { std::slice::from_raw_parts(lens, n) })?;
    items
        .iter()
        .zip(lens)
        // SAFETY: the caller's contract for each item.
        .map(|(p, l)| unsafe { str_arg(*p, *l, what) }.map(str::to_owned))
        .collect()
}
