//! Request and response types.

use crate::LogLevel;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Tag carrying a per-request timeout as a duration string such as `"300ms"` (Roma's
/// `kTimeoutDurationTag`).
pub const TIMEOUT_DURATION_TAG: &str = "TimeoutDuration";
/// Code-object tag naming the global `Uint8Array` through which `wasm_bin` is exposed to JS
/// (Roma's `kWasmCodeArrayName`).
pub const WASM_ARRAY_NAME_TAG: &str = "roma.request.wasm_array_name";
/// Invocation tag choosing how a standalone WASM export's `i32` result is read:
/// `string` (default), `list_of_string`, `i32` or `void`. See docs/wasm-abi.md.
pub const WASM_RETURN_TYPE_TAG: &str = "roma.wasm.return_type";
/// The most bytes of CPU profile an invocation returns ([`ResponseObject::profiler_output`]);
/// the worker drops a larger profile and the host refuses one that claims more.
pub const MAX_PROFILE_BYTES: usize = 1 << 20;
/// The id used when a request gives none (Roma's `kDefaultRomaRequestId`).
pub const DEFAULT_REQUEST_ID: &str = "roma.defaults.request.id";

/// Keys of [`ResponseObject::metrics`]. Roma's names where Roma has the metric.
pub mod metrics {
    /// Host-side total, from acceptance to the response (ms).
    pub const DURATION_MS: &str = "roma.execution.duration_ms";
    /// Time queued before a worker took the request (ms).
    pub const WAIT_TIME_MS: &str = "roma.execution.wait_time_ms";
    /// Time inside the worker's engine for the whole invocation (ms).
    pub const CODE_RUN_DURATION_MS: &str = "roma.execution.code_run_duration_ms";
    /// Time spent parsing the JSON inputs (ms).
    pub const INPUT_PARSING_MS: &str = "roma.execution.json_input_parsing_duration_ms";
    /// Time spent in the handler call, promise settling included (ms).
    pub const HANDLER_CALL_MS: &str = "roma.execution.js_engine_handler_call_duration_ms";
    /// Time spent creating the fresh context (0 when a pre-warmed one was used) (ms).
    pub const CONTEXT_CREATION_MS: &str = "roma.execution.context_creation_duration_ms";
    /// Index of the worker that ran the request.
    pub const WORKER_INDEX: &str = "roma.execution.worker_index";
    /// Host-side time from sending a request to the worker until its answer arrived
    /// (the engine's time included); minus `code_run_duration_ms`, the cost of the channel.
    pub const IPC_ROUND_TRIP_MS: &str = "roma.execution.ipc_round_trip_ms";

    // Per-hop timestamps of an execution, in milliseconds since it was submitted (accepted by
    // the dispatcher), so that where a request's time went is visible hop by hop. Present on
    // every successful execution; each is at least the one before it in this list. The
    // worker's two (received, and context ready, derived from it) come from its clock,
    // clamped into the host's own window between sent and answer received: a hostile worker
    // can misplace them inside that window and nothing more, and nothing is decided on them.

    /// The slot thread took the request from its queue.
    pub const HOP_TAKEN_MS: &str = "roma.hop.taken_ms";
    /// The slot thread began to send the request on the worker's channel (encoding, the copy
    /// and the worker's wake-up are in the next hop).
    pub const HOP_SENT_MS: &str = "roma.hop.sent_ms";
    /// The worker received it (the worker's clock).
    pub const HOP_WORKER_RECEIVED_MS: &str = "roma.hop.worker_received_ms";
    /// The request's context was ready: received plus the worker's context creation time.
    pub const HOP_CONTEXT_READY_MS: &str = "roma.hop.context_ready_ms";
    /// The handler had returned and its result was serialised (the worker's clock).
    pub const HOP_HANDLER_DONE_MS: &str = "roma.hop.handler_done_ms";
    /// The host had the worker's answer.
    pub const HOP_ANSWER_RECEIVED_MS: &str = "roma.hop.answer_received_ms";
    /// The callback was entered (for the blocking and awaitable forms: the answer was handed
    /// to the waiting caller).
    pub const HOP_CALLBACK_MS: &str = "roma.hop.callback_ms";

    /// Every hop, in order.
    pub const HOPS: [&str; 7] = [
        HOP_TAKEN_MS,
        HOP_SENT_MS,
        HOP_WORKER_RECEIVED_MS,
        HOP_CONTEXT_READY_MS,
        HOP_HANDLER_DONE_MS,
        HOP_ANSWER_RECEIVED_MS,
        HOP_CALLBACK_MS,
    ];

    /// The hops a backend (roma-dispatch's `WorkerBackend`) reports in its
    /// [`ExecOutput`](crate::ExecOutput), in order, each as [`hop_stamp`] of the moment; the
    /// dispatcher turns them into milliseconds since submission (and drops any that is not
    /// finite). A backend that reports none is fine.
    pub const BACKEND_HOPS: [&str; 5] = [
        HOP_SENT_MS,
        HOP_WORKER_RECEIVED_MS,
        HOP_CONTEXT_READY_MS,
        HOP_HANDLER_DONE_MS,
        HOP_ANSWER_RECEIVED_MS,
    ];

    /// A moment of this process as a backend reports it for [`BACKEND_HOPS`]: milliseconds
    /// since a process-wide origin (negative before it).
    pub fn hop_stamp(at: std::time::Instant) -> f64 {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(std::time::Instant::now);
        match at.checked_duration_since(origin) {
            Some(d) => d.as_secs_f64() * 1e3,
            None => -(origin.duration_since(at).as_secs_f64() * 1e3),
        }
    }
}

/// Code to load: JavaScript, JavaScript with a WASM module, or a standalone WASM module.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeObject {
    /// Caller's id, echoed in the response.
    pub id: String,
    /// The version this code is loaded as; executions name it.
    pub version_string: String,
    /// JavaScript source. Exactly one of `js` and `wasm` is set.
    pub js: String,
    /// A standalone WASM module (binary), run without JS.
    #[serde(with = "crate::wire_bytes")]
    pub wasm: Vec<u8>,
    /// A WASM module exposed to `js` as a global `Uint8Array` named by the
    /// [`WASM_ARRAY_NAME_TAG`] tag.
    #[serde(with = "crate::wire_bytes")]
    pub wasm_bin: Vec<u8>,
    /// Tags (Roma's contract: [`WASM_ARRAY_NAME_TAG`]).
    pub tags: HashMap<String, String>,
}

