//! Deadline-bounded reads and writes on a Unix stream socket, the liveness check, and fd flags.
//!
//! Sockets are used in blocking mode but every call passes `MSG_DONTWAIT` and waits in `poll`
//! against a [`Deadline`], so no call can block past its timeout. Writes pass `MSG_NOSIGNAL`: a
//! dead peer is an [`IpcError::Closed`], never a `SIGPIPE`.

use crate::IpcError;
use crate::deadline::{Deadline, timespec};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::{Errno, FdFlags, fcntl_getfd, fcntl_setfd};
use rustix::net::{RecvFlags, SendFlags, recv, send};
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

/// Parts at most this long in all are copied into one buffer and sent with one call.
const COALESCE_BYTES: usize = 4096;

/// Writes all of `parts` in order, waiting for room until the deadline. On error, returns how many
/// bytes went out, so the caller knows whether the stream is now out of step.
///
/// It sends with `send` (`sendto`), never `sendmsg`: the channel passes no descriptors, and the
/// worker's seccomp filter refuses `sendmsg`, the one call that could pass one to the host. Small
/// frames (header and payload) are copied into one buffer first, so they still cost one call.
pub(crate) fn write_all(
    fd: BorrowedFd<'_>,
    parts: &[&[u8]],
    deadline: &Deadline,
) -> Result<(), (usize, IpcError)> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total <= COALESCE_BYTES && parts.len() > 1 {
        let mut joined = [0u8; COALESCE_BYTES];
        let mut at = 0;
        for part in parts {
            joined[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        return send_all(fd, &joined[..total], deadline);
    }
    let mut sent = 0usize;
    for part in parts {
        send_all(fd, part, deadline).map_err(|(n, e)| (sent + n, e))?;
        sent += part.len();
    }
    Ok(())
}

/// Writes all of `bytes`, waiting for room until the deadline; on error, how many went out.
fn send_all(
    fd: BorrowedFd<'_>,
    bytes: &[u8],
    deadline: &Deadline,
) -> Result<(), (usize, IpcError)> {
    let mut sent = 0usize;
    while sent < bytes.len() {
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        match send(fd, &bytes[sent..], flags) {
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
    fn parts_past_the_coalescing_size_arrive_in_order() {
        let (a, b) = pair();
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let expected: Vec<u8> = b"head".iter().chain(&big).copied().collect();
        let want = expected.len();
        let reader = std::thread::spawn(move || {
            let d = Deadline::after(Duration::from_secs(10));
            let mut got = Vec::new();
            while got.len() < want {
                read_append(b.as_fd(), &mut got, 65536, &d).unwrap();
            }
            got
        });
        let d = Deadline::after(Duration::from_secs(10));
        write_all(a.as_fd(), &[b"head", &big], &d).unwrap();
        assert_eq!(reader.join().unwrap(), expected);
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
