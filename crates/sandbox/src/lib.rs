//! Process jails for roma workers.
//!
//! The second layer of roma's isolation: the V8 engine runs in a worker process that this crate
//! starts inside a jail (new user, mount, pid, net, ipc and uts namespaces, a read-only root of
//! only what the worker needs, a seccomp-bpf allow-list, rlimits), so that even a V8 exploit
//! lands in a box with no files, no network and no new processes. Backends sit behind one
//! [`Sandbox`] trait: our own namespaces jail, birdcage (a cargo feature; GPL-3.0-or-later), and
//! an unjailed one for debugging.
//!
//! Trust: the host side ([`Sandbox::spawn`], [`WorkerProcess`]) runs in the multi-threaded host
//! and does nothing between `fork` and `exec` but clear `FD_CLOEXEC` on the channel and join the
//! worker's cgroup, when it has one ([`cgroup`]). Every jail step runs in the worker binary
//! itself, single-threaded, in [`enter_jail_from_args`].
//!
//! # Host side
//! ```no_run
//! # fn main() -> Result<(), roma_sandbox::SandboxError> {
//! use roma_sandbox::{WorkerSpec, sandbox_by_name};
//! use std::time::Duration;
//! let spec = WorkerSpec {
//!     args: vec!["serve".into()],
//!     inherited_fds: vec![3],
//!     ..WorkerSpec::new("/usr/libexec/roma-worker")
//! };
//! let mut worker = sandbox_by_name("namespaces")?.spawn(&spec)?;
//! let report = worker.wait_timeout(Duration::from_secs(1))?;
//! # let _ = report; Ok(()) }
//! ```
//!
//! # Worker side
//! ```no_run
//! # fn main() -> Result<(), roma_sandbox::SandboxError> {
//! let rest = roma_sandbox::enter_jail_from_args(std::env::args_os().skip(1))?; // first line
//! // ... initialise V8 (it starts its platform threads) ...
//! roma_sandbox::install_worker_filter()?; // seccomp on every thread
//! # let _ = rest; Ok(()) }
//! ```
#![deny(missing_docs)]

mod backend;
pub mod cgroup;
mod error;
mod exit;
pub mod host_checks;
mod jail_cpu;
mod kind;
mod launcher;
pub mod probe;
mod process;
#[cfg(feature = "test-support")]
pub mod procfs;
#[cfg(not(feature = "test-support"))]
#[allow(dead_code)] // the public walk serves the feature's users; the crate uses a part
mod procfs;
mod rlimits;
pub mod seccomp;
mod spec;
mod syscall_names;
mod violation;

pub use backend::{ENV_ALLOW_LIST, Sandbox, sandbox_by_name};
pub use cgroup::{CgroupLimits, CpuMax};
pub use error::SandboxError;
pub use exit::{ExitReport, JAIL_SETUP_FAILED_EXIT_CODE};
pub use jail_cpu::JailCpuClock;
pub use kind::JailKind;
pub use launcher::{
    JailInfo, RemainingArgs, SYSTEM_LIBRARY_DIRS, current_jail, enter_jail_from_args,
};
pub use process::WorkerProcess;
pub use rlimits::{
    DEFAULT_MAX_OPEN_FILES, DEFAULT_MAX_PROCESSES, WorkerRlimits, apply_worker_rlimits,
};
pub use seccomp::{FilterMode, install_worker_filter, install_worker_filter_for_probe};
pub use spec::{DEFAULT_WORKER_UID, WorkerSpec};
pub use syscall_names::syscall_name;
