//! Options every subcommand that starts a service shares, and the helpers that wait on it.

use crate::console::{console_line, escaped_lines};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use roma::{
    CodeObject, Config, InvocationRequest, LogLevel, ResponseObject, RomaError, RomaService,
    SandboxKind, TransportKind,
};
use std::sync::mpsc;
use std::time::Duration;

/// How long the CLI waits for a callback that must come: a guard against a bug, never hit in
/// normal runs (requests carry their own timeouts).
const CALLBACK_PATIENCE: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SandboxArg {
    Namespaces,
    Birdcage,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TransportArg {
    Shm,
    Socket,
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// Worker processes, at least 1 (default: 1 for run, one per core for bench).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Maximum V8 heap of each isolate, in MB: a worker holds one isolate per loaded version,
    /// so this is the heap of one version's requests (docs/config.md).
    #[arg(long = "heap-mb")]
    pub heap_mb: Option<usize>,
    /// The jail the workers run in.
    #[arg(long, value_enum, default_value = "namespaces")]
    pub sandbox: SandboxArg,
    /// How requests travel to the workers.
    #[arg(long, value_enum, default_value = "shm")]
    pub transport: TransportArg,
    /// Extra V8 flags for the workers (space-separated), e.g. "--single-threaded-gc".
    #[arg(long = "v8-flags", allow_hyphen_values = true)]
    pub v8_flags: Option<String>,
    /// Do not prepare the next context while a worker is idle.
    #[arg(long = "no-prewarm")]
    pub no_prewarm: bool,
    /// Never busy-poll for quick answers (fewer CPU cycles, more latency per hand-off).
    #[arg(long = "no-spin")]
    pub no_spin: bool,
    /// The host uid the jails run as when roma runs as root (default 65534; never 0).
    #[arg(long = "worker-uid")]
    pub worker_uid: Option<u32>,
    /// Replace each worker process after it has run N requests (at least 1; default never).
    #[arg(long = "recycle-after-requests")]
    pub recycle_after_requests: Option<u64>,
    /// Tenant pools: give each tenant (a code object's `roma.tenant` tag, else its id) its own
    /// N worker processes, so that no worker sees two tenants' requests (--workers is then
    /// unused; docs/config.md).
    #[arg(long = "tenant-pools", value_name = "WORKERS_PER_TENANT")]
    pub tenant_pools: Option<usize>,
    /// With --tenant-pools, how many tenants may have a pool at once (default 16); past it the
    /// least recently used idle pool is stopped.
    #[arg(long = "max-tenants", requires = "tenant_pools")]
    pub max_tenants: Option<usize>,
    /// Put each worker in a cgroup of its own with this memory limit, in MiB: the kernel kills
    /// a worker that holds more (needs a writable cgroup; `roma check` says whether there is one).
    #[arg(long = "cgroup-memory-mb")]
    pub cgroup_memory_mb: Option<u64>,
    /// Each worker's cgroup holds at most N processes and threads.
    #[arg(long = "cgroup-pids-max")]
    pub cgroup_pids_max: Option<u64>,
    /// Each worker's cgroup may use this percentage of one core's time (over 100: more cores).
    #[arg(long = "cgroup-cpu-percent")]
    pub cgroup_cpu_percent: Option<u32>,
    /// Allow requests to ask for a CPU profile (Config::enable_profilers).
    #[arg(long = "enable-profilers")]
    pub enable_profilers: bool,
    /// Low-latency mode: idle threads poll this long at most before sleeping, e.g. 5ms
    /// (Config::low_latency; default off).
    #[arg(long = "low-latency", value_parser = roma::tools::parse_duration)]
    pub low_latency: Option<std::time::Duration>,
}

impl ServiceArgs {
    /// A config from these options; `default_workers` when `--workers` is absent.
    pub fn config(&self, default_workers: usize) -> Config {
        let mut c = Config::default();
        c.number_of_workers(self.workers.unwrap_or(default_workers));
        if let Some(mb) = self.heap_mb {
            c.configure_js_engine_resource_constraints(0, mb);
        }
        c.sandbox(match self.sandbox {
            SandboxArg::Namespaces => SandboxKind::Namespaces,
            SandboxArg::Birdcage => SandboxKind::Birdcage,
            SandboxArg::None => SandboxKind::None,
        });
        c.transport(match self.transport {
            TransportArg::Shm => TransportKind::SharedMemory,
            TransportArg::Socket => TransportKind::Socket,
        });
        if let Some(f) = &self.v8_flags {
            c.v8_flags(f.split_whitespace());
        }
        c.prewarm(!self.no_prewarm);
        c.spin(!self.no_spin);
        // The options that are a setter's argument as they are, set only when given.
        set(&mut c, self.worker_uid, Config::worker_uid);
        set(
            &mut c,
            self.recycle_after_requests,
            Config::recycle_after_requests,
        );
        set(&mut c, self.tenant_pools, Config::tenant_pools);
        set(&mut c, self.max_tenants, Config::max_tenants);
        set(&mut c, self.cgroup_memory_mb, Config::cgroup_memory_max_mb);
        set(&mut c, self.cgroup_pids_max, Config::cgroup_pids_max);
        set(&mut c, self.low_latency, Config::low_latency);
        if let Some(pct) = self.cgroup_cpu_percent {
            // A 100 ms period, the kernel's default; 1% of it (1 ms) is the smallest quota.
            let period = std::time::Duration::from_millis(100);
            c.cgroup_cpu_max(std::time::Duration::from_millis(u64::from(pct)), period);
        }
        c.enable_profilers(self.enable_profilers);
        // Console output of the code: stderr, prefixed with its level.
        c.set_logging_function(|level, _: &(), msg| {
            eprintln!("[{}] {msg}", level_name(level));
        });
        c
    }
}

/// Calls `setter` with `value` when the option was given; without it the config keeps its
/// default.
fn set<T>(c: &mut Config, value: Option<T>, setter: fn(&mut Config, T) -> &mut Config) {
    if let Some(v) = value {
        setter(c, v);
    }
}

pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error => "error",
    }
}

