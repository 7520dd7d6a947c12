//! The host side of every backend: [`Sandbox`], and the one implementation that starts the
//! worker binary as its own launcher.
//!
//! The host is multi-threaded, so it does nothing between `fork` and `exec` except joining the
//! worker's cgroup, when it has one (one async-signal-safe `write` of `0` to each `cgroup.procs`
//! opened before the fork), and clearing `FD_CLOEXEC` on the channel descriptors (one `fcntl`
//! each). All jail work happens in the worker binary, single-threaded, in
//! [`crate::launcher::enter_jail_from_args`].

use crate::cgroup::WorkerCgroup;
use crate::launcher::args::{JailArgs, JailStage};
use crate::launcher::status;
use crate::process::PidfdChild;
use crate::{JailKind, SandboxError, WorkerProcess, WorkerSpec};
use rustix::pipe::{PipeFlags, pipe_with};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Once, OnceLock};
use std::time::Duration;

/// How long `spawn` waits for a launcher to report that the jail is built.
const JAIL_SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variables passed from the host to a worker; every other one is dropped.
pub const ENV_ALLOW_LIST: [&str; 3] = ["RUST_BACKTRACE", "RUST_LOG", "LD_LIBRARY_PATH"];

/// The variable that carries [`WorkerSpec::preload`] to the worker (never the host's own).
pub(crate) const PRELOAD_VAR: &str = "LD_PRELOAD";
/// The host's lifeline pipe: every launcher gets the read end and watches it; the write end stays
/// open, close-on-exec, for the life of the host process and nowhere else, so the read end reports
/// end-of-file exactly when the host is gone (see `launcher::relay`). Made on the first spawn.
static LIFELINE: OnceLock<Result<(OwnedFd, OwnedFd), rustix::io::Errno>> = OnceLock::new();

/// The read end of [`LIFELINE`].
fn lifeline_read_end() -> Result<std::os::fd::RawFd, SandboxError> {
    match LIFELINE.get_or_init(|| pipe_with(PipeFlags::CLOEXEC)) {
        Ok((read_end, _write_end)) => Ok(read_end.as_raw_fd()),
        Err(e) => Err(SandboxError::os("pipe for the host lifeline", *e)),
    }
}

/// The read end of [`LIFELINE`] if a spawn has made it.
pub(crate) fn lifeline_read_end_made() -> Option<std::os::fd::RawFd> {
    match LIFELINE.get() {
        Some(Ok((read_end, _))) => Some(read_end.as_raw_fd()),
        _ => None,
    }
}

/// A way to start jailed worker processes.
pub trait Sandbox: Send + Sync + std::fmt::Debug {
    /// The backend's name, as `sandbox_by_name` takes it.
    fn name(&self) -> &'static str;
    /// Starts a worker. The worker binary enters the jail itself before running.
    fn spawn(&self, spec: &WorkerSpec) -> Result<Box<dyn WorkerProcess>, SandboxError>;
}

/// The sandbox named `name`: `namespaces` (the default, roma's own jail), `birdcage` (only
/// with the `birdcage` cargo feature, which makes the binary GPL-3.0; otherwise
/// [`SandboxError::BackendNotCompiled`]) or `none` (no jail; debugging only, warns on stderr).
///
/// The worker binary must be built with the same feature: the birdcage jail is built by its
/// launcher stage (see `launcher/birdcage.rs`).
pub fn sandbox_by_name(name: &str) -> Result<Box<dyn Sandbox>, SandboxError> {
    let kind = JailKind::from_name(name)?;
    if kind == JailKind::Birdcage && !cfg!(feature = "birdcage") {
        return Err(SandboxError::BackendNotCompiled("birdcage"));
    }
    Ok(Box::new(LauncherSandbox { kind }))
}

/// Starts `spec.program --jail <kind> ... -- <args>`; the program jails itself.
#[derive(Debug)]
struct LauncherSandbox {
    kind: JailKind,
}

