//! The `roma-worker` binary: started by the host (through a sandbox backend), never by hand.
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    // Asked by the host before it starts workers: the libnode folder to mount into the jail.
    if args.first().is_some_and(|a| a == "--print-libdir") {
        println!("{}", roma_worker::V8_LIBDIR);
        return ExitCode::SUCCESS;
    }
    // Benchmarks only (`roma bench --raw`, the facade's criterion bench): raw V8 in this
    // process, `Context::New` from the version's snapshot plus the call, N times.
    if args.first().is_some_and(|a| a == "--raw-baseline") {
        let n = args
            .get(1)
            .and_then(|a| a.to_str())
            .and_then(|a| a.parse().ok())
            .unwrap_or(1000);
        return match roma_worker::raw_baseline(n) {
            Ok(secs) => {
                println!("{secs}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("roma-worker: {e}");
                ExitCode::from(roma_worker::EXIT_FAILED)
            }
        };
    }
    match roma_worker::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roma-worker: {e}");
            ExitCode::from(roma_worker::EXIT_FAILED)
        }
    }
}
