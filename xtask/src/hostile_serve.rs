//! `cargo xtask hostile-serve`: hostile clients at full size against a release `roma serve`
//! that it starts on 127.0.0.1, with the server's resident memory read from /proc before,
//! during (the peak, sampled every 20 ms) and after each case, and a table at the end.
//!
//! The cases: malformed JSON bodies, malformed protobuf messages (hand-made HTTP/2 frames),
//! 1 GiB bodies (declared, chunked, unauthenticated, and a gRPC message declaring 1 GiB),
//! 10,000 idle connections on each port, slowloris clients that trickle a head (HTTP/1)
//! or the HTTP/2 preface a byte a second, and clients that trickle a request body (HTTP/1) or
//! an HTTP/2 header block the same way. Each must get its error or be cut off, and the server
//! must answer hello world after each; the run fails otherwise, or if the server's RSS ever
//! reaches the size of the body it was sent (or 1 GiB). The integration tests (`cargo test -p
//! roma-serve`) check the same at small sizes, with the exact status codes.
//!
//! Flags: `--debug` (debug binaries: a smoke run), `--connections N` (default 10000),
//! `--slow N` (slowloris clients of each kind, default 1000), `--body-mb M` (default 1024; more
//! than twice the server's body limit, [`BODY_LIMIT_MIB`]).

