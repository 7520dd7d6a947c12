//! How a worker ended: [`ExitReport`], with seccomp kills named as such.

use crate::syscall_names::syscall_name;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// The exit code a launcher uses when it could not build the jail (the reason goes to the
/// worker's stderr). A worker could exit with it too, so it is a hint, not a proof.
pub const JAIL_SETUP_FAILED_EXIT_CODE: i32 = 121;

/// How a worker process ended.
///
/// The launchers relay the jailed process's fate as their own: an exit code as the same exit
/// code, a signal by dying of the same signal. So the host sees what happened inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReport {
    /// It called `exit` with this code.
    Exited {
        /// The exit code (0..=255).
        code: i32,
    },
    /// A signal other than `SIGSYS` killed it.
    Signaled {
        /// The signal number.
        signal: i32,
    },
    /// It died of `SIGSYS`: the seccomp filter refused a system call.
    SeccompViolation {
        /// The refused call's number as the worker's `SIGSYS` handler reported it (see the
        /// `violation` module): `None` when no well-formed report arrived. The death by
        /// `SIGSYS` comes from the kernel; the number comes from the worker, which a
        /// compromised worker can forge, so treat it as a diagnostic, never as a decision.
        syscall: Option<i64>,
    },
}

impl ExitReport {
    /// The report for a wait status.
    pub fn from_status(status: ExitStatus) -> ExitReport {
        if let Some(code) = status.code() {
            ExitReport::Exited { code }
        } else if let Some(signal) = status.signal() {
            ExitReport::from_signal(signal)
        } else {
            // A stopped or continued status never reaches us (we wait only for exits); treat
            // anything else as an unknown signal rather than panicking.
            ExitReport::Signaled { signal: 0 }
        }
    }

    /// The report for death by `signal`.
    pub fn from_signal(signal: i32) -> ExitReport {
        if signal == libc::SIGSYS {
            ExitReport::SeccompViolation { syscall: None }
        } else {
            ExitReport::Signaled { signal }
        }
    }

    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitReport::Exited { code: 0 })
    }

    /// The exit code, when it exited.
    pub fn code(&self) -> Option<i32> {
        match *self {
            ExitReport::Exited { code } => Some(code),
            _ => None,
        }
    }

    /// The signal that killed it, when one did (`SIGSYS` for a seccomp violation).
    pub fn signal(&self) -> Option<i32> {
        match *self {
            ExitReport::Exited { .. } => None,
            ExitReport::Signaled { signal } => Some(signal),
            ExitReport::SeccompViolation { .. } => Some(libc::SIGSYS),
        }
    }

    /// Whether the seccomp filter killed it.
    pub fn is_seccomp_violation(&self) -> bool {
        matches!(self, ExitReport::SeccompViolation { .. })
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGSYS => "SIGSYS",
        _ => "signal",
    }
}

impl fmt::Display for ExitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitReport::Exited { code } if code == JAIL_SETUP_FAILED_EXIT_CODE => write!(
                f,
                "exited with code {code} (the jail could not be set up; see the worker's stderr output)"
            ),
            ExitReport::Exited { code } => write!(f, "exited with code {code}"),
            ExitReport::Signaled { signal } => {
                write!(f, "killed by {} ({signal})", signal_name(signal))
            }
            ExitReport::SeccompViolation { syscall: Some(n) } => {
                let name = syscall_name(n).unwrap_or("(no x86-64 name)");
                write!(
                    f,
                    "seccomp violation: forbidden system call {name} ({n}) (SIGSYS; the number \
                     as the worker reported it)"
                )
            }
            ExitReport::SeccompViolation { syscall: None } => write!(
                f,
                "seccomp violation: forbidden system call (SIGSYS; the worker did not report \
                 which)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_wait_statuses() {
        // Raw wait statuses: exit code in bits 8..16, terminating signal in the low 7 bits.
        let exited = ExitReport::from_status(ExitStatus::from_raw(3 << 8));
        assert_eq!(exited, ExitReport::Exited { code: 3 });
        assert_eq!(exited.code(), Some(3));
        assert!(!exited.success());
        assert!(ExitReport::from_status(ExitStatus::from_raw(0)).success());

        let killed = ExitReport::from_status(ExitStatus::from_raw(libc::SIGKILL));
        assert_eq!(killed.signal(), Some(libc::SIGKILL));
        assert_eq!(killed.to_string(), "killed by SIGKILL (9)");

        let sys = ExitReport::from_status(ExitStatus::from_raw(libc::SIGSYS));
        assert!(sys.is_seccomp_violation());
        assert_eq!(sys.signal(), Some(libc::SIGSYS));
        assert!(sys.to_string().contains("seccomp violation"));

        let named = ExitReport::SeccompViolation {
            syscall: Some(libc::SYS_pkey_mprotect),
        };
        assert!(
            named
                .to_string()
                .contains("forbidden system call pkey_mprotect (329)"),
            "{named}"
        );
        let odd = ExitReport::SeccompViolation { syscall: Some(400) };
        assert!(odd.to_string().contains("400"), "{odd}");

        let setup = ExitReport::Exited {
            code: JAIL_SETUP_FAILED_EXIT_CODE,
        };
        assert!(setup.to_string().contains("jail could not be set up"));
    }
}
