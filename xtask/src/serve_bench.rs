//! `cargo xtask bench-serve`: what `roma serve` costs over the in-process service, measured
//! in one run with the rounds interleaved (in-process, HTTP/JSON, gRPC, again and again), for
//! hello world: the idle p50 overhead (one request at a time, a pause between) and the
//! saturated throughput ratio. Each round also measures each API's health check the idle way
//! (`roma bench --target ... --health`): the round trip through the same server and client
//! with no code run, so the overhead splits into what the network path costs by itself and
//! what handing an execution over to roma adds to it. And each round `h2load` (Debian's
//! nghttp2-client, installed here when missing, as a user would) drives both APIs saturated as
//! the external load generator, a client lighter than roma's own (on shared cores, a client's
//! CPU is taken from the server); its requests must all be ones the server counted `ok`.
//!
//! Flags: `--debug` (debug binaries: a smoke run, not figures), `--rounds N` (default 3),
//! `--seconds S` per saturated run (default 5), `--workers W` (default: the cores).

use crate::flags::TaskFlags;
use crate::machine::{cores, cpu_model, load_average};
use crate::{apt_install, have, root};
use anyhow::{Context, Result, bail};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A `roma serve` child, stopped (SIGTERM) when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) http: String,
    pub(crate) grpc: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill has no memory effects; the pid is our own child's, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// `roma serve` with `args`, which must give it a gRPC port; returns once it printed both
/// addresses (the workers are up and the ports bound).
pub(crate) fn start_server(roma: &Path, args: &[String]) -> Result<Server> {
    let mut child = Command::new(roma)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start roma serve")?;
    let mut out = std::io::BufReader::new(child.stdout.take().context("no stdout")?);
    let mut line = |prefix: &str| -> Result<String> {
        let mut l = String::new();
        out.read_line(&mut l)?;
        l.trim()
            .strip_prefix(prefix)
            .map(str::to_string)
            .with_context(|| format!("roma serve printed {l:?}, not {prefix}..."))
    };
    let http = line("listening on http://")?;
    let grpc = line("listening on grpc://")?;
    Ok(Server { child, http, grpc })
}

