//! [`Config`]: everything a [`crate::RomaService`] is built from.

use roma_core::{DEFAULT_TIMEOUT, DispatcherConfig, EngineLimits};
use roma_ipc::{ChannelConfig, OversizePolicy, TransportKind};
use std::path::PathBuf;
use std::time::Duration;

/// [`Config::worker_data_limit_mb`]'s default, in MiB: room for the default heaps of a few
/// dozen isolates plus their `ArrayBuffer`s, far below what a compromised worker could otherwise
/// take from the host.
pub const DEFAULT_WORKER_DATA_LIMIT_MB: u64 = 4096;

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

/// How a [`crate::RomaService`] runs. `M` is the type of the metadata requests carry to the
/// host functions; it never enters the sandbox.
///
/// Zero values mean "the default" where a field says so, as in Roma's config. Every field,
/// with its default, is listed in `docs/config.md`.
///
/// # Example
///
/// Two workers with a 128 MB heap and a 300 ms default timeout, one host function that reads
/// the request's metadata, and console output sent to stderr:
///
/// ```no_run
/// use roma::{Config, FunctionBindingObject, FunctionBindingPayload, RomaService, SandboxKind};
/// use std::time::Duration;
///
/// /// Request metadata: it stays in the host.
/// #[derive(Default)]
/// struct Tenant {
///     name: String,
/// }
///
/// let mut config: Config<Tenant> = Config::default();
/// config.number_of_workers = 2;
/// config.sandbox = SandboxKind::Namespaces; // the default
/// config.configure_js_engine_resource_constraints(0, 128);
/// config.engine.default_timeout = Duration::from_millis(300);
/// // In JS: `tenant_name()` returns the name of the calling request's tenant.
/// config.register_function_binding(FunctionBindingObject::new(
///     "tenant_name",
///     |p: &mut FunctionBindingPayload<'_, Tenant>| {
///         let name = p.metadata.name.clone();
///         p.io.set_output_string(name);
///     },
/// ));
/// config.set_logging_function(|level, tenant: &Tenant, msg| {
///     eprintln!("[{}] {}: {msg}", level.as_str(), tenant.name);
/// });
/// let roma = RomaService::new(config)?;
/// # roma.stop()?;
/// # Ok::<(), roma::RomaError>(())
/// ```
pub struct Config<M = ()> {
    /// Worker processes. 0: one per available core.
    pub number_of_workers: usize,
    /// Queued executions allowed per worker; the total is `number_of_workers *
    /// worker_queue_max_items`. 0: 100.
    pub worker_queue_max_items: usize,
    /// Compiled versions each worker keeps, and source versions the host keeps to reload a
    /// respawned worker (both LRU). 0: 64.
    pub code_version_cache_size: usize,
    /// Engine limits (heap, WASM pages, default timeout); set the heap with
    /// [`Config::configure_js_engine_resource_constraints`].
    pub engine: EngineLimits,
    /// How long a load may take until every worker has it. 0: 30 s.
    pub load_timeout: Duration,
    /// How long a worker may take to start. 0: 30 s.
    pub worker_startup_timeout: Duration,
    /// Added to a request's timeout before the host gives up on a worker that does not answer
    /// (a worker stopped by a signal, say) and replaces it. 0: 2 s.
    pub worker_grace: Duration,
    /// The jail.
    pub sandbox: SandboxKind,
    /// How requests and responses travel: shared memory (default) or a socket.
    pub transport: TransportKind,
    /// Payload size that takes the fast path (the shared-memory region size). 0: 1 MiB.
    pub payload_fast_path_bytes: usize,
    /// What happens to a payload larger than `payload_fast_path_bytes`: it takes the socket
    /// (slow path, default), or fails with `PayloadTooLarge`.
    pub oversize_payloads: OversizePolicy,
    /// Largest message either side may send at all. 0: 64 MiB.
    pub max_payload_bytes: usize,
    /// The `roma-worker` binary. `None`: `$ROMA_WORKER_BIN`, else next to the current
    /// executable (or its parent folder, for test binaries in `target/*/deps`).
    pub worker_binary: Option<PathBuf>,
    /// Extra V8 flags, for every worker.
    pub v8_flags: Vec<String>,
    /// Prepare the next context while idle (default on).
    pub prewarm: bool,
    /// `RLIMIT_AS` of each worker process in MiB (Roma's `max_worker_virtual_memory_mb`).
    /// V8 reserves a lot of address space up front: keep it at 10 GiB or more, or `None`
    /// (default) for no limit beyond V8's own heap limits.
    pub worker_address_space_mb: Option<u64>,
    /// `RLIMIT_DATA` of each worker process in MiB: the private writable memory it may use
    /// (V8's heaps, `ArrayBuffer`s and WebAssembly memories of every isolate it holds, and any
    /// memory native code inside it maps), not the address space V8 only reserves. It bounds
    /// what a worker that an exploit took over can take, which V8's own limits do not. Default
    /// `Some(DEFAULT_WORKER_DATA_LIMIT_MB)` (4 GiB); raise it on purpose for code that needs more
    /// (large WebAssembly memories, many big versions), `None` for no limit. A worker that
    /// reaches it ends with `out_of_memory` (or `worker_crashed`) and is replaced.
    pub worker_data_limit_mb: Option<u64>,
    /// The host uid (and gid) the jail runs as when the host is root, so that no worker is
    /// host root. `None`: 65534 (`nobody`). Best a uid no other process uses. Ignored when the
    /// host is not root (its jails run as its own uid) and for `SandboxKind::None`. The worker
    /// binary and the V8 library folder must be readable by it. 0 is refused.
    pub worker_uid: Option<u32>,
    /// Recycling: replace each worker process after it has run this many requests. 0 (default):
    /// never. Recycling bounds how long a worker that an exploit took over keeps serving; it
    /// is invisible to callers (the new worker gets every loaded version before it takes a
    /// request, and no request fails because of it).
    pub recycle_after_requests: u64,
    /// Recycling: replace each worker process once it is this old. Zero (default): never.
    pub recycle_after_age: Duration,
    /// Recycling: replace a worker process that used more CPU time than this per second while
    /// it had no request (its own threads at work between requests, which an honest worker
    /// never does for long). Judged over idle stretches of at least a second, from `/proc`.
    /// Default `Some(500 ms)`; `None`: never.
    pub recycle_idle_cpu_per_sec: Option<Duration>,
    /// Run synchronous host functions on the worker's slot thread itself instead of its UDF
    /// handler thread. Saves two thread wake-ups per request that calls them (the hand-over to
    /// the UDF thread and back; the calls themselves cost the same), but a host function that
    /// blocks then holds its worker, and its request, until it returns: only for host
    /// functions that never block. Default off: a blocking one is cut off at its request's
    /// timeout.
    pub host_functions_inline: bool,
    /// Let the host and the workers busy-poll briefly for an answer expected within
    /// microseconds (a host-function reply, the next call, a quick response) instead of
    /// sleeping at once, and only while the two sides run on different cores (default on).
    /// Off: every wait sleeps on the futex; fewer CPU cycles, about 10 µs more per hand-off.
    pub spin: bool,
    /// Threads that run asynchronous host functions (each drives one call's future at a
    /// time). 0: 16. Started only when an asynchronous binding is registered.
    pub async_binding_threads: usize,
    pub(crate) logger: Option<Box<crate::LogFn<M>>>,
    pub(crate) worker_output: Option<std::sync::Arc<crate::WorkerOutputFn>>,
    pub(crate) bindings: Vec<roma_udf::FunctionBindingObject<M>>,
}

