//! `roma_code_object_t`: a version of JavaScript or WebAssembly to load.

use crate::error::roma_error_t;
use crate::ffi::{arg_mut, bytes_arg, guard, str_arg};
use roma::CodeObject;
use std::ffi::c_char;

/// A code object, owned by the caller (loading copies it).
#[derive(Debug, Default)]
pub struct roma_code_object_t {
    pub(crate) inner: CodeObject,
}

/// A new, empty code object. Never null; free with `roma_code_object_delete`.
#[unsafe(no_mangle)]
pub extern "C" fn roma_code_object_new() -> *mut roma_code_object_t {
    Box::into_raw(Box::default())
}

/// Frees a code object. Null is ignored.
///
/// # Safety
/// `code` is null or a live code object, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_code_object_delete(code: *mut roma_code_object_t) {
    if !code.is_null() {
        // SAFETY: the caller's contract: roma allocated it and it is deleted once.
        drop(unsafe { Box::from_raw(code) });
    }
}

macro_rules! text_setter {
    ($(#[$doc:meta])* $name:ident, |$c:ident, $s:ident| $body:expr) => {
        $(#[$doc])*
        ///
        /// The text is copied. A null pointer or invalid UTF-8 is `ROMA_ERROR_INVALID_ARGUMENT`.
        ///
        /// # Safety
        /// `code` is null or a live code object; `s` is null or `len` readable bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            code: *mut roma_code_object_t,
            s: *const c_char,
            len: usize,
        ) -> *mut roma_error_t {
            guard(|| {
                // SAFETY: the caller's contract.
                let $c = unsafe { arg_mut(code, "code") }?;
                // SAFETY: the caller's contract.
                let $s = unsafe { str_arg(s, len, stringify!($name)) }?;
                $body;
                Ok(())
            })
        }
    };
}

text_setter!(
    /// The caller's id, echoed in the load's response.
    roma_code_object_set_id, |c, s| c.inner.id = s.to_owned()
);
text_setter!(
    /// The version the code is loaded as (requests name it).
    roma_code_object_set_version, |c, s| c.inner.version_string = s.to_owned()
);
text_setter!(
    /// The JavaScript source.
    roma_code_object_set_js, |c, s| c.inner.js = s.to_owned()
);

/// The WebAssembly module (copied): standalone, or alongside `js` for the JS to instantiate.
///
/// # Safety
/// `code` is null or a live code object; `wasm` is null or `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_code_object_set_wasm(
    code: *mut roma_code_object_t,
    wasm: *const u8,
    len: usize,
) -> *mut roma_error_t {
    guard(|| {
        // SAFETY: the caller's contract.
        let c = unsafe { arg_mut(code, "code") }?;
        // SAFETY: the caller's contract.
        let wasm = unsafe { bytes_arg(wasm, len, "wasm") }?;
        if c.inner.js.is_empty() {
            c.inner.wasm = wasm.to_vec();
        } else {
            c.inner.wasm_bin = wasm.to_vec();
        }
        Ok(())
    })
}

/// Sets a tag (copied), such as Roma's `TimeoutDuration`.
///
/// # Safety
/// `code` is null or a live code object; `key` and `value` null or their lengths readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_code_object_set_tag(
    code: *mut roma_code_object_t,
    key: *const c_char,
    key_len: usize,
    value: *const c_char,
    value_len: usize,
) -> *mut roma_error_t {
    guard(|| {
        // SAFETY: the caller's contract.
        let c = unsafe { arg_mut(code, "code") }?;
        // SAFETY: the caller's contract.
        let (k, v) = unsafe {
            (
                str_arg(key, key_len, "key")?,
                str_arg(value, value_len, "value")?,
            )
        };
        c.inner.tags.insert(k.to_owned(), v.to_owned());
        Ok(())
    })
}
