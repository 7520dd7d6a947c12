//! The one definition of what crosses the C++/Rust line inside the worker: the shim's result
//! codes and version kinds, and the `repr(C)` records its entry points take.
//!
//! The shim does not declare these itself: the build script includes this file, and
//! `abi_header.rs` writes `roma_abi.h` from it (enums, typedefs, structs, and `static_assert`s
//! that the C++ compiler lays every record out at the offsets and size rustc does), which the
//! shim includes. A field added here reaches the C++ with its type; a C type string that does
//! not match the Rust field's layout fails the shim's compilation.
//!
//! This file is also compiled into the build script, so it names nothing outside `std`.

use std::ffi::{c_char, c_void};

/// A field of a [`CRecord`], as the header declares it.
pub(crate) struct CField {
    /// The field's name on both sides.
    pub name: &'static str,
    /// Its C type (function pointers by their typedef), which the name follows.
    pub c_type: &'static str,
    /// Its offset as rustc lays the record out.
    pub offset: usize,
    /// Its size (padding can hide a wrong type from the offsets alone).
    pub size: usize,
}

/// A `repr(C)` record the header declares.
pub(crate) trait CRecord {
    /// The record's name on both sides.
    const NAME: &'static str;
    /// Its fields, in order.
    const FIELDS: &'static [CField];
    /// Its size as rustc lays it out.
    const SIZE: usize;
}

/// An integer enum the header declares as `enum NAME : C_TYPE { PREFIX + name = value, ... }`.
pub(crate) struct CEnum {
    pub name: &'static str,
    pub c_type: &'static str,
    pub prefix: &'static str,
    pub values: &'static [(&'static str, i64)],
}

