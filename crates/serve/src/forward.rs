//! Host functions for a server that runs no Rust of the operator's: each binding the config
//! declares (`[[bindings]]`) forwards its calls to an HTTP or gRPC endpoint the operator runs,
//! with the request's id and the client's metadata beside the call's input, and a timeout per
//! call. The code sees only the endpoint's output; no binding exists that the config does not
//! declare.
//!
//! Two wire forms, chosen by the scheme of the binding's `url`: `http://` posts one JSON body
//! per call ([`CallBody`], answered by an [`AnswerBody`]); `grpc://` makes one
//! `roma.v1.HostFunctionService/Call` per call ([`grpc`]). Both fail the same way, and
//! docs/serve.md describes both.

mod grpc;

use crate::api::RequestMetadata;
use crate::error::ServeError;
use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use roma::{BindingInput, BindingOutput, FunctionBindingIo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The largest answer an endpoint may send, in bytes, unless `max_response_bytes` says.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;

/// One `[[bindings]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingSettings {
    /// `name`: what the code calls (`kv.get` creates `kv` with `get`).
    pub name: String,
    /// `url`: where each call goes: `http://host:port/path` (a JSON `POST`) or
    /// `grpc://host:port` (`roma.v1.HostFunctionService/Call`).
    pub url: hyper::Uri,
    /// `timeout`: how long one call may take, connecting included (default 1 s). Past it the
    /// call throws in JS.
    pub timeout: Duration,
    /// `async`: the function returns a Promise instead of blocking the handler (default
    /// false).
    pub is_async: bool,
    /// `max_response_bytes`: the largest answer read (default 1 MiB): the body of an HTTP
    /// answer, the message of a gRPC one. A larger one fails the call.
    pub max_response_bytes: usize,
}

/// How a binding reaches its endpoint, from its `url`'s scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Grpc,
}

