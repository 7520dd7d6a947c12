//! Typed endpoints: a transport plus a codec, sending one message type and receiving another.
//!
//! [`HostEndpoint`] sends [`HostToWorker`] and receives [`WorkerToHost`] through
//! [`decode_worker_message`], the host-side decoder (bounded bincode decode, then
//! [`Message::check_bounds`]); [`WorkerEndpoint`] is the mirror image.

use crate::IpcError;
use crate::codec::{BincodeCodec, Codec};
use crate::protocol::{HostToWorker, Message, WorkerToHost};
use crate::transport::{AnyTransport, Transport};
use std::marker::PhantomData;
use std::time::Duration;

/// Decodes one message from a worker: bounded decode, exact length, per-field bounds.
pub fn decode_worker_message(bytes: &[u8]) -> Result<WorkerToHost, IpcError> {
    decode_checked(
        &BincodeCodec::<{ crate::codec::DEFAULT_DECODE_LIMIT }>,
        bytes,
    )
}

fn decode_checked<M: Message, C: Codec>(codec: &C, bytes: &[u8]) -> Result<M, IpcError> {
    let msg: M = codec.decode(bytes)?;
    msg.check_bounds()?;
    Ok(msg)
}

/// Sends `Out`, receives `In`, over transport `T` with codec `C`.
#[derive(Debug)]
pub struct Endpoint<Out, In, T = AnyTransport, C = BincodeCodec> {
    transport: T,
    codec: C,
    out_buf: Vec<u8>,
    in_buf: Vec<u8>,
    _types: PhantomData<fn(Out) -> In>,
}

/// The host's typed end.
pub type HostEndpoint<T = AnyTransport> = Endpoint<HostToWorker, WorkerToHost, T>;
/// The worker's typed end.
pub type WorkerEndpoint<T = AnyTransport> = Endpoint<WorkerToHost, HostToWorker, T>;

impl<Out: Message, In: Message, T: Transport, C: Codec + Default> Endpoint<Out, In, T, C> {
    /// An endpoint over `transport` with the default codec.
    pub fn new(transport: T) -> Self {
        Self::with_codec(transport, C::default())
    }
}

impl<Out: Message, In: Message, T: Transport, C: Codec> Endpoint<Out, In, T, C> {
    /// An endpoint over `transport` with `codec`.
    pub fn with_codec(transport: T, codec: C) -> Self {
        Endpoint {
            transport,
            codec,
            out_buf: Vec::new(),
            in_buf: Vec::new(),
            _types: PhantomData,
        }
    }

    /// Encodes and sends one message.
    pub fn send(&mut self, msg: &Out) -> Result<(), IpcError> {
        self.out_buf.clear();
        self.codec.encode(msg, &mut self.out_buf)?;
        let r = self.transport.send(&self.out_buf);
        // Do not keep a huge buffer around after a rare huge message.
        if self.out_buf.capacity() > 4 << 20 {
            self.out_buf = Vec::new();
        }
        r
    }

    /// Receives and decodes one message, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<In, IpcError> {
        self.transport.recv_into(&mut self.in_buf, timeout)?;
        let r = decode_checked(&self.codec, &self.in_buf);
        if self.in_buf.capacity() > 4 << 20 {
            self.in_buf = Vec::new();
        }
        r
    }

    /// Sets how long the next waits may spin before they sleep ([`crate::answer_spin`] and [`crate::follow_up_spin`] choose it).
    pub fn set_spin(&mut self, spin: Duration) {
        self.transport.set_spin(spin);
    }

    /// The transport underneath.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Takes the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ExecOutput;
    use crate::{ChannelConfig, SocketTransport};
    use roma_core::{ErrorKind, Invocation, RomaError};

    #[test]
    fn typed_round_trip_over_socket() {
        let (a, b) = SocketTransport::pair(&ChannelConfig::socket()).unwrap();
        let mut host: HostEndpoint<SocketTransport> = Endpoint::new(a);
        let mut worker: WorkerEndpoint<SocketTransport> = Endpoint::new(b);
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
                metrics: vec![("m".into(), 1.5)],
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
        let mut host: HostEndpoint<SocketTransport> = Endpoint::new(a);
        let t = Duration::from_secs(5);
        b.send(&[0xff; 7]).unwrap();
        assert!(matches!(host.recv(t), Err(IpcError::Malformed(_))));
        let mut ok = Vec::new();
        BincodeCodec::<1024>
            .encode(
                &WorkerToHost::Ready {
                    pid: 1,
                    v8_version: "10.2".into(),
                },
                &mut ok,
            )
            .unwrap();
        b.send(&ok).unwrap();
        assert!(matches!(
            host.recv(t),
            Ok(WorkerToHost::Ready { pid: 1, .. })
        ));
        assert!(decode_worker_message(&[]).is_err());
    }
}
