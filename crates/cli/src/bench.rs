//! `roma bench`: closed-loop load against a running service, with latency percentiles,
//! throughput, worker memory, CPU and where the time went (hop by hop, from the responses'
//! `roma.hop.*` metrics); beside it, raw V8's fresh-context rate measured in the same run,
//! because only ratios taken together carry over between machines. `--suite` runs issue 18's
//! whole matrix (idle gaps, saturation, raw V8) in interleaved rounds.

use crate::code::{HELLO_JS, read_code};
use crate::machine::{cores, cpu_model, load_average};
use crate::service::{ServiceArgs, describe_error, load, start};
use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use roma::{
    CodeObject, ErrorKind, InvocationRequest, ResponseObject, RomaError, RomaService, metrics,
};
use roma_sandbox::procfs;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The code (.js or .wasm); the built-in hello world when absent.
    pub code: Option<PathBuf>,
    /// The handler to call.
    #[arg(long, default_value = "Handler")]
    pub handler: String,
    /// One argument as JSON text; repeat for more. Default for hello world: "Foobar".
    #[arg(long = "input", allow_hyphen_values = true)]
    pub inputs: Vec<String>,
    /// Requests to measure (after a warm-up). Ignored with --duration.
    #[arg(long, default_value_t = 10_000)]
    pub requests: usize,
    /// Measure for this long instead of a request count, e.g. 10s.
    #[arg(long, value_parser = roma::tools::parse_duration)]
    pub duration: Option<Duration>,
    /// Requests in flight at once (0: two per worker).
    #[arg(long, default_value_t = 0)]
    pub concurrency: usize,
    /// Pause before each request (with --concurrency 1: the latency an idle, pre-warmed
    /// worker gives), e.g. 2ms.
    #[arg(long, value_parser = roma::tools::parse_duration)]
    pub interval: Option<Duration>,
    /// Machine-readable output. Either way, the code's console output is dropped and failed
    /// requests are summed up by error kind, with the first message of each kind.
    #[arg(long)]
    pub json: bool,
    /// How the client submits: `channel` (callbacks report to one client thread, which submits
    /// the next request), `blocking` (one thread per request in flight, each submitting with
    /// `execute_blocking` and waiting for its answer), `chained` (each callback submits the
    /// next request itself; no --interval).
    #[arg(long, value_enum, default_value = "channel")]
    pub client: ClientArg,
    /// Also measure raw V8's fresh-context rate in two processes in parallel (no roma: no
    /// channel, no jail), before and after the service in the same run, and print the ratio.
    #[arg(long)]
    pub raw: bool,
    /// The latency and saturation suite: gaps of 2, 20 and 200 ms with one and two workers
    /// from a blocking client, then saturation with a blocking and a chained client, each
    /// round interleaved with the raw V8 rate; --rounds rounds, a summary at the end.
    #[arg(long)]
    pub suite: bool,
    /// Rounds of the suite.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Measure a running `roma serve` instead of an in-process service:
    /// `http://HOST:PORT` (HTTP/JSON) or `grpc://HOST:PORT`. The code is loaded there first;
    /// the service flags below are then the server's business and ignored.
    #[arg(long, requires_all = ["load_token_file", "execute_token_file"])]
    pub target: Option<crate::bench_remote::Target>,
    /// With --target: measure the server's health check instead of an execution (HTTP/JSON
    /// `GET /healthz`, gRPC `grpc.health.v1.Health/Check`), the same way: the round trip
    /// through the same server and client with no code run, the floor under an execution's
    /// overhead.
    #[arg(long, requires = "target")]
    pub health: bool,
    /// With --target: the file holding the server's load token.
    #[arg(long = "load-token-file")]
    pub load_token_file: Option<PathBuf>,
    /// With --target: the file holding the server's execute token.
    #[arg(long = "execute-token-file")]
    pub execute_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// How the bench's client submits requests (see [`BenchArgs::client`]).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientArg {
    Channel,
    Blocking,
    Chained,
}

impl ClientArg {
    fn name(self) -> &'static str {
        match self {
            ClientArg::Channel => "channel",
            ClientArg::Blocking => "blocking",
            ClientArg::Chained => "chained",
        }
    }
}

/// One completed request, as the bench saw it.
pub(crate) struct Sample {
    pub latency: Duration,
    pub ok: bool,
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The error of a failed request.
    pub error: Option<RomaError>,
}

/// Failures of one kind: how many, and the first one's message.
#[derive(Debug, PartialEq)]
struct ErrorSummary {
    kind: ErrorKind,
    count: usize,
    first_message: String,
}

/// The failures of `samples` by kind, most frequent first (ties in kind order).
fn summarize_errors(samples: &[Sample]) -> Vec<ErrorSummary> {
    let mut by_kind: Vec<ErrorSummary> = Vec::new();
    for e in samples.iter().filter_map(|s| s.error.as_ref()) {
        match by_kind.iter_mut().find(|s| s.kind == e.kind()) {
            Some(s) => s.count += 1,
            None => by_kind.push(ErrorSummary {
                kind: e.kind(),
                count: 1,
                first_message: e.message().to_owned(),
            }),
        }
    }
    by_kind.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.kind.as_str().cmp(b.kind.as_str()))
    });
    by_kind
}

