//! Channel configuration: which transport, how big the shared regions are, and the limits and
//! timeouts that keep a hostile peer from hurting the host.

use std::time::Duration;

/// Default payload capacity of one shared-memory region (Roma's `kDefaultBufferSizeInMb`).
pub const DEFAULT_REGION_PAYLOAD_BYTES: usize = 1 << 20;
/// Default absolute cap on any frame, on either transport.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;
/// Largest region or frame size the wire format can describe (the length words are `u32`).
pub const MAX_WIRE_LEN: usize = u32::MAX as usize;

/// Which transport carries the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Length-prefixed frames over a Unix socketpair.
    Socket,
    /// Sealed memfd regions with a futex doorbell; the socket is kept for liveness and the slow path.
    SharedMemory,
}

/// What the shared-memory transport does with a payload larger than its region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OversizePolicy {
    /// Send it as a socket frame instead (slower; still bounded by `max_frame_bytes`).
    #[default]
    SlowPath,
    /// Fail the send with [`crate::IpcError::PayloadTooLarge`]; nothing is sent.
    Reject,
}

/// Configuration of one channel. Both ends should use the same values; the handoff string
/// ([`crate::ChildSpec`]) carries the ones the worker needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The transport.
    pub kind: TransportKind,
    /// Payload capacity of each shared-memory region (one per direction). Ignored by the socket.
    pub region_payload_bytes: usize,
    /// What to do with payloads larger than a region.
    pub oversize: OversizePolicy,
    /// Absolute cap on any frame; a larger claimed length is rejected before anything is allocated.
    pub max_frame_bytes: usize,
    /// How long a send may wait for the peer to make room (socket buffer or shm slot).
    pub send_timeout: Duration,
    /// Busy-poll this long before blocking, but only while the two ends run on different cores.
    /// `Duration::ZERO` disables spinning.
    pub cross_core_spin: Duration,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            kind: TransportKind::SharedMemory,
            region_payload_bytes: DEFAULT_REGION_PAYLOAD_BYTES,
            oversize: OversizePolicy::SlowPath,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            send_timeout: Duration::from_secs(5),
            cross_core_spin: Duration::from_micros(3),
        }
    }
}

impl ChannelConfig {
    /// The default configuration with the socket transport.
    pub fn socket() -> Self {
        ChannelConfig {
            kind: TransportKind::Socket,
            ..Default::default()
        }
    }

    /// The default configuration with the shared-memory transport.
    pub fn shared_memory() -> Self {
        ChannelConfig::default()
    }

    /// Checks that the sizes fit the wire format.
    pub fn validate(&self) -> Result<(), crate::IpcError> {
        if self.max_frame_bytes == 0 || self.max_frame_bytes > MAX_WIRE_LEN {
            return Err(crate::IpcError::setup(format!(
                "max_frame_bytes must be in 1..={MAX_WIRE_LEN}, got {}",
                self.max_frame_bytes
            )));
        }
        if self.kind == TransportKind::SharedMemory
            && (self.region_payload_bytes == 0 || self.region_payload_bytes > MAX_WIRE_LEN / 2)
        {
            return Err(crate::IpcError::setup(format!(
                "region_payload_bytes must be in 1..={}, got {}",
                MAX_WIRE_LEN / 2,
                self.region_payload_bytes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_are_checked() {
        assert!(ChannelConfig::default().validate().is_ok());
        assert!(ChannelConfig::socket().validate().is_ok());
        let zero = ChannelConfig {
            max_frame_bytes: 0,
            ..Default::default()
        };
        assert!(zero.validate().is_err());
        let no_region = ChannelConfig {
            region_payload_bytes: 0,
            ..Default::default()
        };
        assert!(no_region.validate().is_err());
        // The socket transport ignores the region size.
        let socket = ChannelConfig {
            region_payload_bytes: 0,
            ..ChannelConfig::socket()
        };
        assert!(socket.validate().is_ok());
    }
}
