//! The `roma` command end to end: each test runs the built binary (`CARGO_BIN_EXE_roma`) as a
//! user would, from the repository root, with the sandbox on (`--sandbox namespaces`, or
//! `ROMA_TEST_SANDBOX`), and checks stdout, stderr and the exit code.
//!
//! The binary starts `roma-worker` from its own folder (`target/<profile>/`). Cargo builds the
//! `roma` binary for these tests but not the worker: run `cargo build -p roma-worker` first
//! (`cargo xtask test` does).
//!
//! Every example under `examples/` is run here too, and the checked-in `.wasm` files are
//! checked against their `.wat` sources (`ROMA_BLESS=1` rewrites them).

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A safety net for a hung run, not a timing assertion: a run takes well under a second.
const PATIENCE: Duration = Duration::from_secs(120);

const HELLO_FOOBAR: &str = r#""Hello world! \"Foobar\"""#;

/// What one run of `roma` did.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts exit 0 and returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code(), Some(0), "roma failed: {self:#?}");
        &self.stdout
    }

    /// Asserts exit 1 with nothing on stdout, and returns stderr.
    fn failed(&self) -> &str {
        assert_eq!(self.code(), Some(1), "expected exit 1: {self:#?}");
        assert_eq!(
            self.stdout, "",
            "nothing on stdout when it fails: {self:#?}"
        );
        &self.stderr
    }

    /// Asserts exit 2, a usage error (clap's), with `what` on stderr.
    fn usage_error(&self, what: &str) {
        assert_eq!(self.code(), Some(2), "a usage error: {self:#?}");
        assert!(self.stderr.contains(what), "no {what:?}: {self:#?}");
    }

    /// Asserts exit 1 and returns the `error: KIND: MESSAGE` line of stderr (an uncaught JS
    /// error also reaches the console as `[error] ...` before it).
    fn error(&self) -> &str {
        self.failed()
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no `error: ` line: {self:#?}"))
    }

    /// The batch output: one parsed JSON value per stdout line.
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

include!("../../v8/node_pin.rs");

fn roma_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_roma"))
}

/// Fails with what to do when the worker library is not where the `roma` binary will look.
fn require_worker() {
    if std::env::var_os("ROMA_WORKER_LIB").is_some() {
        return;
    }
    let worker = roma_bin().with_file_name(roma::tools::WORKER_LIBRARY_NAME);
    assert!(
        worker.is_file(),
        "{} is missing: the roma binary starts its workers with it. Run \
         `cargo build -p roma-worker` (same profile and target dir as this test) first, or \
         `cargo xtask test`, which does.",
        worker.display()
    );
}

/// `--sandbox` for every run: `ROMA_TEST_SANDBOX` (namespaces, birdcage, none), else
/// namespaces, the default.
fn sandbox() -> String {
    std::env::var("ROMA_TEST_SANDBOX").unwrap_or_else(|_| "namespaces".into())
}