use crate::flags::TaskFlags;
use crate::root;
use crate::serve_bench::{machine, start_server};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LOAD_TOKEN: &str = "hostile-load-token";
const EXEC_TOKEN: &str = "hostile-exec-token";
/// The server's `limits.header_read_timeout` in this run (its default).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's `limits.body_timeout` in this run (its default).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's `limits.max_body_bytes` in this run, in MiB (its default, written into its
/// config so the bodies are sized against the limit in force). A big body must pass it by
/// more than the socket buffers hold (a few MiB on loopback): a smaller one could be written
/// in full before the server's answer arrives, and would not show that it is cut off.
const BODY_LIMIT_MIB: u64 = 16;
/// The client connection preface of HTTP/2 (RFC 9113, 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub fn hostile_serve(rest: &[String]) -> Result<()> {
    let mut flags = TaskFlags::new("hostile-serve", rest);
    let debug = flags.switch("--debug");
    let connections = flags.number("--connections", 10_000)?.max(1);
    let slow = flags.number("--slow", 1000)?.max(1);
    let body_mb = flags.number("--body-mb", 1024)? as u64;
    flags.finish()?;
    if body_mb <= 2 * BODY_LIMIT_MIB {
        bail!(
            "hostile-serve: --body-mb {body_mb} is too small: the server refuses bodies over {BODY_LIMIT_MIB} MiB \
             (limits.max_body_bytes), and a body must pass that by more than the socket buffers hold \
             to show it is cut off; give more than {}",
            2 * BODY_LIMIT_MIB
        );
    }
    crate::setup()?;
    let roma = crate::build_roma(debug)?;
    // This process holds every client socket and the server inherits the limit: each needs
    // a descriptor per connection.
    let files = raise_open_files((connections + slow + 256) as u64)?;
    let dir = root().join("target/tmp/hostile-serve");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("load.tok"), LOAD_TOKEN)?;
    std::fs::write(dir.join("exec.tok"), EXEC_TOKEN)?;
    // Room for every idle connection at once on a port, so the case measures the memory of
    // 10,000 held connections (the default bound, 1024, would close most of them at once).
    std::fs::write(
        dir.join("roma.toml"),
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n\
             load_token_file = \"load.tok\"\nexecute_token_file = \"exec.tok\"\n\
             [limits]\nmax_connections = {}\nmax_body_bytes = {}\n[service]\nworkers = 1\n",
            connections + slow + 64,
            BODY_LIMIT_MIB << 20
        ),
    )?;
    let server = start_server(
        &roma,
        &[
            "--config".into(),
            dir.join("roma.toml").display().to_string(),
        ],
    )?;
    let pid = server.child.id();
    let http: SocketAddr = server.http.parse().context("the HTTP address")?;
    let grpc: SocketAddr = server.grpc.parse().context("the gRPC address")?;
    let load = post(
        "/v1/code",
        Some(LOAD_TOKEN),
        br#"{"version_string":"v1","js":"function Handler(x) { return 'Hello ' + x; }"}"#,
    );
    let (status, body) = http_exchange(http, &load)?;
    if status != 200 {
        bail!("loading hello world: {status} {body}");
    }
    for _ in 0..200 {
        hello(http)?;
    }
    let sampler = Sampler::start(pid);
    let mut rows = Vec::new();
    let body_bytes = body_mb << 20;
    // A complete head, then a body a byte a second.
    let slow_body = format!(
        "POST /v1/execute HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EXEC_TOKEN}\r\n\
         content-length: 1000\r\n\r\n"
    )
    .into_bytes();
    // The preface, SETTINGS, and the header of a HEADERS frame without END_HEADERS, then its
    // payload a byte a second.
    let mut slow_block = PREFACE.to_vec();
    slow_block.extend(frame(SETTINGS, 0, 0, &[]));
    slow_block.extend_from_slice(&frame(HEADERS, 0, 1, &[0; 1000])[..9]);
    let cases: Vec<(String, Case)> = vec![
        (
            "malformed JSON (HTTP)".into(),
            Box::new(move || malformed_json(http)),
        ),
        (
            "malformed protobuf (gRPC)".into(),
            Box::new(move || malformed_protobuf(grpc)),
        ),
        (
            format!("{body_mb} MiB body, Content-Length"),
            Box::new(move || big_body(http, body_bytes, false, Some(EXEC_TOKEN), 413)),
        ),
        (
            format!("{body_mb} MiB body, chunked"),
            Box::new(move || big_body(http, body_bytes, true, Some(EXEC_TOKEN), 413)),
        ),
        (
            format!("{body_mb} MiB body, no token"),
            Box::new(move || big_body(http, body_bytes, true, None, 401)),
        ),
        (
            format!("gRPC message declaring {body_mb} MiB"),
            Box::new(move || big_grpc_message(grpc, body_bytes)),
        ),
        (
            format!("{connections} idle connections (HTTP)"),
            Box::new(move || idle_connections(http, connections)),
        ),
        (
            format!("{connections} idle connections (gRPC)"),
            Box::new(move || idle_connections(grpc, connections)),
        ),
        (
            format!("{slow} slowloris heads (HTTP)"),
            Box::new(move || {
                slowloris(
                    http,
                    slow,
                    b"POST /v1/execute HTTP/1.1\r\nhost: x\r\nx-slow: ",
                    b"abcdefgh",
                )
            }),
        ),
        (
            format!("{slow} slowloris prefaces (gRPC)"),
            Box::new(move || slowloris(grpc, slow, b"", PREFACE)),
        ),
        (
            format!("{slow} slow bodies (HTTP)"),
            Box::new(move || slowloris(http, slow, &slow_body, b"x")),
        ),
        (
            format!("{slow} slow header blocks (gRPC)"),
            Box::new(move || slowloris(grpc, slow, &slow_block, b"x")),
        ),
    ];
    for (name, case) in cases {
        eprintln!("hostile-serve: {name}...");
        let before = rss_kb(pid)?;
        sampler.reset(before);
        let outcome = case()?;
        // The server frees what the case made it hold as the connections close; hello world
        // must work (and the server be alive) before the "after" figure is read.
        let alive = hello(http).is_ok();
        let after = rss_kb(pid)?;
        let peak = sampler.peak().max(after);
        // The server must never hold a body's worth (nor, whatever the case, a gigabyte).
        let ok = outcome.ok && alive && peak < body_bytes.max(1 << 30) / 1024;
        eprintln!(
            "hostile-serve: {name}: {} (RSS {before} -> peak {peak} -> {after} kB){}",
            outcome.what,
            if ok { "" } else { " FAILED" }
        );
        rows.push(Row {
            name,
            what: if alive {
                outcome.what
            } else {
                format!("{}; THE SERVER STOPPED ANSWERING", outcome.what)
            },
            before,
            peak,
            after,
            ok,
        });
        if !alive {
            break;
        }
    }
    sampler.stop();
    println!("{}", machine());
    println!(
        "roma serve ({} build, 1 worker, default limits but max_connections = {}), open files {files}",
        if debug { "DEBUG" } else { "release" },
        connections + slow + 64
    );
    println!("| case | what happened | RSS before | peak during | after | |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} |",
            r.name,
            r.what,
            r.before as f64 / 1024.0,
            r.peak as f64 / 1024.0,
            r.after as f64 / 1024.0,
            if r.ok { "ok" } else { "FAIL" }
        );
    }
    drop(server);
    if rows.iter().any(|r| !r.ok) {
        bail!("hostile-serve: FAIL");
    }
    println!("hostile-serve: PASS");
    Ok(())
}

