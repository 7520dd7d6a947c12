//! RomaService end to end: real worker processes, real V8.
mod common;
mod service;
mod udf;
