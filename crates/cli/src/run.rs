//! `roma run`: one invocation, or a batch streamed line by line.

use crate::code::read_code;
use crate::console::{HeldLines, console_line};
use crate::service::{ServiceArgs, describe_error, execute, level_name, load, start};
use anyhow::{Context, Result};
use clap::Args;
use roma::{
    ErrorKind, InvocationRequest, LogLevel, ResponseObject, RomaError, RomaService, escape_control,
    escape_control_json,
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
    /// The version string to load the code as.
    #[arg(long, default_value = "v1")]
    pub version: String,
    /// Bound on each invocation and on the load's top-level run, e.g. 300ms, 2s.
    #[arg(long, value_parser = parse_timeout)]
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
    #[command(flatten)]
    pub service: ServiceArgs,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    roma::parse_duration(s)
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
        config.engine.default_timeout = t;
    }
    let svc = start(config)?;
    if let Err(e) = load(&svc, code) {
        eprintln!("{}", describe_error(&e));
        return Ok(ExitCode::FAILURE);
    }
    let code = match &args.batch {
        None => single(&svc, &args, &held_errors),
        Some(path) => batch(&svc, &args, path),
    };
    let _ = svc.stop();
    code
}

fn request(args: &RunArgs, inputs: Vec<String>, id: String) -> InvocationRequest {
    InvocationRequest {
        id,
        version_string: args.version.clone(),
        handler_name: args.handler.clone(),
        input: inputs,
        treat_input_as_byte_str: args.byte_str,
        timeout: args.timeout,
        ..Default::default()
    }
}

fn single(svc: &RomaService, args: &RunArgs, held_errors: &Mutex<HeldLines>) -> Result<ExitCode> {
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
                    eprintln!("{}: {v:.3}", escape_control(k));
                }
            }
            // The result is the handler's: JSON text (whose strings escape C0 controls) or, with
            // --byte-str, a raw string; either way no control character reaches the terminal.
            println!("{}", escape_control(&r.resp));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}", describe_error(&e));
            Ok(ExitCode::FAILURE)
        }
    }
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
        map.insert("metrics".into(), json!(r.metrics));
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
