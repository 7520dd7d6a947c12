//! Typed endpoints: a transport and the one wire encoding, sending one message type and
//! receiving another.
//!
//! [`HostEndpoint`] sends [`HostToWorker`] and receives [`WorkerToHost`] through
//! [`decode_worker_message`], the host-side decoder (bounded bincode decode, then
//! [`Message::check_bounds`]); [`WorkerEndpoint`] is the mirror image. Both hold an
//! [`AnyTransport`], the transport chosen at run time.
//!
//! The encoding is bincode 2 (standard config: little-endian varints). Decoding is where a
//! hostile worker's bytes meet the host's allocator, so the decoder is bounded twice: the frame
//! is already capped by the transport, and bincode runs with a byte limit
//! ([`DEFAULT_DECODE_LIMIT`]) that bounds every string and vector it materialises. A frame must
//! be consumed exactly: trailing bytes are an error. There is one encoding, so no trait: both
//! ends, the seed corpora and the fuzz targets call these functions.

use crate::IpcError;
use crate::protocol::{HostToWorker, Message, WorkerToHost};
use crate::transport::{AnyTransport, Transport};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::time::Duration;

/// The decode limit of every message: room for a 64 MiB frame plus container overhead.
pub const DEFAULT_DECODE_LIMIT: usize = 96 << 20;

/// Decodes one message from a worker: bounded decode, exact length, per-field bounds.
pub fn decode_worker_message(bytes: &[u8]) -> Result<WorkerToHost, IpcError> {
    decode_checked(bytes)
}

/// The wire form of `msg`, as an endpoint sends it (seed corpora and tests build frames with it).
pub fn encode_message<M: Message>(msg: &M) -> Result<Vec<u8>, IpcError> {
    let mut out = Vec::new();
    encode(msg, &mut out)?;
    Ok(out)
}

fn decode_checked<M: Message>(bytes: &[u8]) -> Result<M, IpcError> {
    let msg: M = decode::<M, DEFAULT_DECODE_LIMIT>(bytes)?;
    msg.check_bounds()?;
    Ok(msg)
}

/// Appends the encoding of `value` to `out`.
fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), IpcError> {
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
        .map(|_| ())
        .map_err(|e| IpcError::Encode(e.to_string()))
}

