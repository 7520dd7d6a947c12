//! `roma_config_t`: the settings a service is built from, one setter per `roma::Config` setter.

use crate::binding::{
    CMeta, Env, async_host_function, host_function, logging_function, worker_output_function,
};
use crate::binding::{
    roma_async_host_function_t, roma_host_function_t, roma_log_function_t, roma_user_delete_t,
    roma_worker_output_function_t,
};
use crate::codes;
use crate::ffi::{entry, free, str_arg};
use roma::{Config, OversizePolicy, RomaError, SandboxKind, TransportKind};
use std::ffi::{c_char, c_void};
use std::time::Duration;

/// A service's configuration, owned by the caller until `roma_service_new` consumes it.
pub struct roma_config_t {
    pub(crate) inner: Config<CMeta>,
    pub(crate) v8_flags: Vec<String>,
}

impl std::fmt::Debug for roma_config_t {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// The sandbox choice: `ROMA_SANDBOX_*`.
pub type roma_sandbox_kind_t = u32;
/// The transport choice: `ROMA_TRANSPORT_*`.
pub type roma_transport_kind_t = u32;
/// What a payload larger than the fast path does: `ROMA_OVERSIZE_*`.
pub type roma_oversize_policy_t = u32;

/// A new configuration with every default (those of `roma::Config::new`). Never null.
#[unsafe(no_mangle)]
pub extern "C" fn roma_config_new() -> *mut roma_config_t {
    Box::into_raw(Box::new(roma_config_t {
        inner: Config::new(),
        v8_flags: Vec::new(),
    }))
}

/// Frees a configuration not handed to `roma_service_new`. Null is ignored.
///
/// # Safety
/// `config` is null or a live configuration, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roma_config_delete(config: *mut roma_config_t) {
    // SAFETY: the caller's contract.
    unsafe { free(config) }
}

/// Defines a setter taking one plain value, which `roma_service_new` checks.
macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $t:ty, |$c:ident, $v:ident| $body:expr) => {
        entry!(
            $(#[$doc])*
            ///
            /// Returns null, or an owned error (`ROMA_ERROR_INVALID_ARGUMENT`) for a null
            /// `config`. The value is checked by `roma_service_new`.
            ///
            /// # Safety
            /// `config` is null or a live configuration.
            fn $name(config: *mut roma_config_t, value: $t)
            |$c| {
                let $v = value;
                $body
            }
        );
    };
}