/// One `roma bench --json` run: (p50 ms, throughput req/s).
fn bench(roma: &Path, dir: &Path, target: Option<&str>, extra: &[String]) -> Result<(f64, f64)> {
    let mut c = Command::new(roma);
    c.args(["bench", "--json"]).args(extra);
    if let Some(t) = target {
        c.args(["--target", t])
            .arg("--load-token-file")
            .arg(dir.join("load.tok"))
            .arg("--execute-token-file")
            .arg(dir.join("exec.tok"));
    }
    let out = c.stderr(Stdio::null()).output().context("roma bench")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "roma bench printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    if v["errors"] != 0 {
        bail!(
            "roma bench {target:?}: {} errors: {}",
            v["errors"],
            v["error_kinds"]
        );
    }
    Ok((
        v["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
        v["throughput_rps"].as_f64().unwrap_or(0.0),
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn bench_serve(rest: &[String]) -> Result<()> {
    let mut flags = TaskFlags::new("bench-serve", rest);
    let debug = flags.switch("--debug");
    let rounds = flags.number("--rounds", 3)?.max(1);
    let seconds = flags.number("--seconds", 5)?.max(1) as u64;
    let workers = flags.number("--workers", cores())?.max(1);
    flags.finish()?;
    crate::setup()?;
    let roma = crate::build_roma(debug)?;
    let dir = root().join("target/tmp/bench-serve");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("load.tok"), "bench-load-token")?;
    std::fs::write(dir.join("exec.tok"), "bench-exec-token")?;
    let server = start_server(
        &roma,
        &[
            "--http".into(),
            "127.0.0.1:0".into(),
            "--grpc".into(),
            "127.0.0.1:0".into(),
            "--workers".into(),
            workers.to_string(),
            "--load-token-file".into(),
            dir.join("load.tok").display().to_string(),
            "--execute-token-file".into(),
            dir.join("exec.tok").display().to_string(),
        ],
    )?;
    let http = format!("http://{}", server.http);
    let grpc = format!("grpc://{}", server.grpc);
    let workers_arg = workers.to_string();
    let idle: Vec<String> = [
        "--concurrency",
        "1",
        "--interval",
        "1ms",
        "--requests",
        "2000",
    ]
    .map(String::from)
    .to_vec();
    let duration = format!("{seconds}s");
    let busy: Vec<String> = ["--duration", &duration].map(String::from).to_vec();
    let with_workers = |v: &[String]| {
        let mut v = v.to_vec();
        v.extend(["--workers".to_string(), workers_arg.clone()]);
        v
    };
    let modes: [(&str, Option<&str>); 3] = [
        ("in-process", None),
        ("HTTP/JSON", Some(&http)),
        ("gRPC", Some(&grpc)),
    ];
    let mut idle_p50 = vec![Vec::new(); 3];
    let mut busy_rps = vec![Vec::new(); 3];
    let mut health_p50 = vec![Vec::new(); 2];
    let mut h2_rps = vec![Vec::new(); 2];
    let bodies = H2Bodies::new(&dir)?;
    let mut health_idle = idle.clone();
    health_idle.push("--health".into());
    for round in 0..rounds {
        for (i, (name, target)) in modes.iter().enumerate() {
            let args = if target.is_none() {
                with_workers(&idle)
            } else {
                idle.clone()
            };
            let (p50, _) = bench(&roma, &dir, *target, &args)?;
            let args = if target.is_none() {
                with_workers(&busy)
            } else {
                busy.clone()
            };
            let (_, rps) = bench(&roma, &dir, *target, &args)?;
            eprintln!("round {round}: {name}: idle p50 {p50:.3} ms, saturated {rps:.0} req/s");
            idle_p50[i].push(p50);
            busy_rps[i].push(rps);
        }
        for (i, (name, target)) in modes[1..].iter().enumerate() {
            let (p50, _) = bench(&roma, &dir, *target, &health_idle)?;
            eprintln!("round {round}: {name}: health check idle p50 {p50:.3} ms");
            health_p50[i].push(p50);
        }
        for (i, api) in [H2Api::Http, H2Api::Grpc].into_iter().enumerate() {
            let rps = h2load(&server, api, &bodies, seconds)?;
            eprintln!("round {round}: h2load {}: {rps:.0} req/s", api.endpoint());
            h2_rps[i].push(rps);
        }
    }
    let h2: Vec<f64> = h2_rps.into_iter().map(median).collect();
    let health: Vec<f64> = health_p50.into_iter().map(median).collect();
    let p50: Vec<f64> = idle_p50.into_iter().map(median).collect();
    let rps: Vec<f64> = busy_rps.into_iter().map(median).collect();
    println!("{}", machine());
    println!(
        "{workers} workers, {rounds} rounds interleaved, medians{}",
        if debug {
            " (DEBUG BUILD: a smoke run, not figures)"
        } else {
            ""
        }
    );
    println!("| path | idle p50 | idle p50 overhead | saturated req/s | ratio to in-process |");
    println!("| --- | --- | --- | --- | --- |");
    for (i, (name, _)) in modes.iter().enumerate() {
        println!(
            "| {name} | {:.1} µs | {:+.1} µs | {:.0} | {:.2}x |",
            p50[i] * 1e3,
            (p50[i] - p50[0]) * 1e3,
            rps[i],
            rps[i] / rps[0].max(1e-9)
        );
    }
    println!();
    println!(
        "| API | health check idle p50 (no code) | execute idle p50 | execute over health | in-process idle p50 |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (i, (name, _)) in modes[1..].iter().enumerate() {
        println!(
            "| {name} | {:.1} µs | {:.1} µs | {:+.1} µs | {:.1} µs |",
            health[i] * 1e3,
            p50[i + 1] * 1e3,
            (p50[i + 1] - health[i]) * 1e3,
            p50[0] * 1e3
        );
    }
    println!();
    let conns = 2 * cores();
    println!(
        "| API, driven by h2load ({conns} connections, one request in flight each) | saturated req/s | ratio to in-process |"
    );
    println!("| --- | --- | --- |");
    for (i, (name, _)) in modes[1..].iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2}x |",
            h2[i],
            h2[i] / rps[0].max(1e-9)
        );
    }
    Ok(())
}

