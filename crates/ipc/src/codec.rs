//! Message encoding behind a small trait, so the wire format can be swapped (bincode today).
//!
//! Decoding is where a hostile worker's bytes meet the host's allocator, so the decoder is bounded
//! twice: the frame is already capped by the transport, and bincode runs with a byte limit that
//! bounds every string and vector it materialises. A frame must be consumed exactly: trailing bytes
//! are an error.

use crate::IpcError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default decode limit of [`BincodeCodec`]: room for a 64 MiB frame plus container overhead.
pub const DEFAULT_DECODE_LIMIT: usize = 96 << 20;

/// Turns messages into bytes and back.
pub trait Codec: Send + Sync {
    /// Appends the encoding of `value` to `out`.
    fn encode<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), IpcError>;

    /// Decodes exactly one value from all of `bytes`, which come from an untrusted peer.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, IpcError>;
}

/// bincode 2 (standard config: little-endian varints) with a decode limit of `LIMIT` bytes, which
/// bounds the total of all strings and byte vectors a single decode may allocate.
#[derive(Clone, Copy, Debug, Default)]
pub struct BincodeCodec<const LIMIT: usize = DEFAULT_DECODE_LIMIT>;

impl<const LIMIT: usize> Codec for BincodeCodec<LIMIT> {
    fn encode<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), IpcError> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map(|_| ())
            .map_err(|e| IpcError::Encode(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, IpcError> {
        let config = bincode::config::standard().with_limit::<LIMIT>();
        match bincode::serde::decode_from_slice::<T, _>(bytes, config) {
            Ok((value, used)) if used == bytes.len() => Ok(value),
            Ok((_, used)) => Err(IpcError::malformed(format!(
                "{} trailing bytes after the message",
                bytes.len() - used
            ))),
            Err(bincode::error::DecodeError::LimitExceeded) => Err(IpcError::PayloadTooLarge {
                len: bytes.len() as u64,
                limit: LIMIT as u64,
                what: "decode limit",
            }),
            Err(e) => Err(IpcError::malformed(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let c = BincodeCodec::<1024>;
        let mut buf = Vec::new();
        c.encode(&("hi".to_string(), 7u64), &mut buf).unwrap();
        let back: (String, u64) = c.decode(&buf).unwrap();
        assert_eq!(back, ("hi".to_string(), 7));
        buf.push(0);
        assert!(matches!(
            c.decode::<(String, u64)>(&buf),
            Err(IpcError::Malformed(_))
        ));
    }

    #[test]
    fn limit_bounds_claimed_lengths() {
        // A string that claims 1 MiB, with the bytes present: over a 1 KiB limit.
        let c = BincodeCodec::<1024>;
        let mut buf = Vec::new();
        c.encode(&"x".repeat(1 << 20), &mut buf).unwrap();
        assert!(matches!(
            c.decode::<String>(&buf),
            Err(IpcError::PayloadTooLarge { .. })
        ));
        // A huge claimed length with no bytes behind it is an error, not an allocation.
        let huge = [0xFDu8, 0, 0, 0, 0, 0, 0, 0, 0x10];
        assert!(
            BincodeCodec::<DEFAULT_DECODE_LIMIT>
                .decode::<String>(&huge)
                .is_err()
        );
    }
}
