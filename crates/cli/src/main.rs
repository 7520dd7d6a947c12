//! The `roma` command: run, batch, benchmark and check untrusted JavaScript and WebAssembly from
//! the shell, through `RomaService` with the sandbox on.

mod bench;
mod check;
mod code;
mod console;
mod run;
mod service;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "roma",
    version,
    about = "Run untrusted JavaScript and WebAssembly, sandboxed"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a handler of a .js or .wasm file once, or once per line of a batch file.
    Run(run::RunArgs),
    /// Measure latency and throughput of a handler (the built-in hello world by default).
    Bench(bench::BenchArgs),
    /// Start a worker in the sandbox and report which protections hold on this machine.
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Bench(a) => bench::bench(a),
        Command::Check(a) => check::check(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
