//! The checks every entry point makes: panics caught, pointers and strings validated.

use crate::error::roma_error_t;
use roma::RomaError;
use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs an entry point's body: its error (or a panic, turned into `Internal`) becomes an owned
/// `roma_error_t`, success a null pointer.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), RomaError>) -> *mut roma_error_t {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => roma_error_t::boxed(e),
        Err(_) => roma_error_t::boxed(RomaError::internal("a panic inside roma's C ABI")),
    }
}

/// Runs an entry point that returns a plain value, with `fallback` on a panic.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Runs an entry point's body on a handle argument: null is `invalid_argument` naming the
/// handle (`what`), else `f`'s outcome is returned as by [`guard`].
///
/// # Safety
/// `ptr` is null or points to a live `T` that nothing else mutates during the call.
pub(crate) unsafe fn with_mut<T>(
    ptr: *mut T,
    what: &str,
    f: impl FnOnce(&mut T) -> Result<(), RomaError>,
) -> *mut roma_error_t {
    // SAFETY: the caller's contract.
    guard(|| f(unsafe { arg_mut(ptr, what) }?))
}

/// Defines an `extern "C"` entry point whose first argument is a handle, checked by
/// [`with_mut`] (the message names the handle argument), whose body runs on it: its errors
/// (through `?`) become the returned owned error, success returns null. A macro because each
/// entry point is an exported symbol of its own; the docs, `# Safety` included, are the
/// invocation's.
macro_rules! entry {
    ($(#[$doc:meta])* fn $name:ident($h:ident: *mut $t:ty $(, $arg:ident: $ty:ty)* $(,)?)
        |$b:ident| $body:expr) => {
        $(#[$doc])*
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            $h: *mut $t
            $(, $arg: $ty)*
        ) -> *mut $crate::error::roma_error_t {
            // SAFETY: the caller's contract, the `# Safety` section above.
            unsafe {
                $crate::ffi::with_mut($h, stringify!($h), |$b| {
                    $body;
                    Ok(())
                })
            }
        }
    };
}
pub(crate) use entry;

/// Defines setters of a handle's text fields (`$h: $t`, then each setter's docs, name and
/// body): each takes `s` and `len` bytes of UTF-8, copied; a null pointer or invalid UTF-8 is
/// `ROMA_ERROR_INVALID_ARGUMENT` naming the setter.
macro_rules! text_setters {
    ($h:ident: $t:ty; $($(#[$doc:meta])* $name:ident, |$c:ident, $s:ident| $body:expr;)*) => {$(
        $crate::ffi::entry!(
            $(#[$doc])*
            ///
            /// The text is copied. A null pointer or invalid UTF-8 is
            /// `ROMA_ERROR_INVALID_ARGUMENT`.
            ///
            /// # Safety
            #[doc = concat!(
                "`", stringify!($h), "` is null or live; `s` is null or `len` readable bytes."
            )]
            fn $name($h: *mut $t, s: *const ::std::ffi::c_char, len: usize)
            |$c| {
                let $s = $crate::ffi::str_arg(s, len, stringify!($name))?;
                $body
            }
        );
    )*};
}
pub(crate) use text_setters;

/// Defines the setter of a handle's tags (`$h: $t`, then the setter's docs, name and body):
/// it takes `key` and `value`, `key_len` and `value_len` bytes of UTF-8, copied; a null
/// pointer or invalid UTF-8 is `ROMA_ERROR_INVALID_ARGUMENT` naming the argument.
macro_rules! tag_setter {
    ($h:ident: $t:ty; $(#[$doc:meta])* $name:ident, |$c:ident, $k:ident, $v:ident| $body:expr) => {
        $crate::ffi::entry!(
            $(#[$doc])*
            ///
            /// # Safety
            #[doc = concat!(
                "`", stringify!($h), "` is null or live; `key` and `value` are null or their",
                " lengths readable."
            )]
            fn $name(
                $h: *mut $t,
                key: *const ::std::ffi::c_char,
                key_len: usize,
                value: *const ::std::ffi::c_char,
                value_len: usize,
            )
            |$c| {
                let $k = $crate::ffi::str_arg(key, key_len, "key")?.to_owned();
                let $v = $crate::ffi::str_arg(value, value_len, "value")?.to_owned();
                $body
            }
        );
    };
}
pub(crate) use tag_setter;

/// Frees a handle roma allocated (a `Box`). Null is ignored.
///
/// # Safety
/// `ptr` is null or a handle roma allocated and has not freed, not used afterwards.
pub(crate) unsafe fn free<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller's contract: roma allocated it and it is freed once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// A handle argument, or `invalid_argument` naming it when null.
///
/// # Safety
/// `ptr` is null or points to a live `T` that nothing else mutates during the call.
pub(crate) unsafe fn arg_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, RomaError> {
    // SAFETY: the caller's contract above; null is checked here.
    unsafe { ptr.as_mut() }.ok_or_else(|| null(what))
}

/// A shared handle argument, or `invalid_argument` naming it when null.
///
/// # Safety
/// `ptr` is null or points to a live `T`.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, RomaError> {
    // SAFETY: the caller's contract above; null is checked here.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(what))
}

