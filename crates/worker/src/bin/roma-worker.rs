//! The `roma-worker` binary: started by the host (through a sandbox backend), never by hand.
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    // Asked by the host before it starts workers: the libnode folder to mount into the jail.
    if args.first().is_some_and(|a| a == "--print-libdir") {
        println!("{}", roma_worker::V8_LIBDIR);
        return ExitCode::SUCCESS;
    }
    match roma_worker::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roma-worker: {e}");
            ExitCode::from(roma_worker::EXIT_FAILED)
        }
    }
}
