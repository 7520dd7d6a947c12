//! The gRPC API with a real tonic client: every method, the error codes with roma's kind,
//! auth, the deadline, health, reflection, malformed protobuf, and drain.

use crate::common::*;
use crate::grpc_limits::grpc_test_server;
use roma_serve::pb::roma_client::RomaClient;
use roma_serve::pb::{
    BatchExecuteRequest, CancelRequest, LoadCodeObjRequest, batch_execute_result,
};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

async fn grpc_server() -> (TestServer, RomaClient<Channel>) {
    let (t, addr) = grpc_test_server(|_| {}).await;
    (t, RomaClient::new(grpc_channel(addr).await))
}

/// Cancels the execution named `id`: whether one was in flight.
async fn cancel(c: &mut RomaClient<Channel>, id: &str) -> bool {
    let r = CancelRequest {
        request_id: id.into(),
    };
    c.cancel(with_token(r, EXEC))
        .await
        .unwrap()
        .into_inner()
        .cancelled
}

#[track_caller]
fn kind(s: &Status) -> String {
    let k = s
        .metadata()
        .get(roma_serve::ERROR_KIND_METADATA)
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        k.as_deref().map(str::as_bytes),
        Some(s.details()),
        "kind in details and trailer: {s:?}"
    );
    k.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_and_error_code() {
    let (t, mut c) = grpc_server().await;
    let load = LoadCodeObjRequest {
        version_string: "v1".into(),
        js: JS.into(),
        ..Default::default()
    };
    let e = c
        .load_code_obj(with_token(load.clone(), EXEC))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), kind(&e).as_str()),
        (Code::Unauthenticated, "unauthenticated")
    );
    let e = c
        .load_code_obj(Request::new(load.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let r = c
        .load_code_obj(with_token(load, LOAD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.id, "v1");

    let r = c
        .execute(with_token(exec("Handler", &[r#""Foobar""#]), EXEC))
        .await
        .unwrap();
    assert!(r.metadata().contains_key("x-request-id"));
    let r = r.into_inner();
    assert_eq!(
        (r.id.as_str(), r.resp.as_str()),
        ("g1", r#""Hello world! \"Foobar\"""#)
    );
    assert!(r.metrics.contains_key("roma.execution.duration_ms"));
    let e = c
        .execute(with_token(exec("Handler", &[]), LOAD))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    let mut v2 = exec("Handler", &[]);
    v2.version_string = "v2".into();
    let cases = [
        (v2, Code::NotFound, "version_not_found"),
        (exec("Nope", &[]), Code::NotFound, "handler_not_found"),
        (exec("Handler", &["{x"]), Code::InvalidArgument, "bad_input"),
        (exec("Throw", &[]), Code::Aborted, "execution"),
    ];
    for (req, code, k) in cases {
        let e = c.execute(with_token(req, EXEC)).await.unwrap_err();
        assert_eq!((e.code(), kind(&e).as_str()), (code, k), "{e:?}");
    }
    // The call's deadline (5 s) caps the invocation's timeout a tenth earlier (4.5 s, under
    // the 5 s default), so roma's own answer comes before the transport's. 500 ms is the most
    // the server keeps back: the widest margin a loaded machine has to deliver that answer.
    let mut r = with_token(exec("Spin", &[]), EXEC);
    r.set_timeout(Duration::from_secs(5));
    let e = c.execute(r).await.unwrap_err();
    assert_eq!(
        (e.code(), kind(&e).as_str()),
        (Code::DeadlineExceeded, "timeout"),
        "{e:?}"
    );
    assert!(e.message().contains("4500ms"), "{e:?}");

    let batch = BatchExecuteRequest {
        requests: vec![exec("Handler", &["1"]), exec("Throw", &[])],
    };
    let r = c
        .batch_execute(with_token(batch, EXEC))
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(&r.results[0].result, Some(batch_execute_result::Result::Response(x)) if x.resp == r#""Hello world! 1""#)
    );
    assert!(
        matches!(&r.results[1].result, Some(batch_execute_result::Result::Error(x)) if x.kind == "execution")
    );
    let e = c
        .batch_execute(with_token(BatchExecuteRequest { requests: vec![] }, EXEC))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Cancel: a running execution named by its request_id.
    let mut spin = exec("Signal", &[]);
    spin.request_id = "spin-1".into();
    spin.tags.insert("TimeoutDuration".into(), "30s".into());
    let mut c2 = c.clone();
    let running = tokio::spawn(async move { c2.execute(with_token(spin, EXEC)).await });
    t.wait_started(1).await;
    assert!(cancel(&mut c, "spin-1").await);
    let e = running.await.unwrap().unwrap_err();
    assert_eq!(
        (e.code(), kind(&e).as_str()),
        (Code::Cancelled, "cancelled")
    );
    assert!(
        !cancel(&mut c, "spin-1").await,
        "nothing of that name is in flight any more"
    );

    // gRPC calls count in the same metrics.
    assert_eq!(
        t.metric("roma_requests_total{endpoint=\"grpc_execute\",code_id=\"v1\",outcome=\"ok\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_and_malformed_protobuf() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let (mut t, _c) = grpc_server().await;
    let addr = t.server.as_ref().unwrap().grpc_addr().unwrap();
    let channel = grpc_channel(addr).await;
    let mut health = HealthClient::new(channel.clone());
    let r = health
        .check(HealthCheckRequest {
            service: "roma.v1.Roma".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, tonic_health::ServingStatus::Serving as i32);

    // Reflection lists the service, as grpcurl would see it.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut refl = ServerReflectionClient::new(channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("not a service list: {msg:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"roma.v1.Roma"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    // The host-side service of bindings is defined in roma.v1 but served by operators.
    assert!(!names.contains(&"roma.v1.HostFunctionService"), "{names:?}");

    // Bytes that are not an ExecuteRequest: INVALID_ARGUMENT-class refusal, and the server
    // goes on.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = "/roma.v1.Roma/Execute".parse().unwrap();
    let e = grpc
        .unary::<_, roma_serve::pb::ExecuteResponse, _>(
            with_token(RawBytes(vec![0xff, 0xff, 0xff, 0x0f, 0x01]), EXEC),
            path,
            RawCodec,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), Code::Internal | Code::InvalidArgument),
        "{e:?}"
    );
    let r = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, tonic_health::ServingStatus::Serving as i32);

    // Draining: health goes NOT_SERVING... and the server ends.
    t.server.as_ref().unwrap().drain();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            {
                Ok(r) if r.get_ref().status == tonic_health::ServingStatus::Serving as i32 => {}
                _ => return,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("health stops serving");
    t.drain().await;
}

/// A message of raw bytes, to send what no well-behaved client would.
struct RawBytes(Vec<u8>);

#[derive(Clone, Copy)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = RawBytes;
    type Decode = roma_serve::pb::ExecuteResponse;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = RawBytes;
    type Error = Status;
    fn encode(
        &mut self,
        item: RawBytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        use bytes::BufMut;
        dst.put_slice(&item.0);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = roma_serve::pb::ExecuteResponse;
    type Error = Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Status> {
        use prost::Message;
        Self::Item::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}
