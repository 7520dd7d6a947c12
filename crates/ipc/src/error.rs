//! The error type of roma-ipc.
//!
//! Every failure of a channel is a value of [`IpcError`]: a peer that sends garbage, lies about a
//! length, stops answering or dies is reported here, never as a panic or a hang. Each variant maps
//! to a [`roma_core::ErrorKind`] so the host can turn it into a [`roma_core::RomaError`].

use roma_core::{ErrorKind, RomaError};
use std::io;

/// What went wrong on a channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpcError {
    /// Nothing arrived (or the peer took nothing) before the deadline. The channel is still usable:
    /// a partly received frame is kept and completed by the next call.
    #[error("timed out after {0:?} waiting for the peer")]
    Timeout(std::time::Duration),
    /// The peer closed its end or died (EOF on the socket).
    #[error("the peer closed the channel")]
    Closed,
    /// A payload is larger than the limit that applies to it.
    #[error("payload of {len} bytes exceeds the limit of {limit} bytes ({what})")]
    PayloadTooLarge {
        /// The payload's size (as claimed, for a received frame).
        len: u64,
        /// The limit it broke.
        limit: u64,
        /// Which limit: `frame cap`, `shared-memory region`, `decode limit`.
        what: &'static str,
    },
    /// The peer sent bytes that do not form a valid frame or message.
    #[error("malformed message from the peer: {0}")]
    Malformed(String),
    /// A message could not be encoded (a bug on this side, not the peer's).
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// An earlier failure left the byte stream out of step; the channel must be dropped.
    #[error("the channel is broken by an earlier failure: {0}")]
    Broken(String),
    /// Setting up the channel failed (memfd, mmap, seals, bad inherited fds or handoff string).
    #[error("channel setup failed: {0}")]
    Setup(String),
    /// An operating-system call failed.
    #[error("i/o error on the channel: {0}")]
    Io(#[from] io::Error),
}

impl IpcError {
    /// The roma error kind this failure is reported as.
    pub fn kind(&self) -> ErrorKind {
        match self {
            IpcError::Timeout(_) => ErrorKind::Timeout,
            IpcError::Closed | IpcError::Malformed(_) | IpcError::Broken(_) => {
                ErrorKind::WorkerCrashed
            }
            IpcError::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            IpcError::Encode(_) | IpcError::Setup(_) | IpcError::Io(_) => ErrorKind::Internal,
        }
    }

    /// Shorthand for a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, IpcError::Timeout(_))
    }

    /// Shorthand for a closed channel (peer gone).
    pub fn is_closed(&self) -> bool {
        matches!(self, IpcError::Closed)
    }

    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        IpcError::Malformed(msg.into())
    }

    pub(crate) fn setup(msg: impl Into<String>) -> Self {
        IpcError::Setup(msg.into())
    }
}

impl From<rustix::io::Errno> for IpcError {
    fn from(e: rustix::io::Errno) -> Self {
        IpcError::Io(e.into())
    }
}

impl From<IpcError> for RomaError {
    fn from(e: IpcError) -> Self {
        RomaError::new(e.kind(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_roma_kinds() {
        let t = IpcError::Timeout(std::time::Duration::from_millis(5));
        assert!(t.is_timeout());
        assert_eq!(RomaError::from(t).kind(), ErrorKind::Timeout);
        assert_eq!(IpcError::Closed.kind(), ErrorKind::WorkerCrashed);
        let big = IpcError::PayloadTooLarge {
            len: 10,
            limit: 5,
            what: "frame cap",
        };
        assert_eq!(big.kind(), ErrorKind::PayloadTooLarge);
        assert!(big.to_string().contains("10 bytes"));
        assert_eq!(IpcError::malformed("x").kind(), ErrorKind::WorkerCrashed);
    }
}
