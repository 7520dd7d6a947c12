//! The gRPC API (`roma.v1.Roma` from `proto/roma/v1/roma.proto`), `grpc.health.v1.Health`
//! and server reflection, on their own port. It shares the HTTP API's state: the same
//! tokens, limits, metrics and drain, and the same error kinds, mapped to gRPC codes.

use crate::api::{ExecuteBody, RequestMetadata, check_batch_len, check_code_size};
use crate::auth::{PeerRoles, Role};
use crate::error::{ApiError, outcome};
use crate::http::REQUEST_ID_HEADER;
use crate::state::AppState;
use roma::{ErrorKind, InvocationRequest, RomaError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

/// The generated messages and services: `roma.v1.Roma`, which this server serves, and
/// `roma.v1.HostFunctionService`, which config-declared `grpc://` bindings call.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("roma.v1");
    /// The encoded descriptors of `roma.v1`, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("roma_v1_descriptor");
}

use pb::roma_server::{Roma, RomaServer};

/// The trailer that carries roma's error kind name.
pub const ERROR_KIND_METADATA: &str = "roma-error-kind";

/// The gRPC code of each roma error kind.
pub fn grpc_code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::BadInput => Code::InvalidArgument,
        ErrorKind::Compile => Code::FailedPrecondition,
        ErrorKind::Execution => Code::Aborted,
        ErrorKind::HandlerNotFound | ErrorKind::VersionNotFound => Code::NotFound,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::OutOfMemory | ErrorKind::QueueFull | ErrorKind::PayloadTooLarge => {
            Code::ResourceExhausted
        }
        ErrorKind::WorkerCrashed => Code::Unavailable,
        ErrorKind::Cancelled => Code::Cancelled,
        _ => Code::Internal,
    }
}

/// The status of a refused or failed call: its code, roma's kind in the details and the
/// `roma-error-kind` trailer.
pub(crate) fn status(e: &ApiError) -> Status {
    let (code, kind, message) = match e {
        ApiError::Roma(e) => (
            grpc_code(e.kind()),
            e.kind().as_str(),
            e.message().to_string(),
        ),
        ApiError::Unauthenticated(m) => (Code::Unauthenticated, "unauthenticated", m.to_string()),
        ApiError::Draining => (
            Code::Unavailable,
            "unavailable",
            "the server is shutting down; retry on another instance".to_string(),
        ),
        ApiError::Unavailable(m) => (Code::Unavailable, "unavailable", m.clone()),
        ApiError::RequestTimeout(m) => (Code::DeadlineExceeded, "request_timeout", m.clone()),
    };
    let mut s = Status::with_details(code, message, kind.as_bytes().to_vec().into());
    if let Ok(v) = kind.parse() {
        s.metadata_mut().insert(ERROR_KIND_METADATA, v);
    }
    s
}

/// Parses a `grpc-timeout` value (`100m`, `5S`: up to 8 digits and a unit).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The gRPC service over the shared state.
#[derive(Debug, Clone)]
pub struct GrpcApi {
    state: Arc<AppState>,
}

impl GrpcApi {
    /// The service, its message size bounded by `limits.max_body_bytes`.
    pub fn server(state: Arc<AppState>) -> RomaServer<GrpcApi> {
        let max = state.limits.max_body_bytes;
        RomaServer::new(GrpcApi { state })
            .max_decoding_message_size(max)
            .max_encoding_message_size(usize::MAX)
    }