/// What a bench runs: the code, its handler and the inputs of every request.
struct Workload {
    code: CodeObject,
    handler: String,
    inputs: Vec<String>,
}

impl Workload {
    fn of(args: &BenchArgs) -> Result<Workload> {
        let (code, inputs) = match &args.code {
            Some(p) => (read_code(p, "bench", None, None)?, args.inputs.clone()),
            None => {
                let code = CodeObject {
                    id: "hello".into(),
                    version_string: "bench".into(),
                    js: HELLO_JS.into(),
                    ..Default::default()
                };
                let inputs = if args.inputs.is_empty() {
                    vec![r#""Foobar""#.to_owned()]
                } else {
                    args.inputs.clone()
                };
                (code, inputs)
            }
        };
        Ok(Workload {
            code,
            handler: args.handler.clone(),
            inputs,
        })
    }

    fn request(&self) -> InvocationRequest {
        InvocationRequest {
            id: "bench".into(),
            version_string: "bench".into(),
            handler_name: self.handler.clone(),
            input: self.inputs.clone(),
            ..Default::default()
        }
    }
}

/// A started service with the workload loaded and warmed up.
struct Target {
    svc: Arc<RomaService>,
    workers: usize,
    /// From `RomaService::new` until it returned (every worker started and answering).
    start: Duration,
}

impl Target {
    fn start(args: &BenchArgs, workers: Option<usize>, w: &Workload) -> Result<Target> {
        let default_workers = cores();
        let mut config = args.service.config(default_workers);
        if let Some(n) = workers {
            config.number_of_workers(n);
        }
        // Console output and uncaught errors of thousands of requests would flood the
        // terminal and slow the measurement: failures are summed up by kind after the figures
        // instead.
        config.set_logging_function(|_, _: &(), _| {});
        let t0 = Instant::now();
        let svc = Arc::new(start(config)?);
        let started = t0.elapsed();
        if let Err(e) = load(&svc, w.code.clone()) {
            bail!("{}", describe_error(&e));
        }
        // Tenant pools start their workers at the first load: count them after it.
        let workers = svc.stats().workers.len().max(1);
        let t = Target {
            svc,
            workers,
            start: started,
        };
        // Warm-up: every worker creates its first contexts; not measured.
        t.drive(
            w,
            ClientArg::Channel,
            workers * 2,
            Limit::Requests(workers * 50),
            None,
            None,
        )?;
        Ok(t)
    }

