//! The server's settings: every default in one place, read from a TOML file or built in code,
//! and checked at start so a bad value fails with an error that names its key.

use crate::error::ServeError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bounds on what one client may send or hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `limits.max_body_bytes`: the largest request body (default 16 MiB). Past it: 413.
    pub max_body_bytes: usize,
    /// `limits.max_inputs`: the most inputs of one execution (default 1024). Past it: 413.
    pub max_inputs: usize,
    /// `limits.max_batch`: the most requests in one batch (default 1024). Past it: 413.
    pub max_batch: usize,
    /// `limits.max_code_bytes`: the largest code object, JS and WASM together (default 8 MiB).
    pub max_code_bytes: usize,
    /// `limits.max_metadata_entries`: the most metadata entries of one request (default 64);
    /// each key holds at most 128 bytes and each value 4096.
    pub max_metadata_entries: usize,
    /// `limits.max_connections`: connections open at once on each port (default 1024); one
    /// more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// `limits.header_read_timeout`: how long a client may take to open, on either port: the
    /// TLS handshake, then each HTTP/1.1 request's head, or the HTTP/2 preface and then each
    /// header block (default 10 s); a slower one is cut off.
    pub header_read_timeout: Duration,
    /// `limits.body_timeout`: how long a request's body may take to arrive once its head is
    /// in, on either port (default 10 s). A slower one is answered 408 (gRPC:
    /// `DEADLINE_EXCEEDED`), kind `request_timeout`.
    pub body_timeout: Duration,
    /// `limits.idle_timeout`: how long a connection may stay open with no request in flight,
    /// on either port (default 60 s).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_inputs: 1024,
            max_batch: 1024,
            max_code_bytes: 8 << 20,
            max_metadata_entries: 64,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The longest metadata key, in bytes.
pub const MAX_METADATA_KEY_BYTES: usize = 128;
/// The longest metadata value, in bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 4096;

/// The service behind the server: the `[service]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSettings {
    /// `service.workers`: worker processes (default: one per core).
    pub workers: Option<usize>,
    /// `service.heap_mb`: the maximum V8 heap of each isolate, in MB (default: V8's).
    pub heap_mb: Option<usize>,
    /// `service.queue_max_items`: executions that may wait per worker (default: roma's, 100).
    pub queue_max_items: Option<usize>,
    /// `service.default_timeout`: the timeout of an execution that sets none (default 5 s).
    pub default_timeout: Duration,
    /// `service.sandbox`: `namespaces` (default), `birdcage` or `none` (debugging only).
    pub sandbox: roma::SandboxKind,
    /// `service.low_latency`: the idle poll of `Config::low_latency` (default zero, off; at
    /// most 50 ms, `roma::MAX_IDLE_POLL`).
    pub low_latency: Duration,
    /// `service.prewarm`: each idle worker prepares its next context (default true).
    pub prewarm: bool,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            workers: None,
            heap_mb: None,
            queue_max_items: None,
            default_timeout: Duration::from_secs(5),
            sandbox: roma::SandboxKind::Namespaces,
            low_latency: Duration::ZERO,
            prewarm: true,
        }
    }
}

/// Where the server keeps its code: the `[store]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Memory only: code is lost when the server stops (no `[store]` table).
    Memory,
    /// `kind = "dir"`: a directory on this machine; a restarted server comes back with its
    /// code.
    Dir(PathBuf),
    /// `kind = "etcd"`: etcd, shared by every replica.
    Etcd(roma_store::EtcdSettings),
}

/// The `[store]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// Where.
    pub kind: StoreKind,
    /// `store.max_object_bytes`, `store.max_versions_per_code_id`, `store.max_versions`.
    pub limits: roma_store::StoreLimits,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: StoreKind::Memory,
            limits: roma_store::StoreLimits::default(),
        }
    }
}

/// The largest `store.max_object_bytes` with etcd: what one etcd request and one gRPC
/// message (4 MiB in the client) can carry, with room for the rest of the message.
pub const MAX_ETCD_OBJECT_BYTES: usize = 3 << 20;

