//! roma serve end to end: a real server on 127.0.0.1 (a random port) with real workers,
//! driven by a real HTTP client and by raw sockets for the hostile cases.
mod api;
mod bindings;
mod common;
mod drain;
mod etcd;
mod grpc;
mod grpc_bindings;
mod grpc_limits;
mod limits;
mod slow_clients;
mod store;
mod tls;