    /// Admission, auth, metrics and the log line around one call.
    async fn call<T, F>(
        &self,
        endpoint: &'static str,
        role: Role,
        metadata: &tonic::metadata::MetadataMap,
        peer: Option<PeerRoles>,
        handle: F,
    ) -> Result<Response<T>, Status>
    where
        F: AsyncFnOnce(&str) -> (String, Result<T, ApiError>),
    {
        let st = &self.state;
        let started = Instant::now();
        let rid = crate::http::request_id(
            st,
            metadata
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok()),
        );
        let (code_id, result) = match st.admit() {
            None => (String::new(), Err(ApiError::Draining)),
            Some(_admission) => {
                let headers = metadata.clone().into_headers();
                match st.tokens.check(&headers, peer.as_ref(), role) {
                    Err(e) => (String::new(), Err(e)),
                    Ok(()) => handle(&rid).await,
                }
            }
        };
        let outcome = outcome(&result);
        st.metrics
            .record(endpoint, &code_id, outcome, started.elapsed());
        tracing::info!(request_id = %rid, endpoint, outcome, micros = started.elapsed().as_micros() as u64, "grpc");
        let mut r = result.map(Response::new).map_err(|e| status(&e));
        let rid = rid.parse().ok();
        match (&mut r, rid) {
            (Ok(resp), Some(v)) => {
                resp.metadata_mut().insert(REQUEST_ID_HEADER, v);
            }
            (Err(s), Some(v)) => {
                s.metadata_mut().insert(REQUEST_ID_HEADER, v);
            }
            _ => {}
        }
        r
    }

    /// [`call`](Self::call) for a whole request: `handle` gets the message and the call's
    /// metadata.
    async fn call_with<M, T, F>(
        &self,
        endpoint: &'static str,
        role: Role,
        request: Request<M>,
        handle: F,
    ) -> Result<Response<T>, Status>
    where
        F: AsyncFnOnce(&str, M, &MetadataMap) -> (String, Result<T, ApiError>),
    {
        let (meta, ext, message) = request.into_parts();
        let peer = ext.get::<PeerRoles>().copied();
        self.call(endpoint, role, &meta, peer, async |rid| {
            handle(rid, message, &meta).await
        })
        .await
    }

    fn request(
        &self,
        r: pb::ExecuteRequest,
        rid: &str,
        deadline: Option<Duration>,
    ) -> Result<InvocationRequest<RequestMetadata>, ApiError> {
        self.state.replica.check(&r.version_string)?;
        ExecuteBody {
            id: r.id,
            version_string: r.version_string,
            handler_name: r.handler_name,
            input: r.input,
            tags: r.tags,
            metadata: r.metadata.into_iter().collect(),
            treat_input_as_byte_str: r.treat_input_as_byte_str,
        }
        .into_request(
            &self.state.limits,
            rid,
            self.state.default_timeout,
            deadline,
        )
    }
}

/// The invocation's cap from the call's deadline. tonic's server ends a call at its deadline
/// with a bare `CANCELLED` (and the dropped call cancels the invocation); the invocation
/// stops a tenth earlier (at most 500 ms), so the client gets roma's own `DEADLINE_EXCEEDED`,
/// kind `timeout`, in time.
fn deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|d| {
            d.saturating_sub((d / 10).min(Duration::from_millis(500)))
                .max(Duration::from_millis(1))
        })
}

fn response(r: roma::ResponseObject) -> pb::ExecuteResponse {
    pb::ExecuteResponse {
        id: r.id,
        resp: r.resp,
        metrics: r.metrics.into_iter().collect(),
    }
}

