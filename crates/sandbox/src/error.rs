//! The error type of roma-sandbox, so callers can tell "backend not available" from "the OS
//! refused a jail step" without matching on text.

use std::io;

/// Why a sandbox could not be chosen, a worker could not be spawned or waited on, or a jail step
/// failed inside the launcher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// `sandbox_by_name` was given a name it does not know.
    #[error("unknown sandbox backend `{0}` (expected namespaces, birdcage or none)")]
    UnknownBackend(String),
    /// The backend exists but this build left it out (a cargo feature is off).
    #[error("sandbox backend `{0}` is not compiled in (enable roma-sandbox's cargo feature `{0}`)")]
    BackendNotCompiled(&'static str),
    /// A [`crate::WorkerSpec`] that cannot be honoured (a channel fd that is stdio or not open, a
    /// relative path, ...).
    #[error("invalid worker spec: {0}")]
    InvalidSpec(String),
    /// The jail arguments on a worker's command line are malformed.
    #[error("bad jail arguments: {0}")]
    BadArgs(String),
    /// A system call failed; `what` names the step.
    #[error("{what}: {source}")]
    Os {
        /// The step that failed, e.g. `unshare` or `bind-mount /usr/lib`.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The seccomp filter could not be built or installed.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// The `namespaces` backend cannot work here: the kernel refused to create a user namespace.
    #[error(
        "user namespaces are unavailable on this host, so the `namespaces` sandbox cannot start \
         ({0}); allow them (sysctl user.max_user_namespaces > 0, and \
         kernel.unprivileged_userns_clone=1 or no AppArmor userns restriction for non-root), or \
         run with `--sandbox none` (NO jail; debugging only)"
    )]
    NamespacesUnavailable(String),
    /// The launcher could not build the jail; the text is its report.
    #[error("the worker's jail could not be built: {0}")]
    JailSetup(String),
    /// birdcage refused to build its sandbox.
    #[error("birdcage: {0}")]
    Birdcage(String),
    /// The worker's cgroup could not be made or joined (no writable cgroup for its limits, a
    /// limit the kernel refused).
    #[error("cgroup: {0}")]
    Cgroup(String),
}

impl SandboxError {
    /// An [`SandboxError::Os`] for step `what`.
    pub(crate) fn os(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        SandboxError::Os {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A closure for `map_err` that wraps an OS error with the step name.
    pub(crate) fn at<E: Into<io::Error>>(what: impl Into<String>) -> impl FnOnce(E) -> Self {
        let what = what.into();
        move |e| SandboxError::os(what, e)
    }
}

impl From<SandboxError> for roma_core::RomaError {
    fn from(e: SandboxError) -> Self {
        roma_core::RomaError::internal(format!("sandbox: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_names_the_step_and_keeps_the_source() {
        let e = SandboxError::os("unshare", io::Error::from_raw_os_error(libc::EPERM));
        let text = e.to_string();
        assert!(text.starts_with("unshare: "), "{text}");
        assert!(std::error::Error::source(&e).is_some());
        let roma: roma_core::RomaError = e.into();
        assert_eq!(roma.kind(), roma_core::ErrorKind::Internal);
        assert!(roma.message().contains("unshare"));
    }
}
