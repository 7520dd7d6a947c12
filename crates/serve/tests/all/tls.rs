//! TLS on both listeners and client certificates as credentials, with real rustls clients:
//! certificates made by rcgen for each run (a CA, the server, a loader, an executor, and a
//! client of another CA), HTTP/1.1 over TLS through hyper and gRPC over TLS through tonic.

use crate::common::*;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use roma_serve::pb::LoadCodeObjRequest;
use roma_serve::pb::roma_client::RomaClient;
use roma_serve::{Settings, TlsSettings};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// A leaf certificate for `names`, signed by `ca`: its DER and its key.
fn leaf(ca: &Ca, names: &[&str], eku: ExtendedKeyUsagePurpose) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, names[0]);
    p.extended_key_usages = vec![eku];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert, key)
}

/// What a test needs to be a client: the CA to trust, and client identities.
struct Pki {
    ca: Ca,
    loader: (rcgen::Certificate, KeyPair),
    executor: (rcgen::Certificate, KeyPair),
    stranger: (rcgen::Certificate, KeyPair),
}

/// The test's folder, where [`settings`] put its token files.
fn test_dir(s: &Settings) -> PathBuf {
    let token = s.load_token_file.as_ref().unwrap();
    token.parent().unwrap().to_path_buf()
}

/// Writes the server's files into the test's folder and sets `s.tls`.
fn pki(s: &mut Settings) -> Pki {
    let dir = test_dir(s);
    let ca = ca("roma test CA");
    let (server, server_key) = leaf(
        &ca,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut tls = TlsSettings::new(
        write("server.pem", server.pem()),
        write("server.key", server_key.serialize_pem()),
    );
    tls.client_ca_file = Some(write("clients-ca.pem", ca.cert.pem()));
    tls.load_clients = vec!["loader.test".into()];
    tls.execute_clients = vec!["app.test".into()];
    s.tls = Some(tls);
    let other = self::ca("another CA");
    Pki {
        loader: leaf(&ca, &["loader.test"], ExtendedKeyUsagePurpose::ClientAuth),
        executor: leaf(&ca, &["app.test"], ExtendedKeyUsagePurpose::ClientAuth),
        stranger: leaf(&other, &["app.test"], ExtendedKeyUsagePurpose::ClientAuth),
        ca,
    }
}

fn client_config(
    pki: &Pki,
    who: Option<&(rcgen::Certificate, KeyPair)>,
    alpn: &[u8],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.cert.der().clone()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut c = match who {
        None => b.with_no_client_auth(),
        Some((cert, key)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap(),
    };
    c.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(c)
}

/// A client of the server's HTTPS port, with the identity its config holds.
struct Https {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
}

impl Https {
    /// A client of `t` that presents `who`'s certificate, or none.
    fn new(t: &TestServer, pki: &Pki, who: Option<&(rcgen::Certificate, KeyPair)>) -> Https {
        Https {
            addr: t.addr,
            config: client_config(pki, who, b"http/1.1"),
        }
    }

    /// The anonymous client, the loader and the app of `t`.
    fn all(t: &TestServer, pki: &Pki) -> [Https; 3] {
        [None, Some(&pki.loader), Some(&pki.executor)].map(|who| Https::new(t, pki, who))
    }

    /// One request on a new connection: `GET` if `body` is empty, else `POST`; an error when
    /// the handshake or the exchange fails.
    async fn send(&self, path: &str, token: Option<&str>, body: String) -> Result<Reply, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut b = Request::builder()
            .method(if body.is_empty() { "GET" } else { "POST" })
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let resp = tokio::time::timeout(
            PATIENCE,
            send.send_request(b.body(Full::from(body)).unwrap()),
        )
        .await
        .expect("answered in time")
        .map_err(|e| e.to_string())?;
        Ok(Reply::read(resp).await)
    }

    /// `GET path` without a token.
    async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(path, None, String::new()).await
    }
}

fn code_body(version: &str) -> String {
    serde_json::json!({"version_string": version, "js": JS}).to_string()
}

fn execute_body() -> String {
    serde_json::json!({"version_string": "v1", "handler_name": "Handler", "input": ["\"tls\""]})
        .to_string()
}

