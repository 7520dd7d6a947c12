//! The channel between the roma host and a worker process.
//!
//! roma runs untrusted code in jailed worker processes; this crate is how the host talks to them.
//! It sits just above `roma-core` (whose types it carries) and below the worker and the host-side
//! dispatcher. It is one of the three crates allowed `unsafe` (memfd mapping, raw copies, fd
//! adoption), and every block says why it holds.
//!
//! # Layers
//!
//! - The encoding: messages to bytes and back, one encoding (bincode 2, standard config) whose
//!   decoder runs with a byte limit ([`DEFAULT_DECODE_LIMIT`]), which bounds every string and
//!   vector a hostile message can make the host allocate, and rejects trailing bytes.
//! - [`Transport`]: bytes between two processes, usable from either end, with timeouts. Two
//!   implementations, held as [`AnyTransport`]:
//!   - [`SocketTransport`]: a Unix stream socketpair carrying frames, each a `u32` little-endian
//!     length followed by that many bytes.
//!   - [`ShmTransport`]: one memfd region per direction, mapped by both processes, with a futex
//!     doorbell inside the mapping; the socketpair stays as the liveness channel and carries
//!     payloads too large for a region (the slow path) unless [`OversizePolicy::Reject`] is set.
//! - [`Endpoint`]: a typed channel, [`HostEndpoint`] / [`WorkerEndpoint`], over the messages in
//!   [`protocol`]; [`conversation`] holds the rules both ends keep while one request runs (its
//!   [`RequestTime`], the host-function-timeout rule), and [`Deadline`] bounds every wait. Cancellation has its own small socket ([`ControlSender`] / [`ControlReceiver`],
//!   fixed 16-byte frames), because the worker is inside V8 when a cancel matters.
//! - [`spawn_pair`] / [`ChildHandoff`] / [`WorkerLink`]: setting the channel up across `exec`.
//!
//! # Regions and the doorbell
//!
//! A region is a memfd sized and sealed by the host (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`)
//! before the worker sees it, so the worker cannot truncate it and `SIGBUS` the host. It starts
//! with a 128-byte header of atomic words (the sender's cache line: `seq`, `len`, `kind`,
//! `sender_cpu`, `ack_waiting`; the receiver's: `ack`, `waiting`), then the payload area
//! (default 1 MiB, like Roma's buffer). A sender waits until `ack` equals its last `seq` (the
//! slot is free), copies the payload in, sets `len`/`kind`, stores `seq + 1` and, if the receiver
//! announced it is sleeping, `FUTEX_WAKE`s it. The receiver announces itself with
//! `waiting = 1`, re-checks `seq` (the `SeqCst` Dekker pair that rules out lost wake-ups), then
//! `FUTEX_WAIT`s without `FUTEX_PRIVATE_FLAG` (the word is shared between processes). Both sides
//! start from the known initial `seq` of 0, so a worker that starts after the host already sent
//! its first message still sees it. Before blocking, a side spins for a few microseconds only if
//! the peer last ran on another CPU (`sched_getcpu`); spinning on a shared core starves the peer.
//!
//! # Trust
//!
//! Everything read from a worker is untrusted, and a worker can write any byte of the shared
//! mappings at any time:
//! - payloads are copied out of shared memory before they are parsed (no TOCTOU), and header
//!   words are read once and validated (`len` against the region and the frame cap);
//! - every length is bounded: the frame cap ([`ChannelConfig::max_frame_bytes`], 64 MiB by default)
//!   is checked before any allocation, a frame body grows with the bytes that actually arrived,
//!   and decoding runs under bincode's limit and [`protocol::Message::check_bounds`];
//! - no wait on the worker is unbounded: receives take a timeout ([`IpcError::Timeout`]), sends
//!   use [`ChannelConfig::send_timeout`], and futex sleeps are sliced so that EOF on the socket
//!   ([`IpcError::Closed`]) is noticed while waiting;
//! - a malformed, truncated or oversize frame is an error value for that message; where possible
//!   the channel stays in step (an oversize socket frame is skipped, a lying shm slot is
//!   acknowledged). Only a send cut off mid-frame leaves the channel [`IpcError::Broken`].
//!
//! # Example
//!
//! ```
//! use roma_ipc::{ChannelConfig, ShmTransport, Transport};
//! use std::time::Duration;
//!
//! let (mut host, mut worker) = ShmTransport::pair(&ChannelConfig::shared_memory())?;
//! host.send(b"ping")?;
//! assert_eq!(worker.recv(Duration::from_secs(1))?, b"ping");
//! # Ok::<(), roma_ipc::IpcError>(())
//! ```
#![deny(missing_docs)]

pub mod clock;
mod config;
pub mod control;
pub mod conversation;
mod deadline;
mod doorbell;
mod endpoint;
mod error;
pub mod frame;
mod handoff;
pub mod protocol;
mod region;
mod shm;
mod socket;
mod sockio;
mod transport;

pub use config::{
    ChannelConfig, DEFAULT_MAX_FRAME_BYTES, DEFAULT_REGION_PAYLOAD_BYTES, OversizePolicy,
    TransportKind,
};
pub use control::{ControlReceiver, ControlSender};
pub use conversation::{
    CallIds, HostCallTimeout, MAX_ANSWER_SPIN, MAX_FOLLOW_UP_SPIN, MIN_FOLLOW_UP_SPIN,
    QUICK_ANSWER, RequestTime, answer_spin, follow_up_spin,
};
pub use deadline::Deadline;
pub use endpoint::{
    DEFAULT_DECODE_LIMIT, Endpoint, HostEndpoint, WorkerEndpoint, decode_worker_message,
    encode_message,
};
pub use error::IpcError;
pub use handoff::{ChildHandoff, ChildSpec, HostLink, WorkerLink, spawn_pair};
pub use protocol::{
    BUILD_ID, BUILD_QUERY_ARG, Control, HOST_BUILD_ARG_PREFIX, HostToWorker, Message,
    PROBE_MODE_ARG, ProbeResult, WORKER_OOM_EXIT_CODE, WORKER_PROCESS_NAME, WORKER_PROCESS_NAME_C,
    WorkerToHost,
};
pub use shm::ShmTransport;
pub use socket::SocketTransport;
pub use sockio::clear_cloexec;
pub use transport::{AnyTransport, Transport};
