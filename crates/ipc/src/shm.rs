//! The shared-memory transport: one sealed region per direction, a futex doorbell on the `seq`
//! word of each, and the socketpair kept for liveness (EOF) and for payloads larger than a region.
//!
//! Sending (one slot per direction):
//! 1. wait (bounded by the send timeout) until the receiver has acknowledged our last message
//!    (`ack == our seq`), so we never overwrite a payload it is still copying;
//! 2. copy the payload into the region and set `len` and `kind = INLINE`, or, for a payload over
//!    the region's capacity, set `kind = SOCKET` (slow path) or fail with `PayloadTooLarge`
//!    ([`OversizePolicy`]);
//! 3. ring: `seq += 1` (wrapping) and wake the receiver if it sleeps; on the slow path, then write
//!    the frame on the socket.
//!
//! Receiving: wait until `seq` differs from the last one seen (both sides start from the known
//! initial value 0, never from what is in shared memory, so a late-starting worker cannot miss the
//! first message), read `kind` and `len`, validate `len` against the region, copy the payload out,
//! then ring `ack`. A lying length or unknown kind is reported for that message only and the slot
//! is still acknowledged, so the channel stays in step.

use crate::IpcError;
use crate::config::{ChannelConfig, OversizePolicy, TransportKind};
use crate::deadline::Deadline;
use crate::doorbell::{ring, wait_until};
use crate::region::{KIND_INLINE, KIND_SOCKET, Region};
use crate::socket::SocketTransport;
use crate::transport::Transport;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Shared-memory transport; see the module docs.
#[derive(Debug)]
pub struct ShmTransport {
    socket: SocketTransport,
    tx: Region,
    rx: Region,
    tx_seq: u32,
    rx_seq: u32,
    /// A slow-path message whose doorbell was seen but whose socket frame is not yet complete.
    pending_socket: Option<u32>,
    oversize: OversizePolicy,
    max_frame: usize,
    send_timeout: Duration,
    spin: Duration,
}

impl ShmTransport {
    pub(crate) fn new(socket: OwnedFd, tx: Region, rx: Region, config: &ChannelConfig) -> Self {
        ShmTransport {
            socket: SocketTransport::from_fd(socket, config),
            tx,
            rx,
            tx_seq: 0,
            rx_seq: 0,
            pending_socket: None,
            oversize: config.oversize,
            max_frame: config.max_frame_bytes,
            send_timeout: config.send_timeout,
            spin: config.cross_core_spin,
        }
    }

    /// A connected pair in this process (tests, in-process workers). The second end maps the
    /// first's regions the way a worker maps inherited ones.
    pub fn pair(config: &ChannelConfig) -> Result<(ShmTransport, ShmTransport), IpcError> {
        config.validate()?;
        let (sa, sb) = crate::socket::stream_pair()?;
        let a_to_b = Region::create("roma-ipc-a2b", config.region_payload_bytes)?;
        let b_to_a = Region::create("roma-ipc-b2a", config.region_payload_bytes)?;
        let b_rx = Region::from_inherited(
            a_to_b.fd().try_clone_to_owned()?,
            config.region_payload_bytes,
        )?;
        let b_tx = Region::from_inherited(
            b_to_a.fd().try_clone_to_owned()?,
            config.region_payload_bytes,
        )?;
        Ok((
            ShmTransport::new(sa, a_to_b, b_to_a, config),
            ShmTransport::new(sb, b_tx, b_rx, config),
        ))
    }

    /// Sets how long a wait may spin (cross-core only) before it sleeps on the futex. A caller
    /// that expects a quick answer raises it to skip a wake-up; the default is
    /// [`crate::ChannelConfig::cross_core_spin`].
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// True once the peer has closed its socket. Does not wait.
    pub fn peer_gone(&self) -> Result<bool, IpcError> {
        self.socket.peer_gone()
    }

