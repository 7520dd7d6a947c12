//! roma-v8's engine tests, as a shared library that runs inside `node`.
//!
//! Code that calls V8 runs only inside the pinned `node` executable (see `roma_v8::node_entry`),
//! so the tests cannot be an ordinary test binary. Their bodies are compiled into this library,
//! and `tests/engine.rs` (what `cargo test` runs) starts `node` with it preloaded, once per group
//! of tests that needs a process of its own (V8's flags are process-wide). The library's `main`
//! is a small harness with libtest's habits: name filters, `--exact`, `--list`, parallel
//! threads, one line per test, exit status 101 on a failure. `--bench` runs the criterion
//! engine benchmark instead (`benches/engine.rs`). Nothing here ships in the worker library.

mod bench;
mod common;
mod errors;
mod js;
mod limits;
mod spin;
mod versions;
mod wasm;
mod wasm_pages;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

roma_v8::node_main!(main, c"roma-v8-tests");

type Test = (&'static str, fn());

/// The tests of `group`, each group run in a process of its own.
fn group(name: &str) -> Option<Vec<Test>> {
    Some(match name {
        "engine" => [
            errors::TESTS,
            js::TESTS,
            limits::TESTS,
            versions::TESTS,
            wasm::TESTS,
        ]
        .concat(),
        "wasm_pages" => wasm_pages::TESTS.to_vec(),
        _ => return None,
    })
}

/// What the command line asks for.
#[derive(Debug, Default)]
struct Args {
    group: String,
    filters: Vec<String>,
    exact: bool,
    list: bool,
    threads: Option<usize>,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut out = Args {
        group: "engine".into(),
        ..Args::default()
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--group" => out.group = it.next().ok_or("--group needs a name")?,
            "--exact" => out.exact = true,
            "--list" => out.list = true,
            "--test-threads" => {
                let n = it.next().ok_or("--test-threads needs a number")?;
                out.threads = Some(n.parse().map_err(|_| format!("bad --test-threads {n}"))?);
            }
            // libtest options that change nothing here (output is never captured).
            "--nocapture" | "--show-output" | "--quiet" | "-q" | "--color" | "--format" => {
                if matches!(a.as_str(), "--color" | "--format") {
                    it.next();
                }
            }
            s if s.starts_with("--") => {}
            _ => out.filters.push(a),
        }
    }
    Ok(out)
}

fn main() -> i32 {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.iter().any(|a| a == "--bench") {
        bench::run();
        return 0;
    }
    let args = match parse(raw) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("roma-v8-tests: {e}");
            return 2;
        }
    };
    let Some(all) = group(&args.group) else {
        eprintln!("roma-v8-tests: no test group `{}`", args.group);
        return 2;
    };
    let selected: Vec<Test> = all
        .into_iter()
        .filter(|(name, _)| {
            args.filters.is_empty()
                || args.filters.iter().any(|f| {
                    if args.exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    if args.list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return 0;
    }
    run(&args.group, &selected, args.threads)
}

/// Runs `tests` on a few threads, each test's panic its failure; libtest-style report.
fn run(group: &str, tests: &[Test], threads: Option<usize>) -> i32 {
    println!(
        "\nrunning {} tests (group {group}, inside node)",
        tests.len()
    );
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .clamp(1, tests.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some((name, body)) = tests.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let ok = std::panic::catch_unwind(body).is_ok();
                    println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
                    if !ok {
                        failed.lock().unwrap_or_else(|p| p.into_inner()).push(*name);
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    let secs = started.elapsed().as_secs_f64();
    if failed.is_empty() {
        println!(
            "\ntest result: ok. {} passed; 0 failed; finished in {secs:.2}s\n",
            tests.len()
        );
        0
    } else {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
        println!(
            "\ntest result: FAILED. {} passed; {} failed; finished in {secs:.2}s\n",
            tests.len() - failed.len(),
            failed.len()
        );
        101
    }
}
