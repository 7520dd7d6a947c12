//! The messages the host and a worker exchange, and the bounds the host checks on what a worker
//! sends.
//!
//! The main channel carries [`HostToWorker`] one way and [`WorkerToHost`] the other. Cancellation
//! travels on a separate control socket as a fixed-size [`Control`] frame (see [`crate::control`]),
//! because the worker is busy inside V8 when a cancel matters.
//!
//! bincode's decode limit already bounds the total size of what a worker's message may allocate;
//! [`Message::check_bounds`] adds per-field bounds on top (a binding name is short, a metrics list
//! is small) so that a worker cannot make the host keep odd-shaped data around.

use roma_core::{CodeObject, EngineLimits, ExecOutput, Invocation, LogLevel, RomaError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::IpcError;

/// The worker argument that starts a worker in probe mode (`roma check`): the same jail, but a
/// seccomp filter that fails forbidden calls with `EPERM` instead of killing, so that every
/// probe can report. Such a worker accepts [`HostToWorker::Probe`] and is never given code.
pub const PROBE_MODE_ARG: &str = "--probe-mode";

/// The worker argument that asks a worker for its build instead of serving: it prints
/// [`BUILD_ID`], its V8 version and its Node version, one a line, and exits. The host asks
/// before it starts workers and refuses a worker whose build id is not its own.
pub const BUILD_QUERY_ARG: &str = "--roma-build";

/// The name worker processes give themselves (their `comm`, what `ps` and `/proc/<pid>/stat`
/// show), though their executable is `node`; the host finds its workers by it.
pub const WORKER_PROCESS_NAME: &str = "roma-worker";

/// [`WORKER_PROCESS_NAME`] as the C string the worker hands to `PR_SET_NAME` (a unit test
/// checks that the two agree).
pub const WORKER_PROCESS_NAME_C: &std::ffi::CStr = c"roma-worker";

/// The worker argument prefix by which the host tells every worker it starts the host's
/// [`BUILD_ID`] (`--roma-host-build=<id>`): a worker of another build refuses to serve before it
/// reads a single frame, since frames of another build may not decode the same.
pub const HOST_BUILD_ARG_PREFIX: &str = "--roma-host-build=";

/// This build of the host-worker protocol: the workspace version and a hash of this crate's
/// sources (the wire types and their framing), computed by the build script. A host and a
/// worker built from different sources have different ids, so a worker from another build is
/// refused by name rather than misread frame by frame.
pub const BUILD_ID: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "+wire.",
    env!("ROMA_IPC_WIRE_HASH")
);

pub use roma_core::WORKER_OOM_EXIT_CODE;

/// Longest name (binding, metric, probe) a worker may send.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most metrics a worker may report for one execution.
pub const MAX_METRICS: usize = 256;
/// Most probe results in one report.
pub const MAX_PROBE_RESULTS: usize = 256;
/// Longest free-text field of a probe result, and longest version string in `Ready`.
pub const MAX_DETAIL_BYTES: usize = 64 << 10;

/// A message type that can travel on a channel.
pub trait Message: Serialize + DeserializeOwned + Send {
    /// Checks per-field bounds after decoding. The default accepts everything.
    fn check_bounds(&self) -> Result<(), IpcError> {
        Ok(())
    }
}

