//! [`Config`]: everything a [`crate::RomaService`] is built from.

use roma_core::{DEFAULT_TIMEOUT, EngineLimits, RomaError};
use roma_dispatch::{DEFAULT_LOAD_TIMEOUT, DEFAULT_WORKER_QUEUE_MAX_ITEMS, DispatcherConfig};
use roma_ipc::{
    ChannelConfig, DEFAULT_MAX_FRAME_BYTES, DEFAULT_REGION_PAYLOAD_BYTES, OversizePolicy,
    TransportKind,
};
use std::path::PathBuf;
use std::time::Duration;

/// [`Config::worker_data_limit_mb`]'s default, in MiB: room for the default heaps of a few
/// dozen isolates plus their `ArrayBuffer`s, far below what a compromised worker could otherwise
/// take from the host.
pub const DEFAULT_WORKER_DATA_LIMIT_MB: u64 = 4096;

/// [`Config::max_tenants`]'s default: each tenant costs its own worker processes, so the
/// number of pools is bounded unless the service owner raises it on purpose.
pub const DEFAULT_MAX_TENANTS: usize = 16;

/// [`Config::recycle_idle_cpu_per_sec`]'s default: half a core, well above what an idle worker
/// uses (V8's background threads finishing a request's garbage collection), well below one
/// thread spinning.
pub const DEFAULT_RECYCLE_IDLE_CPU_PER_SEC: Duration = Duration::from_millis(500);

/// The sandbox backend workers run in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SandboxKind {
    /// roma's own jail: user, mount, pid, net, ipc and uts namespaces, a read-only root of only
    /// what the worker needs, seccomp-bpf allow-list, rlimits.
    #[default]
    Namespaces,
    /// birdcage (needs roma-sandbox's `birdcage` feature; GPL-3.0-or-later).
    Birdcage,
    /// No jail at all: the worker is a plain child process. For debugging only.
    None,
}

impl SandboxKind {
    /// The backend's name as `roma-sandbox` and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxKind::Namespaces => "namespaces",
            SandboxKind::Birdcage => "birdcage",
            SandboxKind::None => "none",
        }
    }
}

/// How a [`crate::RomaService`] runs, built in the manner of Wasmtime's `Config`: start from
/// [`Config::new`] (every default, listed in [`Config::new`] and `docs/config.md`), change what
/// you need with the setters (each returns `&mut Self`, so calls chain), and hand it to
/// [`crate::RomaService::new`], which checks it: a setting out of range fails there with
/// `InvalidArgument` and a message that names the setting. The setters keep Roma's names.
///
/// `M` is the type of the metadata requests carry to the host functions and the logging
/// function; it never enters the sandbox. It defaults to `()`: `Config::default()` is a
/// `Config<()>`, and `Config::new()` takes `M` from how the config is used.
///
/// # Example
///
/// Two workers with a 128 MB heap and a 300 ms default timeout, one host function that reads
/// the request's metadata, and console output sent to stderr:
///
/// ```no_run
/// use roma::{Config, FunctionBindingObject, RomaService, SandboxKind};
/// use std::time::Duration;
///
/// /// Request metadata: it stays in the host, and needs no `Default`.
/// struct Tenant {
///     name: String,
/// }
///
/// let mut config = Config::<Tenant>::new();
/// config
///     .number_of_workers(2)
///     .sandbox(SandboxKind::Namespaces) // the default
///     .configure_js_engine_resource_constraints(0, 128)
///     .default_timeout(Duration::from_millis(300));
/// // In JS: `tenant_name()` returns the name of the calling request's tenant.
/// config.register_function("tenant_name", |p| {
///     let name = p.metadata.name.clone();
///     p.io.set_output_string(name);
/// });
/// // The same, as a binding object: name the metadata type.
/// config.register_function_binding(FunctionBindingObject::<Tenant>::new("tenant", |p| {
///     p.io.set_output_string(p.metadata.name.clone());
/// }));
/// config.set_logging_function(|level, tenant, msg| {
///     eprintln!("[{}] {}: {msg}", level.as_str(), tenant.name);
/// });
/// let roma = RomaService::new(config)?;
/// roma.stop();
/// # Ok::<(), roma::RomaError>(())
/// ```
pub struct Config<M = ()> {
    pub(crate) number_of_workers: Option<usize>,
    pub(crate) worker_queue_max_items: usize,
    pub(crate) code_version_cache_size: usize,
    pub(crate) engine: EngineLimits,
    pub(crate) max_array_buffer_mb: Option<usize>,
    pub(crate) max_wasm_memory_pages: Option<u32>,
    pub(crate) load_timeout: Duration,
    pub(crate) worker_startup_timeout: Duration,
    pub(crate) worker_grace: Duration,
    pub(crate) queue_wait_timeout: Duration,
    pub(crate) sandbox: SandboxKind,
    pub(crate) transport: TransportKind,
    pub(crate) payload_fast_path_bytes: usize,
    pub(crate) oversize_payloads: OversizePolicy,
    pub(crate) max_payload_bytes: usize,
    pub(crate) worker_library: Option<PathBuf>,
    pub(crate) node_binary: Option<PathBuf>,
    pub(crate) v8_flags: Vec<String>,
    pub(crate) prewarm: bool,
    pub(crate) enable_profilers: bool,
    pub(crate) worker_address_space_mb: Option<u64>,
    pub(crate) worker_data_limit_mb: Option<u64>,
    pub(crate) worker_uid: Option<u32>,
    pub(crate) recycle_after_requests: Option<u64>,
    pub(crate) recycle_after_age: Option<Duration>,
    pub(crate) recycle_idle_cpu_per_sec: Option<Duration>,
    pub(crate) tenant_pools: Option<usize>,
    pub(crate) max_tenants: usize,
    pub(crate) cgroup_memory_max_mb: Option<u64>,
    pub(crate) cgroup_pids_max: Option<u64>,
    pub(crate) cgroup_cpu_max: Option<(Duration, Duration)>,
    pub(crate) cgroup_parent: Option<PathBuf>,
    pub(crate) host_functions_inline: bool,
    pub(crate) spin: bool,
    pub(crate) low_latency: Duration,
    pub(crate) async_binding_threads: usize,
    pub(crate) logger: Option<Box<crate::LogFn<M>>>,
    pub(crate) worker_output: Option<std::sync::Arc<crate::WorkerOutputFn>>,
    pub(crate) bindings: Vec<roma_udf::FunctionBindingObject<M>>,
}

