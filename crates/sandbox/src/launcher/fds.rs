//! Descriptor hygiene in the launcher: close everything but stdio and the channel, and make
//! sure the channel survives `exec`.

use crate::SandboxError;
use std::io;
use std::os::fd::RawFd;

/// Closes every descriptor except 0, 1, 2 and `keep` (with `close_range`, so it costs a few
/// system calls however many descriptors the host leaked).
///
/// Only call this while single-threaded and before anything in the process opened descriptors
/// it still uses.
pub(crate) fn close_all_except(keep: &[RawFd]) -> Result<(), SandboxError> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd > 2)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first: u32 = 3;
    for k in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if k > first {
            let last = if k == u32::MAX { u32::MAX } else { k - 1 };
            close_range(first, last)?;
        }
        first = k.saturating_add(1);
    }
    Ok(())
}

fn close_range(first: u32, last: u32) -> Result<(), SandboxError> {
    // SAFETY: close_range only closes descriptors; the caller guarantees (see
    // `close_all_except`) that no live Rust object owns a descriptor in the range.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if rc == 0 {
        Ok(())
    } else {
        Err(SandboxError::os(
            format!("close_range({first}, {last})"),
            io::Error::last_os_error(),
        ))
    }
}

/// Clears `FD_CLOEXEC` on each of `fds`, failing if one is not open.
pub(crate) fn keep_across_exec(fds: &[RawFd]) -> Result<(), SandboxError> {
    for &fd in fds {
        // SAFETY: fcntl(F_SETFD) only changes the descriptor's flags; a closed fd gives EBADF.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
            return Err(SandboxError::os(
                format!("channel fd {fd}"),
                io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// Sets `FD_CLOEXEC` on `fd`.
pub(crate) fn close_on_exec(fd: RawFd) -> Result<(), SandboxError> {
    // SAFETY: fcntl(F_SETFD) only changes the descriptor's flags; a closed fd gives EBADF.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(SandboxError::os(
            format!("set close-on-exec on fd {fd}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Whether `fd` is open.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Takes ownership of the lifeline descriptor the host passed, close-on-exec so that nothing
/// the launcher starts inherits it.
pub(crate) fn take_host_fd(
    fd: Option<RawFd>,
) -> Result<Option<std::os::fd::OwnedFd>, SandboxError> {
    let Some(fd) = fd else { return Ok(None) };
    if !is_open(fd) {
        return Err(SandboxError::InvalidSpec(format!(
            "host lifeline fd {fd} is not open in the launcher"
        )));
    }
    close_on_exec(fd)?;
    // SAFETY: the fd was handed to this process on its command line for this purpose alone,
    // is open (checked above), and nothing else in the process owns it.
    Ok(Some(unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }))
}