    /// Keeps `concurrency` requests in flight until the limit; returns every completed sample.
    fn drive(
        &self,
        w: &Workload,
        client: ClientArg,
        concurrency: usize,
        limit: Limit,
        bar: Option<&ProgressBar>,
        interval: Option<Duration>,
    ) -> Result<Vec<Sample>> {
        let d = Drive {
            w,
            concurrency: concurrency.max(1),
            limit,
            bar,
            interval,
        };
        match client {
            ClientArg::Channel => drive_channel(&self.svc, d),
            ClientArg::Blocking => drive_blocking(&self.svc, d),
            ClientArg::Chained => {
                if interval.is_some() {
                    bail!(
                        "--interval needs a client thread to pause: use --client blocking or channel"
                    );
                }
                drive_chained(&self.svc, d)
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.svc.stop();
    }
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    let w = Workload::of(&args)?;
    if let Some(target) = args.target.clone() {
        let (Some(l), Some(e)) = (&args.load_token_file, &args.execute_token_file) else {
            bail!("--target needs --load-token-file and --execute-token-file");
        };
        let default_workers = cores();
        let concurrency = if args.concurrency == 0 {
            default_workers * 2
        } else {
            args.concurrency
        };
        let report = crate::bench_remote::run(crate::bench_remote::Args {
            target,
            tokens: crate::bench_remote::Tokens::read(l, e)?,
            code: w.code,
            handler: w.handler,
            inputs: w.inputs,
            concurrency,
            warmup: concurrency * 50,
            limit: match args.duration {
                Some(d) => Limit::Duration(d),
                None => Limit::Requests(args.requests),
            },
            interval: args.interval,
            health: args.health,
        })?;
        return Ok(print_report(&report, args.json));
    }
    if args.suite {
        return suite(&args, &w);
    }
    let raw_before = args.raw.then(|| raw_measure(RAW_CALLS)).transpose()?;
    let target = Target::start(&args, None, &w)?;
    let concurrency = if args.concurrency == 0 {
        target.workers * 2
    } else {
        args.concurrency
    };
    let bar = match args.duration {
        Some(d) => ProgressBar::new(d.as_secs().max(1)),
        None => ProgressBar::new(args.requests as u64),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let limit = match args.duration {
        Some(d) => Limit::Duration(d),
        None => Limit::Requests(args.requests),
    };
    let load_before = load_average();
    let cpu_before = service_cpu();
    let started = Instant::now();
    let samples = target.drive(
        &w,
        args.client,
        concurrency,
        limit,
        Some(&bar),
        args.interval,
    )?;
    let elapsed = started.elapsed();
    let cpu = service_cpu().saturating_sub(cpu_before);
    bar.finish_and_clear();
    let rss_kib = worker_rss_kib();
    let (workers, start) = (target.workers, target.start);
    let cgroups = target.svc.cgroups().map(str::to_owned);
    drop(target);
    let raw = match raw_before {
        Some((before, cpu_a)) => {
            let (after, cpu_b) = raw_measure(RAW_CALLS)?;
            Some((before, after, (cpu_a + cpu_b) / 2.0))
        }
        None => None,
    };

    let mut report = Report::new(&samples, elapsed, Some(rss_kib), workers, concurrency);
    report.client = args.client;
    report.cgroups = cgroups;
    report.start_ms = millis(start);
    report.load = format!("{load_before} -> {}", load_average());
    report.raw = raw;
    report.cpu_ms_per_request = millis(cpu) / samples.len().max(1) as f64;
    report.cpu_share = cpu.as_secs_f64() / elapsed.as_secs_f64().max(1e-9);
    Ok(print_report(&report, args.json))
}

fn print_report(report: &Report, json: bool) -> ExitCode {
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Fresh-context calls each raw V8 process makes per measurement.
const RAW_CALLS: usize = 1500;

/// [`raw_pair`]'s rate, and the CPU time per call the two processes used (ms; their whole life, the
/// warm-up and V8's start included, from this process's reaped-children CPU time).
fn raw_measure(n: usize) -> Result<(f64, f64)> {
    let before = children_cpu();
    let rate = raw_pair(n)?;
    let cpu = match (before, children_cpu()) {
        // Each process also makes min(n, 100) warm-up calls; its start is left in.
        (Some(a), Some(b)) => millis(b.saturating_sub(a)) / (2 * (n + n.min(100))) as f64,
        _ => 0.0,
    };
    Ok((rate, cpu))
}

/// The CPU time (user + system) of this process's reaped children (`/proc/self/stat`'s
/// cutime and cstime, in USER_HZ ticks: 100 per second on Linux).
fn children_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the command: state is field 3; cutime and cstime are fields 16 and 17.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The CPU time this process, every live descendant (the workers and their launchers) and
/// every reaped child (workers replaced by recycling or after a crash) have used so far.
fn service_cpu() -> Duration {
    let me = std::process::id();
    let mut total = procfs::cpu_time(me).ok().flatten().unwrap_or_default();
    total += children_cpu().unwrap_or_default();
    for p in procfs::descendants_of(me).unwrap_or_default() {
        total += procfs::cpu_time(p.pid).ok().flatten().unwrap_or_default();
    }
    total
}

/// Raw V8's fresh-context rate (calls per second) of two processes running `n` calls each in
/// parallel: `node` with the worker library, `--raw-baseline`, outside any jail. The rate is
/// 2n over the slower process's loop time (process start excluded).
fn raw_pair(n: usize) -> Result<f64> {
    let run = || -> Result<f64> {
        let out = roma::tools::unjailed_worker_command(None, None)
            .map_err(|e| anyhow::anyhow!("{}", describe_error(&e)))?
            .args(["--raw-baseline", &n.to_string()])
            .output()
            .context("cannot run the raw V8 baseline")?;
        if !out.status.success() {
            bail!(
                "the raw V8 baseline failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .context("the raw V8 baseline printed no seconds")
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = run();
        (a.join(), b)
    });
    let a = a.map_err(|_| anyhow::anyhow!("the raw V8 baseline thread panicked"))??;
    let slower = a.max(b?);
    Ok(2.0 * n as f64 / slower.max(1e-9))
}

/// The suite's gaps between requests from one waiting client.
const SUITE_GAPS_MS: [u64; 3] = [2, 20, 200];

/// One case of the suite.
#[derive(Clone, Copy)]
enum Case {
    Gap { ms: u64, workers: usize },
    Saturated { client: ClientArg },
    Raw,
}

impl Case {
    fn name(&self) -> String {
        match self {
            Case::Gap { ms, workers } => format!("gap {ms} ms, {workers} worker(s), blocking"),
            Case::Saturated { client } => format!("saturated 2 workers, {}", client.name()),
            Case::Raw => "raw V8 2-process".into(),
        }
    }
}

/// What one case measured in one round.
struct CaseResult {
    p50: f64,
    p99: f64,
    rate: f64,
    /// CPU per request (per call for raw V8), ms.
    cpu_ms: f64,
    /// Cores busy on average during the case.
    cores_busy: f64,
    report: Option<Report>,
}

impl CaseResult {
    fn of(mut report: Report, cpu: Duration, rate: f64) -> CaseResult {
        report.cpu_ms_per_request = millis(cpu) / report.requests.max(1) as f64;
        report.cpu_share = cpu.as_secs_f64() / report.elapsed.as_secs_f64().max(1e-9);
        CaseResult {
            p50: report.p50,
            p99: report.p99,
            rate,
            cpu_ms: report.cpu_ms_per_request,
            cores_busy: report.cpu_share,
            report: Some(report),
        }
    }
}

fn suite(args: &BenchArgs, w: &Workload) -> Result<ExitCode> {
    println!("machine       {}, {} cores", cpu_model(), cores());
    println!("load average  {} (start)", load_average());
    let mut cases = vec![Case::Raw];
    for ms in SUITE_GAPS_MS {
        for workers in [1, 2] {
            cases.push(Case::Gap { ms, workers });
        }
    }
    cases.push(Case::Saturated {
        client: ClientArg::Blocking,
    });
    cases.push(Case::Saturated {
        client: ClientArg::Chained,
    });
    cases.push(Case::Raw);
    let saturation = args.duration.unwrap_or(Duration::from_secs(3));
    let mut results: Vec<Vec<CaseResult>> = (0..cases.len()).map(|_| Vec::new()).collect();
    let mut errors = 0;
    for round in 1..=args.rounds.max(1) {
        for (i, case) in cases.iter().enumerate() {
            let load = load_average();
            let r = match *case {
                Case::Raw => {
                    let (rate, cpu_ms) = raw_measure(RAW_CALLS)?;
                    CaseResult {
                        p50: 0.0,
                        p99: 0.0,
                        rate,
                        cpu_ms,
                        cores_busy: 0.0,
                        report: None,
                    }
                }
                Case::Gap { ms, workers } => {
                    let target = Target::start(args, Some(workers), w)?;
                    let gap = Duration::from_millis(ms);
                    // About 4 s of requests, at least 40 (the 200 ms gap's p99 is then its
                    // maximum: read it with the rounds).
                    let n = (4000 / ms).clamp(40, 2000) as usize;
                    let (t0, cpu0) = (Instant::now(), service_cpu());
                    let samples = target.drive(
                        w,
                        ClientArg::Blocking,
                        1,
                        Limit::Requests(n),
                        None,
                        Some(gap),
                    )?;
                    let report = Report::new(&samples, t0.elapsed(), Some(0), target.workers, 1);
                    CaseResult::of(report, service_cpu().saturating_sub(cpu0), 0.0)
                }
                Case::Saturated { client } => {
                    let target = Target::start(args, Some(2), w)?;
                    let (t0, cpu0) = (Instant::now(), service_cpu());
                    let samples =
                        target.drive(w, client, 4, Limit::Duration(saturation), None, None)?;
                    let report = Report::new(&samples, t0.elapsed(), Some(0), target.workers, 4);
                    let rate = report.throughput;
                    CaseResult::of(report, service_cpu().saturating_sub(cpu0), rate)
                }
            };
            if let Some(rep) = &r.report {
                errors += rep.errors;
            }
            let what = match case {
                Case::Raw => format!("{:.0} calls/s  cpu {:.3} ms/call", r.rate, r.cpu_ms),
                Case::Gap { .. } => format!(
                    "p50 {:.3} ms  p99 {:.3} ms  cpu {:.2} cores",
                    r.p50, r.p99, r.cores_busy
                ),
                Case::Saturated { .. } => format!(
                    "{:.0} req/s  p50 {:.3} ms  p99 {:.3} ms  cpu {:.3} ms/req",
                    r.rate, r.p50, r.p99, r.cpu_ms
                ),
            };
            println!("round {round}  {:<40} {what}  (load {load})", case.name());
            if let Some(rep) = &r.report {
                println!("              hops p50 ms  {}", rep.hops_text());
                for e in &rep.error_kinds {
                    println!(
                        "              error {} x{}: {}",
                        e.kind.as_str(),
                        e.count,
                        first_line(&e.first_message)
                    );
                }
            }
            results[i].push(r);
        }
    }
    // The raw rate of a round: the mean of its two raw measurements (before and after).
    let rounds = args.rounds.max(1);
    let raw_mean = |f: &dyn Fn(&CaseResult) -> f64| -> Vec<f64> {
        (0..rounds)
            .map(|r| (f(&results[0][r]) + f(&results[cases.len() - 1][r])) / 2.0)
            .collect()
    };
    let raw_of_round = raw_mean(&|r| r.rate);
    let raw_cpu_of_round = raw_mean(&|r| r.cpu_ms);
    println!("summary (median over rounds; ratios per round against that round's raw rate)");
    for (i, case) in cases.iter().enumerate() {
        let med = |f: &dyn Fn(&CaseResult) -> f64| median(results[i].iter().map(f).collect());
        match case {
            Case::Raw => {}
            Case::Gap { .. } => println!(
                "  {:<40} p50 {:.3} ms  p99 {:.3} ms  cpu {:.2} cores",
                case.name(),
                med(&|r| r.p50),
                med(&|r| r.p99),
                med(&|r| r.cores_busy)
            ),
            Case::Saturated { .. } => {
                let ratios: Vec<String> = results[i]
                    .iter()
                    .zip(&raw_of_round)
                    .map(|(r, raw)| format!("{:.2}", r.rate / raw.max(1e-9)))
                    .collect();
                let cpu: Vec<String> = results[i]
                    .iter()
                    .zip(&raw_cpu_of_round)
                    .map(|(r, raw)| format!("{:.2}", r.cpu_ms / raw.max(1e-9)))
                    .collect();
                println!(
                    "  {:<40} {:.0} req/s  of raw: {}  cpu per request of raw's: {}",
                    case.name(),
                    med(&|r| r.rate),
                    ratios.join(", "),
                    cpu.join(", ")
                );
            }
        }
    }
    println!(
        "  {:<40} {:.0} calls/s  cpu {:.3} ms/call",
        Case::Raw.name(),
        median(raw_of_round.clone()),
        median(raw_cpu_of_round.clone())
    );
    println!("load average  {} (end)", load_average());
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The median of `v` (0 when empty).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Clone, Copy)]
pub(crate) enum Limit {
    Requests(usize),
    Duration(Duration),
}

impl Limit {
    /// Whether a request may be submitted, `submitted` having been already.
    fn more(self, started: Instant, submitted: usize) -> bool {
        match self {
            Limit::Requests(n) => submitted < n,
            Limit::Duration(d) => started.elapsed() < d,
        }
    }
}

/// A sample of a request that started at `t0` and whose result the client has now.
fn sample(t0: Instant, r: Result<ResponseObject, RomaError>) -> Sample {
    let latency = t0.elapsed();
    match r {
        Ok(resp) => Sample {
            latency,
            ok: true,
            metrics: resp.metrics,
            error: None,
        },
        Err(e) => Sample {
            latency,
            ok: false,
            metrics: Default::default(),
            error: Some(e),
        },
    }
}

/// Moves the progress bar for one more sample.
fn tick(bar: Option<&ProgressBar>, limit: Limit, started: Instant) {
    if let Some(bar) = bar {
        match limit {
            Limit::Requests(_) => bar.inc(1),
            Limit::Duration(_) => bar.set_position(started.elapsed().as_secs()),
        }
    }
}

/// What one measurement asks of a client: the workload, how many requests it keeps in flight,
/// until when, the progress bar to move and the pause before each request.
#[derive(Clone, Copy)]
struct Drive<'a> {
    w: &'a Workload,
    concurrency: usize,
    limit: Limit,
    bar: Option<&'a ProgressBar>,
    interval: Option<Duration>,
}

/// Callbacks send their samples to this thread, which submits the next request: latency is
/// taken in the callback.
fn drive_channel(svc: &RomaService, d: Drive<'_>) -> Result<Vec<Sample>> {
    let (tx, rx) = mpsc::channel::<Sample>();
    let started = Instant::now();
    let mut submitted = 0usize;
    let mut samples = Vec::new();
    let submit = |submitted: &mut usize| -> Result<()> {
        if let Some(pause) = d.interval {
            std::thread::sleep(pause);
        }
        let tx = tx.clone();
        let t0 = Instant::now();
        svc.execute(d.w.request(), move |r| {
            let _ = tx.send(sample(t0, r));
        })
        .map_err(|e| anyhow::anyhow!("{}", describe_error(&e)))?;
        *submitted += 1;
        Ok(())
    };
    let mut in_flight = 0usize;
    while in_flight < d.concurrency && d.limit.more(started, submitted) {
        submit(&mut submitted)?;
        in_flight += 1;
    }
    while in_flight > 0 {
        let s = rx.recv().context("a bench callback was lost")?;
        in_flight -= 1;
        samples.push(s);
        tick(d.bar, d.limit, started);
        if d.limit.more(started, submitted) {
            submit(&mut submitted)?;
            in_flight += 1;
        }
    }
    Ok(samples)
}

/// `concurrency` client threads, each submitting with `execute_blocking` and waiting for the
/// answer before the next: latency is taken when the waiting thread has the answer.
fn drive_blocking(svc: &RomaService, d: Drive<'_>) -> Result<Vec<Sample>> {
    let started = Instant::now();
    let submitted = AtomicUsize::new(0);
    let take = || {
        submitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                d.limit.more(started, n).then_some(n + 1)
            })
            .is_ok()
    };
    let client = || -> Result<Vec<Sample>> {
        let mut out = Vec::new();
        while take() {
            if let Some(pause) = d.interval {
                std::thread::sleep(pause);
            }
            let t0 = Instant::now();
            let r = match svc.execute_blocking(d.w.request()) {
                // Refused before it ran (for example the queues full): the bench's own
                // mistake, not a sample.
                Err(e) if e.kind() == ErrorKind::InvalidArgument => {
                    bail!("{}", describe_error(&e))
                }
                r => r,
            };
            out.push(sample(t0, r));
        }
        Ok(out)
    };
    let per_thread: Vec<Result<Vec<Sample>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..d.concurrency).map(|_| s.spawn(client)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a bench client thread panicked")))
            })
            .collect()
    });
    let mut samples = Vec::new();
    for r in per_thread {
        samples.extend(r?);
    }
    if let Some(bar) = d.bar {
        tick(Some(bar), d.limit, started);
    }
    Ok(samples)
}