/// What the host sends to a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HostToWorker {
    /// First message: start the engine.
    Init {
        /// Limits of the engine.
        limits: EngineLimits,
        /// Extra V8 flags.
        v8_flags: Vec<String>,
        /// Names of the host functions JS may call.
        binding_names: Vec<String>,
        /// Create a context ahead of the first request.
        prewarm: bool,
        /// The channel's `cross_core_spin` on the host: how long the worker's waits busy-poll
        /// (across cores only) before sleeping; zero turns its spinning off.
        cross_core_spin: std::time::Duration,
        /// Low-latency mode: how long, at most, the worker's wait for its next request
        /// busy-polls (across cores only) before sleeping; about twice the last gap between
        /// requests within this bound. Zero: off (the wait spins `cross_core_spin`).
        idle_poll: std::time::Duration,
    },
    /// Compile and keep a code version.
    Load {
        /// The code.
        code: CodeObject,
    },
    /// Run a handler.
    Execute {
        /// Host-chosen id echoed in replies.
        request_id: u64,
        /// What to run.
        invocation: Invocation,
    },
    /// The answer to a [`WorkerToHost::BindingCall`].
    BindingReply {
        /// The call's id.
        call_id: u64,
        /// Opaque reply, encoded by roma-udf.
        #[serde(with = "roma_core::wire_bytes")]
        reply: Vec<u8>,
    },
    /// The host refused or cut off [`WorkerToHost::BindingCall`] `call_id` because the
    /// request's time was up (the call came after its timeout, or its function had not returned
    /// by then): JS gets an error, and the request's result is a timeout
    /// ([`crate::conversation::HostCallTimeout`]).
    BindingTimedOut {
        /// The call's id.
        call_id: u64,
    },
    /// The host started an asynchronous host function for [`WorkerToHost::BindingCall`]
    /// `call_id`: JS gets a promise; the reply comes later, after a
    /// [`WorkerToHost::AwaitBindings`], as a [`HostToWorker::BindingReply`].
    BindingPending {
        /// The call's id.
        call_id: u64,
    },
    /// Try forbidden actions and report what the jail held (`roma check`).
    Probe,
    /// Exit cleanly.
    Shutdown,
}

/// One forbidden action a probing worker tried.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Short name of the check (`open_etc_passwd`).
    pub name: String,
    /// What was attempted, for humans.
    pub attempted: String,
    /// Whether the jail prevented it.
    pub held: bool,
    /// The error or outcome observed.
    pub detail: String,
}

impl ProbeResult {
    /// A result whose check was (`attempted`) or was not tried: `attempted` reads "yes" or "no".
    pub fn new(name: String, attempted: bool, held: bool, detail: String) -> ProbeResult {
        ProbeResult {
            name,
            attempted: if attempted { "yes" } else { "no" }.into(),
            held,
            detail,
        }
    }
}

/// What a worker sends to the host. Untrusted: the host decodes it with limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerToHost {
    /// The engine started.
    Ready {
        /// The worker's pid (as it sees it; informational only).
        pid: u32,
        /// The engine's version string.
        v8_version: String,
    },
    /// A `Load` finished.
    Loaded {
        /// Its outcome.
        result: Result<(), RomaError>,
    },
    /// An `Execute` finished.
    Executed {
        /// The request's id.
        request_id: u64,
        /// Its outcome: the one result type from the worker to the callback (the host adds its
        /// metrics to it in place).
        result: Result<ExecOutput, RomaError>,
    },
    /// A console message from JS.
    Log {
        /// The request it belongs to.
        request_id: u64,
        /// Severity.
        level: LogLevel,
        /// Text.
        message: String,
    },
    /// JS called a host function; the host answers with [`HostToWorker::BindingReply`].
    BindingCall {
        /// The request it belongs to.
        request_id: u64,
        /// Worker-chosen call id.
        call_id: u64,
        /// The binding's name.
        name: String,
        /// Opaque payload, decoded by roma-udf.
        #[serde(with = "roma_core::wire_bytes")]
        payload: Vec<u8>,
    },
    /// JS waits on asynchronous host calls and has nothing else to do: send the next reply
    /// that is ready.
    AwaitBindings {
        /// The request it belongs to.
        request_id: u64,
    },
    /// Results of a [`HostToWorker::Probe`].
    ProbeReport {
        /// One entry per check.
        results: Vec<ProbeResult>,
    },
}

/// A control message, sent on the control socket while the worker runs JS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Control {
    /// Stop the request with this id if it is running.
    Cancel {
        /// The request's id.
        request_id: u64,
    },
}