impl BindingSettings {
    /// A synchronous binding `name` calling `url` (`http://` or `grpc://`) with the default
    /// timeout.
    pub fn new(name: impl Into<String>, url: hyper::Uri) -> Self {
        BindingSettings {
            name: name.into(),
            url,
            timeout: Duration::from_secs(1),
            is_async: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A `[[bindings]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BindingTable {
    name: Option<String>,
    url: Option<String>,
    timeout: Option<String>,
    #[serde(rename = "async", default)]
    is_async: bool,
    max_response_bytes: Option<usize>,
}

/// Checks the tables; errors name the key (`bindings[1].url`).
pub(crate) fn resolve(tables: Vec<BindingTable>) -> Result<Vec<BindingSettings>, ServeError> {
    let mut out: Vec<BindingSettings> = Vec::with_capacity(tables.len());
    for (i, t) in tables.into_iter().enumerate() {
        let key = |k: &str| format!("bindings[{i}].{k}");
        let name = t
            .name
            .ok_or_else(|| config(&key("name"), "is required".into()))?;
        let url = t
            .url
            .ok_or_else(|| config(&key("url"), "is required".into()))?;
        let url = parse_url(&url).map_err(|m| config(&key("url"), m))?;
        let mut b = BindingSettings::new(name, url);
        if let Some(d) = t.timeout {
            b.timeout = roma::tools::parse_duration(&d)
                .map_err(|e| config(&key("timeout"), format!("{d:?}: {e}")))?;
        }
        b.is_async = t.is_async;
        if let Some(n) = t.max_response_bytes {
            b.max_response_bytes = n;
        }
        out.push(b);
    }
    validate(&out)?;
    Ok(out)
}

/// Checks each binding and that no name is declared twice.
pub(crate) fn validate(bindings: &[BindingSettings]) -> Result<(), ServeError> {
    for (i, b) in bindings.iter().enumerate() {
        let key = |k: &str| format!("bindings[{i}].{k}");
        let ident = |s: &str| {
            let mut c = s.chars();
            c.next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == '$')
                && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '$')
        };
        if b.name.is_empty() || !b.name.split('.').all(ident) {
            return Err(config(
                &key("name"),
                format!("{:?} is not a JS identifier path (a.b.c)", b.name),
            ));
        }
        if bindings[..i].iter().any(|o| o.name == b.name) {
            return Err(config(
                &key("name"),
                format!("{:?} is declared twice", b.name),
            ));
        }
        parse_url(&b.url.to_string()).map_err(|m| config(&key("url"), m))?;
        if b.timeout.is_zero() {
            return Err(config(&key("timeout"), "must be more than 0".into()));
        }
        if b.max_response_bytes == 0 {
            return Err(config(
                &key("max_response_bytes"),
                "must be at least 1".into(),
            ));
        }
    }
    Ok(())
}

fn parse_url(text: &str) -> Result<hyper::Uri, String> {
    let u: hyper::Uri = text.parse().map_err(|e| format!("{text:?}: {e}"))?;
    scheme(&u).map_err(|m| format!("{text:?}: {m}"))?;
    Ok(u)
}

/// The scheme of a binding's `url`, once the rest of it fits that scheme.
fn scheme(u: &hyper::Uri) -> Result<Scheme, &'static str> {
    if u.host().is_none_or(str::is_empty) {
        return Err("names no host");
    }
    match u.scheme_str() {
        Some("http") => Ok(Scheme::Http),
        Some("grpc") => {
            if u.port().is_none() {
                return Err("a grpc:// endpoint needs a port (grpc://host:port)");
            }
            if !matches!(u.path(), "" | "/") || u.query().is_some() {
                return Err(
                    "a grpc:// endpoint names no path: every call is roma.v1.HostFunctionService/Call",
                );
            }
            Ok(Scheme::Grpc)
        }
        _ => Err(
            "only http:// and grpc:// endpoints are supported (no TLS: run the endpoint beside the server)",
        ),
    }
}

fn config(key: &str, message: String) -> ServeError {
    ServeError::Config {
        key: key.to_string(),
        message,
    }
}

/// What the endpoint receives: one JSON object per call.
#[derive(Serialize, Deserialize, Debug)]
pub struct CallBody {
    /// The binding's name.
    pub binding: String,
    /// The request's id (its `x-request-id`).
    pub request_id: String,
    /// The client's metadata of the request.
    pub metadata: BTreeMap<String, String>,
    /// What the code passed; `null` for nothing (`undefined`).
    pub input: Option<Value>,
}

/// What the endpoint answers (status 200): `{"output": ...}`, or `{"error": "..."}` to make
/// the JS call throw that message.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// What the call returns to the code; absent or `null` for `undefined`.
    #[serde(default)]
    pub output: Option<Value>,
    /// Makes the call throw instead.
    #[serde(default)]
    pub error: Option<String>,
}

/// A value crossing into or out of the code, tagged by its JS type: `{"string": ".."}`,
/// `{"list": [..]}`, `{"map": {..}}`, `{"bytes": "<base64>"}`, and for the input only
/// `{"json": <an object>}`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Value {
    /// A string.
    String(String),
    /// An array of strings.
    List(Vec<String>),
    /// A `Map` of strings to strings.
    Map(BTreeMap<String, String>),
    /// A `Uint8Array`, base64.
    Bytes(String),
    /// A plain object the code passed, as JSON.
    Json(Box<serde_json::value::RawValue>),
}

impl Value {
    fn from_input(i: BindingInput) -> Option<Value> {
        Some(match i {
            BindingInput::None => return None,
            BindingInput::String(s) => Value::String(s),
            BindingInput::List(l) => Value::List(l),
            BindingInput::Map(m) => Value::Map(m),
            BindingInput::Bytes(b) => {
                Value::Bytes(base64::engine::general_purpose::STANDARD.encode(b))
            }
            // The worker wrote this text: it reaches the endpoint only if it is JSON.
            BindingInput::Json(j) => Value::Json(serde_json::value::RawValue::from_string(j).ok()?),
        })
    }

    fn into_output(v: Option<Self>) -> Result<BindingOutput, String> {
        let Some(v) = v else {
            return Ok(BindingOutput::None);
        };
        Ok(match v {
            Value::String(s) => BindingOutput::String(s),
            Value::List(l) => BindingOutput::List(l),
            Value::Map(m) => BindingOutput::Map(m),
            Value::Bytes(b) => BindingOutput::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("output bytes are not base64: {e}"))?,
            ),
            Value::Json(_) => return Err("output cannot be json; return a string".into()),
        })
    }
}

/// What an endpoint answered a call: the output for the code, or the message of the error
/// the code throws.
type Answer = Result<BindingOutput, String>;

/// How one binding's calls reach its endpoint.
enum Transport {
    /// A JSON `POST` per call, on the server's pool of kept-alive connections (a handle to
    /// the shared pool, boxed: it is six times the size of a channel).
    Http(Box<Client<HttpConnector, Full<Bytes>>>),
    /// A gRPC call per call, on the binding's own channel.
    Grpc(tonic::transport::Channel),
}

/// Forwards the calls of one binding.
struct Forwarder {
    settings: BindingSettings,
    transport: Transport,
}

impl Forwarder {
    /// One call: the io with its output, or with the error the code sees (the details go to
    /// the log, not to the code).
    async fn call(&self, mut io: FunctionBindingIo, meta: RequestMetadata) -> FunctionBindingIo {
        let input = std::mem::take(&mut io.input);
        let answer = async {
            match &self.transport {
                Transport::Http(client) => self.post(client, &meta, input).await,
                Transport::Grpc(channel) => grpc::call(channel, &self.settings, &meta, input).await,
            }
        };
        let result = tokio::time::timeout(self.settings.timeout, answer)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.settings.timeout)));
        match result {
            Ok(Ok(output)) => io.output = output,
            Ok(Err(thrown)) => io.errors.push(thrown),
            Err(why) => self.fail(&mut io, &meta.request_id, why),
        }
        io
    }

    fn fail(&self, io: &mut FunctionBindingIo, request_id: &str, why: String) {
        tracing::warn!(request_id, binding = %self.settings.name, error = %why, "host function call failed");
        io.errors.push(format!("{} failed", self.settings.name));
    }

    /// The HTTP form: one JSON `POST`; `Err` is why the call failed.
    async fn post(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        meta: &RequestMetadata,
        input: BindingInput,
    ) -> Result<Answer, String> {
        let body = CallBody {
            binding: self.settings.name.clone(),
            request_id: meta.request_id.clone(),
            metadata: meta.values.clone(),
            input: Value::from_input(input),
        };
        let json = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let req = hyper::Request::post(self.settings.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(crate::http::REQUEST_ID_HEADER, &body.request_id)
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| e.to_string())?;
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if status != hyper::StatusCode::OK {
            return Err(format!("the endpoint answered {status}"));
        }
        let bytes = Limited::new(resp.into_body(), self.settings.max_response_bytes)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        let answer: AnswerBody = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the answer is not the expected JSON: {e}"))?;
        match answer {
            AnswerBody { error: Some(e), .. } => Ok(Err(e)),
            AnswerBody { output, .. } => Value::into_output(output).map(Ok),
        }
    }
}

/// Registers each binding on `config`; their calls run on the runtime of `handle`. The gRPC
/// channels connect on their first call, so an endpoint that is not up yet does not stop the
/// start.
pub(crate) fn register(
    bindings: &[BindingSettings],
    config: &mut roma::Config<RequestMetadata>,
    handle: &tokio::runtime::Handle,
) -> Result<(), ServeError> {
    if bindings.is_empty() {
        return Ok(());
    }
    // A channel's connection task runs on the server's runtime.
    let _runtime = handle.enter();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    for (i, b) in bindings.iter().enumerate() {
        // `config` is the roma config here: the error maker is `self::config`.
        let bad_url = |m: String| self::config(&format!("bindings[{i}].url"), m);
        let transport = match scheme(&b.url) {
            Ok(Scheme::Http) => Transport::Http(Box::new(client.clone())),
            Ok(Scheme::Grpc) => Transport::Grpc(grpc::channel(b).map_err(bad_url)?),
            Err(m) => return Err(bad_url(m.to_string())),
        };
        let f = Arc::new(Forwarder {
            settings: b.clone(),
            transport,
        });
        let handle = handle.clone();
        if b.is_async {
            config.register_async_function(b.name.clone(), move |io, meta| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let (f, meta) = (Arc::clone(&f), meta.clone());
                handle.spawn(async move {
                    let _ = tx.send(f.call(io, meta).await);
                });
                Box::pin(async move { rx.await.unwrap_or_else(|_| stopped()) })
            });
        } else {
            config.register_function(b.name.clone(), move |p| {
                // The slot's thread waits; the call itself runs on the server's runtime,
                // bounded by its timeout.
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let (f, meta) = (Arc::clone(&f), p.metadata.clone());
                let io = std::mem::take(&mut p.io);
                handle.spawn(async move {
                    let _ = tx.send(f.call(io, meta).await);
                });
                p.io = rx.recv().unwrap_or_else(|_| stopped());
            });
        }
    }
    Ok(())
}

/// The answer of a call the server stopped before it finished.
fn stopped() -> FunctionBindingIo {
    FunctionBindingIo {
        errors: vec!["the server is stopping".into()],
        ..FunctionBindingIo::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml_text: &str) -> Result<Vec<BindingSettings>, String> {
        #[derive(Deserialize)]
        struct F {
            bindings: Vec<BindingTable>,
        }
        let f: F = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        resolve(f.bindings).map_err(|e| e.to_string())
    }

    #[test]
    fn bindings_are_checked_by_key() {
        let ok = table(
            "[[bindings]]\nname = \"kv.get\"\nurl = \"http://127.0.0.1:9/kv\"\ntimeout = \"50ms\"\n\
             [[bindings]]\nname = \"log\"\nurl = \"http://localhost:9/\"\nasync = true\n",
        )
        .unwrap();
        assert_eq!(ok[0].timeout, Duration::from_millis(50));
        assert!(!ok[0].is_async && ok[1].is_async);
        assert_eq!(ok[1].timeout, Duration::from_secs(1));
        let err = |t: &str| table(t).unwrap_err();
        assert!(err("[[bindings]]\nurl = \"http://a/\"\n").contains("bindings[0].name"));
        assert!(
            err("[[bindings]]\nname = \"a\"\nurl = \"https://a/\"\n").contains("bindings[0].url")
        );
        assert!(
            err("[[bindings]]\nname = \"a-b\"\nurl = \"http://a/\"\n").contains("bindings[0].name")
        );
        assert!(
            err("[[bindings]]\nname = \"a\"\nurl = \"http://a/\"\n[[bindings]]\nname = \"a\"\nurl = \"http://b/\"\n")
                .contains("bindings[1].name")
        );
        assert!(
            err("[[bindings]]\nname = \"a\"\nurl = \"http://a/\"\ntimeout = \"0s\"\n")
                .contains("bindings[0].timeout")
        );
        assert!(
            err("[[bindings]]\nname = \"a\"\nurl = \"http://a/\"\nmethod = \"GET\"\n")
                .contains("method")
        );
    }

    #[test]
    fn grpc_endpoints_name_a_host_and_port_and_no_path() {
        let ok =
            table("[[bindings]]\nname = \"kv.get\"\nurl = \"grpc://127.0.0.1:9001\"\n").unwrap();
        assert_eq!(scheme(&ok[0].url), Ok(Scheme::Grpc));
        let ok =
            table("[[bindings]]\nname = \"kv.get\"\nurl = \"http://127.0.0.1:9001/kv\"\n").unwrap();
        assert_eq!(scheme(&ok[0].url), Ok(Scheme::Http));
        for (url, why) in [
            ("grpc://127.0.0.1", "needs a port"),
            ("grpc://127.0.0.1:9001/kv.get", "names no path"),
            ("grpc://127.0.0.1:9001/?x=1", "names no path"),
            ("grpcs://127.0.0.1:9001", "only http:// and grpc://"),
        ] {
            let e = table(&format!("[[bindings]]\nname = \"a\"\nurl = \"{url}\"\n")).unwrap_err();
            assert!(
                e.contains("bindings[0].url") && e.contains(why),
                "{url}: {e}"
            );
        }
        // A binding built in code is checked by the same rules.
        let b = BindingSettings::new("a", "grpc://127.0.0.1/x".parse().unwrap());
        let e = validate(&[b]).unwrap_err().to_string();
        assert!(e.contains("bindings[0].url"), "{e}");
    }

    #[test]
    fn values_cross_in_their_tagged_form() {
        let v = Value::from_input(BindingInput::Bytes(vec![1, 2, 255]));
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"bytes":"AQL/"}"#);
        let v = Value::from_input(BindingInput::Json(r#"{"a":1}"#.into()));
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"json":{"a":1}}"#);
        assert_eq!(
            serde_json::to_string(&Value::from_input(BindingInput::None)).unwrap(),
            "null"
        );
        assert!(Value::from_input(BindingInput::Json("{not json".into())).is_none());
        let out = |text: &str| {
            let a: AnswerBody = serde_json::from_str(text).unwrap();
            Value::into_output(a.output)
        };
        assert_eq!(
            out(r#"{"output":{"list":["x","y"]}}"#).unwrap(),
            BindingOutput::List(vec!["x".into(), "y".into()])
        );
        assert_eq!(
            out(r#"{"output":{"bytes":"AQL/"}}"#).unwrap(),
            BindingOutput::Bytes(vec![1, 2, 255])
        );
        assert_eq!(out("{}").unwrap(), BindingOutput::None);
        assert_eq!(out(r#"{"output":null}"#).unwrap(), BindingOutput::None);
        assert!(out(r#"{"output":{"json":{}}}"#).is_err());
        assert!(out(r#"{"output":{"bytes":"!!"}}"#).is_err());
        assert!(serde_json::from_str::<AnswerBody>(r#"{"output":{"number":1}}"#).is_err());
    }
}