/// `concurrency` chains: each callback submits the next request itself, with no client thread
/// between requests; latency is taken in the callback. A pause between requests is not this
/// client's to make: [`Target::drive`] refuses an interval.
fn drive_chained(svc: &Arc<RomaService>, d: Drive<'_>) -> Result<Vec<Sample>> {
    enum Msg {
        Sample(Sample),
        /// A chain ended; with the reason when a submission failed.
        End(Option<String>),
    }
    struct Chain {
        svc: Arc<RomaService>,
        request: InvocationRequest,
        started: Instant,
        limit: Limit,
        submitted: AtomicUsize,
        tx: std::sync::Mutex<mpsc::Sender<Msg>>,
    }
    fn next(c: Arc<Chain>) {
        let send = |m: Msg| {
            let tx =
                c.tx.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = tx.send(m);
        };
        let go = c
            .submitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                c.limit.more(c.started, n).then_some(n + 1)
            })
            .is_ok();
        if !go {
            send(Msg::End(None));
            return;
        }
        let t0 = Instant::now();
        let c2 = Arc::clone(&c);
        let submitted = c.svc.execute(c.request.clone(), move |r| {
            {
                let tx = c2
                    .tx
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = tx.send(Msg::Sample(sample(t0, r)));
            }
            next(c2);
        });
        if let Err(e) = submitted {
            send(Msg::End(Some(describe_error(&e))));
        }
    }
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let chain = Arc::new(Chain {
        svc: Arc::clone(svc),
        request: d.w.request(),
        started,
        limit: d.limit,
        submitted: AtomicUsize::new(0),
        tx: std::sync::Mutex::new(tx),
    });
    for _ in 0..d.concurrency {
        next(Arc::clone(&chain));
    }
    drop(chain);
    let (mut ended, mut samples, mut failure) = (0, Vec::new(), None);
    while ended < d.concurrency {
        match rx.recv().context("a bench callback was lost")? {
            Msg::Sample(s) => {
                samples.push(s);
                tick(d.bar, d.limit, started);
            }
            Msg::End(e) => {
                ended += 1;
                failure = failure.or(e);
            }
        }
    }
    match failure {
        Some(e) => bail!("{e}"),
        None => Ok(samples),
    }
}

