//! The HTTP/JSON API: routes, and the path of each request through admission (drain), auth,
//! the body limit, parsing, and roma, to exactly one answer that carries the request id.

use crate::api::{
    BatchBody, BatchEntry, BatchError, CodeBody, ExecuteBody, RequestMetadata, ResponseBody,
    check_batch_len, parse,
};
use crate::auth::{PeerRoles, Role};
use crate::body_deadline::BodyTimeout;
use crate::error::{ApiError, outcome};
use crate::state::AppState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use roma::{ErrorKind, InvocationRequest, ResponseObject, RomaError, Submitted};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header a client names its remaining time budget with, in whole milliseconds; it caps
/// the invocation's timeout.
pub const DEADLINE_HEADER: &str = "x-roma-deadline-ms";
/// The request id header: taken from the client when it is a short token, made up otherwise,
/// and always sent back.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The longest client request id kept, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 64;

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/code", post(load))
        .route("/v1/execute", post(execute))
        .route("/v1/batch", post(batch))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// What a request's handling produced: the code id for the metrics, and the answer.
struct Outcome {
    code_id: String,
    result: Result<Response, ApiError>,
}

async fn load(
    State(st): State<Arc<AppState>>,
    peer: Option<Extension<PeerRoles>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = peer.as_deref();
    answer_as(
        &st,
        "code",
        Role::Load,
        peer,
        &headers,
        async |rid, code_id| {
            let bytes = read_body(&st, &headers, body).await?;
            let code = parse::<CodeBody>(&bytes)?.into_code(&st.limits)?;
            *code_id = code.version_string.clone();
            let version = code.version_string.clone();
            let r = st.load_code(code).await;
            tracing::info!(request_id = %rid, version = %version, ok = r.is_ok(), "load");
            let (r, receipt) = r?;
            let mut body = ResponseBody::for_request(r, rid);
            body.metrics
                .insert("roma.store.revision".into(), receipt.revision as f64);
            let mut resp = Json(body).into_response();
            resp.headers_mut().insert(
                crate::replica::STORE_REVISION_HEADER,
                HeaderValue::from(receipt.revision),
            );
            Ok(resp)
        },
    )
    .await
}

async fn execute(
    State(st): State<Arc<AppState>>,
    peer: Option<Extension<PeerRoles>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(&st, "execute", &headers, async |rid| {
        let mut code_id = String::new();
        let result = async {
            st.tokens.check(&headers, peer.as_deref(), Role::Execute)?;
            let deadline = deadline(&headers)?;
            let bytes = read_body(&st, &headers, body).await?;
            let b = parse::<ExecuteBody>(&bytes)?;
            code_id = b.version_string.clone();
            st.replica.check(&b.version_string)?;
            let req = b.into_request(&st.limits, rid, st.default_timeout, deadline)?;
            let r = execute_here_or_awaited(&st, req).await;
            Ok(Json(ResponseBody::for_request(r?, rid)).into_response())
        }
        .await;
        Outcome { code_id, result }
    })
    .await
}

/// Runs one execution: on this thread, when it serves no other connection and a worker is
/// idle (the fewest hand-overs an idle request can have: [`crate::conn_threads`]), else
/// through roma's queue, awaited, and cancelled if the client goes away first. (A request run
/// here is not cancelled by the client's going away: its timeout bounds it.)
async fn execute_here_or_awaited(
    st: &AppState,
    req: InvocationRequest<RequestMetadata>,
) -> Result<ResponseObject, RomaError> {
    let fut = match crate::conn_threads::hold_alone() {
        Some(holding) => match st.service.execute_here_or_async(req) {
            Submitted::Here(run) => {
                let r = run.run();
                drop(holding);
                return r;
            }
            Submitted::Queued(fut) => fut,
        },
        None => st.service.execute_async(req),
    };
    let guard = st.cancel_on_drop(fut.token().into_iter().cloned().collect());
    let r = fut.await;
    guard.disarm();
    r
}

