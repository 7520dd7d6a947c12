//! `cargo xtask bench-serve`: what `roma serve` costs over the in-process service, measured
//! in one run with the rounds interleaved (in-process, HTTP/JSON, gRPC, again and again), for
//! hello world: the idle p50 overhead (one request at a time, a pause between) and the
//! saturated throughput ratio. Each round also measures each API's health check the idle way
//! (`roma bench --target ... --health`): the round trip through the same server and client
//! with no code run, so the overhead splits into what the network path costs by itself and
//! what handing an execution over to roma adds to it. Then `h2load` (Debian's
//! nghttp2-client, installed here when missing, as a user would) drives the HTTP/JSON API as
//! an external load generator.
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
    }
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
    h2load(&server, seconds)?;
    Ok(())
}

/// h2load over HTTP/1.1 against `POST /v1/execute`, with as many connections as cores × 2.
fn h2load(server: &Server, seconds: u64) -> Result<()> {
    if !have("h2load") {
        apt_install(
            &["nghttp2-client"],
            "bench-serve's external load generator, h2load",
        )?;
    }
    let dir = root().join("target/tmp/bench-serve");
    let body = dir.join("execute.json");
    std::fs::write(
        &body,
        r#"{"version_string":"bench","handler_name":"Handler","input":["\"Foobar\""]}"#,
    )?;
    let conns = (2 * cores()).to_string();
    let out = Command::new("h2load")
        .args(["--h1", "-c", &conns, "-D", &seconds.to_string()])
        .args(["-H", "authorization: Bearer bench-exec-token"])
        .args(["-H", "content-type: application/json"])
        .arg("-d")
        .arg(&body)
        .arg(format!("http://{}/v1/execute", server.http))
        .output()
        .context("cannot run h2load")?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("h2load --h1 -c {conns} -D {seconds} POST /v1/execute:");
    for l in text.lines().filter(|l| {
        l.starts_with("finished in")
            || l.starts_with("requests:")
            || l.starts_with("status codes:")
            || l.starts_with("time for request:")
    }) {
        println!("  {l}");
    }
    if !out.status.success() {
        bail!("h2load failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
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
