//! TLS for both listeners (rustls over ring), and client certificates as the second kind of
//! credential: a client whose certificate chains to the configured client CA and names a host
//! listed for a role has that role on every request of its connection, as if it sent that
//! role's bearer token.
//!
//! The certificate, key and CA files are read at start and again on `SIGHUP` (a bad file
//! keeps the old ones), so an operator rotates them without a restart. Connections that are
//! open keep the credentials they were accepted with.

use crate::auth::PeerRoles;
use crate::error::ServeError;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes of one certificate, key or CA file read: a PEM bundle, not a document.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// The `[tls]` table: TLS on both listeners, and optionally client certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls.cert_file`: the server's certificate chain (PEM, leaf first).
    pub cert_file: PathBuf,
    /// `tls.key_file`: the server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// `tls.client_ca_file`: the CA certificates (PEM) client certificates must chain to.
    /// Without it no client certificate is asked for and only tokens authenticate.
    pub client_ca_file: Option<PathBuf>,
    /// `tls.load_clients`: host names; a verified client certificate valid for one of them
    /// (its subjectAltName, wildcards as in server certificates) may load code.
    pub load_clients: Vec<String>,
    /// `tls.execute_clients`: the same for executing.
    pub execute_clients: Vec<String>,
}

impl TlsSettings {
    /// TLS with this certificate and key, no client certificates.
    pub fn new(cert_file: PathBuf, key_file: PathBuf) -> Self {
        TlsSettings {
            cert_file,
            key_file,
            client_ca_file: None,
            load_clients: Vec::new(),
            execute_clients: Vec::new(),
        }
    }

    /// Checks the names and that they come with a CA; the error names the key.
    pub fn validate(&self) -> Result<(), ServeError> {
        for (key, names) in [
            ("tls.load_clients", &self.load_clients),
            ("tls.execute_clients", &self.execute_clients),
        ] {
            if !names.is_empty() && self.client_ca_file.is_none() {
                return Err(config(key, "needs tls.client_ca_file".into()));
            }
            for n in names {
                if ServerName::try_from(n.as_str()).is_err() {
                    return Err(config(key, format!("{n:?} is not a host name")));
                }
            }
        }
        // One certificate, one role, as with tokens: the load credential does not execute.
        if let Some(n) = self
            .load_clients
            .iter()
            .find(|n| self.execute_clients.contains(n))
        {
            return Err(config(
                "tls.execute_clients",
                format!("{n:?} is also in tls.load_clients; a client name has one role"),
            ));
        }
        Ok(())
    }
}

/// The `[tls]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsTable {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    #[serde(default)]
    load_clients: Vec<String>,
    #[serde(default)]
    execute_clients: Vec<String>,
}

impl TlsTable {
    /// The settings, relative paths taken from `base`.
    pub(crate) fn resolve(self, base: &Path) -> Result<TlsSettings, ServeError> {
        let path = |p: String| {
            let p = PathBuf::from(p);
            if p.is_relative() { base.join(p) } else { p }
        };
        let required = |v: Option<String>, key: &str| {
            v.map(path)
                .ok_or_else(|| config(key, "is required in [tls]".into()))
        };
        let s = TlsSettings {
            cert_file: required(self.cert_file, "tls.cert_file")?,
            key_file: required(self.key_file, "tls.key_file")?,
            client_ca_file: self.client_ca_file.map(path),
            load_clients: self.load_clients,
            execute_clients: self.execute_clients,
        };
        s.validate()?;
        Ok(s)
    }
}

/// Which listener a configuration is for: each offers its own protocol by ALPN.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Listener {
    Http,
    Grpc,
}

/// What the files held when last read.
struct Loaded {
    http: Arc<ServerConfig>,
    grpc: Arc<ServerConfig>,
}

/// The TLS acceptor both listeners use.
pub(crate) struct Tls {
    settings: TlsSettings,
    current: RwLock<Arc<Loaded>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files; fails, naming the file, if one is missing or does not hold what it
    /// should.
    pub(crate) fn load(settings: &TlsSettings) -> Result<Self, ServeError> {
        settings.validate()?;
        Ok(Tls {
            current: RwLock::new(Arc::new(read(settings)?)),
            settings: settings.clone(),
        })
    }

    /// Reads the files again; on an error the old ones stay in force.
    pub(crate) fn reload(&self) -> Result<(), ServeError> {
        let loaded = Arc::new(read(&self.settings)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(())
    }

    /// Runs the handshake on `tcp` and finds the roles its client certificate grants. The
    /// caller bounds how long it may take.
    pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        tcp: S,
        listener: Listener,
    ) -> std::io::Result<TlsConn<S>> {
        let config = {
            let c = self.current.read().unwrap_or_else(|p| p.into_inner());
            match listener {
                Listener::Http => Arc::clone(&c.http),
                Listener::Grpc => Arc::clone(&c.grpc),
            }
        };
        let stream = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
        let roles = match stream.get_ref().1.peer_certificates() {
            // The verifier has checked the chain; only the names are left to look at.
            Some([leaf, ..]) => self.roles_of(leaf),
            _ => PeerRoles::default(),
        };
        Ok(TlsConn {
            inner: stream,
            roles,
        })
    }