/// Everything `roma serve` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `server.http`: where the HTTP/JSON API listens.
    pub http: SocketAddr,
    /// `server.grpc`: where the gRPC API listens, if anywhere (default: nowhere).
    pub grpc: Option<SocketAddr>,
    /// `server.load_token_file`: the bearer token that may load code. `None`: only a client
    /// certificate named in `tls.load_clients` may (which must then name one).
    pub load_token_file: Option<PathBuf>,
    /// `server.execute_token_file`: the bearer token that may execute. `None`: only a client
    /// certificate named in `tls.execute_clients` may.
    pub execute_token_file: Option<PathBuf>,
    /// `server.drain_grace`: how long requests in flight may take to finish once a drain
    /// starts (default 10 s); those still running then are cancelled and answered 503.
    pub drain_grace: Duration,
    /// `server.threads`: the connection threads (default: one per core). Each runs a
    /// single-threaded runtime that serves the connections given to it, both ports'; the
    /// accept loops, the store and the forwarded host-function calls run on the runtime
    /// [`crate::start`] is called on.
    pub threads: Option<usize>,
    /// `[tls]`: TLS on both listeners, and client certificates; `None` serves plain TCP.
    pub tls: Option<crate::tls::TlsSettings>,
    /// `[[bindings]]`: host functions that forward their calls to the operator's endpoints.
    pub bindings: Vec<crate::forward::BindingSettings>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[service]`.
    pub service: ServiceSettings,
    /// `[store]`.
    pub store: StoreSettings,
}

impl Settings {
    /// Settings with every default, listening on `http`, with the two token files (`None`
    /// for a role only client certificates grant).
    pub fn new(
        http: SocketAddr,
        load_token_file: impl Into<Option<PathBuf>>,
        execute_token_file: impl Into<Option<PathBuf>>,
    ) -> Self {
        Settings {
            http,
            grpc: None,
            load_token_file: load_token_file.into(),
            execute_token_file: execute_token_file.into(),
            drain_grace: Duration::from_secs(10),
            threads: None,
            tls: None,
            bindings: Vec::new(),
            limits: Limits::default(),
            service: ServiceSettings::default(),
            store: StoreSettings::default(),
        }
    }

    /// Reads and checks a TOML file. Relative token paths are taken from the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::Io {
            what: format!("cannot read the config file {}", path.display()),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base)
    }

    /// Parses and checks TOML text; `base` is the folder relative token paths start from.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ServeError> {
        let file: File = toml::from_str(text).map_err(|e| ServeError::Config {
            key: String::new(),
            message: e.to_string(),
        })?;
        let server = file.server.unwrap_or_default();
        let http = required(server.http, "server.http")?;
        let http = http
            .parse()
            .map_err(|e| bad("server.http", format!("{http:?}: {e}")))?;
        let token = |p: Option<String>| {
            p.map(PathBuf::from)
                .map(|p| if p.is_relative() { base.join(p) } else { p })
        };
        let mut s = Settings::new(
            http,
            token(server.load_token_file),
            token(server.execute_token_file),
        );
        if let Some(g) = server.grpc {
            s.grpc = Some(
                g.parse()
                    .map_err(|e| bad("server.grpc", format!("{g:?}: {e}")))?,
            );
        }
        if let Some(g) = server.drain_grace {
            s.drain_grace = duration(&g, "server.drain_grace")?;
        }
        s.threads = server.threads;
        s.tls = file.tls.map(|t| t.resolve(base)).transpose()?;
        s.bindings = crate::forward::resolve(file.bindings)?;
        let l = file.limits.unwrap_or_default();
        let d = &mut s.limits;
        set(&mut d.max_body_bytes, l.max_body_bytes);
        set(&mut d.max_inputs, l.max_inputs);
        set(&mut d.max_batch, l.max_batch);
        set(&mut d.max_code_bytes, l.max_code_bytes);
        set(&mut d.max_metadata_entries, l.max_metadata_entries);
        set(&mut d.max_connections, l.max_connections);
        if let Some(t) = l.header_read_timeout {
            d.header_read_timeout = duration(&t, "limits.header_read_timeout")?;
        }
        if let Some(t) = l.body_timeout {
            d.body_timeout = duration(&t, "limits.body_timeout")?;
        }
        if let Some(t) = l.idle_timeout {
            d.idle_timeout = duration(&t, "limits.idle_timeout")?;
        }
        let v = file.service.unwrap_or_default();
        s.service.workers = v.workers;
        s.service.heap_mb = v.heap_mb;
        s.service.queue_max_items = v.queue_max_items;
        if let Some(t) = v.default_timeout {
            s.service.default_timeout = duration(&t, "service.default_timeout")?;
        }
        if let Some(p) = v.prewarm {
            s.service.prewarm = p;
        }
        if let Some(t) = v.low_latency {
            s.service.low_latency = duration(&t, "service.low_latency")?;
        }
        if let Some(k) = v.sandbox {
            s.service.sandbox = match k.as_str() {
                "namespaces" => roma::SandboxKind::Namespaces,
                "birdcage" => roma::SandboxKind::Birdcage,
                "none" => roma::SandboxKind::None,
                other => {
                    return Err(bad(
                        "service.sandbox",
                        format!("{other:?} is not one of namespaces, birdcage, none"),
                    ));
                }
            };
        }
        if let Some(t) = file.store {
            s.store = store_table(t, base)?;
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ServeError> {
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_inputs", l.max_inputs),
            ("limits.max_batch", l.max_batch),
            ("limits.max_code_bytes", l.max_code_bytes),
            ("limits.max_connections", l.max_connections),
        ] {
            if v == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        for (key, v) in [
            ("limits.header_read_timeout", l.header_read_timeout),
            ("limits.body_timeout", l.body_timeout),
            ("limits.idle_timeout", l.idle_timeout),
            ("server.drain_grace", self.drain_grace),
            ("service.default_timeout", self.service.default_timeout),
        ] {
            if v.is_zero() {
                return Err(bad(key, "must be more than 0".into()));
            }
        }
        if self.service.low_latency > roma::MAX_IDLE_POLL {
            return Err(bad(
                "service.low_latency",
                format!(
                    "must be at most {} ms (0 turns it off)",
                    roma::MAX_IDLE_POLL.as_millis()
                ),
            ));
        }
        let sl = &self.store.limits;
        for (key, v) in [
            ("store.max_object_bytes", sl.max_object_bytes),
            (
                "store.max_versions_per_code_id",
                sl.max_versions_per_code_id,
            ),
            ("store.max_versions", sl.max_versions),
        ] {
            if v == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        if let StoreKind::Etcd(e) = &self.store.kind {
            if sl.max_object_bytes > MAX_ETCD_OBJECT_BYTES {
                return Err(bad(
                    "store.max_object_bytes",
                    format!("at most {MAX_ETCD_OBJECT_BYTES} with etcd"),
                ));
            }
            if e.endpoints.is_empty() {
                return Err(bad("store.etcd_endpoints", "must name at least one".into()));
            }
            if !e.prefix.ends_with('/') {
                return Err(bad("store.etcd_prefix", "must end with '/'".into()));
            }
        }
        if let Some(t) = &self.tls {
            t.validate()?;
        }
        // Each role needs a credential: its token, or client certificates named for it.
        let no_names: &[String] = &[];
        for (key, file, names, names_key) in [
            (
                "server.load_token_file",
                &self.load_token_file,
                self.tls
                    .as_ref()
                    .map_or(no_names, |t| t.load_clients.as_slice()),
                "tls.load_clients",
            ),
            (
                "server.execute_token_file",
                &self.execute_token_file,
                self.tls
                    .as_ref()
                    .map_or(no_names, |t| t.execute_clients.as_slice()),
                "tls.execute_clients",
            ),
        ] {
            if file.is_none() && names.is_empty() {
                return Err(bad(
                    key,
                    format!("is required unless {names_key} names client certificates (mTLS)"),
                ));
            }
        }
        crate::forward::validate(&self.bindings)?;
        if self.threads == Some(0) {
            return Err(bad("server.threads", "must be at least 1".into()));
        }
        if self.service.workers == Some(0) {
            return Err(bad("service.workers", "must be at least 1".into()));
        }
        if self.service.queue_max_items == Some(0) {
            return Err(bad("service.queue_max_items", "must be at least 1".into()));
        }
        Ok(())
    }
}

fn store_table(t: StoreTable, base: &Path) -> Result<StoreSettings, ServeError> {
    let mut out = StoreSettings::default();
    let l = &mut out.limits;
    set(&mut l.max_object_bytes, t.max_object_bytes);
    set(&mut l.max_versions_per_code_id, t.max_versions_per_code_id);
    set(&mut l.max_versions, t.max_versions);
    let kind = t.kind.unwrap_or_else(|| {
        if t.etcd_endpoints.is_some() {
            "etcd".into()
        } else {
            "dir".into()
        }
    });
    out.kind = match kind.as_str() {
        "memory" => StoreKind::Memory,
        "dir" => {
            let d = PathBuf::from(required(t.dir, "store.dir")?);
            StoreKind::Dir(if d.is_relative() { base.join(d) } else { d })
        }
        "etcd" => {
            let mut e = roma_store::EtcdSettings::new(
                required(
                    t.etcd_endpoints.map(|v| v.join(",")),
                    "store.etcd_endpoints",
                )?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            );
            if let Some(p) = t.etcd_prefix {
                e.prefix = p;
            }
            if let Some(d) = t.etcd_timeout {
                e.request_timeout = duration(&d, "store.etcd_timeout")?;
            }
            StoreKind::Etcd(e)
        }
        other => {
            return Err(bad(
                "store.kind",
                format!("{other:?} is not one of dir, etcd, memory"),
            ));
        }
    };
    Ok(out)
}

fn required(v: Option<String>, key: &str) -> Result<String, ServeError> {
    v.ok_or_else(|| bad(key, "is required".into()))
}

fn set(slot: &mut usize, v: Option<usize>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn duration(text: &str, key: &str) -> Result<Duration, ServeError> {
    roma::tools::parse_duration(text).map_err(|e| bad(key, format!("{text:?}: {e}")))
}

fn bad(key: &str, message: String) -> ServeError {
    ServeError::Config {
        key: key.to_string(),
        message,
    }
}

/// The file as written: every field optional, unknown keys refused (toml names them).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    server: Option<ServerTable>,
    tls: Option<crate::tls::TlsTable>,
    #[serde(default)]
    bindings: Vec<crate::forward::BindingTable>,
    limits: Option<LimitsTable>,
    service: Option<ServiceTable>,
    store: Option<StoreTable>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StoreTable {
    kind: Option<String>,
    dir: Option<String>,
    etcd_endpoints: Option<Vec<String>>,
    etcd_prefix: Option<String>,
    etcd_timeout: Option<String>,
    max_object_bytes: Option<usize>,
    max_versions_per_code_id: Option<usize>,
    max_versions: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerTable {
    http: Option<String>,
    grpc: Option<String>,
    load_token_file: Option<String>,
    execute_token_file: Option<String>,
    drain_grace: Option<String>,
    threads: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsTable {
    max_body_bytes: Option<usize>,
    max_inputs: Option<usize>,
    max_batch: Option<usize>,
    max_code_bytes: Option<usize>,
    max_metadata_entries: Option<usize>,
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    body_timeout: Option<String>,
    idle_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServiceTable {
    workers: Option<usize>,
    heap_mb: Option<usize>,
    queue_max_items: Option<usize>,
    default_timeout: Option<String>,
    sandbox: Option<String>,
    low_latency: Option<String>,
    prewarm: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str =
        "[server]\nhttp = \"127.0.0.1:0\"\nload_token_file = \"l\"\nexecute_token_file = \"/e\"\n";

    fn key_of(text: &str) -> String {
        match Settings::from_toml(text, Path::new("/base")) {
            Err(ServeError::Config { key, message }) => format!("{key}: {message}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn minimal_file_takes_defaults_and_resolves_relative_paths() {
        let s = Settings::from_toml(MIN, Path::new("/base")).unwrap();
        assert_eq!(s.load_token_file, Some(PathBuf::from("/base/l")));
        assert_eq!(s.execute_token_file, Some(PathBuf::from("/e")));
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.service.low_latency, Duration::ZERO);
        assert!(s.service.prewarm);
    }

    #[test]
    fn values_are_read() {
        let t = format!(
            "{MIN}drain_grace = \"2s\"\nthreads = 1\n[limits]\nmax_inputs = 3\nidle_timeout = \"150ms\"\n\
             body_timeout = \"250ms\"\n\
             [service]\nworkers = 2\nsandbox = \"none\"\nlow_latency = \"5ms\"\nprewarm = false\n"
        );
        let s = Settings::from_toml(&t, Path::new("/")).unwrap();
        assert_eq!(s.drain_grace, Duration::from_secs(2));
        assert_eq!(s.threads, Some(1));
        assert_eq!(s.limits.max_inputs, 3);
        assert_eq!(s.limits.idle_timeout, Duration::from_millis(150));
        assert_eq!(s.limits.body_timeout, Duration::from_millis(250));
        assert_eq!(s.service.workers, Some(2));
        assert_eq!(s.service.sandbox, roma::SandboxKind::None);
        assert_eq!(s.service.low_latency, Duration::from_millis(5));
        assert!(!s.service.prewarm);
        assert_eq!(s.tls, None);
        let t = format!(
            "{MIN}[tls]\ncert_file = \"c.pem\"\nkey_file = \"/k.pem\"\n\
             client_ca_file = \"ca.pem\"\nexecute_clients = [\"app.internal\"]\n"
        );
        let tls = Settings::from_toml(&t, Path::new("/b"))
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("/b/c.pem"));
        assert_eq!(tls.key_file, PathBuf::from("/k.pem"));
        assert_eq!(tls.client_ca_file, Some(PathBuf::from("/b/ca.pem")));
        assert_eq!(tls.execute_clients, vec!["app.internal".to_string()]);
        assert!(tls.load_clients.is_empty());
    }

    #[test]
    fn the_store_table_is_read() {
        let s = Settings::from_toml(
            &format!("{MIN}[store]\ndir = \"code\"\nmax_versions = 9\n"),
            Path::new("/base"),
        )
        .unwrap();
        assert_eq!(s.store.kind, StoreKind::Dir(PathBuf::from("/base/code")));
        assert_eq!(s.store.limits.max_versions, 9);
        let s = Settings::from_toml(
            &format!("{MIN}[store]\netcd_endpoints = [\"127.0.0.1:2379\", \"127.0.0.2:2379\"]\netcd_prefix = \"/x/\"\n"),
            Path::new("/"),
        )
        .unwrap();
        let StoreKind::Etcd(e) = s.store.kind else {
            panic!("{:?}", s.store.kind)
        };
        assert_eq!(e.endpoints, ["127.0.0.1:2379", "127.0.0.2:2379"]);
        assert_eq!(e.prefix, "/x/");
        assert_eq!(
            Settings::from_toml(MIN, Path::new("/")).unwrap().store.kind,
            StoreKind::Memory
        );
    }

    #[test]
    fn the_kubernetes_config_map_holds_a_valid_config() {
        let yaml = include_str!("../../../deploy/k8s/configmap.yaml");
        let toml: String = yaml
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("roma.toml: |"))
            .skip(1)
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
            .collect();
        let s = Settings::from_toml(&toml, Path::new("/")).unwrap();
        assert!(matches!(s.store.kind, StoreKind::Etcd(_)), "{:?}", s.store);
        assert_eq!(s.service.workers, Some(2));
    }

    #[test]
    fn a_role_without_a_token_needs_client_certificates() {
        let tls = "[tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_ca_file = \"ca\"\n";
        let only_load = "[server]\nhttp = \"127.0.0.1:0\"\nload_token_file = \"l\"\n";
        assert!(key_of(only_load).starts_with("server.execute_token_file: is required unless"));
        let s = Settings::from_toml(
            &format!("{only_load}{tls}execute_clients = [\"app.internal\"]\n"),
            Path::new("/b"),
        )
        .unwrap();
        assert_eq!(s.execute_token_file, None);
        assert_eq!(s.load_token_file, Some(PathBuf::from("/b/l")));
        // Names for the other role do not count.
        assert!(
            key_of(&format!(
                "{only_load}{tls}load_clients = [\"deploy.internal\"]\n"
            ))
            .starts_with("server.execute_token_file")
        );
        // mTLS alone for both roles.
        let s = Settings::from_toml(
            &format!(
                "[server]\nhttp = \"127.0.0.1:0\"\n{tls}load_clients = [\"d.internal\"]\n\
                 execute_clients = [\"a.internal\"]\n"
            ),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!((s.load_token_file, s.execute_token_file), (None, None));
    }

    #[test]
    fn errors_name_the_key() {
        assert!(key_of("[server]\n").starts_with("server.http: is required"));
        assert!(key_of("[server]\nhttp = \"nowhere\"\n").starts_with("server.http"));
        // Each: what follows a valid `[server]` table, and how the error begins.
        let cases = [
            ("threads = 0\n", "server.threads"),
            ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
            ("[limits]\nidle_timeout = \"soon\"\n", "limits.idle_timeout"),
            (
                "[limits]\nbody_timeout = \"0s\"\n",
                "limits.body_timeout: must be more than 0",
            ),
            ("[service]\nsandbox = \"chroot\"\n", "service.sandbox"),
            (
                "[service]\nlow_latency = \"51ms\"\n",
                "service.low_latency: must be at most 50 ms",
            ),
            ("[store]\nkind = \"dir\"\n", "store.dir"),
            ("[store]\netcd_endpoints = []\n", "store.etcd_endpoints"),
            (
                "[store]\netcd_endpoints = [\"127.0.0.1:2379\"]\nmax_object_bytes = 9999999\n",
                "store.max_object_bytes",
            ),
            ("[store]\nkind = \"s3\"\n", "store.kind"),
            ("[tls]\ncert_file = \"c\"\n", "tls.key_file"),
        ];
        for (tail, start) in cases {
            let got = key_of(&format!("{MIN}{tail}"));
            assert!(got.starts_with(start), "{tail:?}: {got}");
        }
        // toml names an unknown key itself.
        assert!(key_of(&format!("{MIN}[limits]\nmax_bodybytes = 1\n")).contains("max_bodybytes"));
    }
}