impl<M> Default for Config<M> {
    fn default() -> Self {
        Config {
            number_of_workers: 0,
            worker_queue_max_items: 0,
            code_version_cache_size: 0,
            engine: EngineLimits::default(),
            load_timeout: Duration::ZERO,
            worker_startup_timeout: Duration::ZERO,
            worker_grace: Duration::ZERO,
            sandbox: SandboxKind::default(),
            transport: TransportKind::SharedMemory,
            payload_fast_path_bytes: 0,
            oversize_payloads: OversizePolicy::SlowPath,
            max_payload_bytes: 0,
            worker_binary: None,
            v8_flags: Vec::new(),
            prewarm: true,
            worker_address_space_mb: None,
            worker_data_limit_mb: Some(DEFAULT_WORKER_DATA_LIMIT_MB),
            worker_uid: None,
            recycle_after_requests: 0,
            recycle_after_age: Duration::ZERO,
            recycle_idle_cpu_per_sec: Some(DEFAULT_RECYCLE_IDLE_CPU_PER_SEC),
            async_binding_threads: 0,
            host_functions_inline: false,
            spin: true,
            logger: None,
            worker_output: None,
            bindings: Vec::new(),
        }
    }
}

impl<M> std::fmt::Debug for Config<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("number_of_workers", &self.number_of_workers)
            .field("worker_queue_max_items", &self.worker_queue_max_items)
            .field("code_version_cache_size", &self.code_version_cache_size)
            .field("engine", &self.engine)
            .field("sandbox", &self.sandbox)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl<M> Config<M> {
    /// Roma's `ConfigureJsEngineResourceConstraints`: the initial and maximum V8 heap, in MB.
    pub fn configure_js_engine_resource_constraints(
        &mut self,
        initial_heap_mb: usize,
        max_heap_mb: usize,
    ) {
        self.engine.initial_heap_mb = initial_heap_mb;
        self.engine.max_heap_mb = max_heap_mb;
    }

    /// Registers a host function JS can call by `binding.name()` (a dotted name creates nested
    /// objects). Names are checked by [`crate::RomaService::new`]: a name registered twice, one
    /// that is not a JS identifier path, or one that clashes with a JS global the sandbox needs
    /// fails it.
    pub fn register_function_binding(&mut self, binding: roma_udf::FunctionBindingObject<M>) {
        self.bindings.push(binding);
    }

    /// Where console output of the code goes: `console.log/info/warn/error` and uncaught
    /// errors, with the request's metadata. Messages below a request's `min_log_level` never
    /// leave the sandbox. Without a logging function, console output is dropped.
    pub fn set_logging_function<F>(&mut self, f: F)
    where
        F: Fn(roma_core::LogLevel, &M, &str) + Send + Sync + 'static,
    {
        self.logger = Some(Box::new(f));
    }

    /// Sets where what workers write to their stderr goes (V8's fatal-error reports, jail
    /// setup failures): the worker's index and one line, already cut to 4 KiB, with control
    /// characters escaped, at most 100 lines per second per worker (the rest are counted and
    /// the count reported). A worker runs untrusted code, so treat the lines as its data.
    /// Default: the host's stderr, each line prefixed with `roma-worker N:`.
    pub fn set_worker_output_function<F>(&mut self, f: F)
    where
        F: Fn(usize, &str) + Send + Sync + 'static,
    {
        self.worker_output = Some(std::sync::Arc::new(f));
    }

    pub(crate) fn workers(&self) -> usize {
        if self.number_of_workers > 0 {
            return self.number_of_workers;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    pub(crate) fn cache_size(&self) -> usize {
        if self.code_version_cache_size > 0 {
            self.code_version_cache_size
        } else {
            self.engine.effective_version_cache_size()
        }
    }

    pub(crate) fn engine_limits(&self) -> EngineLimits {
        let mut limits = self.engine.clone();
        limits.version_cache_size = self.cache_size();
        if limits.default_timeout.is_zero() {
            limits.default_timeout = DEFAULT_TIMEOUT;
        }
        limits
    }

    pub(crate) fn dispatcher(&self) -> DispatcherConfig {
        DispatcherConfig {
            number_of_workers: self.workers(),
            worker_queue_max_items: self.worker_queue_max_items,
            code_version_cache_size: self.cache_size(),
            load_timeout: self.load_timeout,
            default_timeout: self.engine_limits().default_timeout,
            recycle_after_requests: self.recycle_after_requests,
            recycle_after_age: self.recycle_after_age,
            recycle_idle_cpu_per_sec: self.recycle_idle_cpu_per_sec.unwrap_or(Duration::ZERO),
            ..DispatcherConfig::default()
        }
    }

    pub(crate) fn channel(&self) -> ChannelConfig {
        let mut c = match self.transport {
            TransportKind::Socket => ChannelConfig::socket(),
            TransportKind::SharedMemory => ChannelConfig::shared_memory(),
        };
        if self.payload_fast_path_bytes > 0 {
            c.region_payload_bytes = self.payload_fast_path_bytes;
        }
        if self.max_payload_bytes > 0 {
            c.max_frame_bytes = self.max_payload_bytes;
        }
        c.oversize = self.oversize_payloads;
        if !self.spin {
            c.cross_core_spin = Duration::ZERO;
        }
        c
    }

    pub(crate) fn startup_timeout(&self) -> Duration {
        nonzero(self.worker_startup_timeout, Duration::from_secs(30))
    }

    pub(crate) fn grace(&self) -> Duration {
        nonzero(self.worker_grace, Duration::from_secs(2))
    }

    pub(crate) fn load_deadline(&self) -> Duration {
        // A worker takes a load after its running request, and its top-level run is bounded by
        // the default timeout; the dispatcher's own load timeout answers the caller earlier.
        nonzero(self.load_timeout, Duration::from_secs(30)) + self.grace()
    }
}

fn nonzero(d: Duration, default: Duration) -> Duration {
    if d.is_zero() { default } else { d }
}