#[tonic::async_trait]
impl Roma for GrpcApi {
    async fn load_code_obj(
        &self,
        request: Request<pb::LoadCodeObjRequest>,
    ) -> Result<Response<pb::LoadCodeObjResponse>, Status> {
        self.call_with("grpc_load", Role::Load, request, async |_, r, _| {
            let code = crate::api::CodeBody {
                id: (!r.id.is_empty()).then_some(r.id),
                version_string: r.version_string,
                js: (!r.js.is_empty()).then_some(r.js),
                wasm: None,
                wasm_bin: None,
                tags: r.tags,
            };
            let mut code = match code.into_code(&self.state.limits) {
                Ok(c) => c,
                Err(e) => return (String::new(), Err(e)),
            };
            code.wasm = r.wasm;
            code.wasm_bin = r.wasm_bin;
            let version = code.version_string.clone();
            if let Err(e) = check_code_size(&code, &self.state.limits) {
                return (version, Err(e));
            }
            let result = self.state.load_code(code).await;
            (
                version,
                result.map(|(r, _)| pb::LoadCodeObjResponse { id: r.id }),
            )
        })
        .await
    }

    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let (meta, ext, r) = request.into_parts();
        let peer = ext.get::<PeerRoles>().copied();
        let st = Arc::clone(&self.state);
        let deadline = deadline(&meta);
        self.call(
            "grpc_execute",
            Role::Execute,
            &meta,
            peer,
            async move |rid| {
                let code_id = r.version_string.clone();
                let cancel_id = r.request_id.clone();
                let req = match self.request(r, rid, deadline) {
                    Ok(req) => req,
                    Err(e) => return (code_id, Err(e)),
                };
                let named = if cancel_id.is_empty() {
                    None
                } else {
                    match st.reserve_name(&cancel_id) {
                        Some(n) => Some(n),
                        None => {
                            return (
                                code_id,
                                Err(ApiError::Roma(RomaError::invalid_argument(format!(
                                    "request_id {cancel_id:?} is already in flight"
                                )))),
                            );
                        }
                    }
                };
                let fut = st.service.execute_async(req);
                if let (Some(n), Some(t)) = (&named, fut.token()) {
                    n.attach(t);
                }
                let guard = st.cancel_on_drop(fut.token().into_iter().cloned().collect());
                let result = fut.await;
                guard.disarm();
                (code_id, result.map(response).map_err(ApiError::Roma))
            },
        )
        .await
    }

    async fn batch_execute(
        &self,
        request: Request<pb::BatchExecuteRequest>,
    ) -> Result<Response<pb::BatchExecuteResponse>, Status> {
        self.call_with(
            "grpc_batch",
            Role::Execute,
            request,
            async |rid, r, meta| {
                let deadline = deadline(meta);
                let code_id = r
                    .requests
                    .first()
                    .map(|r| r.version_string.clone())
                    .unwrap_or_default();
                let fail = |e: RomaError| (code_id.clone(), Err(ApiError::Roma(e)));
                if let Err(e) = check_batch_len(r.requests.len(), &self.state.limits) {
                    return fail(e);
                }
                let requests = match r
                    .requests
                    .into_iter()
                    .map(|q| self.request(q, rid, deadline))
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(v) => v,
                    Err(e) => return (code_id, Err(e)),
                };
                let results = match self.state.run_batch(requests).await {
                    Ok(results) => results,
                    Err(e) => return fail(e),
                };
                let results = results
                    .into_iter()
                    .map(|r| pb::BatchExecuteResult {
                        result: Some(match r {
                            Ok(r) => pb::batch_execute_result::Result::Response(response(r)),
                            Err(e) => pb::batch_execute_result::Result::Error(pb::Error {
                                kind: e.kind().as_str().to_string(),
                                message: e.message().to_string(),
                            }),
                        }),
                    })
                    .collect();
                (code_id, Ok(pb::BatchExecuteResponse { results }))
            },
        )
        .await
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        self.call_with("grpc_cancel", Role::Execute, request, async |_, r, _| {
            let cancelled = self.state.cancel_named(&r.request_id);
            (String::new(), Ok(pb::CancelResponse { cancelled }))
        })
        .await
    }
}

/// The gRPC services of one server, as each connection calls them.
#[derive(Clone)]
pub(crate) struct Services {
    routes: tonic::service::Routes,
    /// `limits.max_body_bytes`, the largest message.
    max_message: usize,
}

