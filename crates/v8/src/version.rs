//! One loaded version: the owned `RomaVersion` of the shim and the safe calls on it.

use crate::ffi::{self, RomaOut};
use roma_core::{ErrorKind, RomaError};
use std::ffi::{CStr, c_char};

/// Which engine path a version takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionMode {
    /// Plain JS: top-level run once into a V8 snapshot; each call is a context from it.
    Snapshot,
    /// JS that needs `WebAssembly` at top level, or JS with a `wasm_bin` array: the script is
    /// compiled once and re-run in each fresh context (snapshots cannot hold WASM).
    UnboundScript,
    /// A standalone WASM module, compiled once and instantiated per call.
    Wasm,
}

/// Owns a `RomaVersion*`; disposing it drops the isolate. Not `Send`: V8 isolates belong to the
/// thread that uses them (the raw pointer keeps this type `!Send`).
pub(crate) struct Version {
    pub(crate) raw: *mut ffi::RomaVersion,
    pub(crate) mode: VersionMode,
    /// What the version was loaded from, to rebuild it after an out-of-memory when it has no
    /// snapshot.
    pub(crate) code: roma_core::CodeObject,
}

impl Version {
    pub(crate) fn isolate(&self) -> *mut std::ffi::c_void {
        // SAFETY: `raw` is live for the lifetime of self.
        unsafe { ffi::roma_v8_version_isolate(self.raw) }
    }

    pub(crate) fn oom(&self) -> bool {
        // SAFETY: `raw` is live.
        unsafe { ffi::roma_v8_version_oom(self.raw) != 0 }
    }

    pub(crate) fn cancel_terminate(&self) {
        // SAFETY: `raw` is live; called on the version's thread after JS has unwound.
        unsafe { ffi::roma_v8_version_cancel_terminate(self.raw) }
    }

    pub(crate) fn prewarm(&self) -> bool {
        // SAFETY: `raw` is live; called on the version's thread with no JS running.
        unsafe { ffi::roma_v8_prewarm(self.raw) == 0 }
    }

    pub(crate) fn wasm_stats(&self) -> (u64, u64) {
        let (mut c, mut h) = (0u64, 0u64);
        // SAFETY: `raw` is live; the out-pointers are valid locals.
        unsafe { ffi::roma_v8_version_wasm_stats(self.raw, &mut c, &mut h) };
        (c, h)
    }

    pub(crate) fn heap(&self) -> (usize, usize) {
        let (mut u, mut l) = (0usize, 0usize);
        // SAFETY: `raw` is live and has an isolate; the out-pointers are valid locals.
        unsafe { ffi::roma_v8_version_heap(self.raw, &mut u, &mut l) };
        (u, l)
    }
}

impl Drop for Version {
    fn drop(&mut self) {
        // SAFETY: `raw` came from the shim, is disposed exactly once, and the engine disarmed
        // the watchdog before any version can be dropped (it is only armed inside execute/load).
        unsafe { ffi::roma_v8_version_dispose(self.raw) }
    }
}

/// An out-record for a shim call whose strings are freed on drop.
pub(crate) struct Out(pub(crate) RomaOut);

impl Out {
    pub(crate) fn new() -> Out {
        Out(RomaOut {
            code: ffi::code::INTERNAL,
            data: std::ptr::null_mut(),
            data_len: 0,
            message: std::ptr::null_mut(),
            stack: std::ptr::null_mut(),
            line: 0,
            context_ms: 0.0,
            parse_ms: 0.0,
            call_ms: 0.0,
            prewarmed: 0,
            profile: std::ptr::null_mut(),
            profile_len: 0,
        })
    }

    fn cstr(p: *const c_char) -> String {
        if p.is_null() {
            return String::new();
        }
        // SAFETY: the shim writes NUL-terminated malloc'd strings into RomaOut.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    pub(crate) fn data(&self) -> String {
        if self.0.data.is_null() {
            return String::new();
        }
        // SAFETY: `data` points to `data_len` bytes (plus a NUL) allocated by the shim.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.0.data.cast::<u8>(), self.0.data_len) };
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// The CPU profile the shim serialized (JSON text), or empty.
    pub(crate) fn profile(&self) -> String {
        if self.0.profile.is_null() {
            return String::new();
        }
        // SAFETY: `profile` points to `profile_len` bytes allocated by the shim.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.0.profile.cast::<u8>(), self.0.profile_len) };
        String::from_utf8_lossy(bytes).into_owned()
    }

    pub(crate) fn message(&self) -> String {
        Self::cstr(self.0.message)
    }

    pub(crate) fn stack(&self) -> String {
        Self::cstr(self.0.stack)
    }

    /// The error for a failed call, for codes other than TERMINATED (which the engine
    /// classifies with the watchdog's reason).
    pub(crate) fn error(&self) -> RomaError {
        let kind = match self.0.code {
            // NEEDS_WASM reaches a caller only if the engine did not retry (it always does).
            ffi::code::COMPILE | ffi::code::NEEDS_WASM => ErrorKind::Compile,
            ffi::code::EXECUTION => ErrorKind::Execution,
            ffi::code::HANDLER_NOT_FOUND => ErrorKind::HandlerNotFound,
            ffi::code::BAD_INPUT => ErrorKind::BadInput,
            ffi::code::OOM => ErrorKind::OutOfMemory,
            ffi::code::TERMINATED => ErrorKind::Timeout,
            _ => ErrorKind::Internal,
        };
        let mut message = self.message();
        if message.is_empty() {
            message = format!("V8 shim failed with code {}", self.0.code);
        }
        RomaError::new(kind, message).with_stack(self.stack())
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        // SAFETY: frees only the shim-allocated strings, each once (the shim nulls them).
        unsafe { ffi::roma_v8_out_clear(&mut self.0) }
    }
}