async fn batch(
    State(st): State<Arc<AppState>>,
    peer: Option<Extension<PeerRoles>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = peer.as_deref();
    answer_as(
        &st,
        "batch",
        Role::Execute,
        peer,
        &headers,
        async |rid, code_id| {
            let deadline = deadline(&headers)?;
            let bytes = read_body(&st, &headers, body).await?;
            let b = parse::<BatchBody>(&bytes)?;
            check_batch_len(b.requests.len(), &st.limits)?;
            *code_id = b.requests[0].version_string.clone();
            for r in &b.requests {
                st.replica.check(&r.version_string)?;
            }
            let requests = b
                .requests
                .into_iter()
                .map(|r| r.into_request(&st.limits, rid, st.default_timeout, deadline))
                .collect::<Result<Vec<_>, _>>()?;
            let responses: Vec<BatchEntry> = st
                .run_batch(requests)
                .await?
                .into_iter()
                .map(|r| match r {
                    Ok(r) => BatchEntry::Ok(r.into()),
                    Err(e) => BatchEntry::Err {
                        error: BatchError {
                            kind: e.kind().as_str(),
                            message: e.message().to_string(),
                        },
                    },
                })
                .collect();
            Ok(
                Json(serde_json::json!({ "request_id": rid, "responses": responses }))
                    .into_response(),
            )
        },
    )
    .await
}

/// [`answer`] for a request that needs `role`: checks the credential, then runs `handle`,
/// which sets the code id (`""` until it does) once it knows which code the request is for,
/// so the metrics count even a later failure against that code.
async fn answer_as<F>(
    st: &AppState,
    endpoint: &'static str,
    role: Role,
    peer: Option<&PeerRoles>,
    headers: &HeaderMap,
    handle: F,
) -> Response
where
    F: AsyncFnOnce(&str, &mut String) -> Result<Response, ApiError>,
{
    answer(st, endpoint, headers, async |rid| {
        let mut code_id = String::new();
        let result = match st.tokens.check(headers, peer, role) {
            Ok(()) => handle(rid, &mut code_id).await,
            Err(e) => Err(e),
        };
        Outcome { code_id, result }
    })
    .await
}

/// Admits the request (or refuses it while draining), runs `handle`, records the metrics,
/// logs, and adds the request id: the one place every API answer passes.
async fn answer<F>(
    st: &AppState,
    endpoint: &'static str,
    headers: &HeaderMap,
    handle: F,
) -> Response
where
    F: AsyncFnOnce(&str) -> Outcome,
{
    let started = Instant::now();
    let rid = request_id(
        st,
        headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()),
    );
    let done = match st.admit() {
        Some(_admission) => handle(&rid).await,
        None => Outcome {
            code_id: String::new(),
            result: Err(ApiError::Draining),
        },
    };
    let kind = outcome(&done.result);
    let mut response = done.result.unwrap_or_else(|e| e.response_for(&rid));
    st.metrics
        .record(endpoint, &done.code_id, kind, started.elapsed());
    tracing::info!(
        request_id = %rid,
        endpoint,
        status = response.status().as_u16(),
        outcome = kind,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&rid) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// The client's request id (`given`, over either API) if it is a short token of
/// `[A-Za-z0-9._-]`, else a new one.
pub(crate) fn request_id(st: &AppState, given: Option<&str>) -> String {
    given
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_BYTES
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| st.next_request_id())
}

/// The client's deadline; one already passed (0 ms) is a timeout at once.
fn deadline(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let Some(v) = headers.get(DEADLINE_HEADER) else {
        return Ok(None);
    };
    let ms: u64 = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::Roma(RomaError::invalid_argument(format!(
                "{DEADLINE_HEADER} must be a whole number of milliseconds"
            )))
        })?;
    if ms == 0 {
        return Err(ApiError::Roma(RomaError::new(
            ErrorKind::Timeout,
            format!("the client's deadline ({DEADLINE_HEADER}: 0) had passed on arrival"),
        )));
    }
    Ok(Some(Duration::from_millis(ms)))
}

/// Reads the body, at most `limits.max_body_bytes` (a larger `Content-Length` is refused
/// before anything is read), by its deadline (`limits.body_timeout`, set by the listener:
/// 408 past it). Called after auth, so an unauthenticated client never makes the
/// server buffer a body.
async fn read_body(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let max = st.limits.max_body_bytes;
    let too_large = || {
        ApiError::Roma(RomaError::new(
            ErrorKind::PayloadTooLarge,
            format!("the body is larger than limits.max_body_bytes ({max})"),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max).await.map_err(|e| {
        let inner = e.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            too_large()
        } else if let Some(late) = BodyTimeout::find(&*inner) {
            late.into()
        } else {
            ApiError::Roma(RomaError::invalid_argument(format!(
                "cannot read the body: {inner}"
            )))
        }
    })
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let store = st.replica.describe();
    match st.readiness() {
        Ok(()) => (StatusCode::OK, format!("ready\n{store}")).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n{store}"),
        )
            .into_response(),
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        st.metrics.render(&st.figures()) + &st.replica.render_metrics(),
    )
        .into_response()
}
