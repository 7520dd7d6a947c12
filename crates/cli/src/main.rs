//! The `roma` command: run, batch, benchmark and check untrusted JavaScript and WebAssembly from
//! the shell, through `RomaService` with the sandbox on.

mod bench;
mod bench_remote;
mod check;
mod code;
mod console;
#[cfg(feature = "serve")]
mod log_queue;
mod machine;
mod run;
mod serve;
mod service;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "roma",
    about = "Run untrusted JavaScript and WebAssembly, sandboxed",
    disable_version_flag = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Print roma's version and the V8 and Node versions its workers run.
    #[arg(short = 'V', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a handler of a .js or .wasm file once, or once per line of a batch file.
    Run(run::RunArgs),
    /// Measure latency and throughput of a handler (the built-in hello world by default).
    Bench(bench::BenchArgs),
    /// Start a worker in the sandbox and report which protections hold on this machine.
    Check(check::CheckArgs),
    /// Serve roma over HTTP/JSON and gRPC: load code and run it from any language.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        _ if cli.version => {
            print_version();
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Run(a)) => run::run(a),
        Some(Command::Bench(a)) => bench::bench(a),
        Some(Command::Check(a)) => check::check(a),
        Some(Command::Serve(a)) => serve::serve(a),
        None => Ok(ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The error of a subcommand that needs the network service this binary was built without
/// (`--no-default-features`).
#[cfg(not(feature = "serve"))]
fn without_serve(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} needs roma-cli's `serve` cargo feature, which this binary was built without \
         (build it with the default features, or with --features serve)"
    )
}

/// `roma --version`: this binary's version, then what the worker it would start reports.
fn print_version() {
    println!("roma {}", env!("CARGO_PKG_VERSION"));
    println!("{}", engine_versions());
}

/// "V8 <version>, Node <version>" of the worker this binary would start, or why it cannot tell.
pub fn engine_versions() -> String {
    match roma::worker_versions(None, None) {
        Ok((v8, node)) => format!("V8 {v8}, Node {node} (the worker's)"),
        Err(e) => format!("V8 and Node: unknown ({})", e.message()),
    }
}
