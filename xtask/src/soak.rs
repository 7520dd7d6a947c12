//! `cargo xtask soak --minutes N [--fuzz-seconds S] [--kill-every-s K]`: a long run of a 2-worker service (namespaces
//! sandbox) under a mix of healthy and hostile requests while workers are SIGKILLed, then a
//! report; it fails if a callback is lost, an outcome is not one its category allows, or the
//! host's RSS grew more than 10%.
//!
//! The outer task builds `roma-worker` and this soak in release, runs the fuzz targets for S
//! seconds each first (default 60; 0 skips them), then runs `xtask soak-inner` (the soak itself)
//! with `ROMA_WORKER_LIB` pointing at the release worker library.

use crate::{cargo, root, run};
use anyhow::{Context, Result, bail};
use roma::{
    CodeObject, Config, ErrorKind, FunctionBindingObject, InvocationRequest, RomaError,
    RomaService, SandboxKind,
};
use roma_sandbox::procfs;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Requests in flight at once.
const IN_FLIGHT: usize = 8;
/// Size of the big payloads, in and out.
const BIG: usize = 256 * 1024;
/// How long the end waits for outstanding callbacks before calling them lost.
const PATIENCE: Duration = Duration::from_secs(120);
/// Warm-up before the start RSS is taken.
const WARM_UP: Duration = Duration::from_secs(10);

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn arg_value<T: std::str::FromStr>(rest: &[String], name: &str, default: T) -> Result<T> {
    match rest.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => rest
            .get(i + 1)
            .with_context(|| format!("{name} needs a value"))?
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} takes a number")),
    }
}

/// The outer task: builds, fuzzes, then runs the release soak.
pub fn soak(rest: &[String]) -> Result<()> {
    let minutes: f64 = arg_value(rest, "--minutes", 10.0)?;
    let fuzz_seconds: u64 = arg_value(rest, "--fuzz-seconds", 60)?;
    let kill_every_s: f64 = arg_value(rest, "--kill-every-s", 3.5)?;
    crate::setup()?;
    if fuzz_seconds > 0 {
        crate::fuzz::fuzz(&["--seconds".into(), fuzz_seconds.to_string()])?;
    }
    run(cargo().args(["build", "--release", "-p", "roma-worker"]))?;
    let worker = target_dir()
        .join("release")
        .join(roma::tools::WORKER_LIBRARY_NAME);
    run(cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "xtask",
            "--",
            "soak-inner",
        ])
        .args(["--minutes", &minutes.to_string()])
        .args(["--kill-every-s", &kill_every_s.to_string()])
        .env("ROMA_WORKER_LIB", &worker))
}

/// What each category of request may end in. A worker SIGKILL may hit any request in flight,
/// so every category also allows `WorkerCrashed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Category {
    Hello,
    Udf,
    Big,
    Throw,
    Timeout,
    HeapBomb,
}

impl Category {
    const ALL: [Category; 6] = [
        Category::Hello,
        Category::Udf,
        Category::Big,
        Category::Throw,
        Category::Timeout,
        Category::HeapBomb,
    ];

    /// Relative frequency in the mix.
    fn weight(self) -> u64 {
        match self {
            Category::Hello => 40,
            Category::Udf => 20,
            Category::Big => 10,
            Category::Throw => 10,
            Category::Timeout => 10,
            Category::HeapBomb => 10,
        }
    }

    /// The outcome this category must have when no kill interferes.
    fn expected(self) -> &'static str {
        match self {
            Category::Hello | Category::Udf | Category::Big => "ok",
            Category::Throw => ErrorKind::Execution.as_str(),
            Category::Timeout => ErrorKind::Timeout.as_str(),
            Category::HeapBomb => ErrorKind::OutOfMemory.as_str(),
        }
    }

    fn allowed(self, outcome: &str) -> bool {
        outcome == self.expected() || outcome == ErrorKind::WorkerCrashed.as_str()
    }
}

const JS: &str = r#"
function Hello(input) { return "Hello world! " + JSON.stringify(input); }
function Udf(s) { return soak.echo(s); }
function Big(s) { return s.toUpperCase(); }
function Throw() { throw new Error("boom"); }
function Spin() { while (true) {} }
function Bomb() { let a = []; while (true) a.push('x'.repeat(1000) + a.length); }
"#;

