//! The launcher's last job: wait for the jailed process and end the same way it did, so the
//! host (which only knows the launcher's pid) sees the worker's exit code or signal.

use crate::exit::JAIL_SETUP_FAILED_EXIT_CODE;
use std::io;

/// Waits for `child` and exits as it did. Never returns.
pub(crate) fn wait_and_relay(child: libc::pid_t) -> ! {
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
