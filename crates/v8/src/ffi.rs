//! Raw declarations of the C++ shim (`shim/roma_v8_shim.cc`). Every function here is called only
//! from the safe wrappers in this crate; the invariants each needs are stated on the C++ side
//! and restated where the wrappers call them.

use std::ffi::{c_char, c_void};

/// Result codes of the shim (`RomaCode` in the C++).
pub(crate) mod code {
    pub const OK: i32 = 0;
    pub const COMPILE: i32 = 1;
    pub const EXECUTION: i32 = 2;
    pub const HANDLER_NOT_FOUND: i32 = 3;
    pub const BAD_INPUT: i32 = 4;
    pub const TERMINATED: i32 = 5;
    pub const OOM: i32 = 6;
    pub const INTERNAL: i32 = 7;
}

/// Version kinds (`RomaKind` in the C++).
pub(crate) mod kind {
    pub const UNBOUND_JS: i32 = 1;
    pub const WASM: i32 = 2;
}

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

#[repr(C)]
pub(crate) struct RomaLimits {
    pub initial_heap_bytes: usize,
    pub max_heap_bytes: usize,
    pub max_array_buffer_bytes: usize,
}

#[repr(C)]
pub(crate) struct RomaOut {
    pub code: i32,
    pub data: *mut c_char,
    pub data_len: usize,
    pub message: *mut c_char,
    pub stack: *mut c_char,
    pub line: i32,
    pub context_ms: f64,
    pub parse_ms: f64,
    pub call_ms: f64,
    pub prewarmed: i32,
    pub profile: *mut c_char,
    pub profile_len: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RomaStr {
    pub ptr: *const c_char,
    pub len: usize,
}

impl RomaStr {
    pub fn new(s: &str) -> RomaStr {
        RomaStr {
            ptr: s.as_ptr().cast(),
            len: s.len(),
        }
    }
}

pub(crate) type RomaLogFn =
    unsafe extern "C" fn(user: *mut c_void, level: i32, msg: *const c_char, len: usize);

#[repr(C)]
pub(crate) struct RomaExecParams {
    pub handler: RomaStr,
    pub inputs: *const RomaStr,
    pub input_count: usize,
    pub byte_str: i32,
    pub min_log_level: i32,
    pub log_fn: Option<RomaLogFn>,
    pub log_user: *mut c_void,
    pub wasm_return_type: RomaStr,
    pub binding_fn: Option<RomaBindingFn>,
    pub binding_user: *mut c_void,
    pub await_fn: Option<RomaAwaitFn>,
    pub profile: i32,
    pub profile_max: usize,
}

/// See `RomaAwaitFn` in the shim: returns 0 when no reply can come.
pub(crate) type RomaAwaitFn = unsafe extern "C" fn(
    user: *mut c_void,
    call_id: *mut u64,
    reply: *mut *const u8,
    reply_len: *mut usize,
) -> i32;

/// See `RomaBindingFn` in the shim: the reply must stay valid until the next call.
pub(crate) type RomaBindingFn = unsafe extern "C" fn(
    user: *mut c_void,
    index: u32,
    arg: *const u8,
    arg_len: usize,
    reply: *mut *const u8,
    reply_len: *mut usize,
);

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