/// What h2load drives: an API's execute call, sent with its body from a file.
#[derive(Clone, Copy)]
enum H2Api {
    /// `POST /v1/execute` over HTTP/1.1.
    Http,
    /// `/roma.v1.Roma/Execute` over HTTP/2 without TLS (h2c).
    Grpc,
}

impl H2Api {
    /// The `endpoint` label of the server's `roma_requests_total` for this call.
    fn endpoint(self) -> &'static str {
        match self {
            H2Api::Http => "execute",
            H2Api::Grpc => "grpc_execute",
        }
    }
}

/// The h2load bodies: HTTP/JSON's written here, gRPC's the checked-in framed `ExecuteRequest`
/// (`crates/serve/tests/data`, checked against the `.proto` by roma-serve's tests).
struct H2Bodies {
    json: std::path::PathBuf,
    grpc: std::path::PathBuf,
}

impl H2Bodies {
    fn new(dir: &Path) -> Result<Self> {
        if !have("h2load") {
            apt_install(
                &["nghttp2-client"],
                "bench-serve's external load generator, h2load",
            )?;
        }
        let json = dir.join("execute.json");
        std::fs::write(
            &json,
            r#"{"version_string":"bench","handler_name":"Handler","input":["\"Foobar\""]}"#,
        )?;
        let grpc = root().join("crates/serve/tests/data/grpc-execute-hello.bin");
        Ok(H2Bodies { json, grpc })
    }
}

/// One h2load run of `seconds` against `api`, with as many connections as cores × 2, one
/// request in flight on each: its requests per second. Every request it counts must be one
/// the server counted as answered `ok` (a gRPC error is still HTTP 200 to h2load).
fn h2load(server: &Server, api: H2Api, bodies: &H2Bodies, seconds: u64) -> Result<f64> {
    let conns = (2 * cores()).to_string();
    let before = ok_count(server, api.endpoint())?;
    let mut c = Command::new("h2load");
    c.args(["-c", &conns, "-m", "1", "-D", &seconds.to_string()])
        .args(["-H", "authorization: Bearer bench-exec-token"]);
    match api {
        H2Api::Http => c
            .arg("--h1")
            .args(["-H", "content-type: application/json", "-d"])
            .arg(&bodies.json)
            .arg(format!("http://{}/v1/execute", server.http)),
        H2Api::Grpc => c
            .args([
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                "-d",
            ])
            .arg(&bodies.grpc)
            .arg(format!("http://{}/roma.v1.Roma/Execute", server.grpc)),
    };
    let out = c.output().context("cannot run h2load")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("h2load failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // "requests: N total, N started, N done, N succeeded, N failed, ..."
    let field = |line: &str, name: &str| -> Option<f64> {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        words
            .windows(2)
            .find(|w| w[1] == name)
            .and_then(|w| w[0].parse().ok())
    };
    let requests = text.lines().find(|l| l.starts_with("requests:"));
    let succeeded = requests.and_then(|l| field(l, "succeeded"));
    let failed = requests.and_then(|l| field(l, "failed"));
    let rps = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| field(l, "req/s"));
    let (Some(succeeded), Some(failed), Some(rps)) = (succeeded, failed, rps) else {
        bail!("h2load printed no figures:\n{text}");
    };
    let ok = ok_count(server, api.endpoint())? - before;
    if failed > 0.0 || ok < succeeded {
        bail!(
            "h2load against {}: {succeeded} succeeded and {failed} failed, the server answered {ok} ok",
            api.endpoint()
        );
    }
    Ok(rps)
}

/// The server's count of `endpoint` requests answered `ok`, from `GET /metrics`.
fn ok_count(server: &Server, endpoint: &str) -> Result<f64> {
    let port = server
        .http
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("no port in {}", server.http))?;
    let (status, text) = crate::cluster::http(port, "GET", "/metrics", None, "")?;
    if status != 200 {
        bail!("GET /metrics answered {status}: {text}");
    }
    let label = format!("endpoint=\"{endpoint}\"");
    Ok(text
        .lines()
        .filter(|l| l.starts_with("roma_requests_total{"))
        .filter(|l| l.contains(&label) && l.contains("outcome=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// CPU model, cores and load average, printed beside the figures.
pub(crate) fn machine() -> String {
    format!(
        "machine: {}, {} cores, load average {}",
        cpu_model(),
        cores(),
        load_average()
    )
}
