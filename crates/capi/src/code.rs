//! `roma_code_object_t`: a version of JavaScript or WebAssembly to load.

use crate::ffi::{bytes_arg, entry, free, tag_setter, text_setters};
use roma::CodeObject;

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

text_setters! {
    code: roma_code_object_t;
    /// The caller's id, echoed in the load's response.
    roma_code_object_set_id, |c, s| c.inner.id = s.to_owned();
    /// The version the code is loaded as (requests name it).
    roma_code_object_set_version, |c, s| c.inner.version_string = s.to_owned();
    /// The JavaScript source.
    roma_code_object_set_js, |c, s| c.inner.js = s.to_owned();
}

entry!(
    /// The WebAssembly module (copied): standalone, or alongside `js` for the JS to instantiate.
    ///
    /// # Safety
    /// `code` is null or a live code object; `wasm` is null or `len` readable bytes.
    fn roma_code_object_set_wasm(code: *mut roma_code_object_t, wasm: *const u8, len: usize)
    |c| {
        let wasm = bytes_arg(wasm, len, "wasm")?.to_vec();
        if c.inner.js.is_empty() {
            c.inner.wasm = wasm;
        } else {
            c.inner.wasm_bin = wasm;
        }
    }
);

tag_setter!(
    code: roma_code_object_t;
    /// Sets a tag (copied), such as Roma's `TimeoutDuration`.
    roma_code_object_set_tag, |c, key, value| c.inner.tags.insert(key, value)
);

/// Frees a code object. Null is ignored.
///
/// # Safety
/// `code` is null or a live code object, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_code_object_delete(code: *mut roma_code_object_t) {
    // SAFETY: the caller's contract.
    unsafe { free(code) }
}