impl CodeObject {
    /// JavaScript source `js`, to load as `version_string` (its id is the version too).
    pub fn js(version_string: impl Into<String>, js: impl Into<String>) -> Self {
        let version_string = version_string.into();
        CodeObject {
            id: version_string.clone(),
            version_string,
            js: js.into(),
            ..Default::default()
        }
    }

    /// A standalone WASM module, to load as `version_string` (its id is the version too).
    pub fn wasm(version_string: impl Into<String>, wasm: Vec<u8>) -> Self {
        let version_string = version_string.into();
        CodeObject {
            id: version_string.clone(),
            version_string,
            wasm,
            ..Default::default()
        }
    }
}

/// A request to run a handler of a loaded version, with caller metadata `M` that stays in the
/// host (bindings see it; the worker never does).
#[derive(Clone, Debug, Default)]
pub struct InvocationRequest<M = ()> {
    /// Caller's id, echoed in the response.
    pub id: String,
    /// The loaded version to run.
    pub version_string: String,
    /// The handler, by dotted path (`foo.bar.Handler`).
    pub handler_name: String,
    /// Tags; [`TIMEOUT_DURATION_TAG`] sets the timeout as in Roma.
    pub tags: HashMap<String, String>,
    /// One JSON text per argument (an empty string is `undefined`).
    pub input: Vec<String>,
    /// Pass the single input as a raw JS string and return the result raw.
    pub treat_input_as_byte_str: bool,
    /// A typed timeout; wins over the tag.
    pub timeout: Option<Duration>,
    /// Console messages below this level are dropped inside the sandbox.
    pub min_log_level: LogLevel,
    /// Return a V8 CPU profile of the handler call in [`ResponseObject::profiler_output`];
    /// the service must be built with profilers enabled.
    pub profile: bool,
    /// Caller metadata, handed to bindings and the logging function.
    pub metadata: M,
}

impl InvocationRequest {
    /// A request to run `handler_name` of loaded version `version_string` with `input` (one
    /// JSON text per argument), every other field at its default and no metadata. Give it
    /// metadata with [`with_metadata`](InvocationRequest::with_metadata), whatever its type:
    /// the metadata type needs no `Default`.
    ///
    /// ```
    /// use roma_core::InvocationRequest;
    /// struct Db; // no Default, no Clone
    /// let r = InvocationRequest::new("v1", "Handler", vec![r#""Foobar""#.into()])
    ///     .with_id("req-1")
    ///     .with_metadata(std::sync::Arc::new(Db));
    /// assert_eq!(r.handler_name, "Handler");
    /// ```
    pub fn new(
        version_string: impl Into<String>,
        handler_name: impl Into<String>,
        input: Vec<String>,
    ) -> Self {
        InvocationRequest {
            version_string: version_string.into(),
            handler_name: handler_name.into(),
            input,
            ..Default::default()
        }
    }
}