    /// Publishes this side's CPU and returns the spin budget: the configured spin when the peer
    /// last ran on another CPU, zero otherwise (or when unknown).
    fn spin_budget(&self) -> Duration {
        if self.spin.is_zero() {
            return Duration::ZERO;
        }
        // Stored as cpu + 1 so that 0 (the initial value) means "unknown".
        let mine = u32::try_from(rustix::thread::sched_getcpu()).unwrap_or(u32::MAX - 1) + 1;
        self.tx.header().sender_cpu.store(mine, Ordering::Relaxed);
        let peer = self.rx.header().sender_cpu.load(Ordering::Relaxed);
        if peer != 0 && peer != mine {
            self.spin
        } else {
            Duration::ZERO
        }
    }

    fn alive(socket: &SocketTransport) -> Result<(), IpcError> {
        if socket.peer_gone()? {
            Err(IpcError::Closed)
        } else {
            Ok(())
        }
    }

    fn finish_socket(
        &mut self,
        claimed: u32,
        out: &mut Vec<u8>,
        deadline: &Deadline,
    ) -> Result<(), IpcError> {
        self.pending_socket = Some(claimed);
        let read = self.socket.recv_by(out, deadline);
        if read.as_ref().is_err_and(IpcError::is_timeout) {
            // Keep the slot; the next receive continues the frame.
            return read;
        }
        self.pending_socket = None;
        let h = self.rx.header();
        ring(&h.ack, &h.ack_waiting, self.rx_seq);
        read?;
        if out.len() != claimed as usize {
            return Err(IpcError::malformed(format!(
                "slow-path frame is {} bytes but the doorbell said {claimed}",
                out.len()
            )));
        }
        Ok(())
    }
}

impl Transport for ShmTransport {
    fn send(&mut self, payload: &[u8]) -> Result<(), IpcError> {
        self.socket.check_broken()?;
        if payload.len() > self.max_frame {
            return Err(IpcError::PayloadTooLarge {
                len: payload.len() as u64,
                limit: self.max_frame as u64,
                what: "frame cap",
            });
        }
        let inline = payload.len() <= self.tx.capacity();
        if !inline && self.oversize == OversizePolicy::Reject {
            return Err(IpcError::PayloadTooLarge {
                len: payload.len() as u64,
                limit: self.tx.capacity() as u64,
                what: "shared-memory region",
            });
        }
        let deadline = Deadline::after(self.send_timeout);
        let spin = self.spin_budget();
        let h = self.tx.header();
        let seq = self.tx_seq;
        let socket = &self.socket;
        wait_until(
            &h.ack,
            &h.ack_waiting,
            |a| a == seq,
            &deadline,
            spin,
            || Self::alive(socket),
        )?;
        // Both fit in u32: the cap is validated to be at most u32::MAX.
        let len = payload.len() as u32;
        if inline {
            self.tx.write_payload(payload)?;
            h.kind.store(KIND_INLINE, Ordering::Relaxed);
        } else {
            h.kind.store(KIND_SOCKET, Ordering::Relaxed);
        }
        h.len.store(len, Ordering::Relaxed);
        self.tx_seq = self.tx_seq.wrapping_add(1);
        ring(&h.seq, &h.waiting, self.tx_seq);
        if !inline {
            self.socket.send_by(payload, &deadline)?;
        }
        Ok(())
    }