/// Starts the service.
pub fn start(config: Config) -> Result<RomaService> {
    RomaService::new(config)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.kind().as_str(), e.message()))
        .context("cannot start roma")
}

/// Where a callback sends its answer.
type Answer = mpsc::Sender<Result<ResponseObject, RomaError>>;

/// Submits with `submit`, which hands the answer's sender to its callback, and waits for the
/// answer; `what` names the callback that never came.
fn wait_for(
    what: &str,
    submit: impl FnOnce(Answer) -> Result<(), RomaError>,
) -> Result<ResponseObject, RomaError> {
    let (tx, rx) = mpsc::channel();
    submit(tx)?;
    rx.recv_timeout(CALLBACK_PATIENCE).unwrap_or_else(|_| {
        Err(RomaError::internal(format!(
            "the {what}'s callback never came"
        )))
    })
}

/// Loads `code` and waits for every worker to have it.
pub fn load(svc: &RomaService, code: CodeObject) -> Result<ResponseObject, RomaError> {
    wait_for("load", |tx| {
        svc.load_code_obj(code, move |r| {
            let _ = tx.send(r);
        })
    })
}

/// Runs one request and waits for its answer.
pub fn execute(svc: &RomaService, req: InvocationRequest) -> Result<ResponseObject, RomaError> {
    wait_for("request", |tx| {
        svc.execute(req, move |r| {
            let _ = tx.send(r);
        })
        .map(drop)
    })
}

/// `error: KIND: MESSAGE` and the JS stack, for stderr.
/// The message and stack come from the worker (a JS error's text): both are escaped and the
/// message is cut like a console line.
pub fn describe_error(e: &RomaError) -> String {
    let mut s = format!(
        "error: {}: {}",
        e.kind().as_str(),
        console_line(e.message())
    );
    if let Some(stack) = e.stack().filter(|s| !s.is_empty()) {
        s.push('\n');
        s.push_str(&escaped_lines(stack));
    }
    s
}
