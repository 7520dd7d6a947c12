//! The server's own errors (start-up, config, tokens), and how a refused or failed request is
//! answered: roma's error kind decides the HTTP status, never the message text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roma::{ErrorKind, RomaError};
use serde::Serialize;

/// Why the server could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is missing or out of range; `key` names it (`limits.max_inputs`), empty when
    /// the TOML itself does not parse (its message names the place).
    #[error("config: {}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
    Config {
        /// The setting's key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A token file is missing, unreadable or empty.
    #[error("token file {path}: {message}")]
    Token {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A TLS certificate, key or CA file is missing, unreadable or does not hold what it
    /// should.
    #[error("TLS file {path}: {message}")]
    Tls {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The OS refused something (binding the listener, reading a file).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The roma service did not start.
    #[error("the roma service did not start: {0}")]
    Service(#[from] RomaError),
}

/// How long a client told `queue_full` should wait before retrying, in seconds.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The HTTP status for each roma error kind.
pub fn http_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::BadInput => StatusCode::BAD_REQUEST,
        ErrorKind::Compile | ErrorKind::Execution | ErrorKind::OutOfMemory => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorKind::HandlerNotFound | ErrorKind::VersionNotFound => StatusCode::NOT_FOUND,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::WorkerCrashed => StatusCode::BAD_GATEWAY,
        ErrorKind::QueueFull => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        // Internal, and any kind a later roma adds.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// One refused or failed request, as the client sees it: `{"error":{"kind","message"}}`.
#[derive(Debug)]
pub enum ApiError {
    /// roma's own error.
    Roma(RomaError),
    /// No or the wrong bearer token: 401, kind `unauthenticated`.
    Unauthenticated(&'static str),
    /// The server is draining: 503, kind `unavailable`.
    Draining,
    /// Something the request needs is unreachable now (the code store): 503, kind
    /// `unavailable`.
    Unavailable(String),
    /// The client did not send its body within `limits.body_timeout`: 408 (and the
    /// connection closes), kind `request_timeout`.
    RequestTimeout(String),
}

/// The error as JSON.
#[derive(Serialize)]
pub struct ErrorBody<'a> {
    /// roma's kind name (`queue_full`), or `unauthenticated` / `unavailable`.
    pub kind: &'a str,
    /// What happened.
    pub message: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ApiError {
    /// The status and kind name.
    pub fn status_and_kind(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Roma(e) => (http_status(e.kind()), e.kind().as_str()),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Draining | ApiError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
        }
    }

    fn message(&self) -> &str {
        match self {
            ApiError::Roma(e) => e.message(),
            ApiError::Unauthenticated(m) => m,
            ApiError::Draining => "the server is shutting down; retry on another instance",
            ApiError::Unavailable(m) | ApiError::RequestTimeout(m) => m,
        }
    }
}

/// How a request or a load ended, as the metrics and the log name it: `ok`, or the error's
/// kind.
pub(crate) fn outcome<T>(r: &Result<T, ApiError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.status_and_kind().1,
    }
}

impl From<RomaError> for ApiError {
    fn from(e: RomaError) -> Self {
        ApiError::Roma(e)
    }
}

/// The JSON text of an error body.
fn envelope_json(kind: &str, message: &str, request_id: Option<&str>) -> String {
    serde_json::to_string(&Envelope {
        error: ErrorBody { kind, message },
        request_id,
    })
    .unwrap_or_else(|_| r#"{"error":{"kind":"internal","message":"unprintable error"}}"#.into())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.response(None)
    }
}

impl ApiError {
    /// The answer to request `request_id`: the error body names it beside the error.
    pub fn response_for(self, request_id: &str) -> Response {
        self.response(Some(request_id))
    }

    fn response(self, request_id: Option<&str>) -> Response {
        let (status, kind) = self.status_and_kind();
        let mut r = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            envelope_json(kind, self.message(), request_id),
        )
            .into_response();
        match status {
            StatusCode::TOO_MANY_REQUESTS => {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            StatusCode::UNAUTHORIZED => {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // The rest of the body may still come: the connection cannot carry another
            // request.
            StatusCode::REQUEST_TIMEOUT => {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_status_and_the_promised_ones_hold() {
        for k in ErrorKind::ALL {
            assert!(http_status(k).is_client_error() || http_status(k).is_server_error());
        }
        assert_eq!(
            http_status(ErrorKind::QueueFull),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(ErrorKind::VersionNotFound),
            StatusCode::NOT_FOUND
        );
        assert_eq!(http_status(ErrorKind::Timeout), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(http_status(ErrorKind::BadInput), StatusCode::BAD_REQUEST);
        assert_eq!(
            http_status(ErrorKind::PayloadTooLarge),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn a_slow_body_is_answered_408_and_closes() {
        let r = ApiError::RequestTimeout("slow".into()).response_for("rid");
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[header::CONNECTION], "close");
    }

    #[test]
    fn queue_full_carries_retry_after() {
        let r = ApiError::Roma(RomaError::new(ErrorKind::QueueFull, "full")).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
