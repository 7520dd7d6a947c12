//! The in-worker half of every backend: [`enter_jail_from_args`], which the worker binary calls
//! first thing in `main`, while it is still single-threaded.
//!
//! With `--jail <kind>` the process is a *launcher*: it builds the jail, starts the worker inside
//! it (re-executing the same binary with `--jail-entered <kind>`), waits, and exits as the worker
//! did; the call does not return there. With `--jail-entered` the process is the jailed worker:
//! the call applies the rlimits and returns the worker's own arguments. Without either, the call
//! returns the arguments untouched and reports no jail.

pub(crate) mod args;
#[cfg(feature = "birdcage")]
mod birdcage_jail;
mod fds;
mod namespaces;
mod privileges;
mod relay;
mod rootfs;
pub(crate) mod status;

use crate::rlimits::{WorkerRlimits, apply_worker_rlimits};
use crate::{JailKind, SandboxError};
use args::{JailArgs, JailStage};
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::sync::OnceLock;

pub use rootfs::SYSTEM_LIBRARY_DIRS;

/// What the worker learns about the jail it runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JailInfo {
    /// The backend.
    pub kind: JailKind,
    /// The channel descriptors the host passed (open, at these numbers).
    pub channel_fds: Vec<RawFd>,
    /// `RLIMIT_AS` applied, in MiB.
    pub address_space_limit_mb: Option<u64>,
    /// The write end of the pipe on which a seccomp violation is reported to the host (open),
    /// when the host passed one.
    pub violation_fd: Option<RawFd>,
    /// `RLIMIT_DATA` applied, in MiB.
    pub data_limit_mb: Option<u64>,
}

/// The worker's own arguments, and the jail it is in (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemainingArgs {
    /// Arguments after the jail options (without the program name).
    pub args: Vec<OsString>,
    /// `None` when the worker was started without jail options.
    pub jail: Option<JailInfo>,
}

static CURRENT: OnceLock<JailInfo> = OnceLock::new();

/// The jail this process entered, once [`enter_jail_from_args`] has returned.
pub fn current_jail() -> Option<&'static JailInfo> {
    CURRENT.get()
}

/// Enters the jail named on the command line. Pass the arguments without the program name
/// (`std::env::args_os().skip(1)`).
///
/// Call it first thing in `main`: the launcher stage forks, changes namespaces and closes
/// descriptors, which is only sound while the process has a single thread and owns no
/// descriptors it still needs. In the launcher stage it returns only on error (nothing was
/// started then); the worker should print the error and exit with
/// [`crate::JAIL_SETUP_FAILED_EXIT_CODE`].
pub fn enter_jail_from_args(
    args: impl IntoIterator<Item = OsString>,
) -> Result<RemainingArgs, SandboxError> {
    let args: Vec<OsString> = args.into_iter().collect();
    let Some(jail) = JailArgs::parse(args.clone())? else {
        return Ok(RemainingArgs { args, jail: None });
    };
    let launched = match (jail.stage, jail.kind) {
        (JailStage::Launch, JailKind::Namespaces) => namespaces::launch(&jail).map(|n| match n {}),
        #[cfg(feature = "birdcage")]
        (JailStage::Launch, JailKind::Birdcage) => birdcage_jail::launch(&jail).map(|n| match n {}),
        #[cfg(not(feature = "birdcage"))]
        (JailStage::Launch, JailKind::Birdcage) => {
            Err(SandboxError::BackendNotCompiled("birdcage"))
        }
        // `none` has nothing to build: the worker runs as a plain child of the host.
        (JailStage::Launch, JailKind::None) => return finish(jail, false),
        (JailStage::Entered, _) => return finish(jail, true),
    };
    if let Err(e) = &launched {
        status::report(jail.status_fd, e);
    }
    launched
}

fn finish(jail: JailArgs, limit: bool) -> Result<RemainingArgs, SandboxError> {
    if let Some(fd) = jail.status_fd {
        // Nothing to report for a backend without a launch stage: close it so the host sees EOF.
        // SAFETY: the fd was handed to this process for exactly this purpose and nothing else
        // in the process owns it.
        drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    }
    // Only a launcher watches the host's lifeline; a worker without one keeps no copy.
    drop(fds::take_host_fd(jail.host_fd)?);
    for &fd in &jail.channel_fds {
        if !fds::is_open(fd) {
            return Err(SandboxError::InvalidSpec(format!(
                "channel fd {fd} is not open in the worker"
            )));
        }
    }
    if jail.kind == JailKind::Namespaces && rustix::process::getpid().as_raw_nonzero().get() != 1 {
        return Err(SandboxError::InvalidSpec(
            "started as --jail-entered namespaces but not inside a new pid namespace".into(),
        ));
    }
    if limit {
        apply_worker_rlimits(&WorkerRlimits {
            address_space_bytes: jail.address_space_limit_mb.map(|mb| mb << 20),
            data_bytes: jail.data_limit_mb.map(|mb| mb << 20),
            ..WorkerRlimits::default()
        })?;
    }
    let info = JailInfo {
        kind: jail.kind,
        channel_fds: jail.channel_fds,
        address_space_limit_mb: jail.address_space_limit_mb,
        // A report the worker cannot send only loses the name of a refused call.
        violation_fd: jail.violation_fd.filter(|&fd| fds::is_open(fd)),
        data_limit_mb: jail.data_limit_mb,
    };
    let _ = CURRENT.set(info.clone());
    Ok(RemainingArgs {
        args: jail.rest,
        jail: Some(info),
    })
}