/// The gRPC services: `roma.v1.Roma`, health (turning `NOT_SERVING` once `drain` turns true)
/// and reflection; `None` (gRPC off, logged) if reflection's descriptors do not build.
pub(crate) async fn services(
    state: Arc<AppState>,
    drain: tokio::sync::watch::Receiver<bool>,
) -> Option<Services> {
    // The services this port serves, by name: `roma.v1` also holds HostFunctionService, which
    // operators serve and roma calls, so reflection must not list it as served here.
    let reflection = match tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("roma.v1.Roma")
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "gRPC reflection does not build; gRPC is off");
            return None;
        }
    };
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<RomaServer<GrpcApi>>().await;
    tokio::spawn(async move {
        crate::listener::until_true(drain).await;
        reporter.set_not_serving::<RomaServer<GrpcApi>>().await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    });
    let max_message = state.limits.max_body_bytes;
    let routes = tonic::service::Routes::new(health)
        .add_service(reflection)
        .add_service(GrpcApi::server(state))
        .prepare();
    Some(Services {
        routes,
        max_message,
    })
}

impl Services {
    /// One call, ended at the call's deadline (`grpc-timeout`) if it has not answered by
    /// then: `DEADLINE_EXCEEDED`, kind `timeout`. (An execution's own timeout is set shorter,
    /// [`deadline`], so roma's answer normally comes first.)
    pub(crate) async fn call(
        self,
        req: hyper::Request<crate::body_deadline::TimedBody>,
    ) -> Result<hyper::Response<tonic::body::Body>, std::convert::Infallible> {
        use tower::ServiceExt;
        let limit = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let answer = self.routes.oneshot(req);
        let r = match limit {
            None => answer.await,
            Some(limit) => match tokio::time::timeout(limit, answer).await {
                Ok(r) => r,
                Err(_) => {
                    return Ok(status(&ApiError::Roma(RomaError::new(
                        ErrorKind::Timeout,
                        format!("the call's deadline ({limit:?}) passed before its answer"),
                    )))
                    .into_http());
                }
            },
        };
        // tonic refuses a message longer than the decoding limit from its length prefix with
        // OUT_OF_RANGE, a code roma never answers with otherwise: it is the body limit, and
        // answers as every size limit does.
        let too_long = r.as_ref().is_ok_and(|resp| {
            resp.headers()
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() == b"11")
        });
        if too_long {
            return Ok(status(&ApiError::Roma(RomaError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "the message is larger than limits.max_body_bytes ({})",
                    self.max_message
                ),
            )))
            .into_http());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_and_leave_a_margin() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        for bad in ["", "m", "10", "10x", "123456789S", "-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
        let mut m = tonic::metadata::MetadataMap::new();
        m.insert("grpc-timeout", "2S".parse().unwrap());
        assert_eq!(deadline(&m), Some(Duration::from_millis(1800)));
        m.insert("grpc-timeout", "60S".parse().unwrap());
        assert_eq!(deadline(&m), Some(Duration::from_millis(59_500)));
        m.insert("grpc-timeout", "1n".parse().unwrap());
        assert_eq!(deadline(&m), Some(Duration::from_millis(1)));
    }

    /// The gRPC request body `cargo xtask bench-serve` hands h2load (which sends a file, and
    /// knows no protobuf): checked here against the `.proto`'s own types, so the file and the
    /// schema cannot drift apart.
    #[test]
    fn the_bench_request_file_is_one_framed_execute_request() {
        use prost::Message;
        let file = include_bytes!("../tests/data/grpc-execute-hello.bin");
        // gRPC's length-prefixed message: not compressed, then the length, big-endian.
        let (head, body) = file.split_at(5);
        assert_eq!(head[0], 0, "not compressed");
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        assert_eq!(len as usize, body.len());
        let req = pb::ExecuteRequest::decode(body).expect("an ExecuteRequest");
        let want = pb::ExecuteRequest {
            version_string: "bench".into(),
            handler_name: "Handler".into(),
            input: vec!["\"Foobar\"".into()],
            ..Default::default()
        };
        assert_eq!(req, want);
        assert_eq!(want.encode_to_vec(), body, "the canonical encoding");
    }
}