fn request(cat: Category, n: u64, big: &str) -> InvocationRequest<()> {
    let (handler, input) = match cat {
        Category::Hello => ("Hello", format!("\"{n}\"")),
        Category::Udf => ("Udf", format!("\"u{n}\"")),
        Category::Big => ("Big", format!("\"{big}\"")),
        Category::Throw => ("Throw", String::new()),
        Category::Timeout => ("Spin", String::new()),
        Category::HeapBomb => ("Bomb", String::new()),
    };
    InvocationRequest {
        id: format!("soak-{n}"),
        version_string: "v1".into(),
        handler_name: handler.into(),
        input: vec![input],
        timeout: (cat == Category::Timeout).then_some(Duration::from_millis(50)),
        ..Default::default()
    }
}

/// Names the outcome of one request, checking an `Ok` result's content.
fn outcome(cat: Category, n: u64, result: &Result<roma::ResponseObject, RomaError>) -> String {
    match result {
        Err(e) => e.kind().as_str().to_string(),
        Ok(r) => {
            let good = match cat {
                Category::Hello => r.resp == format!("\"Hello world! \\\"{n}\\\"\""),
                Category::Udf => r.resp == format!("\"echo:u{n}\""),
                Category::Big => {
                    r.resp.len() == BIG + 2
                        && r.resp[1..r.resp.len() - 1].bytes().all(|b| b == b'X')
                }
                _ => false,
            };
            if good {
                "ok".into()
            } else {
                format!("wrong-result({} bytes)", r.resp.len())
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    in_flight: usize,
    submitted: u64,
    delivered: u64,
    outcomes: BTreeMap<(Category, String), u64>,
    hello_latency: Histogram,
}

/// Latencies in buckets 1% wide (fixed memory, so the tally itself does not grow the RSS).
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

const HIST_STEP: f64 = 1.01;
const HIST_BUCKETS: usize = 2048;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; HIST_BUCKETS],
            count: 0,
        }
    }
}

impl Histogram {
    fn record(&mut self, d: Duration) {
        let us = d.as_secs_f64() * 1e6;
        let i = if us <= 1.0 {
            0
        } else {
            ((us.ln() / HIST_STEP.ln()) as usize + 1).min(HIST_BUCKETS - 1)
        };
        self.buckets[i] += 1;
        self.count += 1;
    }

    /// The upper edge of the bucket holding the `p` quantile, in ms (1% resolution).
    fn quantile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let rank = ((self.count as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return HIST_STEP.powi(i as i32) / 1000.0;
            }
        }
        f64::INFINITY
    }
}

struct Shared {
    tally: Mutex<Tally>,
    changed: Condvar,
}

/// This process's resident memory, in KiB.
fn rss_kb() -> Result<u64> {
    let me = procfs::process(std::process::id())?.context("this process is not in /proc")?;
    Ok(me.rss_kb)
}

/// Pids of the `roma-worker*` processes descended from this one, each with whether it is a
/// direct child (one per worker slot: the jailed engine runs in a grandchild).
fn worker_pids() -> Vec<(i32, bool)> {
    let me = std::process::id();
    let Ok(workers) = procfs::descendants_named(me, roma::tools::WORKER_PROCESS_NAME) else {
        return Vec::new();
    };
    // Sorted by pid already.
    workers
        .iter()
        .map(|p| (p.pid as i32, p.ppid == me))
        .collect()
}

/// The direct children among `pids`.
fn direct(pids: &[(i32, bool)]) -> BTreeSet<i32> {
    pids.iter().filter(|p| p.1).map(|p| p.0).collect()
}

/// A small xorshift generator: the mix needs no more.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn pick(rng: &mut Rng) -> Category {
    let total: u64 = Category::ALL.iter().map(|c| c.weight()).sum();
    let mut r = rng.next() % total;
    for c in Category::ALL {
        if r < c.weight() {
            return c;
        }
        r -= c.weight();
    }
    Category::Hello
}

fn submit(svc: &RomaService, shared: &Arc<Shared>, cat: Category, n: u64, big: &str) -> Result<()> {
    {
        let mut t = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
        while t.in_flight >= IN_FLIGHT {
            t = shared.changed.wait(t).unwrap_or_else(|p| p.into_inner());
        }
        t.in_flight += 1;
        t.submitted += 1;
    }
    let start = Instant::now();
    let s = Arc::clone(shared);
    let sent = svc.execute(request(cat, n, big), move |result| {
        let latency = start.elapsed();
        let o = outcome(cat, n, &result);
        let mut t = s.tally.lock().unwrap_or_else(|p| p.into_inner());
        if cat == Category::Hello && o == "ok" {
            t.hello_latency.record(latency);
        }
        *t.outcomes.entry((cat, o)).or_default() += 1;
        t.delivered += 1;
        t.in_flight -= 1;
        s.changed.notify_all();
    });
    if let Err(e) = sent {
        // Refused synchronously: no callback will come. Counted as an outcome of its own
        // (never an allowed one) and not as submitted.
        let mut t = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
        t.in_flight -= 1;
        t.submitted -= 1;
        *t.outcomes
            .entry((cat, format!("refused-{}", e.kind().as_str())))
            .or_default() += 1;
        shared.changed.notify_all();
    }
    Ok(())
}

