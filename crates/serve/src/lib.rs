//! roma as a network service: `roma serve` holds one [`roma::RomaService`] and serves it over
//! HTTP/JSON and gRPC (`roma.v1.Roma`), so code in any language can load and run untrusted JavaScript and WebAssembly.
//!
//! The server stands between roma and clients it does not trust either: loading code needs
//! one bearer token and executing another (read from files, re-read on `SIGHUP`), every body,
//! batch, code object and connection is bounded, a slow client is cut off, and a drain
//! (`SIGTERM`) answers every accepted request exactly once. roma's error kind decides the HTTP
//! status ([`http_status`]). Both listeners speak TLS when `[tls]` is set ([`TlsSettings`]),
//! and a verified client certificate can stand for a token. docs/serve.md describes the API.

mod admitted;
mod api;
mod auth;
mod body_deadline;
mod coalesce;
mod conn_threads;
mod error;
mod forward;
mod grpc;
mod h2_frames;
mod http;
mod io_forward;
mod listener;
mod metrics;
mod replica;
mod server;
mod settings;
mod signals;
mod state;
#[cfg(test)]
mod test_dir;
mod tls;

pub use api::{
    BatchBody, BatchEntry, BatchError, CodeBody, ExecuteBody, RequestMetadata, ResponseBody,
};
pub use auth::{MAX_TOKEN_BYTES, PeerRoles, Role};
pub use error::{ApiError, RETRY_AFTER_SECS, ServeError, http_status};
pub use forward::{AnswerBody, BindingSettings, CallBody, DEFAULT_MAX_RESPONSE_BYTES, Value};
pub use grpc::{ERROR_KIND_METADATA, grpc_code, parse_grpc_timeout, pb};
pub use http::{DEADLINE_HEADER, MAX_REQUEST_ID_BYTES, REQUEST_ID_HEADER};
pub use listener::MAX_STREAMS_PER_CONNECTION;
pub use metrics::MAX_CODE_ID_LABELS;
pub use replica::STORE_REVISION_HEADER;
pub use roma_store::{EtcdSettings, StoreLimits};
pub use server::{MAX_HEAD_BYTES, RunningServer, start};
pub use settings::{
    Limits, MAX_ETCD_OBJECT_BYTES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES,
    ServiceSettings, Settings, StoreKind, StoreSettings,
};
pub use signals::serve_until_signalled;
pub use tls::{MAX_PEM_BYTES, TlsSettings};