/// A string argument given as pointer and length: null or invalid UTF-8 is `invalid_argument`.
///
/// # Safety
/// `ptr` is null or points to `len` readable bytes.
pub(crate) unsafe fn str_arg<'a>(
    ptr: *const c_char,
    len: usize,
    what: &str,
) -> Result<&'a str, RomaError> {
    // SAFETY: forwarded to `bytes_arg` under the same contract.
    let bytes = unsafe { bytes_arg(ptr.cast(), len, what) }?;
    std::str::from_utf8(bytes)
        .map_err(|e| RomaError::invalid_argument(format!("{what} is not valid UTF-8: {e}")))
}

/// A byte-string argument: null is `invalid_argument` (even with `len` 0).
///
/// # Safety
/// `ptr` is null or points to `len` readable bytes.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], RomaError> {
    if ptr.is_null() {
        return Err(null(what));
    }
    if len > isize::MAX as usize {
        return Err(RomaError::invalid_argument(format!(
            "{what}: length {len} is too large"
        )));
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes `value` through an out-pointer the caller may leave null.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null, and the caller guarantees it is writable.
        unsafe { out.write(value) };
    }
}

fn null(what: &str) -> RomaError {
    RomaError::invalid_argument(format!("{what} is a null pointer"))
}

/// A string kept with a trailing NUL, so C reads it either by length or as a C string.
#[derive(Debug, Clone, Default)]
pub(crate) struct CText(Box<[u8]>);

impl CText {
    pub(crate) fn new(s: &str) -> Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        CText(v.into_boxed_slice())
    }

    /// The pointer to the text (NUL-terminated), and its length without the NUL through `len`.
    ///
    /// # Safety
    /// `len` is null or writable.
    pub(crate) unsafe fn out(&self, len: *mut usize) -> *const c_char {
        // SAFETY: the caller's contract on `len`.
        unsafe { write_out(len, self.0.len() - 1) };
        self.0.as_ptr().cast()
    }
}

/// The text of a handle that may be absent (a null handle): as [`CText::out`], or an empty
/// string and a length of 0.
///
/// # Safety
/// `len` is null or writable.
pub(crate) unsafe fn text_out(text: Option<&CText>, len: *mut usize) -> *const c_char {
    match text {
        // SAFETY: the caller's contract on `len`.
        Some(t) => unsafe { t.out(len) },
        None => {
            // SAFETY: the caller's contract on `len`.
            unsafe { write_out(len, 0) };
            c"".as_ptr()
        }
    }
}

/// A pointer the user handed roma (callback data, a host function's environment, request
/// metadata) that roma carries to other threads and hands back without reading it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserPtr(pub(crate) *mut c_void);

impl UserPtr {
    /// The pointer. A method, not a field read, so a closure captures the whole `UserPtr`
    /// (which is `Send`), not the bare pointer.
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: roma never dereferences the pointer; it only passes it back to the user's own
// functions, on roma's threads. The headers document that everything reached through it must
// be safe to use from another thread.
unsafe impl Send for UserPtr {}
// SAFETY: as for `Send`: roma shares the pointer value, never what it points to.
unsafe impl Sync for UserPtr {}