fn drain(shared: &Shared, patience: Duration) {
    let deadline = Instant::now() + patience;
    let mut t = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
    while t.in_flight > 0 && Instant::now() < deadline {
        t = shared
            .changed
            .wait_timeout(t, Duration::from_millis(200))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// The soak itself (run in release by [`soak`]).
pub fn soak_inner(rest: &[String]) -> Result<()> {
    let minutes: f64 = arg_value(rest, "--minutes", 10.0)?;
    // Diagnostics: `--kill-every-s 0` turns the killer off (to tell memory growth caused by
    // respawns from the rest); default: a kill every 2-5 s.
    let kill_every_s: f64 = arg_value(rest, "--kill-every-s", 3.5)?;
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let mut config = Config::<()>::default();
    config.number_of_workers(2);
    config.sandbox(SandboxKind::Namespaces);
    config.configure_js_engine_resource_constraints(1, 15);
    config.register_function_binding(FunctionBindingObject::new("soak.echo", |p| {
        let s = format!("echo:{}", p.io.input_string().unwrap_or("?"));
        p.io.set_output_string(s);
    }));
    // The release worker library: `ROMA_WORKER_LIB`, which RomaService reads itself.
    let svc = RomaService::new(config).context("starting the service")?;
    let (tx, rx) = std::sync::mpsc::channel();
    svc.load_code_obj(
        CodeObject {
            id: "soak".into(),
            version_string: "v1".into(),
            js: JS.into(),
            ..Default::default()
        },
        move |r| {
            let _ = tx.send(r);
        },
    )?;
    rx.recv_timeout(PATIENCE)
        .context("the load callback never came")?
        .context("loading the soak code")?;

    let big = "x".repeat(BIG);
    let shared = Arc::new(Shared {
        tally: Mutex::new(Tally::default()),
        changed: Condvar::new(),
    });
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut rng = Rng(seed);
    let mut n = 0u64;

    // Warm-up: the full mix, no kills, so allocator pools and caches reach their steady size.
    eprintln!("soak: warming up for {} s", WARM_UP.as_secs());
    let warm_end = Instant::now() + WARM_UP;
    while Instant::now() < warm_end {
        n += 1;
        submit(&svc, &shared, pick(&mut rng), n, &big)?;
    }
    drain(&shared, PATIENCE);
    *shared.tally.lock().unwrap_or_else(|p| p.into_inner()) = Tally::default();
    let rss_start = rss_kb()?;

    // The killer: every 2-5 s (by default), SIGKILL one random roma-worker descendant. It also records every
    // worker pid it sees, to count respawns.
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let initial = direct(&worker_pids());
    let killer = {
        let stop = Arc::clone(&stop);
        let kills = Arc::clone(&kills);
        let mut rng = Rng(seed.rotate_left(17) | 1);
        // Uniform in [0.57, 1.43] x the mean: 2-5 s for the default 3.5 s.
        let mean_ms = (kill_every_s * 1000.0) as u64;
        let interval = move |rng: &mut Rng| {
            (kill_every_s > 0.0).then(|| {
                Duration::from_millis(mean_ms * 4 / 7 + rng.next() % (mean_ms * 6 / 7).max(1))
            })
        };
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let mut next_kill = interval(&mut rng).map(|d| Instant::now() + d);
            while !stop.load(Ordering::Relaxed) {
                let pids = worker_pids();
                seen.extend(direct(&pids));
                if next_kill.is_some_and(|k| Instant::now() >= k) && !pids.is_empty() {
                    let pid = pids[(rng.next() % pids.len() as u64) as usize].0;
                    // SAFETY: kill(2) on a pid just read from /proc; at worst it is gone already.
                    if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                        kills.fetch_add(1, Ordering::Relaxed);
                    }
                    next_kill = interval(&mut rng).map(|d| Instant::now() + d);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        })
    };

    eprintln!("soak: running for {minutes} min with worker kills");
    let started = Instant::now();
    let mut last_report = Instant::now();
    while started.elapsed() < run_for {
        n += 1;
        submit(&svc, &shared, pick(&mut rng), n, &big)?;
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            let t = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
            eprintln!(
                "soak: {:>4.0} s: {} submitted, {} delivered, {} kills, RSS {} kB",
                started.elapsed().as_secs_f64(),
                t.submitted,
                t.delivered,
                kills.load(Ordering::Relaxed),
                rss_kb().unwrap_or(0)
            );
        }
    }
    let elapsed = started.elapsed();
    drain(&shared, PATIENCE);
    stop.store(true, Ordering::Relaxed);
    let seen = killer
        .join()
        .map_err(|_| anyhow::anyhow!("the killer thread panicked"))?;
    let rss_end = rss_kb()?;

    // After the storm the service must still serve hello world.
    let (tx, rx) = std::sync::mpsc::channel();
    svc.execute(request(Category::Hello, 0, &big), move |r| {
        let _ = tx.send(r);
    })?;
    let after = rx
        .recv_timeout(PATIENCE)
        .map(|r| outcome(Category::Hello, 0, &r))
        .unwrap_or_else(|_| "lost".into());
    svc.stop();
    drop(svc);
    let leftover_deadline = Instant::now() + Duration::from_secs(30);
    let mut leftover = worker_pids();
    while !leftover.is_empty() && Instant::now() < leftover_deadline {
        std::thread::sleep(Duration::from_millis(100));
        leftover = worker_pids();
    }

    let t = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
    let lost = t.submitted.saturating_sub(t.delivered);
    let new_pids = seen.difference(&initial).count();
    let growth = (rss_end as f64 - rss_start as f64) / rss_start as f64 * 100.0;
    let mut unexpected = Vec::new();
    println!(
        "soak: {minutes} min, 2 workers (namespaces sandbox), {IN_FLIGHT} in flight, a kill every ~{kill_every_s} s"
    );
    println!(
        "requests: {} submitted, {} delivered in {:.1} s ({:.0}/s)",
        t.submitted,
        t.delivered,
        elapsed.as_secs_f64(),
        t.delivered as f64 / elapsed.as_secs_f64()
    );
    println!("outcomes:");
    for ((cat, o), count) in &t.outcomes {
        let ok = cat.allowed(o);
        if !ok {
            unexpected.push(format!("{cat:?}: {o} x{count}"));
        }
        println!(
            "  {:<9} {:<22} {count}{}",
            format!("{cat:?}"),
            o,
            if ok { "" } else { "   <- UNEXPECTED" }
        );
    }
    println!("lost callbacks: {lost}");
    println!(
        "worker SIGKILLs: {}, respawns (new worker processes seen): {new_pids}",
        kills.load(Ordering::Relaxed)
    );
    println!(
        "hello latency during faults: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        t.hello_latency.quantile_ms(0.50),
        t.hello_latency.quantile_ms(0.99),
        t.hello_latency.count
    );
    println!(
        "host RSS: {rss_start} kB at start (after warm-up), {rss_end} kB at end ({growth:+.1}%)"
    );
    println!(
        "hello world after the run: {after}; worker processes left after stop: {}",
        leftover.len()
    );

    let mut failures = Vec::new();
    if lost > 0 {
        failures.push(format!("{lost} lost callbacks"));
    }
    if !unexpected.is_empty() {
        failures.push(format!("unexpected outcomes: {}", unexpected.join(", ")));
    }
    if growth > 10.0 {
        failures.push(format!("RSS grew {growth:.1}% (> 10%)"));
    }
    if after != "ok" {
        failures.push(format!("hello world after the run: {after}"));
    }
    if !leftover.is_empty() {
        failures.push(format!("worker processes left after stop: {leftover:?}"));
    }
    if !failures.is_empty() {
        bail!("soak FAILED: {}", failures.join("; "));
    }
    println!("soak: PASS");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_one_percent() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        for (p, want) in [(0.5, 500.0), (0.99, 990.0)] {
            let got = h.quantile_ms(p);
            assert!((got - want).abs() <= want * 0.011, "p{p}: {got} vs {want}");
        }
        assert!(Histogram::default().quantile_ms(0.5).is_nan());
    }

    #[test]
    fn every_category_allows_its_outcome_and_a_crash_only() {
        for c in Category::ALL {
            assert!(c.allowed(c.expected()));
            assert!(c.allowed("worker_crashed"));
            assert!(!c.allowed("internal"));
            assert!(!c.allowed("refused-queue_full"));
        }
        assert!(!Category::Hello.allowed("timeout"));
    }
}
