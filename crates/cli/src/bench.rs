//! `roma bench`: closed-loop load against a running service, with latency percentiles,
//! throughput, worker memory and where the time went.

use crate::code::{HELLO_JS, read_code};
use crate::service::{ServiceArgs, describe_error, load, start};
use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use roma::{CodeObject, ErrorKind, InvocationRequest, RomaError, RomaService, metrics};
use roma_sandbox::procfs;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
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
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests in flight at once (0: two per worker).
    #[arg(long, default_value_t = 0)]
    pub concurrency: usize,
    /// Pause before each request (with --concurrency 1: the latency an idle, pre-warmed
    /// worker gives), e.g. 2ms.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Machine-readable output. Either way, the code's console output is dropped and failed
    /// requests are summed up by error kind, with the first message of each kind.
    #[arg(long)]
    pub json: bool,
    /// Measure a running `roma serve` instead of an in-process service:
    /// `http://HOST:PORT` (HTTP/JSON) or `grpc://HOST:PORT`. The code is loaded there first;
    /// the service flags below are then the server's business and ignored.
    #[arg(long, requires_all = ["load_token_file", "execute_token_file"])]
    pub target: Option<crate::bench_remote::Target>,
    /// With --target: the file holding the server's load token.
    #[arg(long = "load-token-file")]
    pub load_token_file: Option<PathBuf>,
    /// With --target: the file holding the server's execute token.
    #[arg(long = "execute-token-file")]
    pub execute_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub service: ServiceArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    roma::parse_duration(s)
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

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
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
    let default_workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(target) = args.target.clone() {
        let (Some(l), Some(e)) = (&args.load_token_file, &args.execute_token_file) else {
            bail!("--target needs --load-token-file and --execute-token-file");
        };
        let concurrency = if args.concurrency == 0 {
            default_workers * 2
        } else {
            args.concurrency
        };
        let report = crate::bench_remote::run(crate::bench_remote::Args {
            target,
            tokens: crate::bench_remote::Tokens::read(l, e)?,
            code,
            handler: args.handler.clone(),
            inputs,
            concurrency,
            warmup: concurrency * 50,
            limit: match args.duration {
                Some(d) => Limit::Duration(d),
                None => Limit::Requests(args.requests),
            },
            interval: args.interval,
        })?;
        return Ok(print_report(&report, args.json));
    }
    let mut config = args.service.config(default_workers);
    // Console output and uncaught errors of thousands of requests would flood the terminal
    // and slow the measurement: failures are summed up by kind after the figures instead.
    config.set_logging_function(|_, _: &(), _| {});
    let svc = start(config)?;
    let workers = svc.stats().workers.len();
    if let Err(e) = load(&svc, code) {
        bail!("{}", describe_error(&e));
    }
    let concurrency = if args.concurrency == 0 {
        workers * 2
    } else {
        args.concurrency
    };
    let request = || InvocationRequest {
        id: "bench".into(),
        version_string: "bench".into(),
        handler_name: args.handler.clone(),
        input: inputs.clone(),
        ..Default::default()
    };

    // Warm-up: every worker creates its first contexts; not measured.
    drive(
        &svc,
        &request,
        concurrency,
        Limit::Requests(workers * 50),
        None,
        None,
    )?;

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
    let started = Instant::now();
    let samples = drive(
        &svc,
        &request,
        concurrency,
        limit,
        Some(&bar),
        args.interval,
    )?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let rss_kib = worker_rss_kib();
    svc.stop();

    let report = Report::new(&samples, elapsed, Some(rss_kib), workers, concurrency);
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

pub(crate) enum Limit {
    Requests(usize),
    Duration(Duration),
}

/// Keeps `concurrency` requests in flight until the limit; returns every completed sample.
fn drive(
    svc: &RomaService,
    request: &dyn Fn() -> InvocationRequest,
    concurrency: usize,
    limit: Limit,
    bar: Option<&ProgressBar>,
    interval: Option<Duration>,
) -> Result<Vec<Sample>> {
    let (tx, rx) = mpsc::channel::<Sample>();
    let started = Instant::now();
    let mut submitted = 0usize;
    let mut samples = Vec::new();
    let more = |submitted: usize| match limit {
        Limit::Requests(n) => submitted < n,
        Limit::Duration(d) => started.elapsed() < d,
    };
    let submit = |submitted: &mut usize| -> Result<()> {
        if let Some(pause) = interval {
            std::thread::sleep(pause);
        }
        let tx = tx.clone();
        let t0 = Instant::now();
        svc.execute(request(), move |r| {
            let latency = t0.elapsed();
            let _ = tx.send(match r {
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
            });
        })
        .map_err(|e| anyhow::anyhow!("{}", describe_error(&e)))?;
        *submitted += 1;
        Ok(())
    };
    let mut in_flight = 0usize;
    while in_flight < concurrency && more(submitted) {
        submit(&mut submitted)?;
        in_flight += 1;
    }
    let mut last_tick = 0u64;
    while in_flight > 0 {
        let s = rx.recv().context("a bench callback was lost")?;
        in_flight -= 1;
        samples.push(s);
        if let Some(bar) = bar {
            match limit {
                Limit::Requests(_) => bar.inc(1),
                Limit::Duration(_) => {
                    let secs = started.elapsed().as_secs();
                    if secs > last_tick {
                        bar.set_position(secs);
                        last_tick = secs;
                    }
                }
            }
        }
        if more(submitted) {
            submit(&mut submitted)?;
            in_flight += 1;
        }
    }
    Ok(samples)
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
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
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
        text.push_str(&self.figures());
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
            "throughput_rps": self.throughput,
            "latency_ms": {"p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max, "mean": self.mean},
            "worker_rss_mib": self.rss_mib,
            "mean_ms": {"context_creation": self.context_ms, "ipc": self.ipc_ms, "handler": self.handler_ms},
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

/// The CPU model as `/proc/cpuinfo` names it ("unknown CPU" where it does not).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown CPU".into())
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
    procfs::descendants_named(std::process::id(), roma::WORKER_PROCESS_NAME)
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
