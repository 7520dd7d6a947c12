//! `cargo xtask cluster [--short] [--release]`: roma serve as a cluster on one machine, under
//! load and under failure.
//!
//! It starts a real etcd, three `roma serve` replicas sharing it (127.0.0.1, one worker
//! each), and HAProxy in front of them (health checks on `/readyz`, retries on connection
//! failure), then drives `wrk` straight at one replica (the throughput of one, on the same
//! cores) and at HAProxy through three phases: before, during (a new version
//! loaded through one replica and awaited on all; one replica SIGKILLed and restarted; etcd
//! stopped for 10 s and restarted) and after. It prints requests sent, answered OK and
//! failed, p50/p99 per phase, how long the new version took to reach every replica and how
//! long the restarted replica took to be ready, beside the CPU model and core count. It
//! fails when a request outside the kill window fails, or a bound is not met. `--short` (run
//! by `cargo xtask test`) shortens the steady phases; the failures are the same.

use crate::machine::{cores, cpu_model};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LOAD_TOKEN: &str = "cluster-load-token-0123456789";
const EXEC_TOKEN: &str = "cluster-exec-token-9876543210";
/// How long a new version may take to reach every replica, and a restarted replica to be
/// ready: generous bounds for a loaded 2-core machine, not targets.
const PROPAGATION_BOUND: Duration = Duration::from_secs(10);
const READY_BOUND: Duration = Duration::from_secs(60);
/// wrk's connections: at most this many requests are in flight on a replica that is killed.
const CONNECTIONS: usize = 8;

