//! Deadline-bounded reads and writes on a Unix stream socket, the liveness check, and fd flags.
//!
//! Sockets are used in blocking mode but every call passes `MSG_DONTWAIT` and waits in `poll`
//! against a [`Deadline`], so no call can block past its timeout. Writes pass `MSG_NOSIGNAL`: a
//! dead peer is an [`IpcError::Closed`], never a `SIGPIPE`.

use crate::IpcError;
use crate::deadline::{Deadline, timespec};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::{Errno, FdFlags, IoSlice, fcntl_getfd, fcntl_setfd};
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags, recv, sendmsg};
use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// Clears `FD_CLOEXEC` on `fd` so it survives `exec`. The spawner calls this in the child (between
/// `fork` and `exec`, e.g. in `Command::pre_exec`) for exactly the fds the worker must inherit;
/// it only calls `fcntl`, which is async-signal-safe.
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = fcntl_getfd(fd)?;
    fcntl_setfd(fd, flags - FdFlags::CLOEXEC)?;
    Ok(())
}

/// Waits until `fd` reports one of `events` (or an error or hang-up) or the deadline passes.
pub(crate) fn wait_ready(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: &Deadline,
) -> Result<PollFlags, IpcError> {
    loop {
        let left = deadline.slice(Duration::MAX)?;
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        match poll(&mut fds, Some(&timespec(left))) {
            Ok(0) => continue,
            Ok(_) => return Ok(fds[0].revents()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// True when the peer has closed its end (hang-up or error on the socket). Does not wait.
pub(crate) fn peer_gone(fd: BorrowedFd<'_>) -> Result<bool, IpcError> {
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::RDHUP)];
    let zero = timespec(Duration::ZERO);
    loop {
        match poll(&mut fds, Some(&zero)) {
            Ok(_) => {
                let r = fds[0].revents();
                return Ok(r.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::RDHUP));
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads at least one byte into `buf` (non-empty), waiting until the deadline. EOF is `Closed`.
pub(crate) fn read_some(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: &Deadline,
) -> Result<usize, IpcError> {
    loop {
        match recv(fd, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Err(IpcError::Closed),
            Ok((n, _)) => return Ok(n),
            Err(Errno::AGAIN) => {
                wait_ready(fd, PollFlags::IN, deadline)?;
            }
            Err(Errno::INTR) => continue,
            Err(Errno::CONNRESET) => return Err(IpcError::Closed),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads at least one and at most `max` (> 0) bytes appended to `out`, waiting until the deadline.
pub(crate) fn read_append(
    fd: BorrowedFd<'_>,
    out: &mut Vec<u8>,
    max: usize,
    deadline: &Deadline,
) -> Result<usize, IpcError> {
    out.reserve(max);
    loop {
        let spare = &mut out.spare_capacity_mut()[..max];
        match recv(fd, spare, RecvFlags::DONTWAIT) {
            Ok((([], _), _)) => return Err(IpcError::Closed),
            Ok(((init, _), _)) => {
                let n = init.len();
                let new_len = out.len() + n;
                // SAFETY: `recv` initialised the first `n` bytes of the spare capacity (it returns
                // them as `init`), and `n <= max <= capacity - len` because of the reserve above.
                unsafe { out.set_len(new_len) };
                return Ok(n);
            }
            Err(Errno::AGAIN) => {
                wait_ready(fd, PollFlags::IN, deadline)?;
            }
            Err(Errno::INTR) => continue,
            Err(Errno::CONNRESET) => return Err(IpcError::Closed),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes all of `parts` in order, waiting for room until the deadline. On error, returns how many
/// bytes went out, so the caller knows whether the stream is now out of step.
pub(crate) fn write_all(
    fd: BorrowedFd<'_>,
    parts: &[&[u8]],
    deadline: &Deadline,
) -> Result<(), (usize, IpcError)> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut sent = 0usize;
    while sent < total {
        // Build the iovec of what is left, skipping what was sent.
        let mut skip = sent;
        let mut iov: [IoSlice<'_>; 4] = [IoSlice::new(&[]); 4];
        let mut n_iov = 0;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            if n_iov == iov.len() {
                break;
            }
            iov[n_iov] = IoSlice::new(&part[skip..]);
            skip = 0;
            n_iov += 1;
        }
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        match sendmsg(
            fd,
            &iov[..n_iov],
            &mut SendAncillaryBuffer::default(),
            flags,
        ) {
            Ok(n) => sent += n,
            Err(Errno::AGAIN) => {
                let r = wait_ready(fd, PollFlags::OUT, deadline).map_err(|e| (sent, e))?;
                if r.intersects(PollFlags::HUP | PollFlags::ERR) && !r.contains(PollFlags::OUT) {
                    return Err((sent, IpcError::Closed));
                }
            }
            Err(Errno::INTR) => continue,
            Err(Errno::PIPE | Errno::CONNRESET) => return Err((sent, IpcError::Closed)),
            Err(e) => return Err((sent, e.into())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    use std::os::fd::AsFd;

    fn pair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
        socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    }

    #[test]
    fn write_read_timeout_and_eof() {
        let (a, b) = pair();
        let d = Deadline::after(Duration::from_secs(5));
        write_all(a.as_fd(), &[b"he", b"", b"llo"], &d).unwrap();
        let mut buf = [0u8; 16];
        let n = read_some(b.as_fd(), &mut buf, &d).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let short = Deadline::after(Duration::from_millis(10));
        assert!(
            read_some(b.as_fd(), &mut buf, &short)
                .unwrap_err()
                .is_timeout()
        );
        assert!(!peer_gone(b.as_fd()).unwrap());
        drop(a);
        assert!(peer_gone(b.as_fd()).unwrap());
        assert!(read_some(b.as_fd(), &mut buf, &d).unwrap_err().is_closed());
        let mut v = Vec::new();
        assert!(
            read_append(b.as_fd(), &mut v, 4, &d)
                .unwrap_err()
                .is_closed()
        );
    }

    #[test]
    fn write_to_closed_peer_is_closed_not_sigpipe() {
        let (a, b) = pair();
        drop(b);
        let d = Deadline::after(Duration::from_secs(1));
        let (sent, err) = write_all(a.as_fd(), &[b"x"], &d).unwrap_err();
        assert_eq!(sent, 0);
        assert!(err.is_closed());
    }

    #[test]
    fn full_socket_times_out_on_write() {
        let (a, _b) = pair();
        let big = vec![0u8; 16 << 20];
        let d = Deadline::after(Duration::from_millis(20));
        let (sent, err) = write_all(a.as_fd(), &[&big], &d).unwrap_err();
        assert!(err.is_timeout());
        assert!(sent < big.len());
    }

    #[test]
    fn cloexec_is_cleared() {
        let (a, _b) = pair();
        assert!(fcntl_getfd(&a).unwrap().contains(FdFlags::CLOEXEC));
        clear_cloexec(a.as_fd()).unwrap();
        assert!(!fcntl_getfd(&a).unwrap().contains(FdFlags::CLOEXEC));
    }
}
