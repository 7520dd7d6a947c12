//! The one error type of roma, with a matchable kind.
//!
//! Roma reports nearly everything as `Internal: Execution failed; <text>` and leaves callers to
//! match on message text. roma classifies every failure into an [`ErrorKind`] at the point where
//! it is known, and carries the JS stack separately from the message.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as a plain enum to match on. The names are a contract: the CLI prints them
/// in snake_case ([`ErrorKind::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request or code object is malformed (empty version, both js and wasm, ...).
    InvalidArgument,
    /// The code failed to compile, or its top-level run threw.
    Compile,
    /// The handler threw or its promise rejected.
    Execution,
    /// The handler name does not resolve to a function in the loaded version.
    HandlerNotFound,
    /// An input is not valid for the handler (not JSON, wrong type for a WASM export, ...).
    BadInput,
    /// The request (or a load's top-level run) ran past its timeout.
    Timeout,
    /// The request exhausted its heap or memory limit.
    OutOfMemory,
    /// The requested version is not loaded (never was, or was evicted).
    VersionNotFound,
    /// The worker process died while serving the request.
    WorkerCrashed,
    /// The queues are at capacity.
    QueueFull,
    /// The request was cancelled, or the service stopped before running it.
    Cancelled,
    /// A request or response is larger than the configured payload limit.
    PayloadTooLarge,
    /// A bug or an unexpected condition inside roma.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::InvalidArgument,
        ErrorKind::Compile,
        ErrorKind::Execution,
        ErrorKind::HandlerNotFound,
        ErrorKind::BadInput,
        ErrorKind::Timeout,
        ErrorKind::OutOfMemory,
        ErrorKind::VersionNotFound,
        ErrorKind::WorkerCrashed,
        ErrorKind::QueueFull,
        ErrorKind::Cancelled,
        ErrorKind::PayloadTooLarge,
        ErrorKind::Internal,
    ];

    /// The snake_case name of the kind (`handler_not_found`), as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Compile => "compile",
            ErrorKind::Execution => "execution",
            ErrorKind::HandlerNotFound => "handler_not_found",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::VersionNotFound => "version_not_found",
            ErrorKind::WorkerCrashed => "worker_crashed",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from roma: a kind, a message, and for JS failures the stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct RomaError {
    kind: ErrorKind,
    message: String,
    stack: Option<String>,
}

impl RomaError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RomaError {
            kind,
            message: message.into(),
            stack: None,
        }
    }

    /// Attaches a JS (or WASM) stack trace.
    pub fn with_stack(mut self, stack: impl Into<String>) -> Self {
        let stack = stack.into();
        self.stack = if stack.is_empty() { None } else { Some(stack) };
        self
    }

    /// The kind, to match on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the stack.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JS stack, where the failure came from JS.
    pub fn stack(&self) -> Option<&str> {
        self.stack.as_deref()
    }

    /// Shorthand for `kind() == ErrorKind::Timeout`.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Shorthand constructors.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// An [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for RomaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in ErrorKind::ALL {
            let s = k.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!(seen.insert(s));
        }
    }

    #[test]
    fn display_and_stack() {
        let e = RomaError::new(ErrorKind::Execution, "Uncaught Error: x").with_stack("at Handler");
        assert_eq!(e.to_string(), "execution: Uncaught Error: x");
        assert_eq!(e.stack(), Some("at Handler"));
        assert_eq!(RomaError::internal("a").with_stack("").stack(), None);
    }
}