/// A child process, killed when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One HTTP/1.1 request on a new connection: (status, body).
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn load(port: u16, version: &str, word: &str) -> Result<u64> {
    let body = format!(
        r#"{{"version_string":"{version}","js":"function Handler(x) {{ return \"{word}\" + x; }}"}}"#
    );
    let (status, body) = http(port, "POST", "/v1/code", Some(LOAD_TOKEN), &body)?;
    if status != 200 {
        bail!("load of {version} on port {port}: {status} {body}");
    }
    let rev = body
        .split("\"roma.store.revision\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit() && c != '.').next())
        .and_then(|r| r.parse::<f64>().ok())
        .context("no store revision in the load's answer")?;
    Ok(rev as u64)
}

fn execute(port: u16, version: &str) -> Result<(u16, String)> {
    let body =
        format!(r#"{{"version_string":"{version}","handler_name":"Handler","input":["1"]}}"#);
    http(port, "POST", "/v1/execute", Some(EXEC_TOKEN), &body)
}

fn applied_revision(port: u16) -> Option<u64> {
    let (_, body) = http(port, "GET", "/metrics", None, "").ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("roma_store_revision "))
        .and_then(|v| v.trim().parse().ok())
}

fn ready(port: u16) -> bool {
    http(port, "GET", "/readyz", None, "").is_ok_and(|(s, _)| s == 200)
}

fn wait_until(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) -> Result<Duration> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > bound {
            bail!("{what}: not within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(start.elapsed())
}

struct Etcd {
    proc: Proc,
    data: PathBuf,
    client: u16,
    peer: u16,
}

impl Etcd {
    fn start(&mut self) -> Result<()> {
        let c = format!("http://127.0.0.1:{}", self.client);
        let p = format!("http://127.0.0.1:{}", self.peer);
        let child = Command::new("etcd")
            .args([
                "--name=roma-cluster".to_string(),
                format!("--data-dir={}", self.data.display()),
                format!("--listen-client-urls={c}"),
                format!("--advertise-client-urls={c}"),
                format!("--listen-peer-urls={p}"),
                format!("--initial-advertise-peer-urls={p}"),
                format!("--initial-cluster=roma-cluster={p}"),
                "--log-level=error".to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd (cargo xtask setup installs etcd-server)")?;
        self.proc = Proc(Some(child));
        wait_until("etcd opens its port", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", self.client)).is_ok()
        })?;
        Ok(())
    }
}

struct Replica {
    proc: Proc,
    port: u16,
    config: PathBuf,
}

fn start_replica(roma: &Path, config: &Path, port: u16) -> Result<Replica> {
    let mut child = Command::new(roma)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", roma.display()))?;
    // It prints `listening on ...` once its workers are up and its port is bound.
    let out = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    if !line.starts_with("listening on") {
        let _ = child.kill();
        bail!("roma serve did not start: {line:?}");
    }
    Ok(Replica {
        proc: Proc(Some(child)),
        port,
        config: config.to_path_buf(),
    })
}

/// wrk's figures for one phase.
#[derive(Debug, Default)]
struct Phase {
    name: &'static str,
    sent: u64,
    failed: u64,
    p50: String,
    p99: String,
}

fn wrk(port: u16, seconds: u64, script: &Path, name: &'static str) -> Result<Child> {
    Command::new("wrk")
        .args([
            "-t1".to_string(),
            format!("-c{CONNECTIONS}"),
            format!("-d{seconds}s"),
            "--timeout".into(),
            "10s".into(),
            "--latency".into(),
            "-s".into(),
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/v1/execute"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting wrk for {name} (cargo xtask setup installs it)"))
}

fn parse_wrk(name: &'static str, child: Child) -> Result<Phase> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut p = Phase {
        name,
        ..Default::default()
    };
    for l in text.lines() {
        let l = l.trim();
        if let Some(v) = l.strip_prefix("50%") {
            p.p50 = v.trim().into();
        } else if let Some(v) = l.strip_prefix("99%") {
            p.p99 = v.trim().into();
        } else if l.contains("requests in") {
            p.sent = l
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            p.failed += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            // connect a, read b, write c, timeout d
            p.failed += v
                .split(',')
                .filter_map(|f| f.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    if p.sent == 0 {
        bail!("wrk reported no requests for {name}:\n{text}");
    }
    Ok(p)
}

pub fn cluster(rest: &[String]) -> Result<()> {
    let short = rest.iter().any(|a| a == "--short");
    let release = rest.iter().any(|a| a == "--release");
    for (program, package) in [
        ("etcd", "etcd-server"),
        ("haproxy", "haproxy"),
        ("wrk", "wrk"),
    ] {
        crate::ensure_program(program, package)?;
    }
    let roma = crate::build_roma(!release)?;
    let steady = if short { 3 } else { 15 };

    let dir = std::env::temp_dir().join(format!("roma-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("load.tok"), LOAD_TOKEN)?;
    std::fs::write(dir.join("exec.tok"), EXEC_TOKEN)?;
    let result = drive(&dir, &roma, steady);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn drive(dir: &Path, roma: &Path, steady: u64) -> Result<()> {
    let mut etcd = Etcd {
        proc: Proc(None),
        data: dir.join("etcd"),
        client: free_port()?,
        peer: free_port()?,
    };
    etcd.start()?;
    let mut replicas = Vec::new();
    for i in 0..3 {
        let port = free_port()?;
        let config = dir.join(format!("r{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nhttp = \"127.0.0.1:{port}\"\nload_token_file = \"load.tok\"\nexecute_token_file = \"exec.tok\"\ndrain_grace = \"2s\"\n\
                 [service]\nworkers = 1\n\
                 [store]\nkind = \"etcd\"\netcd_endpoints = [\"127.0.0.1:{}\"]\netcd_timeout = \"2s\"\n",
                etcd.client
            ),
        )?;
        replicas.push(start_replica(roma, &config, port)?);
    }
    let v1 = load(replicas[0].port, "v1", "one:")?;
    for r in &replicas {
        wait_until("every replica is ready", READY_BOUND, || {
            ready(r.port) && applied_revision(r.port).is_some_and(|a| a >= v1)
        })?;
    }

    let lb = free_port()?;
    let servers: String = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "    server r{i} 127.0.0.1:{} check inter 200ms fall 2 rise 2\n",
                r.port
            )
        })
        .collect();
    let cfg = format!(
        "global\n    maxconn 256\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    retries 3\n    option redispatch 1\n    retry-on conn-failure\n\
         frontend fe\n    bind 127.0.0.1:{lb}\n    default_backend roma\n\
         backend roma\n    balance roundrobin\n    http-reuse safe\n    option httpchk GET /readyz\n    http-check expect status 200\n{servers}"
    );
    let cfg_path = dir.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg)?;
    let _haproxy = Proc(Some(
        Command::new("haproxy")
            .arg("-f")
            .arg(&cfg_path)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting haproxy")?,
    ));
    wait_until("haproxy answers", Duration::from_secs(20), || {
        execute(lb, "v1").is_ok_and(|(s, _)| s == 200)
    })?;

    let script = dir.join("execute.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Authorization\"] = \"Bearer {EXEC_TOKEN}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.body = '{{\"version_string\":\"v1\",\"handler_name\":\"Handler\",\"input\":[\"1\"]}}'\n"
        ),
    )?;

    // One replica alone (wrk straight at it), then three behind HAProxy: the same cores.
    let single = parse_wrk(
        "1 replica, direct",
        wrk(replicas[0].port, steady, &script, "1 replica")?,
    )?;
    let before = parse_wrk("before", wrk(lb, steady, &script, "before")?)?;

    // During: the events run one after another while wrk keeps the load on.
    let event_seconds = 40;
    let during = wrk(lb, event_seconds, &script, "during")?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let v2 = load(replicas[0].port, "v2", "two:")?;
    let propagation = wait_until("v2 reaches every replica", PROPAGATION_BOUND, || {
        replicas.iter().all(|r| {
            applied_revision(r.port).is_some_and(|a| a >= v2)
                && execute(r.port, "v2").is_ok_and(|(s, b)| s == 200 && b.contains("two:1"))
        })
    })?;
    std::thread::sleep(Duration::from_secs(2));
    let killed_at = t0.elapsed();
    replicas[1].proc.kill();
    std::thread::sleep(Duration::from_secs(2));
    let restart = Instant::now();
    let (port, config) = (replicas[1].port, replicas[1].config.clone());
    replicas[1] = start_replica(roma, &config, port)?;
    wait_until("the restarted replica is ready", READY_BOUND, || {
        ready(port)
    })?;
    let time_to_ready = restart.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    etcd.proc.kill();
    let etcd_down = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    // Every replica keeps serving (and stays ready) while etcd is down.
    for r in &replicas {
        let (s, b) = execute(r.port, "v2")?;
        if s != 200 {
            bail!("replica on {} failed while etcd was down: {s} {b}", r.port);
        }
    }
    etcd.start()?;
    let etcd_gap = etcd_down.elapsed();
    let v3 = wait_until_load(replicas[2].port, "v3")?;
    let catch_up = wait_until(
        "v3 reaches every replica after etcd's restart",
        PROPAGATION_BOUND * 2,
        || {
            replicas
                .iter()
                .all(|r| applied_revision(r.port).is_some_and(|a| a >= v3))
        },
    )?;
    let events_took = t0.elapsed();
    let during = parse_wrk("during", during)?;
    let after = parse_wrk("after", wrk(lb, steady, &script, "after")?)?;

    println!(
        "roma serve cluster: 3 replicas (1 worker each), etcd, HAProxy; wrk -c{CONNECTIONS}; {}, {} cores",
        cpu_model(),
        cores()
    );
    println!("| phase | seconds | requests sent | OK | failed | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (p, secs) in [
        (&single, steady),
        (&before, steady),
        (&during, event_seconds),
        (&after, steady),
    ] {
        println!(
            "| {} | {secs} | {} | {} | {} | {} | {} |",
            p.name,
            p.sent,
            p.sent - p.failed.min(p.sent),
            p.failed,
            p.p50,
            p.p99
        );
    }
    println!(
        "new version on every replica: {:.0} ms; killed replica ready again: {:.2} s after its restart; etcd down {:.1} s, then a new version on every replica {:.0} ms after the first load that succeeded; events took {:.1} s (kill at {:.1} s)",
        propagation.as_secs_f64() * 1e3,
        time_to_ready.as_secs_f64(),
        etcd_gap.as_secs_f64(),
        catch_up.as_secs_f64() * 1e3,
        events_took.as_secs_f64(),
        killed_at.as_secs_f64(),
    );
    if single.failed > 0 || before.failed > 0 || after.failed > 0 {
        bail!(
            "requests failed outside the failure window: 1 replica {}, before {}, after {}",
            single.failed,
            before.failed,
            after.failed
        );
    }
    // Only requests in flight on the killed replica may fail: at most one per connection.
    if during.failed > CONNECTIONS as u64 {
        bail!(
            "{} requests failed during the events; at most {CONNECTIONS} (those in flight on the killed replica) may",
            during.failed
        );
    }
    Ok(())
}

/// Loads `version` through `port` once etcd takes writes again; its revision.
fn wait_until_load(port: u16, version: &str) -> Result<u64> {
    let start = Instant::now();
    loop {
        match load(port, version, "three:") {
            Ok(r) => return Ok(r),
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.context("no load succeeded within 30 s of etcd's restart")),
        }
    }
}
