//! The gRPC form of a config-declared binding (`url = "grpc://host:port"`): each call is one
//! `roma.v1.HostFunctionService/Call` (`proto/roma/v1/host_function.proto`) on a channel the
//! binding keeps, so calls share one HTTP/2 connection instead of opening one each. The call
//! carries the binding's timeout as its deadline, and the answer is read only up to the
//! binding's `max_response_bytes`.

use super::{Answer, BindingSettings};
use crate::api::RequestMetadata;
use crate::grpc::pb;
use pb::binding_value::Kind;
use pb::host_function_service_client::HostFunctionServiceClient;
use roma::{BindingInput, BindingOutput};
use tonic::transport::{Channel, Endpoint};

/// The channel of binding `b`, which connects on its first call and again after its
/// connection breaks; `Err` if the `url` does not make an endpoint.
pub(super) fn channel(b: &BindingSettings) -> Result<Channel, String> {
    let authority = b
        .url
        .authority()
        .ok_or_else(|| format!("{}: names no host", b.url))?;
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| format!("{}: {e}", b.url))?
        .connect_timeout(b.timeout)
        // Without it a small call waits for the peer's delayed ACK, as on the server's side.
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// One call of binding `b` with `input`; `Err` is why it failed.
pub(super) async fn call(
    channel: &Channel,
    b: &BindingSettings,
    meta: &RequestMetadata,
    input: BindingInput,
) -> Result<Answer, String> {
    let mut client = HostFunctionServiceClient::new(channel.clone())
        .max_decoding_message_size(b.max_response_bytes);
    let mut req = tonic::Request::new(pb::CallRequest {
        binding: b.name.clone(),
        request_id: meta.request_id.clone(),
        metadata: meta
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        input: value_of(input),
    });
    req.set_timeout(b.timeout);
    // The request id is a short token of [A-Za-z0-9._-], which is always a valid value.
    if let Ok(v) = meta.request_id.parse() {
        req.metadata_mut().insert(crate::http::REQUEST_ID_HEADER, v);
    }
    let answer = client
        .call(req)
        .await
        .map_err(|s| format!("the endpoint answered {:?}: {}", s.code(), s.message()))?
        .into_inner();
    match answer.result {
        None => Ok(Ok(BindingOutput::None)),
        Some(pb::call_response::Result::Error(e)) => Ok(Err(e)),
        Some(pb::call_response::Result::Output(v)) => output_of(v).map(Ok),
    }
}

/// What the code passed, as the message carries it; `None` for nothing.
fn value_of(input: BindingInput) -> Option<pb::BindingValue> {
    let kind = match input {
        BindingInput::None => return None,
        BindingInput::String(s) => Kind::StringValue(s),
        BindingInput::List(values) => Kind::ListValue(pb::StringList { values }),
        BindingInput::Map(m) => Kind::MapValue(pb::StringMap {
            entries: m.into_iter().collect(),
        }),
        BindingInput::Bytes(b) => Kind::BytesValue(b),
        BindingInput::Json(j) => Kind::JsonValue(j),
    };
    Some(pb::BindingValue { kind: Some(kind) })
}

/// The endpoint's output as the code gets it; `Err` for a form the code cannot be given.
fn output_of(v: pb::BindingValue) -> Result<BindingOutput, String> {
    Ok(match v.kind {
        None => BindingOutput::None,
        Some(Kind::StringValue(s)) => BindingOutput::String(s),
        Some(Kind::ListValue(l)) => BindingOutput::List(l.values),
        Some(Kind::MapValue(m)) => BindingOutput::Map(m.entries.into_iter().collect()),
        Some(Kind::BytesValue(b)) => BindingOutput::Bytes(b),
        Some(Kind::JsonValue(_)) => {
            return Err("output cannot be json_value; return a string_value".into());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn every_form_crosses_and_json_only_goes_in() {
        let map = BTreeMap::from([("a".to_string(), "1".to_string())]);
        for (input, output) in [
            (
                BindingInput::String("s".into()),
                BindingOutput::String("s".into()),
            ),
            (
                BindingInput::List(vec!["x".into(), "y".into()]),
                BindingOutput::List(vec!["x".into(), "y".into()]),
            ),
            (BindingInput::Map(map.clone()), BindingOutput::Map(map)),
            (
                BindingInput::Bytes(vec![0, 255]),
                BindingOutput::Bytes(vec![0, 255]),
            ),
        ] {
            let v = value_of(input).expect("a value");
            assert_eq!(output_of(v), Ok(output));
        }
        assert_eq!(value_of(BindingInput::None), None);
        assert_eq!(
            output_of(pb::BindingValue { kind: None }),
            Ok(BindingOutput::None)
        );
        let json = value_of(BindingInput::Json(r#"{"a":1}"#.into())).expect("a value");
        assert_eq!(json.kind, Some(Kind::JsonValue(r#"{"a":1}"#.into())));
        assert!(output_of(json).is_err());
    }
}