/// Runs `roma ARGS` from the repository root, with `stdin` on its standard input.
fn roma_with_stdin(args: &[&str], stdin: Option<&str>) -> Run {
    require_worker();
    let mut cmd = Command::new(roma_bin());
    cmd.args(args)
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // `run` and `bench` take --sandbox; other invocations (a bad flag) go as they are.
    if matches!(args.first(), Some(&"run") | Some(&"bench")) {
        cmd.args(["--sandbox", &sandbox()]);
    }
    let mut child = cmd.spawn().expect("the roma binary starts");
    let feeder = child.stdin.take().map(|mut pipe| {
        let text = stdin.unwrap_or_default().to_owned();
        std::thread::spawn(move || {
            // roma may stop reading early (a failed load); a broken pipe is fine then.
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for roma") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("roma {args:?} still running after {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(f) = feeder {
        f.join().expect("stdin feeder");
    }
    Run {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

fn roma(args: &[&str]) -> Run {
    roma_with_stdin(args, None)
}

/// Asserts that the error text `err` starts with `start` (its kind) and says `has`.
fn assert_says(err: &str, start: &str, has: &str) {
    assert!(err.starts_with(start), "not {start:?}: {err}");
    assert!(err.contains(has), "no {has:?}: {err}");
}

/// A fresh folder for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("roma-cli-tests")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Writes `text` to `dir/name` and returns the path as a string.
fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write a test file");
    p.to_str().expect("UTF-8 path").to_owned()
}

/// A fresh scratch folder for `test` holding one file, `name`, with `text`; its path.
fn script(test: &str, name: &str, text: impl AsRef<[u8]>) -> String {
    write(&scratch(test), name, text)
}

/// A JS file whose handler does what its input says: echo, throw, spin, log.
const MULTI_JS: &str = r#"
function Handler(what) {
  if (what === "throw") throw new Error("thrown on purpose");
  if (what === "spin") while (true) {}
  if (what === "log") {
    console.log("a log line");
    console.warn("a warning");
    console.error("an error");
    return "logged";
  }
  return what;
}
function Spin() { while (true) {} }
"#;

// ---------------------------------------------------------------- single runs

/// Single runs and what they print: the code, its flags, stdout, and stderr where the row
/// checks what reaches the console.
#[test]
fn single_runs_print_the_handlers_answer() {
    let dotted = script(
        "single_runs_dotted",
        "ns.js",
        "var api = { v2: { Handler: (x) => x * 2 } };",
    );
    let raw = script(
        "single_runs_raw",
        "raw.js",
        "function Handler(s) { return typeof s + ':' + s.length + ':' + s; }",
    );
    let multi = script("single_runs_multi", "multi.js", MULTI_JS);
    let hello = format!("{HELLO_FOOBAR}\n");
    let cases: &[(&str, &[&str], &str, Option<&str>)] = &[
        (
            "examples/hello.js",
            &["--input", r#""Foobar""#],
            &hello,
            None,
        ),
        (
            "examples/hello.js",
            &[],
            "\"Hello world! undefined\"\n",
            None,
        ),
        (
            "examples/hello.js",
            &["--input", r#"{"a":[1,2]}"#],
            "\"Hello world! {\\\"a\\\":[1,2]}\"\n",
            None,
        ),
        (
            &dotted,
            &[
                "--handler",
                "api.v2.Handler",
                "--code-version",
                "v7",
                "--input",
                "21",
            ],
            "42\n",
            None,
        ),
        (
            &raw,
            &["--byte-str", "--input", "abc"],
            "string:3:abc\n",
            None,
        ),
        (
            &multi,
            &["--input", r#""log""#],
            "\"logged\"\n",
            Some("[info] a log line\n[warn] a warning\n[error] an error\n"),
        ),
        // The module's roma.log import reaches stderr like console output.
        (
            "examples/greet.wasm",
            &["--handler", "greet", "--input", r#""roma""#],
            "\"Hello, roma\"\n",
            Some("[info] greet: roma\n"),
        ),
        (
            "examples/js_wasm.js",
            &[
                "--wasm-bin",
                "examples/add.wasm",
                "--wasm-array-name",
                "addModule",
                "--input",
                "1",
                "--input",
                "2",
            ],
            "3\n",
            None,
        ),
        (
            "examples/async.js",
            &["--input", r#"["apple", "kiwi"]"#],
            "{\"total\":90,\"prices\":[50,40]}\n",
            Some("[info] priced 2 items\n"),
        ),
    ];
    for &(code, flags, stdout, stderr) in cases {
        let run = roma(&[&["run", code][..], flags].concat());
        assert_eq!(run.ok(), stdout, "{code} {flags:?}");
        if let Some(stderr) = stderr {
            assert_eq!(run.stderr, stderr, "{code} {flags:?}");
        }
    }
}

#[test]
fn several_inputs_of_each_json_type() {
    let js = script(
        "several_inputs",
        "args.js",
        "function Handler(...args) { return args.map(a => [typeof a, Array.isArray(a), a]); }",
    );
    let run = roma(&[
        "run",
        &js,
        "--input",
        r#""text""#,
        "--input",
        "42",
        // `--input -1.5` is refused by clap (a value that looks like a flag): use `=`.
        "--input=-1.5",
        "--input",
        r#"{"a": {"b": [1, 2]}}"#,
        "--input",
        r#"[1, "two", null]"#,
        "--input",
        "true",
        "--input",
        "null",
    ]);
    let out: Value = serde_json::from_str(run.ok().trim()).unwrap();
    assert_eq!(
        out,
        serde_json::json!([
            ["string", false, "text"],
            ["number", false, 42],
            ["number", false, -1.5],
            ["object", false, {"a": {"b": [1, 2]}}],
            ["object", true, [1, "two", null]],
            ["boolean", false, true],
            ["object", false, null],
        ])
    );
}

#[test]
fn an_input_that_is_not_json_is_bad_input() {
    let run = roma(&["run", "examples/hello.js", "--input", "{not json"]);
    let err = run.failed();
    assert!(
        err.starts_with("error: bad_input: input 0 is not valid JSON"),
        "{err}"
    );
}

#[test]
fn service_options_still_give_the_same_answer() {
    for extra in [
        &["--transport", "socket"][..],
        &["--transport", "shm", "--no-prewarm"][..],
        &["--no-spin"][..],
        &["--workers", "2", "--heap-mb", "64"][..],
        &["--v8-flags", "--single-threaded-gc"][..],
    ] {
        let mut args = vec!["run", "examples/hello.js", "--input", r#""Foobar""#];
        args.extend_from_slice(extra);
        let run = roma(&args);
        assert_eq!(run.ok(), format!("{HELLO_FOOBAR}\n"), "{extra:?}");
    }
}

#[test]
fn version_and_help() {
    require_worker();
    let run = roma(&["--version"]);
    let text = run.ok();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("roma {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let engine = lines.next().unwrap_or_default();
    assert!(
        engine.starts_with("V8 14.") && engine.contains(&format!(", Node {NODE_VERSION} ")),
        "{text}"
    );
    let run = roma(&["run", "--help"]);
    for flag in [
        "--handler",
        "--input",
        "--timeout",
        "--batch",
        "--metrics",
        "--wasm-bin",
        "--sandbox",
        "--code-version",
        "--tag",
        "--min-log-level",
        "--wasm-return-type",
    ] {
        assert!(run.ok().contains(flag), "no {flag} in run --help");
    }
}

// ---------------------------------------------------------------- failures in single mode

#[test]
fn profile_writes_a_cpuprofile_naming_the_handler() {
    let js = script(
        "profile",
        "spin.js",
        "function busyLoop(ms) { const end = Date.now() + ms; let n = 0;\n\
           while (Date.now() < end) { n++; } return n; }\n\
         function SpinHandler() { return busyLoop(30) > 0; }",
    );
    let out = Path::new(&js).with_file_name("run.cpuprofile");
    let out_arg = out.to_str().expect("UTF-8 path");
    let run = roma(&["run", &js, "--handler", "SpinHandler", "--profile", out_arg]);
    assert_eq!(run.ok(), "true\n");
    let text = std::fs::read_to_string(&out).expect("the profile file is written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("the profile is JSON");
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["callFrame"]["functionName"].as_str())
        .collect();
    assert!(names.contains(&"SpinHandler"), "{names:?}");
    // With --batch it is a usage error, not a silent no-op.
    roma(&["run", &js, "--batch", "-", "--profile", out_arg]).usage_error("--profile");
}

#[test]
fn a_throw_is_an_execution_error_with_the_stack() {
    let js = script("throw", "t.js", MULTI_JS);
    let run = roma(&["run", &js, "--input", r#""throw""#]);
    assert_eq!(
        run.error(),
        "error: execution: Uncaught Error: thrown on purpose",
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("at Handler"),
        "the JS stack follows: {run:#?}"
    );
}

#[test]
fn a_timeout_is_reported_and_exits_1() {
    let js = script("timeout", "spin.js", MULTI_JS);
    let run = roma(&["run", &js, "--handler", "Spin", "--timeout", "100ms"]);
    let err = run.failed();
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: timeout: "), "{err}");
    assert!(last.contains("100ms"), "{err}");
}

#[test]
fn a_top_level_timeout_fails_the_load() {
    let js = script(
        "top_level_timeout",
        "spin.js",
        "while (true) {}\nfunction Handler() {}",
    );
    let run = roma(&["run", &js, "--timeout", "100ms"]);
    assert_says(run.failed(), "error: timeout: ", "top-level");
}

#[test]
fn a_compile_error_fails_the_load() {
    let js = script("compile_error", "bad.js", "function Handler( {");
    let run = roma(&["run", &js]);
    assert_says(run.failed(), "error: compile: ", "SyntaxError");
}

#[test]
fn a_missing_handler_names_the_ones_defined() {
    let run = roma(&["run", "examples/hello.js", "--handler", "Handlr"]);
    assert_eq!(
        run.failed(),
        "error: handler_not_found: handler `Handlr` not found in version v1; the code defines: \
         Handler\n"
    );
}

#[test]
fn a_missing_file_is_one_clear_line() {
    for (args, start) in [
        (
            &["run", "examples/no-such-file.js"][..],
            "error: cannot read examples/no-such-file.js: ",
        ),
        (
            &["run", "examples/hello.js", "--batch", "no-such-batch.jsonl"],
            "error: cannot open no-such-batch.jsonl",
        ),
    ] {
        let run = roma(args);
        let err = run.failed();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(start), "{err}");
    }
}

#[test]
fn usage_errors_exit_2_naming_what_is_wrong() {
    let run = roma(&["run", "examples/hello.js", "--bogus"]);
    run.usage_error("Usage: roma run");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .starts_with("error: unexpected argument '--bogus' found"),
        "{run:#?}"
    );
    for (args, what) in [
        (
            &["run", "examples/hello.js", "--timeout", "soon"][..],
            "--timeout",
        ),
        (
            &["run", "examples/hello.js", "--sandbox", "chroot"],
            "chroot",
        ),
        (&[], "Usage: roma"),
    ] {
        roma(args).usage_error(what);
    }
}

#[test]
fn wasm_bin_needs_its_array_name() {
    let run = roma(&[
        "run",
        "examples/js_wasm.js",
        "--wasm-bin",
        "examples/add.wasm",
    ]);
    assert_eq!(run.failed(), "error: --wasm-bin needs --wasm-array-name\n");
}

// ---------------------------------------------------------------- console and metrics

/// A handler that floods console.error: `roma run` holds at most 1000 of those lines until the
/// result is known (and says how many it dropped), and cuts an oversize line itself.
#[test]
fn a_console_flood_is_bounded_and_long_lines_are_cut_on_the_host() {
    let js = script(
        "console-flood",
        "flood.js",
        r#"
function Handler() {
  for (let i = 0; i < 3000; i++) console.error("e" + i + " " + "x".repeat(200));
  return "done";
}
function Long() { console.log("y".repeat(100000)); return "long"; }
"#,
    );
    let run = roma(&["run", &js]);
    assert_eq!(run.ok(), "\"done\"\n");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1001,
        "1000 lines and the marker: {:?}",
        &lines[..3]
    );
    assert!(lines[999].starts_with("[error] e999 "), "{}", lines[999]);
    assert_eq!(
        lines[1000],
        "[error] ... 2000 more lines dropped (roma run holds at most 1000 error lines, 1024 KiB)"
    );

    let run = roma(&["run", &js, "--handler", "Long"]);
    assert_eq!(run.ok(), "\"long\"\n");
    let line = run.stderr.trim_end();
    // The worker cuts at 64 KiB (and marks the cut); the host keeps 16 KiB of that.
    let (kept, note) = line
        .rsplit_once(" [roma: line cut at 16384 bytes of ")
        .unwrap_or_else(|| panic!("not cut on the host: ...{}", &line[line.len() - 80..]));
    assert_eq!(kept, format!("[info] {}", "y".repeat(16384)));
    let sent: usize = note.trim_end_matches(']').parse().unwrap();
    assert!((65536..70000).contains(&sent), "{note}");
}

/// Terminal control characters from the worker (console, results, errors, batch lines) reach
/// the terminal escaped.
#[test]
fn control_characters_from_the_worker_are_escaped() {
    let js = script(
        "console-escape",
        "esc.js",
        r#"
function Handler() {
  console.log("\x1b]0;title\x07");
  console.error("\x1b[31mred\nforged line");
  return "\u009b2J\x1b";
}
function Raw(s) { return "\x1b[2J" + s; }
function Throw() { throw new Error("bad \x1b[5m blink"); }
"#,
    );
    let raw_control = |text: &str| {
        text.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    };

    let run = roma(&["run", &js]);
    let out = run.ok();
    assert!(!raw_control(out) && !raw_control(&run.stderr), "{run:#?}");
    assert_eq!(out, "\"\\u{9b}2J\\u001b\"\n");
    assert_eq!(
        run.stderr,
        "[info] \\u{1b}]0;title\\u{7}\n[error] \\u{1b}[31mred\\u{a}forged line\n"
    );

    let run = roma(&["run", &js, "--handler", "Raw", "--byte-str", "--input", "x"]);
    assert_eq!(run.ok(), "\\u{1b}[2Jx\n");

    let run = roma(&["run", &js, "--handler", "Throw"]);
    let err = run.failed();
    assert!(!raw_control(err), "{err:?}");
    assert!(err.contains("bad \\u{1b}[5m blink"), "{err}");

    let run = roma_with_stdin(&["run", &js, "--batch", "-"], Some("[]\n"));
    let out = run.ok();
    assert!(!raw_control(out), "{out:?}");
    assert_eq!(run.lines()[0]["ok"], "\"\u{9b}2J\\u001b\"");
}

#[test]
fn metrics_go_to_stderr_in_single_mode() {
    let run = roma(&[
        "run",
        "examples/hello.js",
        "--input",
        r#""Foobar""#,
        "--metrics",
    ]);
    assert_eq!(run.ok(), format!("{HELLO_FOOBAR}\n"));
    for key in [
        "roma.execution.duration_ms",
        "roma.execution.code_run_duration_ms",
        "roma.execution.js_engine_handler_call_duration_ms",
    ] {
        let line = run
            .stderr
            .lines()
            .find(|l| l.starts_with(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in {:?}", run.stderr));
        let value: f64 = line[key.len() + 2..].parse().expect("a number");
        assert!(value >= 0.0, "{line}");
    }
    // The worker index is an integer.
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "roma.execution.worker_index: 0"),
        "{run:#?}"
    );
}

#[test]
fn metrics_are_a_field_in_batch_mode() {
    let run = roma_with_stdin(
        &["run", "examples/hello.js", "--batch", "-", "--metrics"],
        Some("[\"a\"]\n[\"b\"]\n"),
    );
    run.ok();
    let lines = run.lines();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let m = line["metrics"]
            .as_object()
            .unwrap_or_else(|| panic!("no metrics in {line}"));
        assert!(m["roma.execution.duration_ms"].as_f64().is_some(), "{line}");
    }
    assert_eq!(lines[0]["ok"], r#""Hello world! \"a\"""#);
}

// ---------------------------------------------------------------- batch

#[test]
fn batch_from_a_file_answers_every_line_in_order() {
    let dir = scratch("batch_file");
    let js = write(&dir, "multi.js", MULTI_JS);
    let batch = write(
        &dir,
        "lines.jsonl",
        concat!(
            "[\"first\"]\n",
            "[\"throw\"]\n",
            "[\"spin\"]\n",
            "[1,\n",
            "{\"not\": \"an array\"}\n",
            "[{\"a\": [1, 2]}]\n",
            "[]\n",
            "[\"last\"]\n",
        ),
    );
    let run = roma(&["run", &js, "--batch", &batch, "--timeout", "200ms"]);
    assert_eq!(run.code(), Some(0), "every line ran: {run:#?}");
    let lines = run.lines();
    assert_eq!(lines.len(), 8, "one output line per input line: {run:#?}");
    let kind = |i: usize| lines[i]["error"]["kind"].as_str().unwrap_or("").to_owned();
    assert_eq!(lines[0], serde_json::json!({"ok": "\"first\""}));
    assert_eq!(kind(1), "execution");
    assert!(
        lines[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("thrown on purpose")
    );
    assert_eq!(kind(2), "timeout");
    assert_eq!(kind(3), "bad_input", "a malformed line: {}", lines[3]);
    assert!(
        lines[3]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );
    assert_eq!(kind(4), "bad_input", "not an array: {}", lines[4]);
    assert_eq!(lines[5], serde_json::json!({"ok": r#"{"a":[1,2]}"#}));
    // `[]`: no argument; the handler returns undefined.
    assert_eq!(lines[6], serde_json::json!({"ok": "undefined"}));
    assert_eq!(lines[7], serde_json::json!({"ok": "\"last\""}));
}

#[test]
fn batch_from_stdin() {
    let run = roma_with_stdin(
        &["run", "examples/hello.js", "--batch", "-"],
        Some("[\"Foobar\"]\n[1]\nnot json\n[[1,2]]\n"),
    );
    run.ok();
    let lines = run.lines();
    assert_eq!(lines.len(), 4, "{run:#?}");
    assert_eq!(lines[0]["ok"], HELLO_FOOBAR);
    assert_eq!(lines[1]["ok"], r#""Hello world! 1""#);
    assert_eq!(lines[2]["error"]["kind"], "bad_input");
    assert_eq!(lines[3]["ok"], r#""Hello world! [1,2]""#);
}

#[test]
fn an_empty_batch_prints_nothing() {
    let run = roma_with_stdin(&["run", "examples/hello.js", "--batch", "-"], Some(""));
    assert_eq!(run.ok(), "");
}

#[test]
fn a_long_batch_keeps_its_order() {
    // More lines than the queue holds: the CLI must wait for answers and keep the order.
    let input: String = (0..500).map(|i| format!("[{i}]\n")).collect();
    let js = script("long_batch", "id.js", "function Handler(n) { return n; }");
    let run = roma_with_stdin(
        &["run", &js, "--batch", "-", "--workers", "2"],
        Some(&input),
    );
    run.ok();
    let lines = run.lines();
    assert_eq!(lines.len(), 500);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["ok"], i.to_string(), "line {i}");
    }
}

#[test]
fn a_batch_where_roma_could_not_run_a_line_exits_1() {
    // The debug worker's fault injection: this handler name makes the worker exit, so the
    // invocation did not run (worker_crashed). Release workers have no faults to inject.
    if !cfg!(debug_assertions) {
        return;
    }
    let run = roma_with_stdin(
        &[
            "run",
            "examples/hello.js",
            "--handler",
            "__roma_fault_exit",
            "--batch",
            "-",
        ],
        Some("[\"a\"]\n"),
    );
    assert_eq!(run.code(), Some(1), "{run:#?}");
    let lines = run.lines();
    assert_eq!(lines.len(), 1, "{run:#?}");
    assert_eq!(lines[0]["error"]["kind"], "worker_crashed", "{run:#?}");
}

#[test]
fn a_batch_whose_load_fails_exits_1_without_lines() {
    let js = script("batch_load_fails", "bad.js", "throw new Error('no load')");
    let run = roma_with_stdin(&["run", &js, "--batch", "-"], Some("[1]\n"));
    let err = run.failed();
    assert!(err.starts_with("error: compile: "), "{err}");
}

// ---------------------------------------------------------------- WASM

fn assembled(wat_path: &str) -> Vec<u8> {
    wat::parse_file(repo_root().join(wat_path)).expect("the .wat assembles")
}

/// The checked-in `.wasm` is its `.wat` assembled; `ROMA_BLESS=1` rewrites it.
fn check_wasm_matches_wat(stem: &str) {
    let wasm = assembled(&format!("examples/{stem}.wat"));
    let path = repo_root().join(format!("examples/{stem}.wasm"));
    if std::env::var_os("ROMA_BLESS").is_some() {
        std::fs::write(&path, &wasm).expect("write the .wasm");
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == wasm,
        "examples/{stem}.wasm is not examples/{stem}.wat assembled; rewrite it with \
         `ROMA_BLESS=1 cargo test -p roma-cli --test cli`"
    );
    assert!(wasm.len() < 1024, "examples stay small");
}

#[test]
fn example_wasm_files_match_their_wat() {
    check_wasm_matches_wat("greet");
    check_wasm_matches_wat("add");
}

#[test]
fn standalone_wasm_errors() {
    let dir = scratch("wasm_errors");
    let wasm = wat::parse_str(
        r#"(module
             (func (export "trap") (result i32) unreachable)
             (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0)))"#,
    )
    .unwrap();
    let path = write(&dir, "faulty.wasm", wasm);
    let run = roma(&["run", &path, "--handler", "trap"]);
    assert_says(run.error(), "error: execution: ", "unreachable");
    let run = roma(&["run", &path, "--handler", "spin", "--timeout", "100ms"]);
    assert!(run.error().starts_with("error: timeout: "), "{run:#?}");
    let run = roma(&["run", &path, "--handler", "nope"]);
    let err = run.error();
    assert!(err.starts_with("error: handler_not_found: "), "{err}");
    assert!(err.contains("spin") && err.contains("trap"), "{err}");
    let bad = write(&dir, "bad.wasm", b"\0asm\x09\x09\x09\x09");
    let run = roma(&["run", &bad]);
    assert!(run.error().starts_with("error: compile: "), "{run:#?}");
}

#[test]
fn standalone_wasm_batch_with_bad_input() {
    let run = roma_with_stdin(
        &[
            "run",
            "examples/greet.wasm",
            "--handler",
            "greet",
            "--batch",
            "-",
        ],
        Some("[\"ada\"]\n[1.5]\n[\"bob\"]\n"),
    );
    run.ok();
    let lines = run.lines();
    assert_eq!(lines.len(), 3, "{run:#?}");
    assert_eq!(lines[0]["ok"], r#""Hello, ada""#);
    assert_eq!(lines[1]["error"]["kind"], "bad_input", "{run:#?}");
    assert_eq!(lines[2]["ok"], r#""Hello, bob""#);
}

#[test]
fn wasm_bin_with_a_wasm_file_is_refused() {
    let run = roma(&[
        "run",
        "examples/greet.wasm",
        "--wasm-bin",
        "examples/add.wasm",
        "--wasm-array-name",
        "m",
    ]);
    assert!(run.failed().contains("--wasm-bin goes with a .js file"));
}

// ---------------------------------------------------------------- the examples

#[test]
fn example_hello_batch_file() {
    let run = roma(&[
        "run",
        "examples/hello.js",
        "--batch",
        "examples/batch.jsonl",
    ]);
    run.ok();
    let lines = run.lines();
    let batch = std::fs::read_to_string(repo_root().join("examples/batch.jsonl")).unwrap();
    assert_eq!(lines.len(), batch.lines().count());
    assert_eq!(lines[0]["ok"], HELLO_FOOBAR);
    assert!(lines.iter().all(|l| l["ok"].is_string()), "{run:#?}");
}

#[test]
fn example_udf_js_needs_its_host_functions() {
    // examples/udf.js runs with its bindings in crates/roma/examples/udf.rs (a test of the roma
    // crate); the CLI registers none, so the call fails in JS, clearly.
    let run = roma(&[
        "run",
        "examples/udf.js",
        "--input",
        r#""x""#,
        "--input",
        "[]",
    ]);
    assert_says(
        run.error(),
        "error: execution: ",
        "ReferenceError: cool_function is not defined",
    );
}

// ---------------------------------------------------------------- memory

#[test]
fn a_heap_bomb_is_out_of_memory_and_the_worker_goes_on() {
    let js = script(
        "heap_bomb",
        "bomb.js",
        "function Handler(n) {\n\
           if (n === 0) return 'small';\n\
           const a = [];\n\
           while (true) a.push(new Array(100000).fill(1.5));\n\
         }",
    );
    let run = roma(&["run", &js, "--heap-mb", "32", "--input", "1"]);
    assert!(
        run.error().starts_with("error: out_of_memory: "),
        "{run:#?}"
    );
    // In a batch, the line after the bomb runs in the same worker.
    let run = roma_with_stdin(
        &["run", &js, "--heap-mb", "32", "--batch", "-"],
        Some("[1]\n[0]\n"),
    );
    run.ok();
    let lines = run.lines();
    assert_eq!(lines[0]["error"]["kind"], "out_of_memory", "{run:#?}");
    assert_eq!(lines[1]["ok"], "\"small\"", "{run:#?}");
}

// ---------------------------------------------------------------- bench

#[test]
fn bench_json_reports_consistent_figures() {
    let run = roma(&["bench", "--workers", "1", "--requests", "200", "--json"]);
    let report: Value = serde_json::from_str(run.ok().trim()).expect("one JSON object");
    assert_eq!(report["requests"], 200, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["workers"], 1, "{report}");
    assert!(
        report["cgroups"].is_null(),
        "no cgroup limits, no cgroups: {report}"
    );
    let lat = &report["latency_ms"];
    let p = |k: &str| {
        lat[k]
            .as_f64()
            .unwrap_or_else(|| panic!("no {k} in {report}"))
    };
    assert!(p("p50") > 0.0, "{report}");
    assert!(
        p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"),
        "{report}"
    );
    assert!(report["throughput_rps"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["worker_rss_mib"].as_f64().unwrap() > 0.0, "{report}");
    for k in ["context_creation", "ipc", "handler"] {
        assert!(report["share_pct"][k].as_f64().is_some(), "{report}");
    }
}

#[test]
fn bench_clients_report_the_hops_of_their_requests() {
    for client in ["blocking", "chained", "channel"] {
        let run = roma(&[
            "bench",
            "--workers",
            "2",
            "--requests",
            "60",
            "--concurrency",
            "3",
            "--client",
            client,
            "--json",
        ]);
        let report: Value = serde_json::from_str(run.ok().trim()).expect("one JSON object");
        assert_eq!(report["requests"], 60, "{client}: {report}");
        assert_eq!(report["errors"], 0, "{client}: {report}");
        assert_eq!(report["client"], client, "{report}");
        let hops = report["hops_p50_ms"].as_object().expect("hops");
        for k in [
            "queue",
            "to worker",
            "handler",
            "to host",
            "to callback",
            "to client",
        ] {
            assert!(hops[k].as_f64().is_some_and(|v| v >= 0.0), "{k}: {report}");
        }
        assert!(
            report["service_start_ms"].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
    // A chained client cannot pause between requests: it says which client can.
    let run = roma(&[
        "bench",
        "--workers",
        "1",
        "--requests",
        "5",
        "--client",
        "chained",
        "--interval",
        "1ms",
    ]);
    assert_ne!(run.code(), Some(0), "{run:#?}");
    assert!(run.stderr.contains("--client blocking"), "{run:#?}");
}

#[test]
fn bench_of_a_file_prints_its_table() {
    let run = roma(&[
        "bench",
        "examples/hello.js",
        "--input",
        r#""Foobar""#,
        "--workers",
        "1",
        "--requests",
        "100",
    ]);
    let out = run.ok();
    assert!(out.contains("requests      100 (0 errors)"), "{out}");
    for word in ["throughput", "p50", "p99", "worker RSS", "time share"] {
        assert!(out.contains(word), "no {word} in {out}");
    }
}

// ---------------------------------------------------------------- what a newcomer hits

#[test]
fn bench_of_a_throwing_handler_counts_the_errors_by_kind() {
    let js = script(
        "bench_throws",
        "throws.js",
        "function Handler() { throw new Error('no luck'); }",
    );
    let run = roma(&["bench", &js, "--workers", "1", "--requests", "5"]);
    assert_eq!(run.code(), Some(1), "{run:#?}");
    assert!(run.stdout.contains("(5 errors)"), "{run:#?}");
    assert!(run.stdout.contains("error         execution x"), "{run:#?}");
    assert!(run.stdout.contains("no luck"), "{run:#?}");
    assert!(run.stdout.starts_with("machine       "), "{run:#?}");
    assert!(
        !run.stderr.contains("at Handler"),
        "no stack traces: {run:#?}"
    );
}

#[test]
fn code_version_tags_and_min_log_level_are_flags() {
    let js = script(
        "flags",
        "logs.js",
        "function Handler() { console.log('chatty'); console.warn('careful'); return 1; }",
    );
    let run = roma(&[
        "run",
        &js,
        "--code-version",
        "v9",
        "--min-log-level",
        "warn",
    ]);
    assert_eq!(run.ok(), "1\n");
    assert_eq!(run.stderr, "[warn] careful\n");
    // The timeout tag reaches the request.
    let multi = script("flags_spin", "multi.js", MULTI_JS);
    let run = roma(&[
        "run",
        &multi,
        "--handler",
        "Spin",
        "--tag",
        "TimeoutDuration=100ms",
    ]);
    assert_says(run.error(), "error: timeout: ", "100ms");
    roma(&["run", &multi, "--tag", "novalue"]).usage_error("KEY=VALUE");
}

#[test]
fn a_plain_i32_wasm_export_needs_its_return_type_and_the_error_says_so() {
    let dir = scratch("wasm_i32");
    let wasm =
        wat::parse_str(r#"(module (func (export "answer") (result i32) i32.const 42))"#).unwrap();
    let path = write(&dir, "answer.wasm", wasm);
    let run = roma(&["run", &path, "--handler", "answer"]);
    assert!(run.stderr.starts_with("error: bad_input: "), "{run:#?}");
    assert!(
        run.stderr.contains("--wasm-return-type i32"),
        "the error names the flag: {run:#?}"
    );
    let run = roma(&[
        "run",
        &path,
        "--handler",
        "answer",
        "--wasm-return-type",
        "i32",
    ]);
    assert_eq!(run.ok(), "42\n");
    let run = roma(&[
        "run",
        &path,
        "--handler",
        "answer",
        "--tag",
        "roma.wasm.return_type=i32",
    ]);
    assert_eq!(run.ok(), "42\n");
}

// ---------------------------------------------------------------- serve

#[test]
fn serve_refuses_a_bad_config_naming_the_key() {
    let dir = scratch("serve_bad_config");
    let cfg = write(
        &dir,
        "roma.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\nload_token_file = \"l\"\nexecute_token_file = \"e\"\n\
         [limits]\nmax_connections = 0\n",
    );
    let err = roma(&["serve", "--config", &cfg]).failed().to_string();
    assert!(err.contains("limits.max_connections"), "{err}");
    let err = roma(&["serve", "--http", "127.0.0.1:0"])
        .failed()
        .to_string();
    assert!(err.contains("--load-token-file"), "{err}");
    let tok = |name: &str, text: &str| write(&dir, name, text);
    let (l, e) = (tok("l", "load-1"), tok("e", "exec-1"));
    let base = [
        "serve",
        "--http",
        "127.0.0.1:0",
        "--load-token-file",
        &l,
        "--execute-token-file",
        &e,
    ];
    let err = roma(&[&base[..], &["--client-ca", "ca.pem"]].concat())
        .failed()
        .to_string();
    assert!(err.contains("need TLS"), "{err}");
    let err = roma(&[&base[..], &["--low-latency", "1s"]].concat())
        .failed()
        .to_string();
    assert!(err.contains("service.low_latency"), "{err}");
    let garbage = tok("server.pem", "not a certificate");
    let err = roma(&[&base[..], &["--tls-cert", &garbage, "--tls-key", &garbage]].concat())
        .failed()
        .to_string();
    assert!(
        err.contains("TLS file") && err.contains("server.pem"),
        "{err}"
    );
}

/// `roma serve` on 127.0.0.1 (a random HTTP port, one worker) with `args` and the two token
/// files, its stdout and stderr piped: the child and its stdout.
fn spawn_serve(
    args: &[&str],
    load: &str,
    exec: &str,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
) {
    let mut cmd = Command::new(roma_bin());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--workers", "1"])
        .args(args)
        .args(["--load-token-file", load, "--execute-token-file", exec])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if sandbox() == "none" {
        cmd.arg("--no-sandbox");
    }
    let mut child = cmd.spawn().expect("roma serve starts");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// Sends `roma serve` SIGTERM, reads its stderr to the end and asserts that it drained and
/// exited with success: its stderr.
fn drained(child: &mut std::process::Child) -> String {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Read while it exits: a server whose stderr is full cannot write its last lines.
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("roma serve did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = reader.join().unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("draining"), "{err}");
    err
}

/// The address on the next `listening on SCHEME://ADDRESS` line of `roma serve`.
fn listening_on(stdout: &mut impl std::io::BufRead, scheme: &str) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix(&format!("listening on {scheme}://"))
        .unwrap_or_else(|| panic!("no {scheme} address in {line:?}"))
        .to_string()
}

/// One HTTP/1.1 request on a new connection; the whole answer as text.
fn http(addr: &str, path: &str, token: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connects to roma serve");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_with_flags_answers_and_drains_on_sigterm() {
    require_worker();
    let dir = scratch("serve_flags");
    let load = write(&dir, "load.tok", "load-secret\n");
    let exec = write(&dir, "exec.tok", "exec-secret\n");
    let (mut child, mut stdout) = spawn_serve(
        &[
            "--grpc",
            "127.0.0.1:0",
            "--log-format",
            "json",
            // The low-latency mode, and workers without a prepared context: the answers are
            // the same.
            "--low-latency",
            "5ms",
            "--no-prewarm",
        ],
        &load,
        &exec,
    );
    let addr = listening_on(&mut stdout, "http");
    let grpc = listening_on(&mut stdout, "grpc");
    assert!(
        std::net::TcpStream::connect(&grpc).is_ok(),
        "gRPC listens on {grpc}"
    );
    let code = serde_json::json!({"version_string": "v1", "js": MULTI_JS}).to_string();
    let r = http(&addr, "/v1/code", "exec-secret", &code);
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = http(&addr, "/v1/code", "load-secret", &code);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let run = r#"{"version_string":"v1","handler_name":"Handler","input":["\"hi\""]}"#;
    let r = http(&addr, "/v1/execute", "exec-secret", run);
    let rid = r
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no request id in {r}"))
        .trim()
        .to_string();
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains(r#""resp":"\"hi\"""#),
        "{r}"
    );
    // roma bench --target measures the running server over both APIs with the same report.
    let bench = |target: &str, extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "bench",
            "--target",
            target,
            "--load-token-file",
            &load,
            "--execute-token-file",
            &exec,
            "--requests",
            "40",
            "--json",
        ];
        args.extend(extra);
        serde_json::from_str(roma(&args).ok()).unwrap()
    };
    for target in [format!("http://{addr}"), format!("grpc://{grpc}")] {
        let report = bench(&target, &["--concurrency", "2"]);
        assert_eq!(report["requests"], 40, "{target}: {report}");
        assert_eq!(report["errors"], 0, "{target}: {report}");
        assert!(
            report["latency_ms"]["p50"].as_f64().unwrap() > 0.0,
            "{report}"
        );
        assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
        // --health: the same loop over the health check, which runs no code (no hop metrics).
        let health = bench(&target, &["--health"]);
        assert_eq!(health["requests"], 40, "{target}: {health}");
        assert_eq!(health["errors"], 0, "{target}: {health}");
        assert!(
            !report["hops_p50_ms"].as_object().unwrap().is_empty(),
            "{report}"
        );
        assert!(
            health["hops_p50_ms"].as_object().unwrap().is_empty(),
            "{health}"
        );
    }
    roma(&["bench", "--health"]).usage_error("--target");
    let out = roma(&[
        "bench",
        "--target",
        &format!("http://{addr}"),
        "--load-token-file",
        &exec,
        "--execute-token-file",
        &exec,
        "--requests",
        "1",
    ]);
    assert!(out.failed().contains("401"), "{}", out.failed());
    let err = drained(&mut child);
    // --log-format json: one object a line, and the execution's line names its request id.
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["request_id"] == rid.as_str()
                && l["fields"]["endpoint"] == "execute"),
        "no log line for {rid}: {err}"
    );
}

#[test]
fn serve_answers_while_its_stderr_is_not_read_and_escapes_console_lines() {
    let dir = scratch("serve_stderr");
    let load = write(&dir, "load.tok", "load-secret\n");
    let exec = write(&dir, "exec.tok", "exec-secret\n");
    // stderr is a pipe nobody reads until the end: it fills after 64 KiB.
    let (mut child, mut stdout) = spawn_serve(&[], &load, &exec);
    let addr = listening_on(&mut stdout, "http");
    let js = r#"function Log(n) {
        console.log("one\nforged: line");
        for (let i = 0; i < 4; i++) console.log("x".repeat(16000));
        return n;
    }"#;
    let code = serde_json::json!({"version_string": "v1", "js": js}).to_string();
    let r = http(&addr, "/v1/code", "load-secret", &code);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // About 6 MiB of console output: every request is answered regardless.
    let run = r#"{"version_string":"v1","handler_name":"Log","input":["7"]}"#;
    for i in 0..100 {
        let r = http(&addr, "/v1/execute", "exec-secret", run);
        assert!(
            r.starts_with("HTTP/1.1 200") && r.contains(r#""resp":"7""#),
            "{i}: {r}"
        );
    }
    let err = drained(&mut child);
    assert!(
        err.contains("log lines dropped: stderr was not read fast enough"),
        "{}",
        &err[..err.len().min(2000)]
    );
    // A line break in the code's output cannot start a log line of its own.
    assert!(
        err.lines()
            .any(|l| l.contains("console=one") && l.ends_with("forged: line")),
        "{}",
        &err[..err.len().min(2000)]
    );
    assert!(!err.lines().any(|l| l.starts_with("forged")));
}

// ---------------------------------------------------------------- tenant pools and cgroups

#[test]
fn tenant_pools_are_a_flag_of_run_and_bench() {
    let run = roma(&[
        "run",
        "examples/hello.js",
        "--input",
        r#""Foobar""#,
        "--tenant-pools",
        "2",
        "--max-tenants",
        "1",
    ]);
    assert_eq!(run.ok(), format!("{HELLO_FOOBAR}\n"));
    // The bench's one tenant gets its own two workers; every request is served.
    let run = roma(&[
        "bench",
        "--tenant-pools",
        "2",
        "--requests",
        "100",
        "--json",
    ]);
    let report: Value = serde_json::from_str(run.ok().trim()).expect("one JSON object");
    assert_eq!(report["workers"], 2, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    // Out of range, or without tenant pools: refused, naming the setting.
    let run = roma(&["run", "examples/hello.js", "--tenant-pools", "0"]);
    assert!(run.error().contains("tenant_pools"), "{run:#?}");
    roma(&["run", "examples/hello.js", "--max-tenants", "3"]).usage_error("--tenant-pools");
}

#[test]
fn a_cgroup_memory_limit_stops_a_hoarding_handler_or_says_why_it_cannot() {
    let js = script(
        "cgroup_hoard",
        "hoard.js",
        "function Handler() {\n\
           const kept = [];\n\
           for (;;) { const b = new Uint8Array(8 << 20); b.fill(1); kept.push(b); }\n\
         }",
    );
    let run = roma(&["run", &js, "--cgroup-memory-mb", "160"]);
    let line = run.error();
    if line.contains("cannot give workers cgroups") {
        eprintln!("NOTE: no writable cgroup on this host: {line}");
        return;
    }
    assert_says(
        line,
        "error: out_of_memory: ",
        "cgroup's memory limit (160 MiB)",
    );
    // The bench says which cgroups its workers ran in.
    let run = roma(&[
        "bench",
        "--workers",
        "1",
        "--requests",
        "20",
        "--cgroup-pids-max",
        "512",
        "--json",
    ]);
    let report: Value = serde_json::from_str(run.ok().trim()).expect("one JSON object");
    let which = report["cgroups"].as_str().unwrap_or_default();
    assert!(which.starts_with("cgroup v"), "{report}");
    assert_eq!(report["errors"], 0, "{report}");
}