impl Sandbox for LauncherSandbox {
    fn name(&self) -> &'static str {
        self.kind.as_str()
    }

    fn spawn(&self, spec: &WorkerSpec) -> Result<Box<dyn WorkerProcess>, SandboxError> {
        spec.validate()?;
        for &fd in &spec.inherited_fds {
            // SAFETY: F_GETFD only reads the descriptor flags; an fd that is not open gives EBADF.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
                return Err(SandboxError::InvalidSpec(format!(
                    "channel fd {fd} is not open in the host"
                )));
            }
        }
        if self.kind == JailKind::None {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                eprintln!(
                    "roma-sandbox: WARNING: running workers with sandbox `none`: untrusted code \
                     is NOT jailed (no namespaces, no read-only root, no rlimits). Debugging only."
                );
            });
        }
        // A status pipe for backends with a launch stage, so a jail that cannot be built fails
        // here with the reason rather than as a dead worker later.
        let status_pipe: Option<(OwnedFd, OwnedFd)> = match self.kind {
            JailKind::None => None,
            _ => Some(
                pipe_with(PipeFlags::CLOEXEC)
                    .map_err(SandboxError::at("pipe for the jail status"))?,
            ),
        };
        // The pipe on which the worker's SIGSYS handler names a refused call (see
        // `violation`). Non-blocking, so that neither the handler nor the host's read can hang.
        let (violation_r, violation_w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
            .map_err(SandboxError::at("pipe for seccomp violation reports"))?;
        // Backends with a launcher tie the jail to this process's life; `none` has no launcher.
        let host_fd = match self.kind {
            JailKind::None => None,
            _ => Some(lifeline_read_end()?),
        };
        let launch = JailArgs {
            stage: JailStage::Launch,
            kind: self.kind,
            channel_fds: spec.inherited_fds.clone(),
            read_only_paths: spec
                .extra_read_only_paths
                .iter()
                .chain(&spec.preload)
                .cloned()
                .collect(),
            address_space_limit_mb: spec.address_space_limit_mb,
            data_limit_mb: spec.data_limit_mb,
            status_fd: status_pipe.as_ref().map(|(_, w)| w.as_raw_fd()),
            violation_fd: Some(violation_w.as_raw_fd()),
            host_fd,
            worker_uid: spec.worker_uid,
            rest: spec.args.clone(),
        };
        let mut cmd = Command::new(&spec.program);
        // stdout is not the worker's to write (a compromised worker could forge the host's
        // output); stderr, for the worker's own diagnostics, is a pipe the host reads when the
        // spec asks for it, else the host's.
        cmd.args(launch.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if spec.capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .env_clear()
            // Its own process group, which the jail's other processes (the jailed worker,
            // birdcage's init) share: `kill` signals the whole group, so no part of a worker
            // outlives it even when the launcher died first.
            .process_group(0);
        for key in ENV_ALLOW_LIST {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        if let Some(lib) = &spec.preload {
            cmd.env(PRELOAD_VAR, lib);
        }
        // The worker's cgroup, made before the fork so that the child joins it before `exec`:
        // no code of the worker binary runs outside it.
        let cgroup = if spec.cgroup.is_empty() {
            None
        } else {
            Some(WorkerCgroup::create(&spec.cgroup)?)
        };
        let cgroup_procs: Vec<RawFd> = cgroup
            .as_ref()
            .map(WorkerCgroup::procs_fds)
            .unwrap_or_default();
        let mut fds = spec.inherited_fds.clone();
        fds.extend(status_pipe.as_ref().map(|(_, w)| w.as_raw_fd()));
        fds.push(violation_w.as_raw_fd());
        fds.extend(host_fd);
        // SAFETY: the closure runs in the forked child of a possibly multi-threaded process, so
        // it may only make async-signal-safe calls: it reads two Vecs allocated before the fork
        // and calls write and fcntl, nothing else (no allocation, no locks). `0` written to a
        // `cgroup.procs` moves the writer (this child) into that cgroup.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &cgroup_procs {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for &fd in &fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(SandboxError::at(format!(
            "spawn {}{}",
            spec.program.display(),
            if cgroup.is_some() {
                " (in its cgroup)"
            } else {
                ""
            }
        )))?;
        // Only the worker may write reports: the host keeps the read end alone.
        drop(violation_w);
        let mut worker = PidfdChild::new(child, Some(violation_r), cgroup)?;
        if let Some((read_end, write_end)) = status_pipe {
            drop(write_end);
            let failure = match status::read(&read_end, JAIL_SETUP_TIMEOUT) {
                Ok(None) => None,
                Ok(Some(e)) | Err(e) => Some(e),
            };
            if let Some(e) = failure {
                // Dropping the worker kills and reaps whatever is left of it.
                let _ = worker.kill();
                drop(worker);
                return Err(e);
            }
        }
        Ok(Box::new(worker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_backends_by_name() {
        assert_eq!(sandbox_by_name("namespaces").unwrap().name(), "namespaces");
        assert_eq!(sandbox_by_name("none").unwrap().name(), "none");
        #[cfg(not(feature = "birdcage"))]
        assert!(matches!(
            sandbox_by_name("birdcage"),
            Err(SandboxError::BackendNotCompiled("birdcage"))
        ));
        #[cfg(feature = "birdcage")]
        assert_eq!(sandbox_by_name("birdcage").unwrap().name(), "birdcage");
        assert!(matches!(
            sandbox_by_name("docker"),
            Err(SandboxError::UnknownBackend(_))
        ));
    }

    #[test]
    fn spawn_rejects_a_closed_channel_fd() {
        let spec = WorkerSpec {
            inherited_fds: vec![987_654],
            ..WorkerSpec::new("/bin/true")
        };
        let err = sandbox_by_name("none").unwrap().spawn(&spec).unwrap_err();
        assert!(err.to_string().contains("987654"), "{err}");
    }
}
