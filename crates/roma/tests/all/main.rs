//! RomaService end to end: real worker processes, real V8.
mod common;
mod newcomer;
mod pool;
mod service;
mod udf;