impl<M> InvocationRequest<M> {
    /// The same request carrying `metadata` instead.
    pub fn with_metadata<N>(self, metadata: N) -> InvocationRequest<N> {
        InvocationRequest {
            id: self.id,
            version_string: self.version_string,
            handler_name: self.handler_name,
            tags: self.tags,
            input: self.input,
            treat_input_as_byte_str: self.treat_input_as_byte_str,
            timeout: self.timeout,
            min_log_level: self.min_log_level,
            profile: self.profile,
            metadata,
        }
    }

    /// The same request with caller id `id` (echoed in the response).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The same request with tag `key` set to `value` ([`TIMEOUT_DURATION_TAG`],
    /// [`WASM_RETURN_TYPE_TAG`]).
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The same request asking for a CPU profile of its handler call (see
    /// [`ResponseObject::profiler_output`]).
    pub fn with_profile(mut self, profile: bool) -> Self {
        self.profile = profile;
        self
    }

    /// The same request with a typed timeout (wins over the tag).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The metadata-free form that crosses into a worker. `default_timeout` applies when neither
    /// the typed timeout nor the tag sets one; a tag that does not parse is an error.
    pub fn to_invocation(&self, default_timeout: Duration) -> Result<Invocation, crate::RomaError> {
        let timeout = match (self.timeout, self.tags.get(TIMEOUT_DURATION_TAG)) {
            (Some(t), _) => t,
            (None, Some(tag)) => crate::parse_duration(tag).map_err(|e| {
                crate::RomaError::invalid_argument(format!("bad {TIMEOUT_DURATION_TAG} tag: {e}"))
            })?,
            (None, None) => default_timeout,
        };
        Ok(Invocation {
            version_string: self.version_string.clone(),
            handler_name: self.handler_name.clone(),
            input: self.input.clone(),
            treat_input_as_byte_str: self.treat_input_as_byte_str,
            timeout,
            min_log_level: self.min_log_level,
            wasm_return_type: self.tags.get(WASM_RETURN_TYPE_TAG).cloned(),
            profile: self.profile,
        })
    }
}

/// What an engine runs: an invocation without the caller's id or metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    /// The loaded version to run.
    pub version_string: String,
    /// The handler, by dotted path.
    pub handler_name: String,
    /// One JSON text per argument.
    pub input: Vec<String>,
    /// Byte-string mode: exactly one input, passed raw; the result must be a string.
    pub treat_input_as_byte_str: bool,
    /// Wall-clock budget for the call.
    pub timeout: Duration,
    /// Console messages below this level are dropped inside the engine.
    pub min_log_level: LogLevel,
    /// For standalone WASM: how to read the export's result ([`WASM_RETURN_TYPE_TAG`]).
    pub wasm_return_type: Option<String>,
    /// Record a V8 CPU profile of the handler call.
    #[serde(default)]
    pub profile: bool,
}

impl Invocation {
    /// A JS invocation with the default timeout and log level.
    pub fn new(version: &str, handler: &str, input: Vec<String>) -> Self {
        Invocation {
            version_string: version.into(),
            handler_name: handler.into(),
            input,
            treat_input_as_byte_str: false,
            timeout: crate::DEFAULT_TIMEOUT,
            min_log_level: LogLevel::Info,
            wasm_return_type: None,
            profile: false,
        }
    }
}

/// The result of a successful execution, as it travels from the worker to the callback: the
/// worker fills it, `roma-ipc` carries it (bounded on decode), the host's backend adds its
/// metrics to it in place, and the dispatcher moves its fields into the [`ResponseObject`]
/// beside the caller's id. Nothing on the way converts it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// The handler's result: JSON text, or the raw string in byte-string mode.
    pub resp: String,
    /// Timings (keys in [`metrics`]): the engine's, then the host's, which the dispatcher adds
    /// to (wait time, total duration, worker index, hops), overwriting those keys.
    pub metrics: BTreeMap<String, f64>,
    /// The CPU profile of a profiled request (JSON text, at most [`MAX_PROFILE_BYTES`]), else
    /// empty.
    #[serde(default)]
    pub profiler_output: String,
}

/// The result of a load or an execution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseObject {
    /// The request's id.
    pub id: String,
    /// The handler's result: JSON text, or the raw string in byte-string mode.
    pub resp: String,
    /// Timings and placement; keys in [`metrics`].
    pub metrics: BTreeMap<String, f64>,
    /// For a profiled request: V8's CPU profile of the handler call, in the Chrome DevTools
    /// `.cpuprofile` JSON form (`nodes` with `callFrame.functionName`, `samples`,
    /// `timeDeltas`); at most [`MAX_PROFILE_BYTES`]. Empty when the request was not profiled.
    /// Produced inside the sandbox: treat it as untrusted text.
    #[serde(default)]
    pub profiler_output: String,
}
