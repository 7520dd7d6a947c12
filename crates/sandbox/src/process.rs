//! A running worker as the host sees it: [`WorkerProcess`], and its one implementation, a child
//! watched through a pidfd so that waits take a timeout and signals never hit a recycled pid.

use crate::cgroup::{CgroupEvents, WorkerCgroup};
use crate::{ExitReport, SandboxError, violation};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use std::os::fd::OwnedFd;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long `Drop` waits for a killed worker to be reaped before giving up on it.
const DROP_REAP_TIMEOUT: Duration = Duration::from_secs(2);

/// A started worker. Dropping it kills the worker and reaps it.
pub trait WorkerProcess: Send + std::fmt::Debug {
    /// The host-side pid (the launcher's, for jailed backends: killing it kills the worker).
    fn pid(&self) -> u32;
    /// The worker's fate if it has ended, without blocking.
    fn try_wait(&mut self) -> Result<Option<ExitReport>, SandboxError>;
    /// Waits up to `timeout` for the worker to end.
    fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitReport>, SandboxError>;
    /// Sends `SIGKILL` (a no-op once it has ended). Reap it with `try_wait`/`wait_timeout`.
    fn kill(&mut self) -> Result<(), SandboxError>;
    /// The read end of the worker's stderr pipe, once, when the spec asked for
    /// [`crate::WorkerSpec::capture_stderr`]. Keep reading it until end-of-file: a worker whose
    /// stderr fills up blocks, and one whose stderr is closed fails its writes.
    fn take_stderr(&mut self) -> Option<OwnedFd> {
        None
    }
    /// The worker's cgroup while it runs, when its spec set cgroup limits.
    fn cgroup(&self) -> Option<&WorkerCgroup> {
        None
    }
    /// What the kernel counted in the worker's cgroup (OOM kills, refused forks), read when
    /// the worker was reaped, before its cgroup was removed; `None` without a cgroup or before
    /// the worker ended.
    fn cgroup_events(&self) -> Option<&CgroupEvents> {
        None
    }
}

/// A `std::process::Child` plus a pidfd on it.
#[derive(Debug)]
pub(crate) struct PidfdChild {
    child: Child,
    pidfd: OwnedFd,
    report: Option<ExitReport>,
    /// The read end of the violation pipe (see `violation`), read once the child died of SIGSYS.
    violation: Option<OwnedFd>,
    /// The worker's cgroup, removed once the child is reaped (its counters kept in `events`).
    cgroup: Option<WorkerCgroup>,
    events: Option<CgroupEvents>,
}

