//! The JSON bodies of the HTTP API, and their checks against the server's limits, turning a
//! client's body into a roma request.

use crate::error::ApiError;
use crate::settings::{Limits, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES};
use base64::Engine;
use roma::{CodeObject, ErrorKind, InvocationRequest, ResponseObject, RomaError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// What host functions see of a request: the server's request id and the client's metadata.
/// It stays in the server and never enters a worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMetadata {
    /// The id of the HTTP request (its `x-request-id`).
    pub request_id: String,
    /// The `metadata` field of the request.
    pub values: BTreeMap<String, String>,
}

/// `POST /v1/code`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// Echoed in the answer; the version when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The version to load the code as.
    pub version_string: String,
    /// JavaScript source.
    #[serde(default)]
    pub js: Option<String>,
    /// A standalone WASM module, base64.
    #[serde(default)]
    pub wasm: Option<String>,
    /// A WASM module handed to `js` as a `Uint8Array`, base64.
    #[serde(default)]
    pub wasm_bin: Option<String>,
    /// Tags of the code object.
    #[serde(default)]
    pub tags: HashMap<String, String>,
}

/// `POST /v1/execute`, and each request of a batch.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// Echoed in the answer.
    #[serde(default)]
    pub id: String,
    /// The loaded version to run.
    pub version_string: String,
    /// The handler to call.
    pub handler_name: String,
    /// One JSON text per argument.
    #[serde(default)]
    pub input: Vec<String>,
    /// Tags (`TimeoutDuration` sets the timeout).
    #[serde(default)]
    pub tags: HashMap<String, String>,
    /// Handed to host functions, never to the code.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Pass the single input as a raw string and return the result raw.
    #[serde(default)]
    pub treat_input_as_byte_str: bool,
}

/// `POST /v1/batch`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// Run all or none.
    pub requests: Vec<ExecuteBody>,
}

/// A successful answer.
#[derive(Serialize, Debug)]
pub struct ResponseBody {
    /// The request's id.
    pub id: String,
    /// The server's request id (also the `x-request-id` header and the log line's).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// The handler's result (JSON text, or the raw string in byte-string mode).
    pub resp: String,
    /// Timings, as roma reports them.
    pub metrics: BTreeMap<String, f64>,
}

impl ResponseBody {
    /// The answer to request `request_id`.
    pub fn for_request(r: ResponseObject, request_id: &str) -> Self {
        ResponseBody {
            request_id: request_id.to_string(),
            ..ResponseBody::from(r)
        }
    }
}

impl From<ResponseObject> for ResponseBody {
    fn from(r: ResponseObject) -> Self {
        ResponseBody {
            id: r.id,
            request_id: String::new(),
            resp: r.resp,
            metrics: r.metrics,
        }
    }
}

/// One entry of a batch answer: a response or an error.
#[derive(Serialize, Debug)]
#[serde(untagged)]
pub enum BatchEntry {
    /// It ran.
    Ok(ResponseBody),
    /// It failed.
    Err {
        /// `{"kind","message"}`.
        error: BatchError,
    },
}

/// A failed entry of a batch.
#[derive(Serialize, Debug)]
pub struct BatchError {
    /// roma's kind name.
    pub kind: &'static str,
    /// What happened.
    pub message: String,
}

/// Parses a JSON body; a body that is not the expected JSON is `invalid_argument` (400).
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Roma(RomaError::invalid_argument(format!("bad JSON body: {e}"))))
}

fn too_large(message: String) -> ApiError {
    ApiError::Roma(RomaError::new(ErrorKind::PayloadTooLarge, message))
}

impl CodeBody {
    /// The code object, within `limits.max_code_bytes`.
    pub fn into_code(self, limits: &Limits) -> Result<CodeObject, ApiError> {
        let decode = |field: &str, v: Option<String>| -> Result<Vec<u8>, ApiError> {
            match v {
                None => Ok(Vec::new()),
                Some(s) => base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map_err(|e| {
                        ApiError::Roma(RomaError::invalid_argument(format!(
                            "{field} is not base64: {e}"
                        )))
                    }),
            }
        };
        let code = CodeObject {
            wasm: decode("wasm", self.wasm)?,
            wasm_bin: decode("wasm_bin", self.wasm_bin)?,
            js: self.js.unwrap_or_default(),
            id: self.id.unwrap_or_else(|| self.version_string.clone()),
            version_string: self.version_string,
            tags: self.tags,
        };
        check_code_size(&code, limits)?;
        Ok(code)
    }
}

/// Refuses a code object whose JS and modules together are past `limits.max_code_bytes`.
pub(crate) fn check_code_size(code: &CodeObject, limits: &Limits) -> Result<(), ApiError> {
    let size = code.js.len() + code.wasm.len() + code.wasm_bin.len();
    if size > limits.max_code_bytes {
        return Err(too_large(format!(
            "the code object holds {size} bytes, more than limits.max_code_bytes ({})",
            limits.max_code_bytes
        )));
    }
    Ok(())
}

/// Refuses a batch that is empty or holds more than `limits.max_batch` requests.
pub(crate) fn check_batch_len(len: usize, limits: &Limits) -> Result<(), RomaError> {
    if len == 0 {
        return Err(RomaError::invalid_argument("the batch holds no requests"));
    }
    if len > limits.max_batch {
        return Err(RomaError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "{len} requests, more than limits.max_batch ({})",
                limits.max_batch
            ),
        ));
    }
    Ok(())
}

impl ExecuteBody {
    /// The roma request, within the limits, its timeout capped at `deadline` (the client's)
    /// when one is given.
    pub fn into_request(
        self,
        limits: &Limits,
        request_id: &str,
        default_timeout: Duration,
        deadline: Option<Duration>,
    ) -> Result<InvocationRequest<RequestMetadata>, ApiError> {
        if self.input.len() > limits.max_inputs {
            return Err(too_large(format!(
                "{} inputs, more than limits.max_inputs ({})",
                self.input.len(),
                limits.max_inputs
            )));
        }
        if self.metadata.len() > limits.max_metadata_entries {
            return Err(too_large(format!(
                "{} metadata entries, more than limits.max_metadata_entries ({})",
                self.metadata.len(),
                limits.max_metadata_entries
            )));
        }
        if let Some((k, v)) = self
            .metadata
            .iter()
            .find(|(k, v)| k.len() > MAX_METADATA_KEY_BYTES || v.len() > MAX_METADATA_VALUE_BYTES)
        {
            return Err(too_large(format!(
                "metadata entry {:?} ({} bytes of key, {} of value) is past the {MAX_METADATA_KEY_BYTES}/{MAX_METADATA_VALUE_BYTES} byte bounds",
                k.chars().take(32).collect::<String>(),
                k.len(),
                v.len()
            )));
        }
        let mut r = InvocationRequest::new(&self.version_string, &self.handler_name, self.input)
            .with_metadata(RequestMetadata {
                request_id: request_id.to_string(),
                values: self.metadata,
            })
            .with_id(self.id);
        r.tags = self.tags;
        r.treat_input_as_byte_str = self.treat_input_as_byte_str;
        if let Some(deadline) = deadline {
            let asked = match r.tags.get(roma::TIMEOUT_DURATION_TAG) {
                Some(tag) => roma::tools::parse_duration(tag).map_err(|e| {
                    ApiError::Roma(RomaError::invalid_argument(format!(
                        "bad {} tag: {e}",
                        roma::TIMEOUT_DURATION_TAG
                    )))
                })?,
                None => default_timeout,
            };
            r.timeout = Some(asked.min(deadline));
        }
        Ok(r)
    }
}