pub(crate) struct Report {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
    throughput: f64,
    /// None for a remote target, whose workers are not this machine's to count.
    rss_mib: Option<f64>,
    /// 0 for a remote target.
    workers: usize,
    concurrency: usize,
    /// Mean milliseconds per request of each phase.
    context_ms: f64,
    handler_ms: f64,
    ipc_ms: f64,
    /// The failures by kind.
    error_kinds: Vec<ErrorSummary>,
    /// The CPU model and the cores the figures were measured on.
    cpu: String,
    cores: usize,
    /// Which cgroups the workers ran in (`RomaService::cgroups`), when cgroup limits were set.
    cgroups: Option<String>,
    /// The median of each hop's share of a request (see [`HOP_SEGMENTS`]), in ms.
    hops: Vec<(&'static str, f64)>,
    client: ClientArg,
    /// How long the service took to start (every worker up), in ms.
    start_ms: f64,
    /// The load average before and after the measurement.
    load: String,
    /// Raw V8's 2-process fresh-context rate before and after the service (calls/s), and its
    /// CPU per call (ms).
    raw: Option<(f64, f64, f64)>,
    /// CPU time of the bench process and every worker process during the measurement, per
    /// request (ms), and as cores busy on average.
    cpu_ms_per_request: f64,
    cpu_share: f64,
}

/// The hops of a request, each named by what happens from the hop before it to itself
/// (`roma_core::metrics::HOPS`, from submission); the client's own moment (it has the answer)
/// ends the last.
const HOP_SEGMENTS: [(&str, &str); 7] = [
    ("queue", metrics::HOP_TAKEN_MS),
    ("slot send", metrics::HOP_SENT_MS),
    ("to worker", metrics::HOP_WORKER_RECEIVED_MS),
    ("context", metrics::HOP_CONTEXT_READY_MS),
    ("handler", metrics::HOP_HANDLER_DONE_MS),
    ("to host", metrics::HOP_ANSWER_RECEIVED_MS),
    ("to callback", metrics::HOP_CALLBACK_MS),
];

/// The median of each segment over the samples that carry every hop, and of the last hop to
/// the client's moment ("to client").
fn hop_medians(samples: &[Sample]) -> Vec<(&'static str, f64)> {
    let full: Vec<(&Sample, Vec<f64>)> = samples
        .iter()
        .filter_map(|s| {
            let v: Option<Vec<f64>> = HOP_SEGMENTS
                .iter()
                .map(|(_, k)| s.metrics.get(*k).copied())
                .collect();
            v.map(|v| (s, v))
        })
        .collect();
    if full.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, (name, _)) in HOP_SEGMENTS.iter().enumerate() {
        let seg = full
            .iter()
            .map(|(_, v)| v[i] - if i == 0 { 0.0 } else { v[i - 1] })
            .collect();
        out.push((*name, median(seg)));
    }
    let last = HOP_SEGMENTS.len() - 1;
    let to_client = full
        .iter()
        .map(|(s, v)| (s.latency.as_secs_f64() * 1e3 - v[last]).max(0.0))
        .collect();
    out.push(("to client", median(to_client)));
    out
}