/// Defines a setter taking a path (`path`, `len` bytes of UTF-8), copied into the config.
macro_rules! path_setter {
    ($(#[$doc:meta])* $name:ident, |$c:ident, $p:ident| $body:expr) => {
        entry!(
            $(#[$doc])*
            ///
            /// # Safety
            /// `config` is null or a live configuration; `path` is null or `len` readable bytes.
            fn $name(config: *mut roma_config_t, path: *const c_char, len: usize)
            |$c| {
                let $p = str_arg(path, len, "path")?;
                $body
            }
        );
    };
}

setter!(
    /// How many worker processes to start (at least 1).
    roma_config_set_number_of_workers, usize, |c, v| c.inner.number_of_workers(v)
);
setter!(
    /// How many executions may wait per worker (at least 1).
    roma_config_set_worker_queue_max_items, usize, |c, v| c.inner.worker_queue_max_items(v)
);
setter!(
    /// How many compiled versions each worker keeps (at least 1).
    roma_config_set_code_version_cache_size, usize, |c, v| c.inner.code_version_cache_size(v)
);
setter!(
    /// The cap on `ArrayBuffer` memory per isolate, in MB (at least 1).
    roma_config_set_max_array_buffer_mb, usize, |c, v| c.inner.max_array_buffer_mb(v)
);
setter!(
    /// The cap on WebAssembly memory, in pages of 64 KiB (at least 1).
    roma_config_set_max_wasm_memory_pages, u32, |c, v| c.inner.max_wasm_memory_pages(v)
);
setter!(
    /// The timeout of an invocation that sets none, in milliseconds (more than 0).
    roma_config_set_default_timeout_ms, u64, |c, v| c.inner.default_timeout(Duration::from_millis(v))
);
setter!(
    /// How long a load may take until every worker has it, in milliseconds (more than 0).
    roma_config_set_load_timeout_ms, u64, |c, v| c.inner.load_timeout(Duration::from_millis(v))
);
setter!(
    /// How long a worker may take to start, in milliseconds (more than 0).
    roma_config_set_worker_startup_timeout_ms, u64,
    |c, v| c.inner.worker_startup_timeout(Duration::from_millis(v))
);
setter!(
    /// How long the waiting submits (`roma_service_batch_execute`) wait for room in full
    /// queues, in milliseconds; 0: they never wait.
    roma_config_set_queue_wait_timeout_ms, u64,
    |c, v| c.inner.queue_wait_timeout(Duration::from_millis(v))
);

setter!(
    /// `RLIMIT_AS` of each worker process, in MiB (Roma's `max_worker_virtual_memory_mb`); V8
    /// reserves much address space up front, so keep it at 10240 or more. Default: no limit.
    roma_config_set_worker_address_space_mb, u64,
    |c, v| c.inner.worker_address_space_mb(Some(v))
);

setter!(
    /// `RLIMIT_DATA` of each worker process, in MiB: the private writable memory it may use
    /// (at least 1). Default 4096; `roma_config_unset_worker_data_limit_mb` removes the limit.
    roma_config_set_worker_data_limit_mb, u64,
    |c, v| c.inner.worker_data_limit_mb(Some(v))
);
setter!(
    /// Added to a request's timeout before the host gives up on a worker that does not
    /// answer and replaces it, in milliseconds (more than 0). Default 2000.
    roma_config_set_worker_grace_ms, u64,
    |c, v| c.inner.worker_grace(Duration::from_millis(v))
);
setter!(
    /// The payload size that takes the fast path (the shared-memory region size), in bytes
    /// (at least 1, and at most the max payload size). Default 1 MiB.
    roma_config_set_payload_fast_path_bytes, usize,
    |c, v| c.inner.payload_fast_path_bytes(v)
);
setter!(
    /// The largest message either side may send at all, in bytes (at least the fast-path
    /// size). Default 64 MiB.
    roma_config_set_max_payload_bytes, usize, |c, v| c.inner.max_payload_bytes(v)
);
setter!(
    /// Whether a worker prepares its next context while idle. Default on.
    roma_config_set_prewarm, bool, |c, v| c.inner.prewarm(v)
);
setter!(
    /// Whether requests may ask for a V8 CPU profile (`roma_request_set_profile`; Roma's
    /// `enable_profilers`). Off, a request asking for one fails. Default off.
    roma_config_set_enable_profilers, bool, |c, v| c.inner.enable_profilers(v)
);
setter!(
    /// Whether synchronous host functions run on the worker's slot thread itself (saves two
    /// thread wake-ups per request that calls them; only for host functions that never
    /// block). Default off.
    roma_config_set_host_functions_inline, bool, |c, v| c.inner.host_functions_inline(v)
);
setter!(
    /// Whether the host and the workers busy-poll briefly for an answer expected within
    /// microseconds. Default on.
    roma_config_set_spin, bool, |c, v| c.inner.spin(v)
);
setter!(
    /// Threads that run asynchronous host functions (at least 1), started only when one is
    /// registered. Default 16.
    roma_config_set_async_binding_threads, usize, |c, v| c.inner.async_binding_threads(v)
);
setter!(
    /// The uid (and gid) the jail runs as when the host is root (at least 1). Default 65534.
    roma_config_set_worker_uid, u32, |c, v| c.inner.worker_uid(v)
);
setter!(
    /// Recycling: replace each worker process after this many requests (at least 1).
    /// Default: never.
    roma_config_set_recycle_after_requests, u64, |c, v| c.inner.recycle_after_requests(v)
);
setter!(
    /// Recycling: replace each worker process once it is this old, in milliseconds (more
    /// than 0). Default: never.
    roma_config_set_recycle_after_age_ms, u64,
    |c, v| c.inner.recycle_after_age(Duration::from_millis(v))
);
setter!(
    /// Recycling: replace a worker that used more CPU time than this per second while it had
    /// no request, in milliseconds (more than 0). Default 500;
    /// `roma_config_unset_recycle_idle_cpu_per_sec` turns the check off.
    roma_config_set_recycle_idle_cpu_per_sec_ms, u64,
    |c, v| c.inner.recycle_idle_cpu_per_sec(Some(Duration::from_millis(v)))
);
setter!(
    /// Tenant pools: every tenant (its `roma.tenant` tag, else its code id) gets its own
    /// `value` worker processes, started on its first load; `number_of_workers` is then
    /// unused (at least 1). Default off.
    roma_config_set_tenant_pools, usize, |c, v| c.inner.tenant_pools(v)
);
setter!(
    /// With tenant pools, how many tenants may have a pool (at least 1). Default 16.
    roma_config_set_max_tenants, usize, |c, v| c.inner.max_tenants(v)
);
setter!(
    /// Gives each worker a cgroup of its own with this memory limit in MiB (at least 1).
    /// Default none (no cgroup).
    roma_config_set_cgroup_memory_max_mb, u64, |c, v| c.inner.cgroup_memory_max_mb(v)
);
setter!(
    /// The most processes and threads each worker's cgroup may hold (at least 1). Default none.
    roma_config_set_cgroup_pids_max, u64, |c, v| c.inner.cgroup_pids_max(v)
);
setter!(
    /// The low-latency mode: idle threads poll up to this many milliseconds before they sleep
    /// (0: off; more is held to 50). Default off.
    roma_config_set_low_latency_ms, u64, |c, v| c.inner.low_latency(Duration::from_millis(v))
);

entry!(
    /// The CPU bandwidth of each worker's cgroup: `quota_us` microseconds of CPU time per
    /// `period_us` (quota at least 1 ms, period 1 ms to 1 s). Default none.
    ///
    /// Returns null, or an owned error (`ROMA_ERROR_INVALID_ARGUMENT`) for a null `config`. The
    /// values are checked by `roma_service_new`.
    ///
    /// # Safety
    /// `config` is null or a live configuration.
    fn roma_config_set_cgroup_cpu_max(config: *mut roma_config_t, quota_us: u64, period_us: u64)
    |c| c.inner.cgroup_cpu_max(Duration::from_micros(quota_us), Duration::from_micros(period_us))
);

path_setter!(
    /// cgroup v2 only: the cgroup (an absolute path under the cgroup2 mount) to make worker
    /// cgroups in, e.g. an empty child of a delegated subtree. Copied.
    roma_config_set_cgroup_parent, |c, path| c.inner.cgroup_parent(path)
);

entry!(
    /// Removes the `RLIMIT_DATA` limit of the workers (`worker_data_limit_mb` unset).
    ///
    /// # Safety
    /// `config` is null or a live configuration.
    fn roma_config_unset_worker_data_limit_mb(config: *mut roma_config_t)
    |c| c.inner.worker_data_limit_mb(None)
);

entry!(
    /// Turns off recycling a worker for its idle CPU use (`recycle_idle_cpu_per_sec` unset).
    ///
    /// # Safety
    /// `config` is null or a live configuration.
    fn roma_config_unset_recycle_idle_cpu_per_sec(config: *mut roma_config_t)
    |c| c.inner.recycle_idle_cpu_per_sec(None)
);

/// Defines a setter taking a `ROMA_*` code of one setting's choices, given as each code and the
/// choice it stands for; another code is `ROMA_ERROR_INVALID_ARGUMENT`, its message `$unknown`
/// and the code.
macro_rules! choice_setter {
    ($(#[$doc:meta])* fn $name:ident($v:ident: $t:ty) => $set:ident, $unknown:literal {
        $($code:path => $choice:expr,)*
    }) => {
        entry!(
            $(#[$doc])*
            ///
            /// # Safety
            /// `config` is null or a live configuration.
            fn $name(config: *mut roma_config_t, $v: $t)
            |c| c.inner.$set(match $v {
                $($code => $choice,)*
                other => {
                    let message = format!(concat!($unknown, " {}"), other);
                    return Err(RomaError::invalid_argument(message));
                }
            })
        );
    };
}

choice_setter!(
    /// What a payload larger than the fast-path size does: `ROMA_OVERSIZE_SLOW_PATH` (it takes
    /// the socket; the default) or `ROMA_OVERSIZE_REJECT` (it fails with
    /// `ROMA_ERROR_PAYLOAD_TOO_LARGE`). Another value is `ROMA_ERROR_INVALID_ARGUMENT`.
    fn roma_config_set_oversize_payloads(policy: roma_oversize_policy_t) => oversize_payloads,
    "oversize_payloads: unknown policy" {
        codes::OVERSIZE_SLOW_PATH => OversizePolicy::SlowPath,
        codes::OVERSIZE_REJECT => OversizePolicy::Reject,
    }
);

entry!(
    /// Roma's `ConfigureJsEngineResourceConstraints`: the initial and maximum V8 heap of each
    /// isolate, in MB; 0 keeps V8's size.
    ///
    /// # Safety
    /// `config` is null or a live configuration.
    fn roma_config_set_js_engine_resource_constraints(
        config: *mut roma_config_t,
        initial_heap_size_in_mb: usize,
        maximum_heap_size_in_mb: usize,
    )
    |c| c.inner.configure_js_engine_resource_constraints(
        initial_heap_size_in_mb,
        maximum_heap_size_in_mb,
    )
);

choice_setter!(
    /// The jail the workers run in: `ROMA_SANDBOX_NAMESPACES` (the default),
    /// `ROMA_SANDBOX_BIRDCAGE` (only in a library built with the `birdcage` feature) or
    /// `ROMA_SANDBOX_NONE` (debugging only). Another value is `ROMA_ERROR_INVALID_ARGUMENT`.
    fn roma_config_set_sandbox(kind: roma_sandbox_kind_t) => sandbox, "sandbox: unknown kind" {
        codes::SANDBOX_NAMESPACES => SandboxKind::Namespaces,
        codes::SANDBOX_BIRDCAGE => SandboxKind::Birdcage,
        codes::SANDBOX_NONE => SandboxKind::None,
    }
);

choice_setter!(
    /// How requests travel: `ROMA_TRANSPORT_SHARED_MEMORY` (the default) or
    /// `ROMA_TRANSPORT_SOCKET`. Another value is `ROMA_ERROR_INVALID_ARGUMENT`.
    fn roma_config_set_transport(kind: roma_transport_kind_t) => transport,
    "transport: unknown kind" {
        codes::TRANSPORT_SHARED_MEMORY => TransportKind::SharedMemory,
        codes::TRANSPORT_SOCKET => TransportKind::Socket,
    }
);

entry!(
    /// Adds one V8 flag for every worker (e.g. `--single-threaded-gc`).
    ///
    /// # Safety
    /// `config` is null or a live configuration; `flag` is null or `len` readable bytes.
    fn roma_config_add_v8_flag(config: *mut roma_config_t, flag: *const c_char, len: usize)
    |c| c.v8_flags.push(str_arg(flag, len, "flag")?.to_owned())
);

path_setter!(
    /// The worker library (`libroma_worker.so`) each worker's `node` preloads. Without it, roma
    /// uses `$ROMA_WORKER_LIB`, else looks next to the current executable.
    roma_config_set_worker_library, |c, path| c.inner.worker_library(path)
);

path_setter!(
    /// The `node` executable of the pinned Node.js build, whose V8 the workers run. Without it,
    /// roma uses `$ROMA_NODE`, else the pinned build `cargo xtask setup` unpacked.
    roma_config_set_node_binary, |c, path| c.inner.node_binary(path)
);

/// Defines a setter taking a C function (null is refused), the `env` passed to every call of
/// it and `env_delete`, which the body gets as an [`Env`]; with `named` before the function
/// type, also the JS name (`name`, `name_len` bytes of UTF-8).
macro_rules! function_setter {
    ($(#[$doc:meta])* $name:ident, $f:ty, |$c:ident, $fun:ident, $env:ident| $body:expr) => {
        function_setter!(@ $(#[$doc])* $name, $f, [], |$c, $fun, $env| $body);
    };
    ($(#[$doc:meta])* $name:ident, named $f:ty,
        |$c:ident, $n:ident, $fun:ident, $env:ident| $body:expr) => {
        function_setter!(@ $(#[$doc])* $name, $f, [$n], |$c, $fun, $env| $body);
    };
    (@ $(#[$doc:meta])* $name:ident, $f:ty, [$($n:ident)?],
        |$c:ident, $fun:ident, $env:ident| $body:expr) => {
        entry!(
            $(#[$doc])*
            ///
            /// # Safety
            /// `config` is null or a live configuration; `function` is null or a function of the
            /// type; `env` is usable from any thread.
            $(#[doc = concat!("`", stringify!($n), "` is null or `name_len` readable bytes.")])?
            fn $name(
                config: *mut roma_config_t,
                $($n: *const c_char, name_len: usize,)?
                function: Option<$f>,
                env: *mut c_void,
                env_delete: Option<roma_user_delete_t>,
            )
            |$c| {
                $(let $n = str_arg($n, name_len, "name")?;)?
                let ($fun, $env) = (required(function)?, Env::new(env, env_delete));
                $body
            }
        );
    };
}

/// The function a setter was given, or the error for a null one.
fn required<F>(function: Option<F>) -> Result<F, RomaError> {
    function.ok_or_else(|| RomaError::invalid_argument("function is a null pointer"))
}

function_setter!(
    /// Registers a host function JS calls by `name` (a dotted name creates nested objects). It
    /// runs on roma's threads, possibly several at once, with the calling request's metadata
    /// pointer. `env` is passed to every call; `env_delete` (may be null) is called once with
    /// `env` when nothing uses it any more: when this configuration is freed unused, or once
    /// the service's threads have let go of it (possibly just after `roma_service_delete`
    /// returns). Names are checked by `roma_service_new`.
    roma_config_register_function, named roma_host_function_t,
    |c, name, f, env| c.inner.register_function(name, host_function(f, env))
);

function_setter!(
    /// Registers an asynchronous host function JS calls by `name`: in JS it returns a Promise
    /// at once. `function` runs on roma's threads with `env`, an owned `roma_host_call_t` and
    /// the request's metadata pointer; the call's input and output are read and set through
    /// `roma_host_call_io`, and the call ends (the Promise settles) when
    /// `roma_host_call_finish` is called, exactly once, from any thread, during `function` or
    /// after it returned. Until then the call holds one of the async threads
    /// (`roma_config_set_async_binding_threads`). `env` and `env_delete` as for
    /// `roma_config_register_function`.
    roma_config_register_async_function, named roma_async_host_function_t,
    |c, name, f, env| c.inner.register_async_function(name, async_host_function(f, env))
);

function_setter!(
    /// Sets where the code's console output goes: `function` runs on roma's threads with the
    /// level, the message and the request's metadata pointer. `env` and `env_delete` as for
    /// `roma_config_register_function`. Without it, console output is dropped.
    roma_config_set_logging_function, roma_log_function_t,
    |c, f, env| c.inner.set_logging_function(logging_function(f, env))
);

function_setter!(
    /// Sets where what workers write to their stderr goes (V8's fatal-error reports, jail
    /// setup failures): `function` runs on roma's threads with `env`, the worker's index and
    /// one line (NUL-terminated, `len` bytes, valid only during the call), cut to 4 KiB,
    /// control characters escaped, at most 100 lines per second per worker. The lines come
    /// from a process that runs untrusted code: treat them as its data. `env` and
    /// `env_delete` as for `roma_config_register_function`. Without one, lines go to the
    /// host's stderr prefixed `roma-worker N:`.
    roma_config_set_worker_output_function, roma_worker_output_function_t,
    |c, f, env| c.inner.set_worker_output_function(worker_output_function(f, env))
);
