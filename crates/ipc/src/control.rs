//! The control channel: a `SOCK_SEQPACKET` socketpair carrying fixed-size [`Control`] frames.
//!
//! While a worker runs JS its main loop is inside V8 and does not read the main channel, so a
//! cancel travels here and a dedicated worker thread waits on [`ControlReceiver::recv`]. Frames
//! are 16 bytes: tag (`u32` LE), reserved (`u32`, zero), request id (`u64` LE). The host only
//! writes to this socket and never reads what the worker might write back.

use crate::IpcError;
use crate::deadline::Deadline;
use crate::protocol::Control;
use crate::sockio::{wait_ready, write_all};
use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType, recv, socketpair};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// Size of a control frame.
pub const CONTROL_FRAME_LEN: usize = 16;
const TAG_CANCEL: u32 = 1;

/// Encodes a control message as its fixed-size frame.
pub fn encode_control(msg: Control) -> [u8; CONTROL_FRAME_LEN] {
    let mut f = [0u8; CONTROL_FRAME_LEN];
    match msg {
        Control::Cancel { request_id } => {
            f[0..4].copy_from_slice(&TAG_CANCEL.to_le_bytes());
            f[8..16].copy_from_slice(&request_id.to_le_bytes());
        }
    }
    f
}

/// Decodes a control frame; anything but a well-formed 16-byte frame is an error.
pub fn decode_control(frame: &[u8]) -> Result<Control, IpcError> {
    let frame: &[u8; CONTROL_FRAME_LEN] = frame
        .try_into()
        .map_err(|_| IpcError::malformed(format!("control frame of {} bytes", frame.len())))?;
    let (tag, rest) = frame.split_at(4);
    let (reserved, id) = rest.split_at(4);
    if reserved != [0; 4] {
        return Err(IpcError::malformed(
            "control frame has non-zero reserved bytes",
        ));
    }
    let mut tag_bytes = [0u8; 4];
    tag_bytes.copy_from_slice(tag);
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(id);
    match u32::from_le_bytes(tag_bytes) {
        TAG_CANCEL => Ok(Control::Cancel {
            request_id: u64::from_le_bytes(id_bytes),
        }),
        other => Err(IpcError::malformed(format!("unknown control tag {other}"))),
    }
}

/// A fresh CLOEXEC seqpacket socketpair for control frames: (host end, worker end).
pub(crate) fn control_pair() -> Result<(OwnedFd, OwnedFd), IpcError> {
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// The host's end: sends control frames.
#[derive(Debug)]
pub struct ControlSender {
    fd: OwnedFd,
}

impl ControlSender {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        ControlSender { fd }
    }

    /// Sends `msg`, waiting at most `timeout` for room (a worker that never drains its control
    /// socket makes this a timeout, not a hang).
    pub fn send(&self, msg: Control, timeout: Duration) -> Result<(), IpcError> {
        let frame = encode_control(msg);
        write_all(self.fd.as_fd(), &[&frame], &Deadline::after(timeout)).map_err(|(_, e)| e)
    }
}

/// The worker's end: receives control frames (normally on a dedicated thread).
#[derive(Debug)]
pub struct ControlReceiver {
    fd: OwnedFd,
}

impl ControlReceiver {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        ControlReceiver { fd }
    }

    /// The socket, for callers that poll it together with other fds.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Receives the next control message; `None` waits without limit. EOF (the host closed its
    /// end) is [`IpcError::Closed`].
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Control, IpcError> {
        let deadline = Deadline::after(timeout.unwrap_or(Duration::MAX));
        let mut buf = [0u8; CONTROL_FRAME_LEN + 1];
        loop {
            match recv(
                &self.fd,
                &mut buf[..],
                RecvFlags::DONTWAIT | RecvFlags::TRUNC,
            ) {
                Ok((_, 0)) => return Err(IpcError::Closed),
                Ok((_, n)) if n != CONTROL_FRAME_LEN => {
                    return Err(IpcError::malformed(format!("control frame of {n} bytes")));
                }
                Ok(_) => return decode_control(&buf[..CONTROL_FRAME_LEN]),
                Err(Errno::AGAIN) => loop {
                    match wait_ready(self.fd.as_fd(), PollFlags::IN, &deadline) {
                        Err(e) if e.is_timeout() && timeout.is_none() => continue,
                        other => {
                            other?;
                            break;
                        }
                    }
                },
                Err(Errno::INTR) => continue,
                Err(Errno::CONNRESET) => return Err(IpcError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cancel_travels_and_eof_is_closed() {
        let (h, w) = control_pair().unwrap();
        let (tx, rx) = (ControlSender::new(h), ControlReceiver::new(w));
        tx.send(Control::Cancel { request_id: 42 }, Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            rx.recv(Some(Duration::from_secs(1))).unwrap(),
            Control::Cancel { request_id: 42 }
        );
        assert!(
            rx.recv(Some(Duration::from_millis(10)))
                .unwrap_err()
                .is_timeout()
        );
        drop(tx);
        assert!(rx.recv(None).unwrap_err().is_closed());
    }

    #[test]
    fn wrong_sized_frames_are_rejected() {
        let (h, w) = control_pair().unwrap();
        let rx = ControlReceiver::new(w);
        // Shorter, then longer than a control frame.
        for frame in [&[1u8; 3][..], &[1u8; 40][..]] {
            write_all(
                h.as_fd(),
                &[frame],
                &Deadline::after(Duration::from_secs(1)),
            )
            .unwrap();
            let got = rx.recv(None);
            assert!(
                matches!(got, Err(IpcError::Malformed(_))),
                "{} bytes: {got:?}",
                frame.len()
            );
        }
    }

    #[test]
    fn full_socket_times_out_the_sender() {
        let (h, _w) = control_pair().unwrap();
        let tx = ControlSender::new(h);
        let mut result = Ok(());
        for _ in 0..100_000 {
            result = tx.send(Control::Cancel { request_id: 1 }, Duration::from_millis(5));
            if result.is_err() {
                break;
            }
        }
        assert!(result.unwrap_err().is_timeout());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_control(&bytes);
        }

        #[test]
        fn round_trip(id in any::<u64>()) {
            let m = Control::Cancel { request_id: id };
            prop_assert_eq!(decode_control(&encode_control(m)).unwrap(), m);
        }
    }
}
