//! Host functions callable from roma's sandboxed JavaScript.
//!
//! A service registers Rust functions by (dotted) name; JS calls them like any function; each
//! call leaves the sandbox as a message on the request's channel, runs in the host with the
//! request's metadata, and returns. The metadata never enters the sandbox. This crate holds the
//! binding registry and the payload types (`FunctionBindingIo`), mirroring Roma's
//! `FunctionBindingIoProto`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
