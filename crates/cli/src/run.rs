//! `roma run`: one invocation, or a batch streamed line by line.

use crate::code::read_code;
use crate::console::{HeldLines, console_line};
use crate::service::{ServiceArgs, describe_error, execute, level_name, load, start};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use roma::tools::{escape_control, escape_control_json};
use roma::{
    ErrorKind, InvocationRequest, LogLevel, ResponseObject, RomaError, RomaService, metrics,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The code: a .js file, or a .wasm file (standalone WebAssembly).
    pub code: PathBuf,
    /// The handler to call (a dotted path like `foo.bar.Handler` works).
    #[arg(long, default_value = "Handler")]
    pub handler: String,
    /// One argument as JSON text, e.g. --input '"Foobar"'. Repeat for more arguments.
    #[arg(long = "input", allow_hyphen_values = true)]
    pub inputs: Vec<String>,
    /// The version string to load the code as (`roma --version` is the tool's own version).
    #[arg(long = "code-version", default_value = "v1")]
    pub version: String,
    /// Bound on each invocation and on the load's top-level run, e.g. 300ms, 2s.
    #[arg(long, value_parser = roma::tools::parse_duration)]
    pub timeout: Option<Duration>,
    /// Pass the single input as a raw string; the handler must return a string.
    #[arg(long = "byte-str")]
    pub byte_str: bool,
    /// A WebAssembly binary exposed to the JS as a Uint8Array global.
    #[arg(long = "wasm-bin")]
    pub wasm_bin: Option<PathBuf>,
    /// The name of that global.
    #[arg(long = "wasm-array-name")]
    pub wasm_array_name: Option<String>,
    /// One invocation per line of FILE (`-` for stdin), each line a JSON array of arguments.
    #[arg(long)]
    pub batch: Option<String>,
    /// Print the response metrics (stderr, or a "metrics" field in batch mode).
    #[arg(long)]
    pub metrics: bool,
    /// A request tag, KEY=VALUE (repeat for more), e.g. --tag TimeoutDuration=300ms or
    /// --tag roma.wasm.return_type=i32.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// How a standalone WASM export's i32 result is read: a pointer to a string in the
    /// module's memory (default), to a list of strings, the plain number, or nothing
    /// (the tag roma.wasm.return_type).
    #[arg(long = "wasm-return-type", value_enum)]
    pub wasm_return_type: Option<WasmReturnType>,
    /// Write a V8 CPU profile of the handler call to FILE, as `.cpuprofile` JSON (Chrome
    /// DevTools' Performance panel loads it). A single invocation only.
    #[arg(long, value_name = "FILE", conflicts_with = "batch")]
    pub profile: Option<PathBuf>,
    /// Console messages below this level are dropped inside the sandbox.
    #[arg(long = "min-log-level", value_enum, default_value = "info")]
    pub min_log_level: LevelArg,
    #[command(flatten)]
    pub service: ServiceArgs,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// Values of the `roma.wasm.return_type` tag (docs/wasm-abi.md).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WasmReturnType {
    String,
    ListOfString,
    I32,
    Void,
}