macro_rules! c_consts {
    ($(#[$doc:meta])* mod $m:ident: $ty:ty as $cname:literal, $ctype:literal, $prefix:literal {
        $($(#[$vdoc:meta])* $name:ident = $val:expr,)*
    }) => {
        $(#[$doc])*
        pub(crate) mod $m {
            $($(#[$vdoc])* pub const $name: $ty = $val;)*
            /// The header's declaration of these values.
            pub const C_ENUM: super::CEnum = super::CEnum {
                name: $cname,
                c_type: $ctype,
                prefix: $prefix,
                values: &[$((stringify!($name), $val as i64),)*],
            };
        }
    };
}

macro_rules! c_record {
    ($(#[$doc:meta])* struct $name:ident {
        $($(#[$fdoc:meta])* $field:ident: $ty:ty => $ctype:literal,)*
    }) => {
        $(#[$doc])*
        #[repr(C)]
        pub(crate) struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl CRecord for $name {
            const NAME: &'static str = stringify!($name);
            const FIELDS: &'static [CField] = &[$(CField {
                name: stringify!($field),
                c_type: $ctype,
                offset: std::mem::offset_of!($name, $field),
                size: std::mem::size_of::<$ty>(),
            },)*];
            const SIZE: usize = std::mem::size_of::<$name>();
        }
    };
}

c_consts! {
    /// Result codes of the shim's entry points and of [`RomaOut::code`].
    mod code: i32 as "RomaCode", "int32_t", "ROMA_" {
        /// Success.
        OK = 0,
        /// The code did not compile, or its top level threw.
        COMPILE = 1,
        /// The handler threw.
        EXECUTION = 2,
        /// No handler (or export) of that name; the message lists what the code defines.
        HANDLER_NOT_FOUND = 3,
        /// An input is not valid JSON, or a WASM call's input does not fit its signature.
        BAD_INPUT = 4,
        /// The isolate's execution was terminated (the watchdog fired).
        TERMINATED = 5,
        /// The heap or the array-buffer budget ran out.
        OOM = 6,
        /// Anything else (V8 refused an allocation, a broken invariant).
        INTERNAL = 7,
        /// A snapshot load whose top level touched `WebAssembly`, which snapshotting contexts
        /// do not have: the code needs a fresh run per call instead.
        NEEDS_WASM = 8,
    }
}

c_consts! {
    /// How a version runs (`RomaVersion::kind` in the shim).
    mod kind: i32 as "RomaKind", "int32_t", "KIND_" {
        /// Plain JS, started from a snapshot of its top level.
        SNAPSHOT_JS = 0,
        /// JS whose script is compiled once and run in each fresh context (it uses WASM).
        UNBOUND_JS = 1,
        /// A standalone WASM module.
        WASM = 2,
    }
}

/// Log sink: called for console messages at or above the invocation's minimum level.
pub(crate) type RomaLogFn =
    unsafe extern "C" fn(user: *mut c_void, level: i32, msg: *const c_char, len: usize);

/// Host function call: `arg` is the encoded argument (roma-udf's `wire`); the callee sets
/// `*reply`/`*reply_len` to the encoded reply, which stays valid until the next call or the end
/// of the invocation.
pub(crate) type RomaBindingFn = unsafe extern "C" fn(
    user: *mut c_void,
    index: u32,
    arg: *const u8,
    arg_len: usize,
    reply: *mut *const u8,
    reply_len: *mut usize,
);

/// Waits for the reply of one pending asynchronous host call: sets `*call_id` and the encoded
/// reply (valid until the next callback). Returns 0 when none can come (timeout, channel gone).
pub(crate) type RomaAwaitFn = unsafe extern "C" fn(
    user: *mut c_void,
    call_id: *mut u64,
    reply: *mut *const u8,
    reply_len: *mut usize,
) -> i32;

/// The C declarations of the function-pointer types above, in the same order. A signature
/// cannot be checked by layout; the header places each beside the records that use it, and
/// review keeps the pair in this one file.
pub(crate) const C_TYPEDEFS: &[&str] = &[
    "typedef void (*RomaLogFn)(void* user, int32_t level, const char* msg, size_t len);",
    "typedef void (*RomaBindingFn)(void* user, uint32_t index, const uint8_t* arg, \
     size_t arg_len, const uint8_t** reply, size_t* reply_len);",
    "typedef int32_t (*RomaAwaitFn)(void* user, uint64_t* call_id, const uint8_t** reply, \
     size_t* reply_len);",
];

c_record! {
    /// Limits for one isolate.
    struct RomaLimits {
        /// 0: V8's default.
        initial_heap_bytes: usize => "size_t",
        /// 0: V8's default.
        max_heap_bytes: usize => "size_t",
        max_array_buffer_bytes: usize => "size_t",
    }
}

c_record! {
    /// The result record of one operation. Strings are malloc'd by the shim and released with
    /// `roma_v8_out_clear`.
    struct RomaOut {
        /// A [`code`] value.
        code: i32 => "int32_t",
        /// The result (JSON text or a raw string).
        data: *mut c_char => "char*",
        data_len: usize => "size_t",
        /// The error message.
        message: *mut c_char => "char*",
        /// The JS stack, or null.
        stack: *mut c_char => "char*",
        /// A compile error's line; 0 if unknown.
        line: i32 => "int32_t",
        context_ms: f64 => "double",
        parse_ms: f64 => "double",
        call_ms: f64 => "double",
        /// 1 when a pre-warmed context served the call.
        prewarmed: i32 => "int32_t",
        /// The CPU profile (`.cpuprofile` JSON) of a profiled call, or null.
        profile: *mut c_char => "char*",
        profile_len: usize => "size_t",
    }
}

c_record! {
    /// A borrowed string: valid for the duration of the call it is passed to.
    #[derive(Clone, Copy)]
    struct RomaStr {
        ptr: *const c_char => "const char*",
        len: usize => "size_t",
    }
}

c_record! {
    /// What one invocation runs, and the callbacks it talks to.
    struct RomaExecParams {
        handler: RomaStr => "RomaStr",
        inputs: *const RomaStr => "const RomaStr*",
        input_count: usize => "size_t",
        /// 1: inputs pass as raw strings (not parsed as JSON) and the handler returns a string.
        byte_str: i32 => "int32_t",
        min_log_level: i32 => "int32_t",
        log_fn: Option<RomaLogFn> => "RomaLogFn",
        log_user: *mut c_void => "void*",
        /// Standalone WASM only.
        wasm_return_type: RomaStr => "RomaStr",
        /// Null: host functions throw.
        binding_fn: Option<RomaBindingFn> => "RomaBindingFn",
        binding_user: *mut c_void => "void*",
        /// Null: asynchronous host calls cannot complete.
        await_fn: Option<RomaAwaitFn> => "RomaAwaitFn",
        /// 1: record a CPU profile of the handler call into `RomaOut::profile`.
        profile: i32 => "int32_t",
        /// The most bytes of profile; a larger one becomes `{"truncated":true}`.
        profile_max: usize => "size_t",
    }
}
