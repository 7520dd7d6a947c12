//! The C configuration setters against `roma::Config`'s checks: each out-of-range value makes
//! `roma_service_new` fail with `ROMA_ERROR_INVALID_ARGUMENT` and a message that starts with
//! the setting's name, as `RomaService::new` does in Rust; bad enum values fail at the setter;
//! every setter refuses a null configuration. None of this starts a worker (the settings are
//! checked before one is looked for).

use roma_c::*;
use std::ffi::{CStr, c_char, c_void};

const INVALID_ARGUMENT: roma_error_kind_t = 1;

/// Takes an owned error: its kind and message (or `None` for no error).
fn take(e: *mut roma_error_t) -> Option<(roma_error_kind_t, String)> {
    if e.is_null() {
        return None;
    }
    // SAFETY: `e` is an owned error from the C API, freed once here.
    unsafe {
        let kind = roma_error_kind(e);
        let mut len = 0;
        let m = roma_error_message(e, &mut len);
        let msg = CStr::from_ptr(m).to_string_lossy().into_owned();
        assert_eq!(msg.len(), len);
        roma_error_delete(e);
        Some((kind, msg))
    }
}

/// A configuration with one setter applied; `roma_service_new`'s error for it.
fn new_with(
    set: impl FnOnce(*mut roma_config_t) -> *mut roma_error_t,
) -> (roma_error_kind_t, String) {
    let c = roma_config_new();
    assert_eq!(take(set(c)), None, "the setter itself accepts the value");
    let mut svc: *mut roma_service_t = std::ptr::null_mut();
    // SAFETY: `c` is a live configuration, consumed here; `svc` is writable.
    let e = take(unsafe { roma_service_new(c, &mut svc) });
    assert!(svc.is_null(), "no service on failure");
    e.expect("roma_service_new refuses the value")
}

type Setter = Box<dyn Fn(*mut roma_config_t) -> *mut roma_error_t>;

