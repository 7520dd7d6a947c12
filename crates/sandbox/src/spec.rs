//! What the host asks for when it starts a worker: [`WorkerSpec`].

use crate::SandboxError;
use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

/// The host uid (and gid) a jail runs as when the host is root and
/// [`WorkerSpec::worker_uid`] is unset: `nobody` (and `nogroup`) on Debian. A uid of its own,
/// that no other process on the host uses, is better: processes of the same uid may signal
/// (and, where Yama allows, trace) each other.
pub const DEFAULT_WORKER_UID: u32 = 65534;

/// How to start one worker process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerSpec {
    /// The worker program: the `node` executable when [`WorkerSpec::preload`] names roma's
    /// worker library, or any binary. Its `main` must call
    /// [`crate::launcher::enter_jail_from_args`] first thing.
    pub program: PathBuf,
    /// A shared library the program loads before it starts (`LD_PRELOAD`): roma's worker
    /// library, which makes `node` run roma's worker instead of node. It is bound read-only
    /// into the jail, and the launcher stage passes it on to the jailed stage.
    pub preload: Option<PathBuf>,
    /// Arguments for the worker itself, handed back by `enter_jail_from_args`.
    pub args: Vec<OsString>,
    /// Channel descriptors (host-side numbers) that must be open in the worker at the same
    /// numbers. They may be close-on-exec in the host: only the spawned child clears the flag.
    /// Every other descriptor of the host is closed in the worker.
    pub inherited_fds: Vec<RawFd>,
    /// Extra absolute paths the worker may read and execute (bound read-only into its root).
    /// `/lib`, `/lib64`, `/usr/lib`, `/usr/lib64`, the program and the preloaded library are
    /// always bound.
    pub extra_read_only_paths: Vec<PathBuf>,
    /// `RLIMIT_AS` for the worker in MiB. V8 reserves a lot of virtual memory: keep this at
    /// 10 GiB or more, or leave it unset.
    pub address_space_limit_mb: Option<u64>,
    /// `RLIMIT_DATA` for the worker in MiB: its private writable memory (what it can touch),
    /// unlike `RLIMIT_AS` not counting V8's reservations.
    pub data_limit_mb: Option<u64>,
    /// Give the worker a pipe as its stderr, whose read end the host takes with
    /// [`crate::WorkerProcess::take_stderr`], instead of the host's own stderr. A jailed worker
    /// is untrusted: what it writes should reach the host's log as data, not its terminal.
    pub capture_stderr: bool,
    /// The host uid and gid the jail runs as when the host is root (never host uid 0, so that
    /// `RLIMIT_NPROC` applies and a worker that escapes its namespaces owns nothing). `None`:
    /// [`crate::DEFAULT_WORKER_UID`]. A host that is not root runs its jails as itself, and this
    /// is ignored. The worker binary and every read-only path must be readable (and the binary
    /// executable) by this uid. Not 0.
    pub worker_uid: Option<u32>,
    /// Limits for a cgroup of the worker's own (see [`crate::cgroup`]); with none set, the
    /// worker stays in the host's cgroup. With any set, the worker is in its cgroup before
    /// any of its code runs, or it is not started.
    pub cgroup: crate::CgroupLimits,
}

impl WorkerSpec {
    /// A spec for `program` with no arguments, channels or extra paths.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        WorkerSpec {
            program: program.into(),
            ..WorkerSpec::default()
        }
    }

    /// Checks what can be checked without touching the OS.
    pub fn validate(&self) -> Result<(), SandboxError> {
        if self.program.as_os_str().is_empty() {
            return Err(SandboxError::InvalidSpec("empty program path".into()));
        }
        let mut seen = HashSet::new();
        for &fd in &self.inherited_fds {
            if fd < 3 {
                return Err(SandboxError::InvalidSpec(format!(
                    "channel fd {fd} is stdio; channel fds must be 3 or higher"
                )));
            }
            if !seen.insert(fd) {
                return Err(SandboxError::InvalidSpec(format!(
                    "channel fd {fd} is listed twice"
                )));
            }
        }
        for p in self.extra_read_only_paths.iter().chain(&self.preload) {
            if !p.is_absolute() {
                return Err(SandboxError::InvalidSpec(format!(
                    "read-only path {} is not absolute",
                    p.display()
                )));
            }
        }
        if matches!(self.worker_uid, Some(0 | u32::MAX)) {
            return Err(SandboxError::InvalidSpec(
                "worker_uid 0 would run untrusted code as host root (and u32::MAX is no uid)"
                    .into(),
            ));
        }
        if self.data_limit_mb == Some(0) {
            return Err(SandboxError::InvalidSpec(
                "data_limit_mb of 0 would stop the worker from starting".into(),
            ));
        }
        if self.address_space_limit_mb == Some(0) {
            return Err(SandboxError::InvalidSpec(
                "address_space_limit_mb of 0 would stop the worker from starting".into(),
            ));
        }
        self.cgroup.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_stdio_duplicates_relative_paths_and_zero_limit() {
        let ok = WorkerSpec {
            inherited_fds: vec![3, 7],
            extra_read_only_paths: vec!["/opt/lib".into()],
            ..WorkerSpec::new("/bin/worker")
        };
        ok.validate().unwrap();
        for bad in [
            WorkerSpec::new(""),
            WorkerSpec {
                inherited_fds: vec![2],
                ..ok.clone()
            },
            WorkerSpec {
                inherited_fds: vec![5, 5],
                ..ok.clone()
            },
            WorkerSpec {
                extra_read_only_paths: vec!["lib".into()],
                ..ok.clone()
            },
            WorkerSpec {
                address_space_limit_mb: Some(0),
                ..ok.clone()
            },
            WorkerSpec {
                preload: Some("libroma_worker.so".into()),
                worker_uid: Some(0),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(SandboxError::InvalidSpec(_))),
                "{bad:?}"
            );
        }
    }
}