impl PidfdChild {
    /// Wraps a just-spawned child, with the read end of its violation pipe. On failure the child
    /// is killed and reaped.
    pub(crate) fn new(
        mut child: Child,
        violation: Option<OwnedFd>,
        cgroup: Option<WorkerCgroup>,
    ) -> Result<Self, SandboxError> {
        let opened = Pid::from_raw(child.id() as i32)
            .ok_or_else(|| SandboxError::InvalidSpec("spawned child has pid 0".into()))
            .and_then(|pid| {
                pidfd_open(pid, PidfdFlags::empty()).map_err(SandboxError::at("pidfd_open"))
            });
        match opened {
            Ok(pidfd) => Ok(PidfdChild {
                child,
                pidfd,
                report: None,
                violation,
                cgroup,
                events: None,
            }),
            Err(e) => {
                // The child is ours and not yet reaped, so its pid cannot have been reused.
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

impl PidfdChild {
    /// SIGKILLs the child's process group (the launcher and what it started). Only while the
    /// child is not reaped: until then its pid, which is the group id, cannot be reused.
    fn kill_group(&self) {
        if self.report.is_none()
            && let Ok(pgid) = i32::try_from(self.child.id())
        {
            // SAFETY: kill(2) with a negative pid signals that process group; the group id is
            // our unreaped child's pid (see above), so it names only the worker's processes.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

impl WorkerProcess for PidfdChild {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn take_stderr(&mut self) -> Option<OwnedFd> {
        self.child.stderr.take().map(OwnedFd::from)
    }

    fn cgroup(&self) -> Option<&WorkerCgroup> {
        self.cgroup.as_ref()
    }

    fn cgroup_events(&self) -> Option<&CgroupEvents> {
        self.events.as_ref()
    }

    fn try_wait(&mut self) -> Result<Option<ExitReport>, SandboxError> {
        if let Some(r) = self.report {
            return Ok(Some(r));
        }
        // The launcher may have died (killed from outside) while the rest of its jail lives on
        // (birdcage's init survives it): end the group while the launcher is still an unreaped
        // zombie, which keeps its pid, and so the group id, from being reused.
        // A pidfd turns readable when its process ends, so one that is not readable answers
        // the question alone: this runs before every request, and the `waitpid` it spares is
        // half its cost. A failed poll falls through to `waitpid`, which decides.
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&rustix::event::Timespec::default())) {
            Ok(0) => return Ok(None),
            Ok(_) => self.kill_group(),
            Err(_) => {}
        }
        let status = self.child.try_wait().map_err(SandboxError::at("waitpid"))?;
        self.report = status.map(|s| match ExitReport::from_status(s) {
            // The kernel says SIGSYS; the number is the worker's word, bounded and checked.
            ExitReport::SeccompViolation { .. } => ExitReport::SeccompViolation {
                syscall: self.violation.as_ref().and_then(violation::read_report),
            },
            other => other,
        });
        if self.report.is_some()
            && let Some(mut cg) = self.cgroup.take()
        {
            // Counters first: removing the cgroup loses them. Removal kills what is left of the
            // jail (a process that escaped the group), so nothing of it outlives the launcher.
            self.events = Some(cg.events());
            cg.remove();
        }
        Ok(self.report)
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitReport>, SandboxError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(r) = self.try_wait()? {
                return Ok(Some(r));
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Ok(None);
            }
            let ts = rustix::event::Timespec::try_from(left).map_err(|_| {
                SandboxError::InvalidSpec(format!("wait timeout {left:?} is too large"))
            })?;
            let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(SandboxError::os("poll on pidfd", e)),
            }
        }
    }

    fn kill(&mut self) -> Result<(), SandboxError> {
        if self.report.is_some() {
            return Ok(());
        }
        self.kill_group();
        match pidfd_send_signal(&self.pidfd, Signal::KILL) {
            // ESRCH: it has already exited (a zombie waiting to be reaped).
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(e) => Err(SandboxError::os("pidfd_send_signal(SIGKILL)", e)),
        }
    }
}

impl Drop for PidfdChild {
    fn drop(&mut self) {
        if self.report.is_none() {
            let _ = self.kill();
            // A SIGKILLed process ends promptly; the bound only guards against a process stuck
            // in the kernel, which is then left as a zombie rather than hanging the host.
            let _ = self.wait_timeout(DROP_REAP_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn try_wait_says_running_then_reports_the_kill_once_the_child_ends() {
        // Its own process group, as a launcher has: `kill_group` signals only this child.
        let child = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        let mut p = PidfdChild::new(child, None, None).expect("pidfd");
        assert_eq!(
            p.try_wait().expect("try_wait"),
            None,
            "a sleeping child runs"
        );
        assert_eq!(p.try_wait().expect("try_wait"), None, "and still runs");
        // Killed from outside (not through `kill`), as a worker killed by an operator is.
        // SAFETY: kill(2) on our own unreaped child's pid, which cannot have been reused.
        assert_eq!(unsafe { libc::kill(p.pid() as i32, libc::SIGKILL) }, 0);
        // Its pidfd turns readable when it has ended: waited for, not polled in a loop.
        let mut fds = [PollFd::new(&p.pidfd, PollFlags::IN)];
        let ten_s = rustix::event::Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        assert_eq!(
            poll(&mut fds, Some(&ten_s)).expect("poll"),
            1,
            "a killed child ends"
        );
        let report = p.try_wait().expect("try_wait").expect("ended, so reported");
        assert!(
            matches!(report, ExitReport::Signaled { signal } if signal == libc::SIGKILL),
            "{report:?}"
        );
        // The report stays once reaped.
        assert_eq!(p.try_wait().expect("try_wait"), Some(report));
    }
}