/// One hostile form: what it does, run once.
type Case = Box<dyn FnOnce() -> Result<Outcome>>;

/// One HTTP/2 frame as read: type, flags, stream id, payload.
type Frame = (u8, u8, u32, Vec<u8>);

struct Row {
    name: String,
    what: String,
    before: u64,
    peak: u64,
    after: u64,
    ok: bool,
}

/// What a case saw, and whether it is what the server must do.
struct Outcome {
    what: String,
    ok: bool,
}

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (up to the hard limit);
/// returns the limit now in force.
fn raise_open_files(want: u64) -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    if lim.rlim_cur < want {
        bail!(
            "hostile-serve needs {want} open files and the hard limit is {}; lower --connections or raise it",
            lim.rlim_max
        );
    }
    Ok(lim.rlim_cur)
}

/// VmRSS of `pid`, in kB.
fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("the server's /proc status (did it exit?)")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in the server's /proc status")
}

/// Samples the server's RSS every 20 ms, keeping the peak since the last reset.
struct Sampler {
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let peak = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if let Ok(kb) = rss_kb(pid) {
                        peak.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Sampler {
            peak,
            done,
            thread: Some(thread),
        }
    }
    fn reset(&self, kb: u64) {
        self.peak.store(kb, Ordering::Relaxed);
    }
    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
    fn stop(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP/1.1 request that asks the server to close after answering.
fn post(path: &str, token: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(t) = token {
        r.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` on a new connection and reads the answer to its end: (status, body).
fn http_exchange(addr: SocketAddr, request: &[u8]) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request)?;
    let mut got = Vec::new();
    // A server that closes with unread bytes resets the connection: keep what was read.
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn hello(http: SocketAddr) -> Result<()> {
    let req = post(
        "/v1/execute",
        Some(EXEC_TOKEN),
        br#"{"version_string":"v1","handler_name":"Handler","input":["\"hostile\""]}"#,
    );
    let (status, body) = http_exchange(http, &req)?;
    if status != 200 || !body.contains("Hello hostile") {
        bail!("hello world answered {status} {body}");
    }
    Ok(())
}

/// A small deterministic generator for the random bodies (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = 1 + (self.next() as usize) % max;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn counts(statuses: &BTreeMap<String, usize>) -> String {
    statuses
        .iter()
        .map(|(k, v)| format!("{v}x {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bodies that are not the JSON asked for: each must get 400 (the load endpoint too).
fn malformed_json(http: SocketAddr) -> Result<Outcome> {
    let mut bodies: Vec<(&str, Vec<u8>)> = vec![
        ("/v1/execute", b"{".to_vec()),
        ("/v1/execute", b"not json".to_vec()),
        ("/v1/execute", b"[]".to_vec()),
        ("/v1/execute", br#"{"version_string": 5}"#.to_vec()),
        ("/v1/execute", b"\xff\xfe\xfd".to_vec()),
        ("/v1/execute", "[".repeat(100_000).into_bytes()),
        (
            "/v1/execute",
            br#"{"version_string":"v1","handler_name":"Handler","input":["{x"]}"#.to_vec(),
        ),
        ("/v1/batch", br#"{"requests": {}}"#.to_vec()),
        (
            "/v1/code",
            br#"{"version_string":"v2","wasm":"%%%"}"#.to_vec(),
        ),
        ("/v1/code", "{\"js\":".repeat(50_000).into_bytes()),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..1000 {
        bodies.push(("/v1/execute", rng.bytes(4096)));
    }
    let mut statuses = BTreeMap::new();
    for (path, body) in &bodies {
        let token = if *path == "/v1/code" {
            LOAD_TOKEN
        } else {
            EXEC_TOKEN
        };
        let status = match http_exchange(http, &post(path, Some(token), body)) {
            Ok((s, _)) => s.to_string(),
            Err(e) => format!("error ({e})"),
        };
        *statuses.entry(status).or_insert(0) += 1;
    }
    Ok(Outcome {
        ok: statuses.keys().all(|s| s == "400"),
        what: format!("{} bodies: {}", bodies.len(), counts(&statuses)),
    })
}

/// An HTTP/2 connection spoken by hand: frames in and out, headers sent as HPACK literals.
struct H2 {
    stream: TcpStream,
    authority: String,
}

/// How the server answered one HTTP/2 stream.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A HEADERS frame that ends the stream: gRPC's trailers-only form, an error status.
    TrailersOnly,
    /// Headers, data, then trailers: a response message.
    WithData,
    /// RST_STREAM with this code.
    Reset(u32),
    /// GOAWAY, or the connection closed.
    Closed,
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
/// The largest frame payload a peer must accept before its SETTINGS say more.
const MAX_FRAME: usize = 16_384;

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, ty, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with a 7-bit prefix (RFC 7541, 5.1), no Huffman coding.
fn hpack_len(out: &mut Vec<u8>, mut n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// A literal header field without indexing, with a literal name (RFC 7541, 6.2.2).
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    hpack_len(out, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_len(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

impl H2 {
    fn connect(addr: SocketAddr) -> Result<H2> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(PREFACE)?;
        stream.write_all(&frame(SETTINGS, 0, 0, &[]))?;
        Ok(H2 {
            stream,
            authority: addr.to_string(),
        })
    }

    /// Opens stream `id` with a call to `path`, then sends `body` in DATA frames, the last
    /// one ending the stream if `end`.
    fn call(&mut self, id: u32, path: &str, body: &[u8], end: bool) -> Result<()> {
        let mut h = Vec::new();
        for (k, v) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", self.authority.as_str()),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ] {
            hpack_literal(&mut h, k, v);
        }
        hpack_literal(&mut h, "authorization", &format!("Bearer {EXEC_TOKEN}"));
        self.stream
            .write_all(&frame(HEADERS, END_HEADERS, id, &h))?;
        let chunks: Vec<&[u8]> = body.chunks(MAX_FRAME).collect();
        for (i, c) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let flags = if last && end { END_STREAM } else { 0 };
            self.stream.write_all(&frame(DATA, flags, id, c))?;
        }
        if chunks.is_empty() && end {
            self.stream.write_all(&frame(DATA, END_STREAM, id, &[]))?;
        }
        Ok(())
    }

    fn read_frame(&mut self) -> Result<Option<Frame>> {
        let mut head = [0u8; 9];
        if self.stream.read_exact(&mut head).is_err() {
            return Ok(None);
        }
        let n = ((head[0] as usize) << 16) | ((head[1] as usize) << 8) | head[2] as usize;
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; n];
        if self.stream.read_exact(&mut payload).is_err() {
            return Ok(None);
        }
        Ok(Some((head[3], head[4], id, payload)))
    }

    /// Reads frames until stream `id` is answered, acknowledging SETTINGS and PINGs.
    fn answer(&mut self, id: u32) -> Result<Answer> {
        let mut saw_data = false;
        loop {
            let Some((ty, flags, sid, payload)) = self.read_frame()? else {
                return Ok(Answer::Closed);
            };
            match ty {
                SETTINGS if (flags & ACK) == 0 => {
                    self.stream.write_all(&frame(SETTINGS, ACK, 0, &[]))?;
                }
                PING if (flags & ACK) == 0 => {
                    self.stream.write_all(&frame(PING, ACK, 0, &payload))?;
                }
                GOAWAY => return Ok(Answer::Closed),
                RST_STREAM if sid == id => {
                    let code = payload
                        .get(..4)
                        .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    return Ok(Answer::Reset(code));
                }
                HEADERS if sid == id && (flags & END_STREAM) != 0 => {
                    return Ok(if saw_data {
                        Answer::WithData
                    } else {
                        Answer::TrailersOnly
                    });
                }
                DATA if sid == id => {
                    saw_data = true;
                    if (flags & END_STREAM) != 0 {
                        return Ok(Answer::WithData);
                    }
                }
                _ => {}
            }
        }
    }
}

/// A gRPC message frame: not compressed unless `compressed`, with its declared length.
fn grpc_message(compressed: bool, declared: u32, bytes: &[u8]) -> Vec<u8> {
    let mut m = vec![u8::from(compressed)];
    m.extend_from_slice(&declared.to_be_bytes());
    m.extend_from_slice(bytes);
    m
}

/// Bytes that are not an `ExecuteRequest`, each on its own stream of one connection: each
/// must be refused with a gRPC error (a trailers-only answer), the connection kept.
fn malformed_protobuf(grpc: SocketAddr) -> Result<Outcome> {
    let mut messages: Vec<Vec<u8>> = vec![
        // A varint that never ends.
        grpc_message(false, 5, &[0xff, 0xff, 0xff, 0xff, 0xff]),
        // Field 1 (a string) declared 127 bytes long, holding 1.
        grpc_message(false, 3, &[0x0a, 0x7f, b'a']),
        // Field 1 with the wire type of a fixed64.
        grpc_message(false, 9, &[0x09, 1, 2, 3, 4, 5, 6, 7, 8]),
        // Field number 0.
        grpc_message(false, 2, &[0x00, 0x01]),
        // A string that is not UTF-8.
        grpc_message(false, 4, &[0x12, 0x02, 0xff, 0xfe]),
        // A message frame longer than what follows it, then the end of the stream.
        grpc_message(false, 1000, &[0x0a, 0x01, b'a']),
        // Compressed, with no compression agreed.
        grpc_message(true, 3, &[0x0a, 0x01, b'a']),
        // Half a message header.
        vec![0, 0],
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..500 {
        let b = rng.bytes(2048);
        messages.push(grpc_message(false, b.len() as u32, &b));
    }
    let mut h2 = H2::connect(grpc)?;
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    let mut id = 1;
    for m in &messages {
        h2.call(id, "/roma.v1.Roma/Execute", m, true)?;
        let a = h2.answer(id)?;
        *answers.entry(format!("{a:?}")).or_insert(0) += 1;
        if a == Answer::Closed {
            h2 = H2::connect(grpc)?;
            id = 1;
        } else {
            id += 2;
        }
    }
    // Random bytes can happen to be a valid request (a version that is not loaded: an error,
    // trailers-only too); every answer must be an error, and no connection lost.
    Ok(Outcome {
        ok: answers.keys().all(|a| a == "TrailersOnly"),
        what: format!(
            "{} messages on one connection: {} (trailers-only = a gRPC error status)",
            messages.len(),
            counts(&answers)
        ),
    })
}

/// Sends a request head and then `total` bytes of body as fast as the server takes them
/// (`chunked`: in 1 MiB chunks, else under a `Content-Length` of `total`), while reading the
/// answer: the server must answer `want` and stop the client long before the end.
fn big_body(
    http: SocketAddr,
    total: u64,
    chunked: bool,
    token: Option<&str>,
    want: u16,
) -> Result<Outcome> {
    let mut s = TcpStream::connect(http)?;
    let mut reader = s.try_clone()?;
    let answer = std::thread::spawn(move || {
        let mut got = Vec::new();
        let _ = reader.read_to_end(&mut got);
        got
    });
    let mut head =
        String::from("POST /v1/execute HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n");
    if let Some(t) = token {
        head.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    if chunked {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("content-length: {total}\r\n\r\n"));
    }
    let started = Instant::now();
    s.write_all(head.as_bytes())?;
    let chunk = vec![b'x'; 1 << 20];
    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
    framed.extend_from_slice(&chunk);
    framed.extend_from_slice(b"\r\n");
    let mut sent: u64 = 0;
    while sent < total {
        let r = if chunked {
            s.write_all(&framed)
        } else {
            s.write_all(&chunk)
        };
        if r.is_err() {
            break;
        }
        sent += chunk.len() as u64;
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let got = answer.join().unwrap_or_default();
    let text = String::from_utf8_lossy(&got);
    let status: Option<u16> = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    let cut = sent < total;
    Ok(Outcome {
        ok: status == Some(want) && cut,
        what: format!(
            "{} after the client got {} MiB out (of {}), {} in {:.2} s",
            status.map_or("no answer".to_string(), |s| s.to_string()),
            sent >> 20,
            total >> 20,
            if cut { "then cut off" } else { "NOT cut off" },
            started.elapsed().as_secs_f64()
        ),
    })
}

/// A gRPC Execute whose message header declares `total` bytes, followed by as much of it as
/// the stream's initial window lets through: refused at its header (RESOURCE_EXHAUSTED, in a
/// trailers-only answer) without the server reading the rest.
fn big_grpc_message(grpc: SocketAddr, total: u64) -> Result<Outcome> {
    let declared = u32::try_from(total).unwrap_or(u32::MAX);
    let mut h2 = H2::connect(grpc)?;
    // 60 KiB: within the 65,535-byte window every HTTP/2 stream starts with.
    let first = grpc_message(false, declared, &vec![0u8; 60 * 1024]);
    h2.call(1, "/roma.v1.Roma/Execute", &first, false)?;
    let a = h2.answer(1)?;
    // The same connection still serves: a health check on the next stream.
    h2.call(
        3,
        "/grpc.health.v1.Health/Check",
        &grpc_message(false, 0, &[]),
        true,
    )?;
    let health = h2.answer(3)?;
    Ok(Outcome {
        ok: a == Answer::TrailersOnly && health == Answer::WithData,
        what: format!(
            "answered {a:?} after its first 60 KiB; the connection's next call: {health:?}"
        ),
    })
}

/// Whether the server has closed `s` (read end-of-file or an error), without blocking.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// `n` connections that send nothing: each must be cut off at the head timeout.
fn idle_connections(addr: SocketAddr, n: usize) -> Result<Outcome> {
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                conns.push(s);
            }
            Err(_) => failed += 1,
        }
    }
    let opened = started.elapsed();
    let give_up = HEAD_TIMEOUT * 4;
    let mut open = conns.len();
    let mut all_closed_at = None;
    while started.elapsed() < opened + give_up {
        open = 0;
        for s in conns.iter_mut() {
            if !closed(s) {
                open += 1;
            }
        }
        if open == 0 {
            all_closed_at = Some(started.elapsed());
            break;
        }
        // The condition is time itself (the server's timeout): look again shortly.
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Outcome {
        ok: failed == 0 && open == 0,
        what: match all_closed_at {
            Some(t) => format!(
                "{} opened in {:.1} s ({failed} failed to connect); the server closed all by {:.1} s",
                conns.len(),
                opened.as_secs_f64(),
                t.as_secs_f64()
            ),
            None => format!(
                "{} opened in {:.1} s ({failed} failed); {open} STILL OPEN after {:.0} s",
                conns.len(),
                opened.as_secs_f64(),
                (opened + give_up).as_secs_f64()
            ),
        },
    })
}

/// `n` connections that send `first`, then one byte of `trickle` (round and round) per
/// connection per second: each must be cut off at the server's timeout for what it is
/// sending (the head or the body timeout, both 10 s), however long it trickles.
fn slowloris(addr: SocketAddr, n: usize, first: &[u8], trickle: &[u8]) -> Result<Outcome> {
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr)?;
        s.write_all(first)?;
        s.set_nonblocking(true)?;
        conns.push((s, None::<Duration>));
    }
    let mut step = 0;
    let give_up = HEAD_TIMEOUT.max(BODY_TIMEOUT) * 4;
    while started.elapsed() < give_up && conns.iter().any(|(_, cut)| cut.is_none()) {
        let byte = [trickle[step % trickle.len()]];
        for (s, cut) in conns.iter_mut() {
            if cut.is_some() {
                continue;
            }
            let gone =
                closed(s) || matches!(s.write(&byte), Err(e) if e.kind() != ErrorKind::WouldBlock);
            if gone {
                *cut = Some(started.elapsed());
            }
        }
        step += 1;
        // The attack itself: a byte a second.
        std::thread::sleep(Duration::from_secs(1));
    }
    let cuts: Vec<f64> = conns
        .iter()
        .filter_map(|(_, c)| c.map(|d| d.as_secs_f64()))
        .collect();
    let min = cuts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = cuts.iter().copied().fold(0.0, f64::max);
    Ok(Outcome {
        ok: cuts.len() == n,
        what: format!(
            "{n} clients, a byte a second: {} cut off, between {min:.1} and {max:.1} s",
            cuts.len()
        ),
    })
}