    fn roles_of(&self, leaf: &CertificateDer<'_>) -> PeerRoles {
        let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
            return PeerRoles::default();
        };
        let valid_for = |names: &[String]| {
            names.iter().any(|n| {
                ServerName::try_from(n.as_str())
                    .is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
            })
        };
        PeerRoles {
            load: valid_for(&self.settings.load_clients),
            execute: valid_for(&self.settings.execute_clients),
        }
    }
}

fn read(s: &TlsSettings) -> Result<Loaded, ServeError> {
    let certs = CertificateDer::pem_slice_iter(&read_pem(&s.cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(&s.cert_file, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(&s.cert_file, "holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read_pem(&s.key_file)?)
        .map_err(|e| tls_error(&s.key_file, format!("holds no PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&s.cert_file, e.to_string()))?;
    let builder = match &s.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&read_pem(ca)?) {
                let c = c.map_err(|e| tls_error(ca, format!("not a PEM certificate: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| tls_error(ca, format!("not a CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(tls_error(ca, "holds no certificate".into()));
            }
            // A client without a certificate may still present a bearer token.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| tls_error(ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let base = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(&s.key_file, format!("does not fit the certificate: {e}")))?;
    let with_alpn = |proto: &[u8]| {
        let mut c = base.clone();
        c.alpn_protocols = vec![proto.to_vec()];
        Arc::new(c)
    };
    Ok(Loaded {
        http: with_alpn(b"http/1.1"),
        grpc: with_alpn(b"h2"),
    })
}

fn read_pem(path: &Path) -> Result<Vec<u8>, ServeError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| tls_error(path, e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| tls_error(path, e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(tls_error(
            path,
            format!("longer than {MAX_PEM_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

fn tls_error(path: &Path, message: String) -> ServeError {
    ServeError::Tls {
        path: path.display().to_string(),
        message,
    }
}

fn config(key: &str, message: String) -> ServeError {
    ServeError::Config {
        key: key.to_string(),
        message,
    }
}

/// A TLS connection and the roles its client certificate grants.
pub(crate) struct TlsConn<S> {
    inner: tokio_rustls::server::TlsStream<S>,
    roles: PeerRoles,
}

impl<S> TlsConn<S> {
    pub(crate) fn roles(&self) -> PeerRoles {
        self.roles
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsConn<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

crate::io_forward::forward_async_write!(impl [S: AsyncRead + AsyncWrite + Unpin] for TlsConn<S>);

#[cfg(test)]
mod tests {
    use super::*;

    fn with(load: &[&str], exec: &[&str], ca: bool) -> TlsSettings {
        TlsSettings {
            client_ca_file: ca.then(|| PathBuf::from("/ca.pem")),
            load_clients: load.iter().map(|s| s.to_string()).collect(),
            execute_clients: exec.iter().map(|s| s.to_string()).collect(),
            ..TlsSettings::new("/c.pem".into(), "/k.pem".into())
        }
    }

    fn key_of(s: TlsSettings) -> String {
        match s.validate() {
            Err(ServeError::Config { key, message }) => format!("{key}: {message}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn client_names_are_checked() {
        assert!(
            with(&["loader.internal"], &["app.internal"], true)
                .validate()
                .is_ok()
        );
        assert!(key_of(with(&["loader"], &[], false)).starts_with("tls.load_clients: needs"));
        assert!(key_of(with(&["a b"], &[], true)).starts_with("tls.load_clients"));
        assert!(key_of(with(&["x.y"], &["x.y"], true)).starts_with("tls.execute_clients"));
    }

    /// The file that `Tls::load` names in its error.
    fn failing_file(s: &TlsSettings) -> String {
        match Tls::load(s) {
            Err(ServeError::Tls { path, .. }) => path,
            other => panic!("expected a TLS error, got {other:?}"),
        }
    }

    #[test]
    fn bad_files_are_named() {
        let dir = crate::test_dir::TestDir::new("tls");
        let garbage = dir.write("garbage.pem", "not pem");
        assert_eq!(
            failing_file(&TlsSettings::new(garbage.clone(), garbage.clone())),
            garbage.display().to_string()
        );
        let missing = dir.path("missing.pem");
        assert_eq!(
            failing_file(&TlsSettings::new(missing.clone(), garbage)),
            missing.display().to_string()
        );
    }
}