impl Report {
    pub(crate) fn new(
        samples: &[Sample],
        elapsed: Duration,
        rss_kib: Option<u64>,
        workers: usize,
        concurrency: usize,
    ) -> Report {
        let mut lat: Vec<f64> = samples
            .iter()
            .map(|s| s.latency.as_secs_f64() * 1e3)
            .collect();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[i]
        };
        let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok).collect();
        let mean_of = |key: &str| -> f64 {
            if ok.is_empty() {
                return 0.0;
            }
            ok.iter()
                .map(|s| s.metrics.get(key).copied().unwrap_or(0.0))
                .sum::<f64>()
                / ok.len() as f64
        };
        let run = mean_of(metrics::CODE_RUN_DURATION_MS);
        let rt = mean_of(metrics::IPC_ROUND_TRIP_MS);
        Report {
            requests: samples.len(),
            errors: samples.len() - ok.len(),
            elapsed,
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            max: lat.last().copied().unwrap_or(0.0),
            mean: if lat.is_empty() {
                0.0
            } else {
                lat.iter().sum::<f64>() / lat.len() as f64
            },
            throughput: samples.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            rss_mib: rss_kib.map(|k| k as f64 / 1024.0),
            workers,
            concurrency,
            context_ms: mean_of(metrics::CONTEXT_CREATION_MS),
            handler_ms: mean_of(metrics::HANDLER_CALL_MS),
            ipc_ms: (rt - run).max(0.0),
            error_kinds: summarize_errors(samples),
            cpu: cpu_model(),
            cores: cores(),
            cgroups: None,
            hops: hop_medians(samples),
            client: ClientArg::Channel,
            start_ms: 0.0,
            load: load_average(),
            raw: None,
            cpu_ms_per_request: 0.0,
            cpu_share: 0.0,
        }
    }

    /// The hop medians on one line ("-" when no sample carried them).
    fn hops_text(&self) -> String {
        if self.hops.is_empty() {
            return "-".into();
        }
        self.hops
            .iter()
            .map(|(n, v)| format!("{n} {v:.3}"))
            .collect::<Vec<_>>()
            .join("  ")
    }

    fn share(&self, ms: f64) -> f64 {
        if self.mean > 0.0 {
            100.0 * ms / self.mean
        } else {
            0.0
        }
    }

    fn text(&self) -> String {
        let mut text = format!("machine       {}, {} cores\n", self.cpu, self.cores);
        if let Some(c) = &self.cgroups {
            text.push_str(&format!("cgroups       {c}\n"));
        }
        text.push_str(&format!("load average  {}\n", self.load));
        text.push_str(&self.figures());
        text.push_str(&format!(
            "hops p50 ms   {}\n              (client: {}; service start {:.1} ms)\n",
            self.hops_text(),
            self.client.name(),
            self.start_ms
        ));
        text.push_str(&format!(
            "cpu           {:.3} ms per request (this process and the workers), {:.2} cores busy\n",
            self.cpu_ms_per_request, self.cpu_share
        ));
        if let Some((before, after, cpu)) = self.raw {
            let raw = (before + after) / 2.0;
            text.push_str(&format!(
                "raw V8        {before:.0} / {after:.0} calls/s (2 processes, before / after); \
                 service {:.2}x of their mean\n\
                 \x20             raw cpu {cpu:.3} ms per call; service cpu {:.2}x of it\n",
                self.throughput / raw.max(1e-9),
                self.cpu_ms_per_request / cpu.max(1e-9)
            ));
        }
        for e in &self.error_kinds {
            text.push_str(&format!(
                "error         {} x{}: {}\n",
                e.kind.as_str(),
                e.count,
                first_line(&e.first_message)
            ));
        }
        text
    }

    fn figures(&self) -> String {
        let workers = match self.workers {
            0 => "the server's workers".to_string(),
            n => format!("{n} workers"),
        };
        let rss = match self.rss_mib {
            Some(m) => format!("{m:.1} MiB (all worker processes)"),
            None => "not measured (a remote target)".to_string(),
        };
        format!(
            "requests      {} ({} errors) in {:.2} s, {}, {} in flight\n\
             throughput    {:.0} req/s\n\
             latency ms    p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  mean {:.3}\n\
             worker RSS    {}\n\
             time share    context creation {:.1}%  ipc {:.1}%  handler {:.1}%  (of mean latency;\n\
             \x20             ipc includes a request's wait while its worker pre-warms the next context)\n",
            self.requests,
            self.errors,
            self.elapsed.as_secs_f64(),
            workers,
            self.concurrency,
            self.throughput,
            self.p50,
            self.p90,
            self.p99,
            self.max,
            self.mean,
            rss,
            self.share(self.context_ms),
            self.share(self.ipc_ms),
            self.share(self.handler_ms),
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "workers": self.workers,
            "concurrency": self.concurrency,
            "machine": {"cpu": self.cpu, "cores": self.cores},
            "cgroups": self.cgroups,
            "throughput_rps": self.throughput,
            "latency_ms": {"p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max, "mean": self.mean},
            "worker_rss_mib": self.rss_mib,
            "mean_ms": {"context_creation": self.context_ms, "ipc": self.ipc_ms, "handler": self.handler_ms},
            "client": self.client.name(),
            "load_average": self.load,
            "service_start_ms": self.start_ms,
            "hops_p50_ms": self.hops.iter().map(|(n, v)| (n.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "raw_v8_calls_per_s": self.raw.map(|(a, b, _)| json!({"before": a, "after": b})),
            "raw_v8_cpu_ms_per_call": self.raw.map(|(_, _, c)| c),
            "cpu_ms_per_request": self.cpu_ms_per_request,
            "cpu_cores_busy": self.cpu_share,
            "error_kinds": self.error_kinds.iter().map(|e| json!({
                "kind": e.kind.as_str(),
                "count": e.count,
                "first_message": e.first_message,
            })).collect::<Vec<_>>(),
            "share_pct": {
                "context_creation": self.share(self.context_ms),
                "ipc": self.share(self.ipc_ms),
                "handler": self.share(self.handler_ms),
            },
        })
    }
}

/// The first line of a message, cut to 200 characters: the summary of a kind stays one line.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_owned(),
    }
}

