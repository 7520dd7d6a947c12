//! Raw declarations of the C++ shim's entry points (`shim/roma_v8_shim.cc`); the records and
//! codes they exchange are defined once in [`crate::abi`]. Every function here is called only
//! from the safe wrappers in this crate; the invariants each needs are stated on the C++ side
//! and restated where the wrappers call them.

use std::ffi::{c_char, c_void};

pub(crate) use crate::abi::{RomaExecParams, RomaLimits, RomaOut, RomaStr, code, kind};

/// Opaque: one loaded version (an isolate and what it runs).
#[repr(C)]
pub(crate) struct RomaVersion {
    _private: [u8; 0],
}

/// Opaque: a `v8::SnapshotCreator`.
#[repr(C)]
pub(crate) struct SnapshotCreator {
    _private: [u8; 0],
}

impl RomaStr {
    pub fn new(s: &str) -> RomaStr {
        RomaStr {
            ptr: s.as_ptr().cast(),
            len: s.len(),
        }
    }
}

unsafe extern "C" {
    pub(crate) fn roma_v8_version_set_bindings(
        v: *mut RomaVersion,
        names: *const RomaStr,
        count: usize,
    );
    pub(crate) fn roma_v8_init(flags: *const c_char, flags_len: usize) -> i32;
    pub(crate) fn roma_v8_version() -> *const c_char;
    pub(crate) fn roma_v8_out_clear(out: *mut RomaOut);
    pub(crate) fn roma_v8_version_isolate(v: *mut RomaVersion) -> *mut c_void;
    pub(crate) fn roma_v8_isolate_terminate(isolate: *mut c_void);
    pub(crate) fn roma_v8_snapshot_begin(
        limits: *const RomaLimits,
        creator: *mut *mut SnapshotCreator,
    ) -> *mut RomaVersion;
    pub(crate) fn roma_v8_snapshot_run(
        v: *mut RomaVersion,
        creator: *mut SnapshotCreator,
        src: *const c_char,
        len: usize,
        out: *mut RomaOut,
    ) -> i32;
    pub(crate) fn roma_v8_snapshot_finish(
        v: *mut RomaVersion,
        creator: *mut SnapshotCreator,
        run_code: i32,
        out: *mut RomaOut,
    ) -> i32;
    pub(crate) fn roma_v8_version_new(
        kind: i32,
        limits: *const RomaLimits,
        src: *const c_char,
        src_len: usize,
        wasm: *const u8,
        wasm_len: usize,
        array_name: *const c_char,
        array_name_len: usize,
    ) -> *mut RomaVersion;
    pub(crate) fn roma_v8_version_compile(v: *mut RomaVersion, out: *mut RomaOut) -> i32;
    pub(crate) fn roma_v8_execute(
        v: *mut RomaVersion,
        p: *const RomaExecParams,
        out: *mut RomaOut,
    ) -> i32;
    pub(crate) fn roma_v8_prewarm(v: *mut RomaVersion) -> i32;
    pub(crate) fn roma_v8_version_rebuild(v: *mut RomaVersion) -> i32;
    pub(crate) fn roma_v8_version_oom(v: *mut RomaVersion) -> i32;
    pub(crate) fn roma_v8_version_cancel_terminate(v: *mut RomaVersion);
    pub(crate) fn roma_v8_version_wasm_stats(
        v: *mut RomaVersion,
        compiles: *mut u64,
        hits: *mut u64,
    );
    pub(crate) fn roma_v8_version_heap(v: *mut RomaVersion, used: *mut usize, limit: *mut usize);
    pub(crate) fn roma_v8_version_dispose(v: *mut RomaVersion);
    pub(crate) fn roma_v8_raw_call(
        v: *mut RomaVersion,
        handler: RomaStr,
        input: RomaStr,
        mode: i32,
    ) -> i64;
}
