//! The channel between the roma host and a worker process.
//!
//! Messages are encoded with bincode behind a small codec trait and travel over one of two
//! transports: a Unix socketpair with length-prefixed frames, or sealed shared-memory regions
//! with a futex doorbell (the socket stays the liveness channel). Everything read from a worker
//! is untrusted: lengths are bounded, frames are copied out of shared memory before they are
//! parsed, and no wait on the worker is without a timeout.
#![deny(missing_docs)]
