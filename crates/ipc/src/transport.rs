//! The [`Transport`] trait (bytes in, bytes out, with timeouts) and [`AnyTransport`], the enum
//! over the two implementations that the rest of roma holds.

use crate::IpcError;
use crate::config::TransportKind;
use crate::shm::ShmTransport;
use crate::socket::SocketTransport;
use std::time::Duration;

/// A bidirectional, message-preserving byte channel to one peer process. Used by both ends.
///
/// Sends are bounded by the configured send timeout; receives by the timeout passed in. A receive
/// that times out leaves the channel usable. After [`IpcError::Closed`] or [`IpcError::Broken`] the
/// channel is dead and should be dropped.
pub trait Transport: Send {
    /// Sends one message.
    fn send(&mut self, payload: &[u8]) -> Result<(), IpcError>;

    /// Receives one message into `out` (its old contents are replaced; its capacity is reused).
    fn recv_into(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<(), IpcError>;

    /// Receives one message.
    fn recv(&mut self, timeout: Duration) -> Result<Vec<u8>, IpcError> {
        let mut out = Vec::new();
        self.recv_into(&mut out, timeout)?;
        Ok(out)
    }

    /// Which transport this is.
    fn kind(&self) -> TransportKind;

    /// Sets how long a wait may spin before it sleeps (see [`crate::answer_spin`] for the policy that
    /// chooses it). A transport that does not spin (the socket) ignores it.
    fn set_spin(&mut self, spin: Duration) {
        let _ = spin;
    }
}

/// Either transport, chosen at run time by [`crate::ChannelConfig::kind`].
#[derive(Debug)]
pub enum AnyTransport {
    /// Frames over the socketpair.
    Socket(SocketTransport),
    /// Shared-memory regions with a futex doorbell.
    SharedMemory(ShmTransport),
}

impl From<SocketTransport> for AnyTransport {
    fn from(t: SocketTransport) -> Self {
        AnyTransport::Socket(t)
    }
}

impl From<ShmTransport> for AnyTransport {
    fn from(t: ShmTransport) -> Self {
        AnyTransport::SharedMemory(t)
    }
}

impl Transport for AnyTransport {
    fn send(&mut self, payload: &[u8]) -> Result<(), IpcError> {
        match self {
            AnyTransport::Socket(t) => t.send(payload),
            AnyTransport::SharedMemory(t) => t.send(payload),
        }
    }

    fn recv_into(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<(), IpcError> {
        match self {
            AnyTransport::Socket(t) => t.recv_into(out, timeout),
            AnyTransport::SharedMemory(t) => t.recv_into(out, timeout),
        }
    }

    fn kind(&self) -> TransportKind {
        match self {
            AnyTransport::Socket(_) => TransportKind::Socket,
            AnyTransport::SharedMemory(_) => TransportKind::SharedMemory,
        }
    }

    fn set_spin(&mut self, spin: Duration) {
        if let AnyTransport::SharedMemory(t) = self {
            t.set_spin(spin);
        }
    }
}