impl Default for Config {
    /// [`Config::new`] for requests without metadata.
    fn default() -> Self {
        Config::new()
    }
}

impl<M> std::fmt::Debug for Config<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("number_of_workers", &self.workers())
            .field("worker_queue_max_items", &self.worker_queue_max_items)
            .field("code_version_cache_size", &self.code_version_cache_size)
            .field("engine", &self.engine)
            .field("sandbox", &self.sandbox)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl<M> Config<M> {
    /// Every setting at its default; the one place the defaults live:
    ///
    /// | setting | default |
    /// | --- | --- |
    /// | `number_of_workers` | one per available core |
    /// | `worker_queue_max_items` | 100 |
    /// | `code_version_cache_size` | 64 |
    /// | `configure_js_engine_resource_constraints` | V8's own heap sizes |
    /// | `max_array_buffer_mb` | 4 x the maximum heap, or 1024 without one |
    /// | `max_wasm_memory_pages` | V8's maximum |
    /// | `default_timeout` | 5 s |
    /// | `load_timeout` | 30 s |
    /// | `worker_startup_timeout` | 30 s |
    /// | `worker_grace` | 2 s |
    /// | `queue_wait_timeout` | 30 s |
    /// | `sandbox` | [`SandboxKind::Namespaces`] |
    /// | `transport` | [`TransportKind::SharedMemory`] |
    /// | `payload_fast_path_bytes` | 1 MiB |
    /// | `oversize_payloads` | [`OversizePolicy::SlowPath`] |
    /// | `max_payload_bytes` | 64 MiB |
    /// | `worker_library` | `$ROMA_WORKER_LIB`, else next to the executable |
    /// | `node_binary` | `$ROMA_NODE`, else the pinned build `cargo xtask setup` unpacked |
    /// | `v8_flags` | none |
    /// | `prewarm` | on |
    /// | `enable_profilers` | off |
    /// | `worker_address_space_mb` | no limit |
    /// | `worker_data_limit_mb` | [`DEFAULT_WORKER_DATA_LIMIT_MB`] (4 GiB) |
    /// | `worker_uid` | 65534 when the host is root |
    /// | `recycle_after_requests` | never |
    /// | `recycle_after_age` | never |
    /// | `recycle_idle_cpu_per_sec` | [`DEFAULT_RECYCLE_IDLE_CPU_PER_SEC`] (500 ms) |
    /// | `tenant_pools` | off (one pool for every code object) |
    /// | `max_tenants` | [`DEFAULT_MAX_TENANTS`] (16) |
    /// | `cgroup_memory_max_mb`, `cgroup_pids_max`, `cgroup_cpu_max` | none (no cgroup) |
    /// | `cgroup_parent` | the host's own cgroup |
    /// | `host_functions_inline` | off |
    /// | `spin` | on |
    /// | `low_latency` | off |
    /// | `async_binding_threads` | 16 |
    pub fn new() -> Self {
        Config {
            number_of_workers: None,
            worker_queue_max_items: DEFAULT_WORKER_QUEUE_MAX_ITEMS,
            code_version_cache_size: EngineLimits::default().effective_version_cache_size(),
            engine: EngineLimits {
                default_timeout: DEFAULT_TIMEOUT,
                ..EngineLimits::default()
            },
            max_array_buffer_mb: None,
            max_wasm_memory_pages: None,
            load_timeout: DEFAULT_LOAD_TIMEOUT,
            worker_startup_timeout: Duration::from_secs(30),
            worker_grace: Duration::from_secs(2),
            queue_wait_timeout: Duration::from_secs(30),
            sandbox: SandboxKind::default(),
            transport: TransportKind::SharedMemory,
            payload_fast_path_bytes: DEFAULT_REGION_PAYLOAD_BYTES,
            oversize_payloads: OversizePolicy::SlowPath,
            max_payload_bytes: DEFAULT_MAX_FRAME_BYTES,
            worker_library: None,
            node_binary: None,
            v8_flags: Vec::new(),
            prewarm: true,
            enable_profilers: false,
            worker_address_space_mb: None,
            worker_data_limit_mb: Some(DEFAULT_WORKER_DATA_LIMIT_MB),
            worker_uid: None,
            recycle_after_requests: None,
            recycle_after_age: None,
            recycle_idle_cpu_per_sec: Some(DEFAULT_RECYCLE_IDLE_CPU_PER_SEC),
            tenant_pools: None,
            max_tenants: DEFAULT_MAX_TENANTS,
            cgroup_memory_max_mb: None,
            cgroup_pids_max: None,
            cgroup_cpu_max: None,
            cgroup_parent: None,
            host_functions_inline: false,
            spin: true,
            low_latency: Duration::ZERO,
            async_binding_threads: 16,
            logger: None,
            worker_output: None,
            bindings: Vec::new(),
        }
    }

    /// Worker processes (at least 1).
    pub fn number_of_workers(&mut self, n: usize) -> &mut Self {
        self.number_of_workers = Some(n);
        self
    }

    /// Queued executions allowed per worker (at least 1); the queues hold
    /// `number_of_workers * worker_queue_max_items` requests, not counting running ones.
    /// `execute` fails with `QueueFull` past it; the `_waiting` and `_blocking` forms wait for
    /// room instead.
    pub fn worker_queue_max_items(&mut self, n: usize) -> &mut Self {
        self.worker_queue_max_items = n;
        self
    }

    /// Compiled versions each worker keeps, and source versions the host keeps to reload a
    /// respawned worker, both LRU (at least 1).
    pub fn code_version_cache_size(&mut self, n: usize) -> &mut Self {
        self.code_version_cache_size = n;
        self
    }

    /// Roma's `ConfigureJsEngineResourceConstraints`: the initial and maximum V8 heap of each
    /// isolate, in MB; 0 keeps V8's own size (as in Roma). A worker holds one isolate per
    /// loaded version (up to `code_version_cache_size`), so a worker's heaps can add up to
    /// that many times this. A request that exhausts it fails with `OutOfMemory` and the
    /// worker recovers.
    pub fn configure_js_engine_resource_constraints(
        &mut self,
        initial_heap_mb: usize,
        max_heap_mb: usize,
    ) -> &mut Self {
        self.engine.initial_heap_mb = initial_heap_mb;
        self.engine.max_heap_mb = max_heap_mb;
        self
    }

    /// Cap on `ArrayBuffer` backing memory per isolate, in MB (at least 1).
    pub fn max_array_buffer_mb(&mut self, mb: usize) -> &mut Self {
        self.max_array_buffer_mb = Some(mb);
        self
    }

    /// Cap on WebAssembly memory per module instance, in pages of 64 KiB (at least 1).
    pub fn max_wasm_memory_pages(&mut self, pages: u32) -> &mut Self {
        self.max_wasm_memory_pages = Some(pages);
        self
    }

    /// Timeout of an invocation that sets none, and of a load's top-level run (more than 0).
    pub fn default_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.engine.default_timeout = timeout;
        self
    }

    /// How long a load may take until every worker has it (more than 0).
    pub fn load_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.load_timeout = timeout;
        self
    }

    /// How long a worker may take to start (more than 0).
    pub fn worker_startup_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.worker_startup_timeout = timeout;
        self
    }

    /// Added to a request's timeout before the host gives up on a worker that does not answer
    /// (a worker stopped by a signal, say) and replaces it (more than 0).
    pub fn worker_grace(&mut self, grace: Duration) -> &mut Self {
        self.worker_grace = grace;
        self
    }

    /// How long the submit forms that wait for room (`execute_waiting`, `execute_blocking`,
    /// the batch forms) wait while the queues are full before they give up with `QueueFull`.
    /// A batch waits this long at most for each piece that fits. Zero: they never wait.
    pub fn queue_wait_timeout(&mut self, wait: Duration) -> &mut Self {
        self.queue_wait_timeout = wait;
        self
    }

    /// The jail the workers run in.
    pub fn sandbox(&mut self, kind: SandboxKind) -> &mut Self {
        self.sandbox = kind;
        self
    }

    /// How requests and responses travel: shared memory or a socket.
    pub fn transport(&mut self, kind: TransportKind) -> &mut Self {
        self.transport = kind;
        self
    }

    /// Payload size that takes the fast path: the shared-memory region size (at least 1).
    pub fn payload_fast_path_bytes(&mut self, bytes: usize) -> &mut Self {
        self.payload_fast_path_bytes = bytes;
        self
    }

    /// What happens to a payload larger than `payload_fast_path_bytes`: it takes the socket
    /// (the slow path), or fails with `PayloadTooLarge`.
    pub fn oversize_payloads(&mut self, policy: OversizePolicy) -> &mut Self {
        self.oversize_payloads = policy;
        self
    }

    /// Largest message either side may send at all (at least 1).
    pub fn max_payload_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// The worker library (`libroma_worker.so`), which each worker's `node` preloads, instead of
    /// `$ROMA_WORKER_LIB` or the one next to the current executable (or in its parent folder,
    /// for test binaries in `target/*/deps`).
    pub fn worker_library(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.worker_library = Some(path.into());
        self
    }

    /// The `node` executable of the pinned Node.js build, whose V8 the workers run, instead of
    /// `$ROMA_NODE` or the one `cargo xtask setup` unpacked into the roma workspace's
    /// `target/node/` (docs/setup.md gives the whole search order).
    pub fn node_binary(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.node_binary = Some(path.into());
        self
    }

    /// Extra V8 flags, for every worker.
    pub fn v8_flags<I, S>(&mut self, flags: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.v8_flags = flags.into_iter().map(Into::into).collect();
        self
    }

    /// Prepare the next context while a worker is idle.
    pub fn prewarm(&mut self, on: bool) -> &mut Self {
        self.prewarm = on;
        self
    }

    /// Let requests ask for a V8 CPU profile of their handler call
    /// ([`InvocationRequest::profile`](roma_core::InvocationRequest::profile), returned in
    /// [`ResponseObject::profiler_output`](roma_core::ResponseObject::profiler_output); Roma's
    /// `enable_profilers`). Off, a request that asks for one fails with `InvalidArgument`.
    pub fn enable_profilers(&mut self, on: bool) -> &mut Self {
        self.enable_profilers = on;
        self
    }

    /// `RLIMIT_AS` of each worker process in MiB (Roma's `max_worker_virtual_memory_mb`).
    /// V8 reserves a lot of address space up front: keep it at 10 GiB or more. `None`: no
    /// limit beyond V8's own heap limits.
    pub fn worker_address_space_mb(&mut self, mb: Option<u64>) -> &mut Self {
        self.worker_address_space_mb = mb;
        self
    }

    /// `RLIMIT_DATA` of each worker process in MiB: the private writable memory it may use
    /// (V8's heaps, `ArrayBuffer`s and WebAssembly memories of every isolate it holds, and any
    /// memory native code inside it maps), not the address space V8 only reserves. It bounds
    /// what a worker that an exploit took over can take, which V8's own limits do not. Default
    /// `Some(DEFAULT_WORKER_DATA_LIMIT_MB)` (4 GiB); raise it on purpose for code that needs more
    /// (large WebAssembly memories, many big versions), `None` for no limit (at least 1 when
    /// set). A worker that reaches it ends with `out_of_memory` (or `worker_crashed`) and is
    /// replaced.
    pub fn worker_data_limit_mb(&mut self, mb: Option<u64>) -> &mut Self {
        self.worker_data_limit_mb = mb;
        self
    }

    /// The host uid (and gid) the jail runs as when the host is root, so that no worker is host
    /// root; without it, 65534 (`nobody`). Best a uid no other process uses. Ignored when the
    /// host is not root (its jails run as its own uid) and for `SandboxKind::None`. The worker
    /// library and `node` must be readable by it. 0 is refused.
    pub fn worker_uid(&mut self, uid: u32) -> &mut Self {
        self.worker_uid = Some(uid);
        self
    }

    /// Recycling: replace each worker process after it has run this many requests (at least 1).
    /// Without it, never. Recycling bounds how long a worker that an exploit took over keeps
    /// serving; it is invisible to callers (the new worker gets every loaded version before it
    /// takes a request, and no request fails because of it).
    pub fn recycle_after_requests(&mut self, requests: u64) -> &mut Self {
        self.recycle_after_requests = Some(requests);
        self
    }

    /// Recycling: replace each worker process once it is this old (more than 0). Without it,
    /// never.
    pub fn recycle_after_age(&mut self, age: Duration) -> &mut Self {
        self.recycle_after_age = Some(age);
        self
    }

    /// Tenant pools: every tenant gets its own `workers_per_tenant` worker processes (and
    /// queues), started on that tenant's first load, so a worker compromised by one tenant's
    /// code never receives another tenant's requests, inputs or metadata, and its host calls
    /// only ever run with its own tenant's metadata. A code object's tenant is its
    /// [`crate::TENANT_TAG`] tag, else its `id`; a request's is its [`crate::TENANT_TAG`] tag,
    /// else the tenant that loaded its version. `number_of_workers` is then unused. Costs
    /// `workers_per_tenant` processes per tenant (see `docs/security.md`); at least 1.
    pub fn tenant_pools(&mut self, workers_per_tenant: usize) -> &mut Self {
        self.tenant_pools = Some(workers_per_tenant);
        self
    }

    /// With [`tenant_pools`](Self::tenant_pools), how many tenants may have a pool at once (at
    /// least 1). A load for one more evicts the least recently used *idle* pool (nothing
    /// queued, running or loading): its workers stop, and its versions are unloaded, so that
    /// tenant's requests fail with `VersionNotFound` until it loads again. No request is cut
    /// short by an eviction; with every pool busy, the load is refused with `InvalidArgument`.
    pub fn max_tenants(&mut self, n: usize) -> &mut Self {
        self.max_tenants = n;
        self
    }

    /// cgroup: the memory limit of each worker's own cgroup in MiB (`memory.max` under cgroup
    /// v2, `memory.limit_in_bytes` under v1; at least 1): everything the jail's processes hold,
    /// whatever native code inside them does. A worker that reaches it is killed by the
    /// kernel; its request fails with `OutOfMemory`, saying so, and the worker is replaced.
    /// Any cgroup limit makes [`crate::RomaService::new`] fail unless the host can make worker
    /// cgroups (see `docs/security.md`). Without it, no cgroup memory limit.
    pub fn cgroup_memory_max_mb(&mut self, mb: u64) -> &mut Self {
        self.cgroup_memory_max_mb = Some(mb);
        self
    }

    /// cgroup: the most processes and threads each worker's cgroup may hold (`pids.max`; at
    /// least 1). A worker runs V8's platform threads, about one per core plus a few: a limit
    /// below what it needs stops it from starting (the error says so). Without it, none
    /// beyond the jail's `RLIMIT_NPROC`.
    pub fn cgroup_pids_max(&mut self, n: u64) -> &mut Self {
        self.cgroup_pids_max = Some(n);
        self
    }

    /// cgroup: the CPU bandwidth of each worker's cgroup, `quota` of CPU time (all its threads
    /// together) per `period` (`cpu.max` under v2, `cpu.cfs_quota_us`/`cpu.cfs_period_us`
    /// under v1). `quota` at least 1 ms; `period` 1 ms to 1 s. A quota above the period allows
    /// more than one core. Without it, no CPU limit.
    pub fn cgroup_cpu_max(&mut self, quota: Duration, period: Duration) -> &mut Self {
        self.cgroup_cpu_max = Some((quota, period));
        self
    }

    /// cgroup v2: the cgroup (an absolute path under the cgroup2 mount) to make worker cgroups
    /// in, instead of the host's own: a subtree delegated to the host that holds no processes,
    /// as cgroup v2 requires of a cgroup whose children get controllers. Without it, the
    /// host's own cgroup.
    pub fn cgroup_parent(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.cgroup_parent = Some(dir.into());
        self
    }

    /// Recycling: replace a worker process that used more CPU time than this per second while
    /// it had no request (its own threads at work between requests, which an honest worker
    /// never does for long). Judged over idle stretches of at least a second, from `/proc`.
    /// Default `Some(500 ms)`; `None`: never (more than 0 when set).
    pub fn recycle_idle_cpu_per_sec(&mut self, cpu: Option<Duration>) -> &mut Self {
        self.recycle_idle_cpu_per_sec = cpu;
        self
    }

    /// Run synchronous host functions on the worker's slot thread itself instead of its UDF
    /// handler thread. Saves two thread wake-ups per request that calls them (the hand-over to
    /// the UDF thread and back; the calls themselves cost the same), but a host function that
    /// blocks then holds its worker, and its request, until it returns: only for host
    /// functions that never block. Off: a blocking one is cut off at its request's timeout.
    pub fn host_functions_inline(&mut self, on: bool) -> &mut Self {
        self.host_functions_inline = on;
        self
    }

    /// Let the host and the workers busy-poll briefly for an answer expected within
    /// microseconds (a host-function reply, the next call, a quick response) instead of
    /// sleeping at once, and only while the two sides run on different cores. Off: every wait
    /// sleeps on the futex; fewer CPU cycles, about 10 µs more per hand-off.
    pub fn spin(&mut self, on: bool) -> &mut Self {
        self.spin = on;
        self
    }

    /// Low-latency mode (off by default): once idle, each slot thread, each worker and each
    /// client waiting in [`execute_blocking`](crate::RomaService::execute_blocking) keeps
    /// polling for up to `poll` (about twice the last gap between requests, within `poll`,
    /// and not after a gap longer than `poll`; at most [`MAX_IDLE_POLL`](crate::MAX_IDLE_POLL)) before
    /// it sleeps, so that a request arriving meanwhile skips the thread wake-ups. A client's
    /// poll follows its last wait instead, and stops after a slow answer (a busy service);
    /// every long poll yields its CPU to other runnable threads between rounds. Costs up to a
    /// core per polling thread while it polls (docs/performance.md has the measured figures).
    /// Needs [`spin`](Self::spin) on; zero turns it off.
    pub fn low_latency(&mut self, poll: Duration) -> &mut Self {
        self.low_latency = poll;
        self
    }

    /// The low-latency mode's bound, zero when off or when spinning is off.
    pub(crate) fn idle_poll(&self) -> Duration {
        if self.spin {
            self.low_latency.min(roma_core::MAX_IDLE_POLL)
        } else {
            Duration::ZERO
        }
    }

    /// Threads that run asynchronous host functions, each driving one call's future at a time
    /// (at least 1). Started only when an asynchronous binding is registered.
    pub fn async_binding_threads(&mut self, n: usize) -> &mut Self {
        self.async_binding_threads = n;
        self
    }

    /// Registers a host function JS can call by `binding.name()` (a dotted name creates nested
    /// objects). Names are checked by [`crate::RomaService::new`]: a name registered twice, one
    /// that is not a JS identifier path, or one that clashes with a JS global the sandbox needs
    /// fails it.
    pub fn register_function_binding(
        &mut self,
        binding: roma_udf::FunctionBindingObject<M>,
    ) -> &mut Self {
        self.bindings.push(binding);
        self
    }

    /// Registers the host function `name` running `func`: a
    /// [`register_function_binding`](Self::register_function_binding) of
    /// [`FunctionBindingObject::new`](roma_udf::FunctionBindingObject::new)`(name, func)`. The
    /// closure's argument type comes from the config, so `|p| ...` needs no annotation (with
    /// `FunctionBindingObject::new` alone, name the metadata type:
    /// `FunctionBindingObject::<Tenant>::new`).
    pub fn register_function<F>(&mut self, name: impl Into<String>, func: F) -> &mut Self
    where
        F: Fn(&mut roma_udf::FunctionBindingPayload<'_, M>) + Send + Sync + 'static,
    {
        self.register_function_binding(roma_udf::FunctionBindingObject::new(name, func))
    }

    /// Registers the asynchronous host function `name`: as
    /// [`register_function`](Self::register_function), for
    /// [`FunctionBindingObject::new_async`](roma_udf::FunctionBindingObject::new_async).
    pub fn register_async_function<F>(&mut self, name: impl Into<String>, func: F) -> &mut Self
    where
        F: Fn(roma_udf::FunctionBindingIo, &M) -> roma_udf::BindingFuture + Send + Sync + 'static,
    {
        self.register_function_binding(roma_udf::FunctionBindingObject::new_async(name, func))
    }

    /// Where console output of the code goes: `console.log/info/warn/error` and uncaught
    /// errors, with the request's metadata. Messages below a request's `min_log_level` never
    /// leave the sandbox. Without a logging function, console output is dropped.
    pub fn set_logging_function<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(roma_core::LogLevel, &M, &str) + Send + Sync + 'static,
    {
        self.logger = Some(Box::new(f));
        self
    }

    /// Sets where what workers write to their stderr goes (V8's fatal-error reports, jail
    /// setup failures): the worker's index and one line, already cut to 4 KiB, with control
    /// characters escaped, at most 100 lines per second per worker (the rest are counted and
    /// the count reported). A worker runs untrusted code, so treat the lines as its data.
    /// Default: the host's stderr, each line prefixed with `roma-worker N:`.
    pub fn set_worker_output_function<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(usize, &str) + Send + Sync + 'static,
    {
        self.worker_output = Some(std::sync::Arc::new(f));
        self
    }

    /// Checks every setting; the error names the one out of range.
    pub(crate) fn validate(&self) -> Result<(), RomaError> {
        let at_least_one = [
            ("number_of_workers", self.workers()),
            ("worker_queue_max_items", self.worker_queue_max_items),
            ("code_version_cache_size", self.code_version_cache_size),
            ("payload_fast_path_bytes", self.payload_fast_path_bytes),
            ("max_payload_bytes", self.max_payload_bytes),
            ("async_binding_threads", self.async_binding_threads),
            ("max_tenants", self.max_tenants),
        ];
        let optional_at_least_one = [
            ("worker_uid", self.worker_uid.map(u64::from)),
            ("worker_data_limit_mb", self.worker_data_limit_mb),
            ("recycle_after_requests", self.recycle_after_requests),
            ("tenant_pools", self.tenant_pools.map(|n| n as u64)),
            ("cgroup_memory_max_mb", self.cgroup_memory_max_mb),
            ("cgroup_pids_max", self.cgroup_pids_max),
        ];
        for (name, value) in optional_at_least_one {
            if value == Some(0) {
                return Err(RomaError::invalid_argument(format!(
                    "{name} must be at least 1"
                )));
            }
        }
        for (name, value) in at_least_one {
            if value == 0 {
                return Err(RomaError::invalid_argument(format!(
                    "{name} must be at least 1"
                )));
            }
        }
        if self
            .workers()
            .checked_mul(self.worker_queue_max_items)
            .is_none()
        {
            return Err(RomaError::invalid_argument(
                "number_of_workers x worker_queue_max_items overflows",
            ));
        }
        let positive = [
            ("default_timeout", self.engine.default_timeout),
            ("load_timeout", self.load_timeout),
            ("worker_startup_timeout", self.worker_startup_timeout),
            ("worker_grace", self.worker_grace),
        ];
        let optional_positive = [
            ("recycle_after_age", self.recycle_after_age),
            ("recycle_idle_cpu_per_sec", self.recycle_idle_cpu_per_sec),
        ];
        for (name, value) in optional_positive {
            if value.is_some_and(|v| v.is_zero()) {
                return Err(RomaError::invalid_argument(format!(
                    "{name} must be more than 0"
                )));
            }
        }
        for (name, value) in positive {
            if value.is_zero() {
                return Err(RomaError::invalid_argument(format!(
                    "{name} must be more than 0"
                )));
            }
        }
        if let Some((quota, period)) = self.cgroup_cpu_max {
            if quota < Duration::from_millis(1) {
                return Err(RomaError::invalid_argument(
                    "cgroup_cpu_max quota must be at least 1 ms",
                ));
            }
            if !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&period) {
                return Err(RomaError::invalid_argument(
                    "cgroup_cpu_max period must be 1 ms to 1 s",
                ));
            }
        }
        if self
            .cgroup_parent
            .as_ref()
            .is_some_and(|p| !p.is_absolute())
        {
            return Err(RomaError::invalid_argument(
                "cgroup_parent must be an absolute path",
            ));
        }
        if self
            .cgroup_memory_max_mb
            .is_some_and(|mb| mb.checked_mul(1 << 20).is_none())
        {
            return Err(RomaError::invalid_argument(
                "cgroup_memory_max_mb is too large",
            ));
        }
        if self.max_array_buffer_mb == Some(0) {
            return Err(RomaError::invalid_argument(
                "max_array_buffer_mb must be at least 1",
            ));
        }
        if self.max_wasm_memory_pages == Some(0) {
            return Err(RomaError::invalid_argument(
                "max_wasm_memory_pages must be at least 1",
            ));
        }
        if self.max_payload_bytes < self.payload_fast_path_bytes {
            return Err(RomaError::invalid_argument(format!(
                "max_payload_bytes ({}) must be at least payload_fast_path_bytes ({})",
                self.max_payload_bytes, self.payload_fast_path_bytes
            )));
        }
        Ok(())
    }

    pub(crate) fn workers(&self) -> usize {
        self.number_of_workers.unwrap_or_else(crate::tools::cores)
    }

    pub(crate) fn engine_limits(&self) -> EngineLimits {
        let mut limits = self.engine.clone();
        limits.version_cache_size = self.code_version_cache_size;
        // The engine's 0 means "derived from the heap" (array buffers) or "V8's maximum"
        // (WASM pages): what an unset cap is.
        limits.max_array_buffer_mb = self.max_array_buffer_mb.unwrap_or(0);
        limits.max_wasm_memory_pages = self.max_wasm_memory_pages.unwrap_or(0);
        limits
    }

    pub(crate) fn dispatcher(&self) -> DispatcherConfig {
        DispatcherConfig {
            number_of_workers: self.workers(),
            worker_queue_max_items: self.worker_queue_max_items,
            code_version_cache_size: self.code_version_cache_size,
            load_timeout: self.load_timeout,
            default_timeout: self.engine.default_timeout,
            // The dispatcher's zero is "never", which an unset setting is.
            recycle_after_requests: self.recycle_after_requests.unwrap_or(0),
            recycle_after_age: self.recycle_after_age.unwrap_or(Duration::ZERO),
            recycle_idle_cpu_per_sec: self.recycle_idle_cpu_per_sec.unwrap_or(Duration::ZERO),
            idle_poll: self.idle_poll(),
            ..DispatcherConfig::default()
        }
    }

    /// The limits of each worker's cgroup (none set: no cgroup).
    pub(crate) fn cgroup_limits(&self) -> roma_sandbox::CgroupLimits {
        roma_sandbox::CgroupLimits {
            memory_max_bytes: self
                .cgroup_memory_max_mb
                .map(|mb| mb.saturating_mul(1 << 20)),
            pids_max: self.cgroup_pids_max,
            cpu_max: self.cgroup_cpu_max.map(|(q, p)| roma_sandbox::CpuMax {
                quota_us: u64::try_from(q.as_micros()).unwrap_or(u64::MAX),
                period_us: u64::try_from(p.as_micros()).unwrap_or(u64::MAX),
            }),
            parent: self.cgroup_parent.clone(),
        }
    }

    pub(crate) fn channel(&self) -> ChannelConfig {
        let mut c = match self.transport {
            TransportKind::Socket => ChannelConfig::socket(),
            TransportKind::SharedMemory => ChannelConfig::shared_memory(),
        };
        c.region_payload_bytes = self.payload_fast_path_bytes;
        c.max_frame_bytes = self.max_payload_bytes;
        c.oversize = self.oversize_payloads;
        if !self.spin {
            c.cross_core_spin = Duration::ZERO;
        }
        c
    }

    pub(crate) fn startup_timeout(&self) -> Duration {
        self.worker_startup_timeout
    }

    pub(crate) fn grace(&self) -> Duration {
        self.worker_grace
    }

    pub(crate) fn load_deadline(&self) -> Duration {
        // A worker takes a load after its running request, and its top-level run is bounded by
        // the default timeout; the dispatcher's own load timeout answers the caller earlier.
        self.load_timeout + self.worker_grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roma_core::ErrorKind;

    #[test]
    fn defaults_are_valid_and_need_no_annotation() {
        let config = Config::default();
        config.validate().unwrap();
        assert!(config.workers() >= 1);
        assert_eq!(config.dispatcher().worker_queue_max_items, 100);
        assert_eq!(config.engine_limits().default_timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn tenant_pool_settings_are_checked() {
        for (set, name) in [
            (
                (|c: &mut Config| {
                    c.tenant_pools(0);
                }) as fn(&mut Config),
                "tenant_pools",
            ),
            (
                |c: &mut Config| {
                    c.tenant_pools(1).max_tenants(0);
                },
                "max_tenants",
            ),
        ] {
            let mut c = Config::new();
            set(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains(name), "{e}");
        }
        let mut c: Config = Config::new();
        c.tenant_pools(2).max_tenants(3);
        c.validate().unwrap();
    }

    #[test]
    fn cgroup_settings_are_checked_and_name_the_setting() {
        for (set, name) in [
            (
                (|c: &mut Config| {
                    c.cgroup_memory_max_mb(0);
                }) as fn(&mut Config),
                "cgroup_memory_max_mb",
            ),
            (
                |c| {
                    c.cgroup_memory_max_mb(u64::MAX);
                },
                "cgroup_memory_max_mb",
            ),
            (
                |c| {
                    c.cgroup_pids_max(0);
                },
                "cgroup_pids_max",
            ),
            (
                |c| {
                    c.cgroup_cpu_max(Duration::from_micros(10), Duration::from_millis(100));
                },
                "cgroup_cpu_max quota",
            ),
            (
                |c| {
                    c.cgroup_cpu_max(Duration::from_millis(10), Duration::from_secs(2));
                },
                "cgroup_cpu_max period",
            ),
            (
                |c| {
                    c.cgroup_parent("relative/dir");
                },
                "cgroup_parent",
            ),
        ] {
            let mut c = Config::new();
            set(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().starts_with(name), "{name}: {e}");
        }
        let mut c: Config = Config::new();
        assert!(c.cgroup_limits().is_empty());
        c.cgroup_memory_max_mb(256)
            .cgroup_pids_max(128)
            .cgroup_cpu_max(Duration::from_millis(50), Duration::from_millis(100));
        c.validate().unwrap();
        let l = c.cgroup_limits();
        assert_eq!(l.memory_max_bytes, Some(256 << 20));
        assert_eq!(l.pids_max, Some(128));
        assert_eq!(
            l.cpu_max,
            Some(roma_sandbox::CpuMax {
                quota_us: 50_000,
                period_us: 100_000
            })
        );
        l.validate().unwrap();
    }

    #[test]
    fn setters_chain_and_errors_name_the_setting() {
        let mut config = Config::new();
        config.number_of_workers(3).worker_queue_max_items(7);
        let _: &Config = &config;
        assert_eq!(config.dispatcher().number_of_workers, 3);
        assert_eq!(config.dispatcher().worker_queue_max_items, 7);
        for (set, name) in [
            (
                (|c: &mut Config| {
                    c.number_of_workers(0);
                }) as fn(&mut Config),
                "number_of_workers",
            ),
            (
                |c| {
                    c.worker_queue_max_items(0);
                },
                "worker_queue_max_items",
            ),
            (
                |c| {
                    c.code_version_cache_size(0);
                },
                "code_version_cache_size",
            ),
            (
                |c| {
                    c.default_timeout(Duration::ZERO);
                },
                "default_timeout",
            ),
            (
                |c| {
                    c.load_timeout(Duration::ZERO);
                },
                "load_timeout",
            ),
            (
                |c| {
                    c.max_payload_bytes(16);
                },
                "max_payload_bytes",
            ),
            (
                |c| {
                    c.async_binding_threads(0);
                },
                "async_binding_threads",
            ),
        ] {
            let mut c = Config::new();
            set(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().starts_with(name), "{name}: {e}");
        }
    }
}
