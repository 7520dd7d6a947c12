//! RomaService end to end: real worker processes, real V8.
mod cgroup;
mod check;
mod common;
mod direct;
mod newcomer;
mod pool;
mod profile;
mod recycle;
mod service;
mod tenant;
mod udf;