impl WasmReturnType {
    fn tag_value(self) -> &'static str {
        match self {
            WasmReturnType::String => "string",
            WasmReturnType::ListOfString => "list_of_string",
            WasmReturnType::I32 => "i32",
            WasmReturnType::Void => "void",
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LevelArg {
    Debug,
    Info,
    Warn,
    Error,
}

impl From<LevelArg> for LogLevel {
    fn from(l: LevelArg) -> LogLevel {
        match l {
            LevelArg::Debug => LogLevel::Debug,
            LevelArg::Info => LogLevel::Info,
            LevelArg::Warn => LogLevel::Warning,
            LevelArg::Error => LogLevel::Error,
        }
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let code = read_code(
        &args.code,
        &args.version,
        args.wasm_bin.as_ref(),
        args.wasm_array_name.as_deref(),
    )?;
    let mut config = args.service.config(1);
    // Single mode: error-level console lines wait for the result, so that the uncaught error
    // the host also logs is not printed twice (once as a log line, once as the error line).
    // They are held bounded (see `console`), and every console line is cut and escaped.
    let held_errors: Arc<Mutex<HeldLines>> = Arc::default();
    if args.batch.is_none() {
        let held = Arc::clone(&held_errors);
        config.set_logging_function(move |level, _: &(), msg| {
            if level == LogLevel::Error {
                held.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(msg);
            } else {
                eprintln!("[{}] {}", level_name(level), console_line(msg));
            }
        });
    }
    if let Some(t) = args.timeout {
        config.default_timeout(t);
    }
    if args.profile.is_some() {
        config.enable_profilers(true);
    }
    let standalone_wasm = !code.wasm.is_empty();
    let svc = start(config)?;
    if let Err(e) = load(&svc, code) {
        eprintln!("{}", describe_error(&e));
        return Ok(ExitCode::FAILURE);
    }
    let code = match &args.batch {
        None => single(&svc, &args, &held_errors, standalone_wasm),
        Some(path) => batch(&svc, &args, path),
    };
    svc.stop();
    code
}

fn request(args: &RunArgs, inputs: Vec<String>, id: String) -> InvocationRequest {
    let mut tags: std::collections::HashMap<String, String> = args.tags.iter().cloned().collect();
    if let Some(t) = args.wasm_return_type {
        tags.insert(roma::WASM_RETURN_TYPE_TAG.into(), t.tag_value().into());
    }
    InvocationRequest {
        id,
        version_string: args.version.clone(),
        handler_name: args.handler.clone(),
        tags,
        input: inputs,
        treat_input_as_byte_str: args.byte_str,
        timeout: args.timeout,
        min_log_level: args.min_log_level.into(),
        profile: args.profile.is_some(),
        metadata: (),
    }
}

/// Metrics as `key: value`, the worker's index as the integer it is.
pub fn metric_line(key: &str, value: f64) -> String {
    if key == metrics::WORKER_INDEX {
        format!("{key}: {value:.0}")
    } else {
        format!("{key}: {value:.3}")
    }
}

/// The metrics as JSON, the worker's index as an integer.
fn metrics_json(m: &BTreeMap<String, f64>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, &v)| {
                let v = if k == metrics::WORKER_INDEX && v >= 0.0 && v.fract() == 0.0 {
                    json!(v as u64)
                } else {
                    json!(v)
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

fn single(
    svc: &RomaService,
    args: &RunArgs,
    held_errors: &Mutex<HeldLines>,
    standalone_wasm: bool,
) -> Result<ExitCode> {
    let req = request(args, args.inputs.clone(), "roma-cli".into());
    let result = execute(svc, req);
    let (held, dropped) = held_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    // Held lines are escaped: compare with the message escaped the same way.
    let error_line = result.as_ref().err().map(|e| console_line(e.message()));
    for line in held {
        let repeats_the_error = error_line.as_ref().is_some_and(|m| line.starts_with(m));
        if !repeats_the_error {
            eprintln!("[{}] {line}", level_name(LogLevel::Error));
        }
    }
    if let Some(marker) = dropped {
        eprintln!("[{}] {marker}", level_name(LogLevel::Error));
    }
    match result {
        Ok(r) => {
            if args.metrics {
                for (k, v) in &r.metrics {
                    eprintln!("{}", escape_control(&metric_line(k, *v)));
                }
            }
            if let Some(path) = &args.profile {
                // The worker's bytes, bounded by the host (MAX_PROFILE_BYTES), go only to the
                // file the user named, never to the terminal.
                std::fs::write(path, &r.profiler_output)
                    .with_context(|| format!("writing the CPU profile to {}", path.display()))?;
            }
            // The result is the handler's: JSON text (whose strings escape C0 controls) or, with
            // --byte-str, a raw string; either way no control character reaches the terminal.
            println!("{}", escape_control(&r.resp));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}", describe_error(&e));
            if let Some(hint) = wasm_hint(&e, args, standalone_wasm) {
                eprintln!("{hint}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// For a standalone WASM export whose input or result could not be read the default way (a
/// string through the module's memory): how to read a plain i32 result instead.
fn wasm_hint(e: &RomaError, args: &RunArgs, standalone_wasm: bool) -> Option<&'static str> {
    let return_type_set = args.wasm_return_type.is_some()
        || args
            .tags
            .iter()
            .any(|(k, _)| k == roma::WASM_RETURN_TYPE_TAG);
    (standalone_wasm && e.kind() == ErrorKind::BadInput && !return_type_set).then_some(
        "hint: an export that returns a plain i32 needs --wasm-return-type i32 \
         (the tag roma.wasm.return_type=i32); see docs/wasm-abi.md",
    )
}

/// A line's outcome, ready to print.
type Line = Result<ResponseObject, RomaError>;

/// Batch output in input order: results arrive in any order and are printed as soon as every
/// earlier line's result has been.
struct Ordered<'a, W: Write> {
    out: W,
    pending: BTreeMap<usize, Line>,
    next: usize,
    all_ran: bool,
    metrics: bool,
    rx: &'a mpsc::Receiver<(usize, Line)>,
    in_flight: usize,
}

impl<W: Write> Ordered<'_, W> {
    /// Records line `index`'s result and prints what is now in order.
    fn put(&mut self, index: usize, line: Line) -> Result<()> {
        self.pending.insert(index, line);
        while let Some(line) = self.pending.remove(&self.next) {
            if let Err(e) = &line
                && !ran(e.kind())
            {
                self.all_ran = false;
            }
            writeln!(self.out, "{}", render(&line, self.metrics))?;
            self.next += 1;
        }
        Ok(())
    }

    /// Waits for one submitted request's callback and records it.
    fn take_one(&mut self) -> Result<()> {
        let (i, r) = self.rx.recv().context("a batch callback was lost")?;
        self.in_flight -= 1;
        self.put(i, r)
    }
}

/// Streams the batch: lines are read lazily, kept in flight up to the queue capacity, and
/// answered in input order.
fn batch(svc: &RomaService, args: &RunArgs, path: &str) -> Result<ExitCode> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let (tx, rx) = mpsc::channel::<(usize, Line)>();
    let max_in_flight = svc.stats().capacity.max(1);
    let mut o = Ordered {
        out: std::io::stdout().lock(),
        pending: BTreeMap::new(),
        next: 0,
        all_ran: true,
        metrics: args.metrics,
        rx: &rx,
        in_flight: 0,
    };

    for (index, line) in reader.lines().enumerate() {
        let line = line.context("cannot read the batch input")?;
        let inputs = match parse_line(&line) {
            Ok(i) => i,
            Err(e) => {
                o.put(index, Err(e))?;
                continue;
            }
        };
        loop {
            let req = request(args, inputs.clone(), format!("line-{}", index + 1));
            while o.in_flight >= max_in_flight {
                o.take_one()?;
            }
            let tx = tx.clone();
            match svc.execute(req, move |r| {
                let _ = tx.send((index, r));
            }) {
                Ok(_) => {
                    o.in_flight += 1;
                    break;
                }
                // Full queues: wait for one answer, then submit again.
                Err(e) if e.kind() == ErrorKind::QueueFull && o.in_flight > 0 => o.take_one()?,
                Err(e) => {
                    o.put(index, Err(e))?;
                    break;
                }
            }
        }
    }
    while o.in_flight > 0 {
        o.take_one()?;
    }
    o.out.flush()?;
    Ok(if o.all_ran {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whether an error still means the invocation ran (its code answered with an error), as
/// opposed to roma failing to run it.
fn ran(kind: ErrorKind) -> bool {
    !matches!(
        kind,
        ErrorKind::WorkerCrashed
            | ErrorKind::QueueFull
            | ErrorKind::Cancelled
            | ErrorKind::Internal
            | ErrorKind::VersionNotFound
    )
}

/// A line is a JSON array; each element becomes one input, as JSON text.
fn parse_line(line: &str) -> Result<Vec<String>, RomaError> {
    let bad = |why: String| RomaError::new(ErrorKind::BadInput, why);
    let value: Value =
        serde_json::from_str(line).map_err(|e| bad(format!("the line is not JSON: {e}")))?;
    if !value.is_array() {
        return Err(bad("the line must be a JSON array of arguments".into()));
    }
    // Each argument as the exact JSON text it was written as (object keys keep their order).
    let items: Vec<Box<serde_json::value::RawValue>> =
        serde_json::from_str(line).map_err(|e| bad(format!("the line is not JSON: {e}")))?;
    Ok(items.iter().map(|v| v.get().to_owned()).collect())
}

fn render(line: &Line, with_metrics: bool) -> String {
    let mut v = match line {
        Ok(r) => json!({ "ok": r.resp }),
        Err(e) => json!({ "error": { "kind": e.kind().as_str(), "message": e.message() } }),
    };
    if with_metrics && let (Ok(r), Value::Object(map)) = (line, &mut v) {
        map.insert("metrics".into(), metrics_json(&r.metrics));
    }
    // The serializer escapes C0 controls in strings but not DEL or C1 ones.
    escape_control_json(&v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_json_inputs() {
        let inputs = parse_line(r#"["Foobar", {"b": 1, "a": 2}, 3]"#).unwrap();
        assert_eq!(inputs, vec![r#""Foobar""#, r#"{"b": 1, "a": 2}"#, "3"]);
        assert_eq!(parse_line("{}").unwrap_err().kind(), ErrorKind::BadInput);
        assert_eq!(parse_line("[1,").unwrap_err().kind(), ErrorKind::BadInput);
    }

    #[test]
    fn tags_are_key_value_and_the_worker_index_an_integer() {
        assert_eq!(parse_tag("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_tag("=x").is_err() && parse_tag("novalue").is_err());
        assert_eq!(
            metric_line(metrics::WORKER_INDEX, 1.0),
            format!("{}: 1", metrics::WORKER_INDEX)
        );
        assert_eq!(
            metric_line(metrics::DURATION_MS, 1.0),
            format!("{}: 1.000", metrics::DURATION_MS)
        );
        let m = BTreeMap::from([(metrics::WORKER_INDEX.to_owned(), 0.0)]);
        assert_eq!(
            metrics_json(&m).to_string(),
            format!(r#"{{"{}":0}}"#, metrics::WORKER_INDEX)
        );
    }

    #[test]
    fn rendering_follows_the_contract() {
        let ok: Line = Ok(ResponseObject {
            id: "x".into(),
            resp: r#""hi""#.into(),
            ..Default::default()
        });
        assert_eq!(render(&ok, false), r#"{"ok":"\"hi\""}"#);
        let err: Line = Err(RomaError::new(ErrorKind::Timeout, "too slow"));
        assert_eq!(
            render(&err, false),
            r#"{"error":{"kind":"timeout","message":"too slow"}}"#
        );
    }
}