/// Decodes exactly one value from all of `bytes`, which come from an untrusted peer, allocating
/// at most `LIMIT` bytes for its strings and vectors.
fn decode<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<T, IpcError> {
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

/// Sends `Out`, receives `In`.
#[derive(Debug)]
pub struct Endpoint<Out, In> {
    transport: AnyTransport,
    out_buf: Vec<u8>,
    in_buf: Vec<u8>,
    _types: PhantomData<fn(Out) -> In>,
}

/// The host's typed end.
pub type HostEndpoint = Endpoint<HostToWorker, WorkerToHost>;
/// The worker's typed end.
pub type WorkerEndpoint = Endpoint<WorkerToHost, HostToWorker>;

impl<Out: Message, In: Message> Endpoint<Out, In> {
    /// An endpoint over `transport`.
    pub fn new(transport: impl Into<AnyTransport>) -> Self {
        Endpoint {
            transport: transport.into(),
            out_buf: Vec::new(),
            in_buf: Vec::new(),
            _types: PhantomData,
        }
    }

    /// Encodes and sends one message.
    pub fn send(&mut self, msg: &Out) -> Result<(), IpcError> {
        self.out_buf.clear();
        encode(msg, &mut self.out_buf)?;
        let r = self.transport.send(&self.out_buf);
        // Do not keep a huge buffer around after a rare huge message.
        if self.out_buf.capacity() > 4 << 20 {
            self.out_buf = Vec::new();
        }
        r
    }

    /// Sends `bytes` as one frame as they are, without encoding them: how the worker's fault
    /// injection sends a frame that is not a message.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), IpcError> {
        self.transport.send(bytes)
    }

    /// Receives and decodes one message, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<In, IpcError> {
        self.transport.recv_into(&mut self.in_buf, timeout)?;
        let r = decode_checked(&self.in_buf);
        if self.in_buf.capacity() > 4 << 20 {
            self.in_buf = Vec::new();
        }
        r
    }

    /// Sets how long the next waits may spin before they sleep ([`crate::answer_spin`] and
    /// [`crate::follow_up_spin`] choose it).
    pub fn set_spin(&mut self, spin: Duration) {
        self.transport.set_spin(spin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelConfig, SocketTransport};
    use roma_core::{ErrorKind, ExecOutput, Invocation, RomaError};
    use std::collections::BTreeMap;

    #[test]
    fn typed_round_trip_over_socket() {
        let (a, b) = SocketTransport::pair(&ChannelConfig::socket()).unwrap();
        let mut host = HostEndpoint::new(a);
        let mut worker = WorkerEndpoint::new(b);
        let t = Duration::from_secs(5);
        let exec = HostToWorker::Execute {
            request_id: 9,
            invocation: Invocation::new("v1", "Handler", vec!["\"x\"".into()]),
        };
        host.send(&exec).unwrap();
        assert_eq!(worker.recv(t).unwrap(), exec);
        let reply = WorkerToHost::Executed {
            request_id: 9,
            result: Ok(ExecOutput {
                resp: "\"ok\"".into(),
                metrics: BTreeMap::from([("m".into(), 1.5)]),
                profiler_output: r#"{"nodes":[]}"#.into(),
            }),
        };
        worker.send(&reply).unwrap();
        assert_eq!(host.recv(t).unwrap(), reply);
        let err = WorkerToHost::Loaded {
            result: Err(RomaError::new(ErrorKind::Compile, "SyntaxError").with_stack("at 1:1")),
        };
        worker.send(&err).unwrap();
        assert_eq!(host.recv(t).unwrap(), err);
    }

    #[test]
    fn garbage_from_worker_is_an_error_and_the_channel_goes_on() {
        let (a, mut b) = SocketTransport::pair(&ChannelConfig::socket()).unwrap();
        let mut host = HostEndpoint::new(a);
        let t = Duration::from_secs(5);
        b.send(&[0xff; 7]).unwrap();
        assert!(matches!(host.recv(t), Err(IpcError::Malformed(_))));
        let ok = encode_message(&WorkerToHost::Ready {
            pid: 1,
            v8_version: "10.2".into(),
        })
        .unwrap();
        b.send(&ok).unwrap();
        assert!(matches!(
            host.recv(t),
            Ok(WorkerToHost::Ready { pid: 1, .. })
        ));
        assert!(decode_worker_message(&[]).is_err());
    }

    #[test]
    fn round_trip_and_trailing_bytes() {
        let mut buf = Vec::new();
        encode(&("hi".to_string(), 7u64), &mut buf).unwrap();
        let back: (String, u64) = decode::<_, 1024>(&buf).unwrap();
        assert_eq!(back, ("hi".to_string(), 7));
        buf.push(0);
        assert!(matches!(
            decode::<(String, u64), 1024>(&buf),
            Err(IpcError::Malformed(_))
        ));
    }

    #[test]
    fn limit_bounds_claimed_lengths() {
        // A string that claims 1 MiB, with the bytes present: over a 1 KiB limit.
        let mut buf = Vec::new();
        encode(&"x".repeat(1 << 20), &mut buf).unwrap();
        assert!(matches!(
            decode::<String, 1024>(&buf),
            Err(IpcError::PayloadTooLarge { .. })
        ));
        // A huge claimed length with no bytes behind it is an error, not an allocation.
        let huge = [0xFDu8, 0, 0, 0, 0, 0, 0, 0, 0x10];
        assert!(decode::<String, DEFAULT_DECODE_LIMIT>(&huge).is_err());
    }
}
