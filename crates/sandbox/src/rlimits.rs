//! Resource limits for a jailed worker: no core files, no file writes, few descriptors, a cap on
//! tasks, and optionally caps on virtual memory and on private writable memory.
//!
//! `RLIMIT_NPROC` counts *threads* as well as processes, so it is set to a value that leaves
//! room for V8's platform threads and the worker's own, not to 0. Since Linux 5.14 the count is
//! kept per user namespace, and every `namespaces` jail has its own, so the limit bounds that
//! jail alone (on older kernels it counted every task of the host uid: raise it there). The
//! kernel does not enforce it for tasks whose real uid is the host's root, which is why a root
//! host's jail runs as an unprivileged uid (`WorkerSpec::worker_uid`). seccomp forbids
//! `fork` and thread-less `clone` anyway; the limit is the second line.

use crate::SandboxError;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The descriptor limit applied by default: the channel, stdio and what V8 and the IPC layer
/// open during start-up fit well under it.
pub const DEFAULT_MAX_OPEN_FILES: u64 = 64;

/// The task (process + thread) limit applied by default: V8 starts one platform thread per core
/// plus a few helpers.
pub const DEFAULT_MAX_PROCESSES: u64 = 256;

/// The limits to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerRlimits {
    /// `RLIMIT_AS` in bytes; `None` leaves it alone. V8 reserves ~10 GiB of address space for
    /// its heap cage and WebAssembly guard regions: lower values make isolate creation fail.
    pub address_space_bytes: Option<u64>,
    /// `RLIMIT_NOFILE` (never raised above the current hard limit).
    pub max_open_files: u64,
    /// `RLIMIT_NPROC` (tasks, threads included); `None` leaves it alone.
    pub max_processes: Option<u64>,
    /// `RLIMIT_DATA` in bytes; `None` leaves it alone. Counts private writable memory (heap,
    /// anonymous mappings, committed parts of V8's reservations), not reserved-but-inaccessible
    /// address space, so unlike `RLIMIT_AS` it bounds what the worker can touch without
    /// tripping over V8's large reservations.
    pub data_bytes: Option<u64>,
}

impl Default for WorkerRlimits {
    fn default() -> Self {
        WorkerRlimits {
            address_space_bytes: None,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            max_processes: Some(DEFAULT_MAX_PROCESSES),
            data_bytes: None,
        }
    }
}

fn set(resource: Resource, what: &str, value: u64) -> Result<(), SandboxError> {
    // Only ever lower: raising a hard limit needs a privilege the worker lacks.
    let hard = getrlimit(resource).maximum;
    let value = hard.map_or(value, |h| value.min(h));
    setrlimit(
        resource,
        Rlimit {
            current: Some(value),
            maximum: Some(value),
        },
    )
    .map_err(SandboxError::at(format!("setrlimit({what}, {value})")))
}

/// Applies `limits` plus `RLIMIT_CORE` 0 and `RLIMIT_FSIZE` 0 to this process (inherited by its
/// threads). `SIGXFSZ` is ignored so that a write past `RLIMIT_FSIZE` fails with `EFBIG`
/// instead of killing the worker.
pub fn apply_worker_rlimits(limits: &WorkerRlimits) -> Result<(), SandboxError> {
    set(Resource::Core, "RLIMIT_CORE", 0)?;
    set(Resource::Fsize, "RLIMIT_FSIZE", 0)?;
    set(Resource::Nofile, "RLIMIT_NOFILE", limits.max_open_files)?;
    if let Some(n) = limits.max_processes {
        set(Resource::Nproc, "RLIMIT_NPROC", n)?;
    }
    if let Some(bytes) = limits.address_space_bytes {
        set(Resource::As, "RLIMIT_AS", bytes)?;
    }
    if let Some(bytes) = limits.data_bytes {
        set(Resource::Data, "RLIMIT_DATA", bytes)?;
    }
    // SAFETY: setting a signal to SIG_IGN installs no handler code; it is process-wide state
    // that nothing else in the worker relies on.
    if unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(SandboxError::os(
            "ignore SIGXFSZ",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