async fn tls_server() -> (TestServer, Pki) {
    let mut s = settings();
    s.grpc = Some("127.0.0.1:0".parse().unwrap());
    s.limits.header_read_timeout = Duration::from_millis(500);
    let pki = pki(&mut s);
    (TestServer::start(s).await, pki)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_tokens_and_client_certificates() {
    let (t, pki) = tls_server().await;
    let [anon, loader, app] = Https::all(&t, &pki);

    // Tokens still work over TLS, and nothing works without a credential.
    let r = anon.send("/v1/code", Some(LOAD), code_body("v1")).await;
    assert_eq!(r.unwrap().status, StatusCode::OK);
    let r = anon.send("/v1/execute", None, execute_body()).await;
    r.unwrap()
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(anon.get("/healthz").await.unwrap().status, StatusCode::OK);

    // Each certificate has its own role and no other.
    let r = app.send("/v1/execute", None, execute_body()).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["resp"], "\"Hello world! \\\"tls\\\"\"");
    let r = app.send("/v1/code", None, code_body("v2")).await.unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = loader
        .send("/v1/code", None, code_body("v2"))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = loader.send("/v1/execute", None, execute_body()).await;
    assert_eq!(r.unwrap().status, StatusCode::UNAUTHORIZED);
    // The executor's certificate with the load token: the token grants what the certificate
    // does not.
    let r = app.send("/v1/code", Some(LOAD), code_body("v3")).await;
    let r = r.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A certificate from another CA is refused in the handshake, whatever name it holds.
    let stranger = Https::new(&t, &pki, Some(&pki.stranger));
    let r = stranger
        .send("/v1/execute", Some(EXEC), execute_body())
        .await;
    assert!(r.is_err(), "a stranger's certificate was accepted: {r:?}");

    // Plain HTTP on the TLS port gets no HTTP answer, and the server carries on.
    let mut plain = TcpStream::connect(t.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(!buf.starts_with(b"HTTP/"), "a plain answer: {buf:?}");
    assert_eq!(anon.get("/readyz").await.unwrap().status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_alone_when_no_token_file_is_configured() {
    let mut s = settings();
    let pki = pki(&mut s);
    s.load_token_file = None;
    s.execute_token_file = None;
    let t = TestServer::start(s).await;
    let [anon, loader, app] = Https::all(&t, &pki);
    // No token grants anything, not even what the unused token files hold.
    let r = anon.send("/v1/code", Some(LOAD), code_body("v1")).await;
    let r = r.unwrap();
    r.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(r.body.contains("client certificate"), "{}", r.body);
    // Each certificate grants its role, and only it.
    for (who, path, token, body, status) in [
        (
            &anon,
            "/v1/execute",
            Some(EXEC),
            execute_body(),
            StatusCode::UNAUTHORIZED,
        ),
        (&loader, "/v1/code", None, code_body("v1"), StatusCode::OK),
        (
            &loader,
            "/v1/execute",
            None,
            execute_body(),
            StatusCode::UNAUTHORIZED,
        ),
        (&app, "/v1/execute", None, execute_body(), StatusCode::OK),
    ] {
        let r = who.send(path, token, body).await.unwrap();
        assert_eq!(r.status, status, "{path} {token:?}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_cut_off() {
    let (t, pki) = tls_server().await;
    let grpc = t.server.as_ref().unwrap().grpc_addr().unwrap();
    for addr in [t.addr, grpc] {
        // Connects and sends nothing: dropped after limits.header_read_timeout (500 ms).
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .expect("the server drops a silent client");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    // Meanwhile and afterwards, others are served.
    let anon = Https::new(&t, &pki, None);
    assert_eq!(anon.get("/healthz").await.unwrap().status, StatusCode::OK);
}

async fn grpcs_channel(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Channel {
    let connector = tower::service_fn(move |_uri: hyper::Uri| {
        let config = Arc::clone(&config);
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::try_from("localhost").unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Endpoint::from_static("https://localhost")
        .connect_with_connector(connector)
        .await
        .expect("connects over TLS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_with_client_certificates() {
    let (t, pki) = tls_server().await;
    let addr = t.server.as_ref().unwrap().grpc_addr().unwrap();
    let mut loader =
        RomaClient::new(grpcs_channel(addr, client_config(&pki, Some(&pki.loader), b"h2")).await);
    let mut app =
        RomaClient::new(grpcs_channel(addr, client_config(&pki, Some(&pki.executor), b"h2")).await);
    let mut anon = RomaClient::new(grpcs_channel(addr, client_config(&pki, None, b"h2")).await);
    let load = LoadCodeObjRequest {
        version_string: "v1".into(),
        js: JS.into(),
        ..Default::default()
    };
    let exec = exec("Handler", &["\"grpcs\""]);
    let e = app.load_code_obj(load.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    loader.load_code_obj(load).await.expect("the loader loads");
    let r = app.execute(exec.clone()).await.expect("the app executes");
    assert_eq!(r.into_inner().resp, "\"Hello world! \\\"grpcs\\\"\"");
    let e = loader.execute(exec.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = anon.execute(exec.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    anon.execute(with_token(exec, EXEC))
        .await
        .expect("a token works over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_style_reload_keeps_old_files_on_error() {
    let (t, pki) = tls_server().await;
    let server = t.server.as_ref().unwrap();
    let tls = t.dir.join("server.pem");
    std::fs::write(&tls, "garbage").unwrap();
    assert!(matches!(
        server.reload_tls(),
        Err(roma_serve::ServeError::Tls { .. })
    ));
    let anon = Https::new(&t, &pki, None);
    let r = anon.get("/healthz").await;
    assert_eq!(
        r.unwrap().status,
        StatusCode::OK,
        "the old certificate stays"
    );
    // A new server certificate from another CA: after the reload, clients of the old CA
    // refuse the server, so the new files are in force.
    let other = ca("rotated CA");
    let (cert, key) = leaf(&other, &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(&tls, cert.pem()).unwrap();
    std::fs::write(t.dir.join("server.key"), key.serialize_pem()).unwrap();
    server.reload_tls().expect("the new files load");
    let r = anon.get("/healthz").await;
    assert!(r.is_err(), "the old certificate is still served: {r:?}");
}

/// The files a config names must exist and fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_does_not_fit_stops_the_start() {
    let mut s = settings();
    let _pki = pki(&mut s);
    let dir = test_dir(&s);
    let other = KeyPair::generate().unwrap();
    std::fs::write(dir.join("server.key"), other.serialize_pem()).unwrap();
    let e = roma_serve::start(s, roma::Config::new()).await.unwrap_err();
    match e {
        roma_serve::ServeError::Tls { path, .. } => {
            assert!(Path::new(&path).ends_with("server.key"), "{path}")
        }
        e => panic!("expected a TLS error, got {e}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}