/// Resident memory of every `roma-worker` process descended from this one, in KiB (0 when
/// `/proc` cannot be read).
fn worker_rss_kib() -> u64 {
    procfs::descendants_named(std::process::id(), roma::tools::WORKER_PROCESS_NAME)
        .map(|workers| workers.iter().map(|p| p.rss_kb).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(kind: ErrorKind, message: &str) -> Sample {
        Sample {
            latency: Duration::from_millis(1),
            ok: false,
            metrics: Default::default(),
            error: Some(RomaError::new(kind, message)),
        }
    }

    #[test]
    fn hop_medians_are_the_segments_between_hops_and_the_client() {
        let with_hops = |offsets: [f64; 7], latency_ms: u64| Sample {
            latency: Duration::from_millis(latency_ms),
            ok: true,
            metrics: metrics::HOPS
                .iter()
                .zip(offsets)
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            error: None,
        };
        let samples = [
            with_hops([0.1, 0.2, 0.4, 0.4, 0.5, 0.7, 0.8], 1),
            with_hops([0.3, 0.4, 0.6, 0.6, 0.9, 1.1, 1.2], 2),
            with_hops([0.2, 0.3, 0.5, 0.5, 0.7, 0.9, 1.0], 3),
            // Without hops (a failure): left out.
            failed(ErrorKind::Timeout, "slow"),
        ];
        let got: Vec<(&str, f64)> = hop_medians(&samples)
            .into_iter()
            .map(|(n, v)| (n, (v * 1e3).round() / 1e3))
            .collect();
        assert_eq!(
            got,
            [
                ("queue", 0.2),
                ("slot send", 0.1),
                ("to worker", 0.2),
                ("context", 0.0),
                ("handler", 0.2),
                ("to host", 0.2),
                ("to callback", 0.1),
                ("to client", 0.8),
            ]
        );
        assert!(hop_medians(&samples[3..]).is_empty());
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn errors_are_counted_by_kind_with_the_first_message() {
        let samples = [
            failed(
                ErrorKind::Execution,
                "Uncaught Error: first\n    at Handler",
            ),
            failed(ErrorKind::Timeout, "too slow"),
            failed(ErrorKind::Execution, "Uncaught Error: second"),
        ];
        let report = Report::new(&samples, Duration::from_secs(1), Some(0), 1, 1);
        assert_eq!(report.errors, 3);
        assert_eq!(
            report.error_kinds,
            [
                ErrorSummary {
                    kind: ErrorKind::Execution,
                    count: 2,
                    first_message: "Uncaught Error: first\n    at Handler".into(),
                },
                ErrorSummary {
                    kind: ErrorKind::Timeout,
                    count: 1,
                    first_message: "too slow".into(),
                },
            ]
        );
        let text = report.text();
        assert!(
            text.contains("error         execution x2: Uncaught Error: first\n"),
            "{text}"
        );
        assert!(
            text.contains("error         timeout x1: too slow\n"),
            "{text}"
        );
        assert_eq!(report.json()["error_kinds"][0]["count"], 2);
    }
}
