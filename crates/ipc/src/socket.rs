//! The socket transport: length-prefixed frames over a Unix stream socketpair.
//!
//! The socket is also the liveness channel of the shared-memory transport, which embeds a
//! [`SocketTransport`] for EOF detection and for the slow path of oversize payloads.

use crate::IpcError;
use crate::config::{ChannelConfig, TransportKind};
use crate::deadline::Deadline;
use crate::frame::{ByteSource, FrameReader, encode_header};
use crate::sockio::{peer_gone, read_append, read_some, write_all};
use crate::transport::Transport;
use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// Frames over a socket; see the module docs.
#[derive(Debug)]
pub struct SocketTransport {
    fd: OwnedFd,
    reader: FrameReader,
    max_frame: usize,
    send_timeout: Duration,
    broken: Option<String>,
}

/// A fresh CLOEXEC Unix stream socketpair.
pub(crate) fn stream_pair() -> Result<(OwnedFd, OwnedFd), IpcError> {
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

struct SocketSource<'a> {
    fd: BorrowedFd<'a>,
    deadline: &'a Deadline,
}

impl ByteSource for SocketSource<'_> {
    fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, IpcError> {
        read_some(self.fd, buf, self.deadline)
    }
    fn read_append(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, IpcError> {
        read_append(self.fd, out, max, self.deadline)
    }
}

impl SocketTransport {
    /// Wraps one end of a stream socketpair.
    pub(crate) fn from_fd(fd: OwnedFd, config: &ChannelConfig) -> Self {
        SocketTransport {
            fd,
            reader: FrameReader::new(config.max_frame_bytes),
            max_frame: config.max_frame_bytes,
            send_timeout: config.send_timeout,
            broken: None,
        }
    }

    /// A connected pair of socket transports in this process (tests, in-process workers).
    pub fn pair(config: &ChannelConfig) -> Result<(SocketTransport, SocketTransport), IpcError> {
        config.validate()?;
        let (a, b) = stream_pair()?;
        Ok((Self::from_fd(a, config), Self::from_fd(b, config)))
    }

    /// The socket, for liveness polling by the owner.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// True once the peer has closed its end. Does not wait.
    pub fn peer_gone(&self) -> Result<bool, IpcError> {
        peer_gone(self.fd.as_fd())
    }

    pub(crate) fn check_broken(&self) -> Result<(), IpcError> {
        match &self.broken {
            Some(why) => Err(IpcError::Broken(why.clone())),
            None => Ok(()),
        }
    }

    /// Sends one frame, bounded by `deadline`.
    pub(crate) fn send_by(&mut self, payload: &[u8], deadline: &Deadline) -> Result<(), IpcError> {
        self.check_broken()?;
        if payload.len() > self.max_frame {
            return Err(IpcError::PayloadTooLarge {
                len: payload.len() as u64,
                limit: self.max_frame as u64,
                what: "frame cap",
            });
        }
        // The cap is at most u32::MAX (ChannelConfig::validate), so this cannot fail.
        let len = u32::try_from(payload.len()).map_err(|_| IpcError::PayloadTooLarge {
            len: payload.len() as u64,
            limit: u32::MAX as u64,
            what: "frame cap",
        })?;
        let header = encode_header(len);
        write_all(self.fd.as_fd(), &[&header, payload], deadline).map_err(|(sent, e)| {
            if sent > 0 {
                // Part of a frame went out: the peer's reader is mid-frame for good.
                self.broken = Some(format!("a send failed after {sent} bytes: {e}"));
            }
            e
        })
    }

    /// Receives one frame, bounded by `deadline`.
    pub(crate) fn recv_by(
        &mut self,
        out: &mut Vec<u8>,
        deadline: &Deadline,
    ) -> Result<(), IpcError> {
        self.check_broken()?;
        let mut src = SocketSource {
            fd: self.fd.as_fd(),
            deadline,
        };
        self.reader.read_frame(&mut src, out)
    }
}

impl Transport for SocketTransport {
    fn send(&mut self, payload: &[u8]) -> Result<(), IpcError> {
        let deadline = Deadline::after(self.send_timeout);
        self.send_by(payload, &deadline)
    }

    fn recv_into(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<(), IpcError> {
        let deadline = Deadline::after(timeout);
        self.recv_by(out, &deadline)
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Socket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_sizes_and_caps() {
        let config = ChannelConfig {
            max_frame_bytes: 1 << 20,
            ..ChannelConfig::socket()
        };
        let (mut a, mut b) = SocketTransport::pair(&config).unwrap();
        let t = Duration::from_secs(5);
        for size in [0usize, 1, 100, 10_000, 1 << 20] {
            let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
            // Send from a thread: 1 MiB does not fit in the socket buffer.
            let (mut a2, msg2) = (a, msg.clone());
            let h = std::thread::spawn(move || {
                a2.send(&msg2).unwrap();
                a2
            });
            assert_eq!(b.recv(t).unwrap(), msg);
            a = h.join().unwrap();
        }
        let too_big = vec![0u8; (1 << 20) + 1];
        assert!(matches!(
            a.send(&too_big),
            Err(IpcError::PayloadTooLarge { .. })
        ));
        a.send(b"still fine").unwrap();
        assert_eq!(b.recv(t).unwrap(), b"still fine");
        assert!(b.recv(Duration::from_millis(10)).unwrap_err().is_timeout());
        drop(a);
        assert!(b.peer_gone().unwrap());
        assert!(b.recv(t).unwrap_err().is_closed());
    }

    #[test]
    fn partial_send_breaks_the_channel() {
        let config = ChannelConfig {
            send_timeout: Duration::from_millis(20),
            ..ChannelConfig::socket()
        };
        let (mut a, _b) = SocketTransport::pair(&config).unwrap();
        let big = vec![0u8; 8 << 20];
        assert!(a.send(&big).unwrap_err().is_timeout());
        assert!(matches!(a.send(b"x"), Err(IpcError::Broken(_))));
    }
}