impl Message for HostToWorker {}

fn bound(field: &'static str, len: usize, limit: usize) -> Result<(), IpcError> {
    if len > limit {
        return Err(IpcError::malformed(format!(
            "{field} is {len} bytes or items, more than the limit of {limit}"
        )));
    }
    Ok(())
}

impl Message for WorkerToHost {
    fn check_bounds(&self) -> Result<(), IpcError> {
        match self {
            WorkerToHost::Ready { v8_version, .. } => {
                bound("Ready.v8_version", v8_version.len(), MAX_NAME_BYTES)
            }
            WorkerToHost::Loaded { .. }
            | WorkerToHost::Log { .. }
            | WorkerToHost::AwaitBindings { .. } => Ok(()),
            WorkerToHost::Executed { result, .. } => match result {
                Ok(out) => {
                    bound("Executed.metrics", out.metrics.len(), MAX_METRICS)?;
                    bound(
                        "Executed.profiler_output",
                        out.profiler_output.len(),
                        roma_core::MAX_PROFILE_BYTES,
                    )?;
                    out.metrics
                        .iter()
                        .try_for_each(|(name, _)| bound("metric name", name.len(), MAX_NAME_BYTES))
                }
                Err(_) => Ok(()),
            },
            WorkerToHost::BindingCall { name, .. } => {
                bound("BindingCall.name", name.len(), MAX_NAME_BYTES)
            }
            WorkerToHost::ProbeReport { results } => {
                bound("ProbeReport.results", results.len(), MAX_PROBE_RESULTS)?;
                results.iter().try_for_each(|r| {
                    bound("probe name", r.name.len(), MAX_NAME_BYTES)?;
                    bound("probe attempted", r.attempted.len(), MAX_DETAIL_BYTES)?;
                    bound("probe detail", r.detail.len(), MAX_DETAIL_BYTES)
                })
            }
        }
    }
}

/// Raw bytes are a message too (benchmarks and tests of the transport).
impl Message for Vec<u8> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_name_agrees_with_its_c_string_and_fits_comm() {
        assert_eq!(WORKER_PROCESS_NAME_C.to_str(), Ok(WORKER_PROCESS_NAME));
        // comm holds 15 bytes and the NUL.
        assert!(WORKER_PROCESS_NAME.len() <= 15);
    }

    #[test]
    fn the_build_id_names_the_version_and_a_source_hash() {
        let (version, hash) = BUILD_ID.split_once("+wire.").expect("version+wire.hash");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        assert_eq!(hash.len(), 16);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn bounds_reject_oversized_fields() {
        let ok = WorkerToHost::BindingCall {
            request_id: 1,
            call_id: 2,
            name: "getValue".into(),
            payload: vec![0; 10],
        };
        assert!(ok.check_bounds().is_ok());
        let long = WorkerToHost::BindingCall {
            request_id: 1,
            call_id: 2,
            name: "x".repeat(MAX_NAME_BYTES + 1),
            payload: vec![],
        };
        assert!(long.check_bounds().is_err());
        let metrics = WorkerToHost::Executed {
            request_id: 1,
            result: Ok(ExecOutput {
                resp: String::new(),
                metrics: (0..=MAX_METRICS).map(|i| (format!("m{i}"), 1.0)).collect(),
                ..Default::default()
            }),
        };
        assert!(metrics.check_bounds().is_err());
        let profile = WorkerToHost::Executed {
            request_id: 1,
            result: Ok(ExecOutput {
                profiler_output: "x".repeat(roma_core::MAX_PROFILE_BYTES + 1),
                ..Default::default()
            }),
        };
        assert!(profile.check_bounds().is_err());
        let probes = WorkerToHost::ProbeReport {
            results: vec![ProbeResult::default(); MAX_PROBE_RESULTS + 1],
        };
        assert!(probes.check_bounds().is_err());
    }
}