/// The setting a C setter sets, by the naming rule of the C API: `roma_config_set_NAME`, with
/// `_ms` added for a duration (`roma_config_unset_NAME` keeps its `unset_`).
fn setting(setter: &'static str) -> &'static str {
    let name = setter.trim_start_matches("roma_config_");
    let name = name.strip_prefix("set_").unwrap_or(name);
    name.strip_suffix("_ms").unwrap_or(name)
}

/// A setter called with `c` and the given arguments, with the name of its setting.
macro_rules! s {
    ($f:ident $(, $arg:expr)*) => {
        (
            setting(stringify!($f)),
            Box::new(|c| {
                // SAFETY: `c` is null or a live configuration, as the setters ask; the other
                // arguments are plain values or live C strings.
                unsafe { $f(c $(, $arg)*) }
            }) as Setter,
        )
    };
}

/// Each setter with a value out of range, and the setting's name in roma::Config.
fn out_of_range() -> Vec<(&'static str, Setter)> {
    vec![
        s!(roma_config_set_number_of_workers, 0),
        s!(roma_config_set_worker_queue_max_items, 0),
        s!(roma_config_set_code_version_cache_size, 0),
        s!(roma_config_set_max_array_buffer_mb, 0),
        s!(roma_config_set_max_wasm_memory_pages, 0),
        s!(roma_config_set_default_timeout_ms, 0),
        s!(roma_config_set_load_timeout_ms, 0),
        s!(roma_config_set_worker_startup_timeout_ms, 0),
        s!(roma_config_set_worker_grace_ms, 0),
        s!(roma_config_set_worker_data_limit_mb, 0),
        s!(roma_config_set_payload_fast_path_bytes, 0),
        s!(roma_config_set_max_payload_bytes, 0),
        // Smaller than the fast path (1 MiB by default): the pair is refused.
        s!(roma_config_set_max_payload_bytes, 4096),
        s!(roma_config_set_async_binding_threads, 0),
        s!(roma_config_set_worker_uid, 0),
        s!(roma_config_set_recycle_after_requests, 0),
        s!(roma_config_set_recycle_after_age_ms, 0),
        s!(roma_config_set_recycle_idle_cpu_per_sec_ms, 0),
        s!(roma_config_set_tenant_pools, 0),
        s!(roma_config_set_max_tenants, 0),
    ]
}

#[test]
fn each_value_out_of_range_fails_service_new_naming_the_setting() {
    for (name, set) in out_of_range() {
        let (kind, msg) = new_with(set);
        assert_eq!(kind, INVALID_ARGUMENT, "{name}: {msg}");
        assert!(msg.starts_with(name), "{name}: {msg}");
    }
}

#[test]
fn unknown_enum_values_fail_at_the_setter_naming_the_setting() {
    let c = roma_config_new();
    // SAFETY: `c` is a live configuration until deleted at the end.
    unsafe {
        for (name, e) in [
            ("sandbox", roma_config_set_sandbox(c, 99)),
            ("transport", roma_config_set_transport(c, 99)),
            (
                "oversize_payloads",
                roma_config_set_oversize_payloads(c, 99),
            ),
        ] {
            let (kind, msg) = take(e).expect("refused");
            assert_eq!(kind, INVALID_ARGUMENT, "{name}: {msg}");
            assert!(msg.starts_with(name), "{name}: {msg}");
        }
        for e in [
            roma_config_set_oversize_payloads(c, codes::OVERSIZE_REJECT),
            roma_config_set_oversize_payloads(c, codes::OVERSIZE_SLOW_PATH),
        ] {
            assert_eq!(take(e), None);
        }
        roma_config_delete(c);
    }
}

/// Values in range, and the unset forms, pass the checks: the service then fails only for a
/// worker library that does not exist, which is looked for after the checks.
#[test]
fn values_in_range_pass_the_checks() {
    let c = roma_config_new();
    let lib = "/nonexistent/libroma_worker.so";
    // SAFETY: `c` is a live configuration until roma_service_new consumes it.
    unsafe {
        let set = [
            roma_config_set_worker_grace_ms(c, 10),
            roma_config_set_worker_data_limit_mb(c, 1),
            roma_config_unset_worker_data_limit_mb(c),
            roma_config_set_payload_fast_path_bytes(c, 4096),
            roma_config_set_max_payload_bytes(c, 4096),
            roma_config_set_oversize_payloads(c, codes::OVERSIZE_REJECT),
            roma_config_set_prewarm(c, false),
            roma_config_set_enable_profilers(c, true),
            roma_config_set_host_functions_inline(c, true),
            roma_config_set_spin(c, false),
            roma_config_set_async_binding_threads(c, 1),
            roma_config_set_worker_uid(c, 12345),
            roma_config_set_recycle_after_requests(c, 1),
            roma_config_set_recycle_after_age_ms(c, 1),
            roma_config_set_recycle_idle_cpu_per_sec_ms(c, 0),
            roma_config_unset_recycle_idle_cpu_per_sec(c),
            roma_config_set_tenant_pools(c, 1),
            roma_config_set_max_tenants(c, 1),
            roma_config_set_worker_library(c, lib.as_ptr().cast(), lib.len()),
        ];
        for (i, e) in set.into_iter().enumerate() {
            assert_eq!(take(e), None, "setter {i}");
        }
        let mut svc: *mut roma_service_t = std::ptr::null_mut();
        let (_, msg) = take(roma_service_new(c, &mut svc)).expect("no such worker library");
        assert!(msg.contains("nonexistent"), "{msg}");
    }
}

unsafe extern "C" fn no_host(_: *mut c_void, _: *mut roma_host_call_t, _: *mut c_void) {}
unsafe extern "C" fn no_output(_: *mut c_void, _: usize, _: *const c_char, _: usize) {}

#[test]
fn every_setter_refuses_a_null_config() {
    let null = std::ptr::null_mut();
    let mut setters = out_of_range();
    setters.extend([
        s!(roma_config_set_prewarm, true),
        s!(roma_config_set_enable_profilers, true),
        s!(roma_config_set_host_functions_inline, true),
        s!(roma_config_set_spin, true),
        s!(roma_config_unset_worker_data_limit_mb),
        s!(roma_config_unset_recycle_idle_cpu_per_sec),
        s!(roma_config_set_oversize_payloads, 0),
        s!(
            roma_config_register_async_function,
            c"f".as_ptr(),
            1,
            Some(no_host),
            std::ptr::null_mut(),
            None
        ),
        s!(
            roma_config_set_worker_output_function,
            Some(no_output),
            std::ptr::null_mut(),
            None
        ),
    ]);
    for (name, set) in setters {
        let (kind, msg) = take(set(null)).expect("a null config is refused");
        assert_eq!(kind, INVALID_ARGUMENT, "{name}: {msg}");
        assert!(msg.contains("config is a null pointer"), "{name}: {msg}");
    }
}

#[test]
fn null_functions_and_names_are_refused() {
    let c = roma_config_new();
    // SAFETY: `c` is live until deleted at the end.
    unsafe {
        let f = c"f".as_ptr();
        let null = std::ptr::null_mut();
        for e in [
            roma_config_register_async_function(c, f, 1, None, null, None),
            roma_config_register_async_function(c, std::ptr::null(), 1, Some(no_host), null, None),
            roma_config_register_async_function(c, c"\xff".as_ptr(), 1, Some(no_host), null, None),
            roma_config_set_worker_output_function(c, None, null, None),
        ] {
            let (kind, msg) = take(e).expect("refused");
            assert_eq!(kind, INVALID_ARGUMENT, "{msg}");
        }
        roma_config_delete(c);
    }
}
