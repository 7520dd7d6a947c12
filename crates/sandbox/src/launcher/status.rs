//! The setup-status pipe between the host and a launcher, so that a jail that cannot be built
//! makes [`crate::Sandbox::spawn`] fail with the reason instead of starting a worker that dies.
//!
//! The host passes the write end (`--jail-status-fd`). The launcher and its jailed child write
//! one message there if a step fails; the write end is close-on-exec in the jailed child, so a
//! successful `exec` into the jail closes it and the host reads end-of-file with nothing written.
//! A message is a tag byte (`U`: user namespaces unavailable, `E`: any other failure) followed
//! by UTF-8 text.

use crate::SandboxError;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// The longest message the host reads.
const MAX_MESSAGE: usize = 4096;

const TAG_NO_USERNS: u8 = b'U';
const TAG_OTHER: u8 = b'E';

/// Writes `err` to the status descriptor `fd` (best effort: the host may be gone).
pub(crate) fn report(fd: Option<RawFd>, err: &SandboxError) {
    let Some(fd) = fd else { return };
    let (tag, text) = match err {
        SandboxError::NamespacesUnavailable(m) => (TAG_NO_USERNS, m.clone()),
        other => (TAG_OTHER, other.to_string()),
    };
    let mut msg = Vec::with_capacity(1 + text.len());
    msg.push(tag);
    msg.extend_from_slice(text.as_bytes());
    msg.truncate(MAX_MESSAGE);
    // SAFETY: `fd` is the status pipe this process was handed on its command line and owns; the
    // ManuallyDrop keeps it open (it is closed by exec or process exit, never twice).
    let mut file = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let _ = file.write_all(&msg);
}

/// The error a status message stands for; `None` for an empty message (the jail was entered).
pub(crate) fn decode(msg: &[u8]) -> Option<SandboxError> {
    let (&tag, text) = msg.split_first()?;
    let text = String::from_utf8_lossy(text).into_owned();
    Some(if tag == TAG_NO_USERNS {
        SandboxError::NamespacesUnavailable(text)
    } else {
        SandboxError::JailSetup(text)
    })
}

/// Reads the status pipe until end-of-file or `timeout`, keeping at most [`MAX_MESSAGE`] bytes.
/// `Ok(None)` on a clean end-of-file with no message.
pub(crate) fn read(fd: &OwnedFd, timeout: Duration) -> Result<Option<SandboxError>, SandboxError> {
    let deadline = Instant::now() + timeout;
    let mut msg: Vec<u8> = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SandboxError::JailSetup(format!(
                "the launcher did not finish building the jail within {timeout:?}"
            )));
        }
        let ts = rustix::event::Timespec::try_from(left)
            .map_err(|_| SandboxError::InvalidSpec("status timeout too large".into()))?;
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(SandboxError::os("poll the jail status pipe", e)),
        }
        match rustix::io::read(fd.as_fd(), &mut buf) {
            Ok(0) => return Ok(decode(&msg)),
            Ok(n) => {
                let room = MAX_MESSAGE.saturating_sub(msg.len());
                msg.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(Errno::INTR) | Err(Errno::AGAIN) => {}
            Err(e) => return Err(SandboxError::os("read the jail status pipe", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::pipe::{PipeFlags, pipe_with};
    use std::os::fd::AsRawFd;

    #[test]
    fn messages_round_trip_through_a_pipe() {
        for err in [
            SandboxError::NamespacesUnavailable("no userns".into()),
            SandboxError::InvalidSpec("bad".into()),
        ] {
            let (r, w) = pipe_with(PipeFlags::CLOEXEC).unwrap();
            report(Some(w.as_raw_fd()), &err);
            drop(w);
            let got = read(&r, Duration::from_secs(5)).unwrap().unwrap();
            match (&err, &got) {
                (
                    SandboxError::NamespacesUnavailable(a),
                    SandboxError::NamespacesUnavailable(b),
                ) => {
                    assert_eq!(a, b)
                }
                (_, SandboxError::JailSetup(text)) => assert!(text.contains("bad"), "{text}"),
                _ => panic!("{err:?} came back as {got:?}"),
            }
        }
    }

    #[test]
    fn empty_pipe_means_entered_and_garbage_is_bounded() {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        drop(w);
        assert!(read(&r, Duration::from_secs(5)).unwrap().is_none());
        assert!(decode(&[]).is_none());
        assert!(matches!(
            decode(&[0xff, 0xfe]),
            Some(SandboxError::JailSetup(_))
        ));
        let (r, w) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        let big = vec![b'E'; 3 * MAX_MESSAGE];
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::File::from(w);
            let _ = f.write_all(&big);
        });
        let Some(SandboxError::JailSetup(text)) = read(&r, Duration::from_secs(5)).unwrap() else {
            panic!("expected a setup error");
        };
        writer.join().unwrap();
        assert_eq!(text.len(), MAX_MESSAGE - 1);
    }
}