    fn recv_into(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<(), IpcError> {
        self.socket.check_broken()?;
        let deadline = Deadline::after(timeout);
        if let Some(claimed) = self.pending_socket {
            return self.finish_socket(claimed, out, &deadline);
        }
        let spin = self.spin_budget();
        let h = self.rx.header();
        let last = self.rx_seq;
        let socket = &self.socket;
        let seq = wait_until(
            &h.seq,
            &h.waiting,
            |s| s != last,
            &deadline,
            spin,
            || Self::alive(socket),
        )?;
        self.rx_seq = seq;
        let kind = h.kind.load(Ordering::Acquire);
        let len = h.len.load(Ordering::Acquire);
        match kind {
            KIND_INLINE => {
                let copied = if len as usize > self.max_frame {
                    Err(IpcError::PayloadTooLarge {
                        len: u64::from(len),
                        limit: self.max_frame as u64,
                        what: "frame cap",
                    })
                } else {
                    self.rx.read_payload(len as usize, out)
                };
                ring(&h.ack, &h.ack_waiting, seq);
                copied
            }
            KIND_SOCKET => self.finish_socket(len, out, &deadline),
            other => {
                ring(&h.ack, &h.ack_waiting, seq);
                Err(IpcError::malformed(format!("unknown payload kind {other}")))
            }
        }
    }

    fn kind(&self) -> TransportKind {
        TransportKind::SharedMemory
    }

    fn set_spin(&mut self, spin: Duration) {
        ShmTransport::set_spin(self, spin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ChannelConfig {
        ChannelConfig {
            region_payload_bytes: 4096,
            send_timeout: Duration::from_millis(200),
            ..ChannelConfig::shared_memory()
        }
    }

    #[test]
    fn inline_and_slow_path_round_trips() {
        let (mut a, mut b) = ShmTransport::pair(&small()).unwrap();
        let t = Duration::from_secs(5);
        for size in [0usize, 100, 4096] {
            let msg = vec![size as u8; size];
            a.send(&msg).unwrap();
            assert_eq!(b.recv(t).unwrap(), msg);
            b.send(&msg).unwrap();
            assert_eq!(a.recv(t).unwrap(), msg);
        }
        // Larger than the region: slow path over the socket, from a thread (it blocks on the socket).
        let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let big2 = big.clone();
        let h = std::thread::spawn(move || {
            a.send(&big2).unwrap();
            a.send(b"after").unwrap();
            a
        });
        assert_eq!(b.recv(t).unwrap(), big);
        assert_eq!(b.recv(t).unwrap(), b"after");
        let _a = h.join().unwrap();
    }

    #[test]
    fn reject_policy_keeps_the_channel() {
        let config = ChannelConfig {
            oversize: OversizePolicy::Reject,
            ..small()
        };
        let (mut a, mut b) = ShmTransport::pair(&config).unwrap();
        match a.send(&[0; 4097]) {
            Err(IpcError::PayloadTooLarge { what, .. }) => assert_eq!(what, "shared-memory region"),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        a.send(b"next").unwrap();
        assert_eq!(b.recv(Duration::from_secs(5)).unwrap(), b"next");
    }

    #[test]
    fn unacknowledged_slot_times_out_the_send() {
        let (mut a, mut b) = ShmTransport::pair(&small()).unwrap();
        a.send(b"one").unwrap();
        // b never receives: the second send must wait for the ack and give up.
        assert!(a.send(b"two").unwrap_err().is_timeout());
        assert_eq!(b.recv(Duration::from_secs(1)).unwrap(), b"one");
        a.send(b"two").unwrap();
        assert_eq!(b.recv(Duration::from_secs(1)).unwrap(), b"two");
    }

    #[test]
    fn lying_length_is_an_error_for_that_message_only() {
        let (mut a, mut b) = ShmTransport::pair(&small()).unwrap();
        // Play a hostile peer: a length far past the region, then ring.
        let h = a.tx.header();
        h.len.store(u32::MAX, Ordering::SeqCst);
        h.kind.store(KIND_INLINE, Ordering::SeqCst);
        ring(&h.seq, &h.waiting, 1);
        a.tx_seq = 1;
        assert!(matches!(
            b.recv(Duration::from_secs(1)),
            Err(IpcError::PayloadTooLarge { .. })
        ));
        // Unknown kind.
        h.kind.store(99, Ordering::SeqCst);
        a.tx_seq = 2;
        ring(&h.seq, &h.waiting, 2);
        assert!(matches!(
            b.recv(Duration::from_secs(1)),
            Err(IpcError::Malformed(_))
        ));
        a.send(b"ok").unwrap();
        assert_eq!(b.recv(Duration::from_secs(1)).unwrap(), b"ok");
    }

    #[test]
    fn eof_while_waiting_and_timeout() {
        let (a, mut b) = ShmTransport::pair(&small()).unwrap();
        assert!(b.recv(Duration::from_millis(20)).unwrap_err().is_timeout());
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(a);
        });
        assert!(b.recv(Duration::from_secs(10)).unwrap_err().is_closed());
        h.join().unwrap();
    }
}
