//! The launcher's last job: wait for the jailed process and end the same way it did, so the
//! host (which only knows the launcher's pid) sees the worker's exit code or signal; and end
//! the whole jail the moment the host is gone.
//!
//! A compromised worker need not exit when its channel closes, so the host's death must not
//! depend on the worker noticing it. The launcher watches the host's lifeline pipe (its read end
//! came with `--jail-host-fd`; only the host holds the write end, close-on-exec, so it reads
//! end-of-file exactly when the host process is gone, however it ended). On end-of-file the
//! launcher SIGKILLs the jailed child, which is pid 1 of the jail's pid namespace (so the kernel
//! kills every process in that namespace with it), then its own process group, which every
//! process of the jail outside that namespace shares (birdcage's init), itself included. A pipe
//! has no race to handle: one the host closed before the launcher started reads end-of-file at
//! once. `PR_SET_PDEATHSIG` would not do: it fires when the host *thread* that spawned the
//! launcher exits, which a multi-threaded host does while the worker is meant to live on.

use crate::exit::JAIL_SETUP_FAILED_EXIT_CODE;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use std::io;
use std::os::fd::OwnedFd;

/// Waits for `child` and exits as it did; with `host`, ends the jail instead once `host` reads
/// end-of-file. Never returns.
pub(crate) fn wait_and_relay(child: libc::pid_t, host: Option<OwnedFd>) -> ! {
    if let Some(host) = host {
        watch_host_until_child_ends(child, &host);
    }
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes only to `status`, which lives for the call.
        let rc = unsafe { libc::waitpid(child, &mut status, 0) };
        if rc == child {
            break;
        }
        if rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        eprintln!(
            "roma-sandbox launcher: waitpid({child}) failed: {}",
            io::Error::last_os_error()
        );
        std::process::exit(JAIL_SETUP_FAILED_EXIT_CODE);
    }
    end_as(status)
}

/// Ends this process as a process with wait status `status` ended: the same exit code, or death
/// by the same signal. Never returns.
pub(crate) fn end_as(status: libc::c_int) -> ! {
    if libc::WIFEXITED(status) {
        std::process::exit(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        die_by_signal(libc::WTERMSIG(status));
    }
    std::process::exit(JAIL_SETUP_FAILED_EXIT_CODE)
}

/// Returns once `child` has ended (a zombie for `waitpid` to reap); kills the jail and this
/// process if `host` reads end-of-file first. Falls back to returning at once, so the caller
/// just blocks in `waitpid`, if the child cannot be watched through a pidfd.
pub(crate) fn watch_host_until_child_ends(child: libc::pid_t, host: &OwnedFd) {
    let pidfd = match rustix::process::Pid::from_raw(child)
        .ok_or(Errno::SRCH)
        .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()))
    {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!(
                "roma-sandbox launcher: pidfd_open({child}) failed ({e}); the jail is not \
                 tied to the host's life"
            );
            return;
        }
    };
    loop {
        let mut fds = [
            PollFd::new(&pidfd, PollFlags::IN),
            PollFd::new(host, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => {
                eprintln!("roma-sandbox launcher: poll failed ({e}); ending the jail");
                kill_jail(child);
            }
        }
        if !fds[1].revents().is_empty() {
            // Nothing is ever written to the lifeline: any event is the host's end closing.
            kill_jail(child);
        }
        if !fds[0].revents().is_empty() {
            return;
        }
    }
}

/// SIGKILLs the jailed child (pid 1 of its pid namespace: the kernel then kills the rest of the
/// namespace), then this process's group, this process included.
fn kill_jail(child: libc::pid_t) -> ! {
    // SAFETY: kill(2) only sends signals. `child` is this process's own unreaped child, so its
    // pid cannot name another process; pid 0 is this process's own group, which the host made
    // for this jail alone.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::kill(0, libc::SIGKILL);
    }
    // Not reached: SIGKILL to its own group ends this process.
    std::process::exit(JAIL_SETUP_FAILED_EXIT_CODE)
}

/// Ends this process by `signal` (no core dump); exits `128 + signal` if the signal would not
/// kill it.
pub(crate) fn die_by_signal(signal: libc::c_int) -> ! {
    // SAFETY: plain prctl/setrlimit calls with valid arguments; they only change this process's
    // own dump settings, so relaying SIGSEGV or SIGSYS writes no core file.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
    }
    // SAFETY: restoring the default disposition and unblocking the signal are process-local;
    // the sigset is initialised by sigemptyset before use.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    std::process::exit(128 + signal)
}
