//! The roma worker: the shared library that the `node` executable of the pinned Node.js build
//! carries (`LD_PRELOAD`), making that process a roma worker.
//!
//! V8 14.6 lives inside `node` and cannot be linked into a program of roma's own, so the worker
//! is this library (`libroma_worker.so`) running inside `node`: [`roma_v8::node_main!`] makes
//! the process run [`main`] in place of node's (node's static initialisers run, its runtime never
//! starts). The host starts it through its sandbox backend as `node` with this library
//! preloaded; the jail exposes both read-only.
//!
//! One worker hosts one V8 engine and serves the host over the channel it inherits: loads,
//! executions and the nested messages of binding calls. It installs its seccomp allow-list after
//! V8 has initialised and before it accepts any code, and exits when the channel closes (end of
//! file means the host is gone).
//!
//! # Order of a worker's life
//! 1. [`roma_sandbox::enter_jail_from_args`], while the process is single-threaded: the launcher
//!    stage builds the jail and re-executes this binary inside it; the jailed stage applies the
//!    rlimits and hands back the worker's own arguments.
//! 2. The channel is rebuilt from the inherited descriptors ([`roma_ipc::WorkerLink`]).
//! 3. The host's `Init` configures the engine (limits, V8 flags); V8 starts its threads.
//! 4. The seccomp filter goes on, for every thread at once. From here on the process cannot open
//!    files, make sockets or start processes.
//! 5. `Ready`, then one request at a time until the channel closes or `Shutdown` arrives.
//!
//! Cancellation arrives on a second socket that a thread of its own reads (see [`cancel`]),
//! because the main thread is inside V8 when a cancel matters.
#![deny(missing_docs)]

#[cfg(feature = "bench-hooks")]
mod bench_hooks;
pub mod cancel;
mod cancel_state;
#[cfg(debug_assertions)]
mod fault;
mod serve;

pub use serve::{WorkerError, run};

roma_v8::node_main!(main, roma_ipc::WORKER_PROCESS_NAME_C);

/// The worker process's `main`, run by `node` in place of its own.
///
/// - `--roma-build`: prints this worker's build id ([`roma_ipc::BUILD_ID`]), V8 version and
///   Node version, one a line; the host runs it before it starts workers, to refuse a worker
///   from another build and to fail early on a missing or broken `node`.
/// - `--raw-baseline N`: benchmarks only (the facade's criterion bench): raw V8 in this
///   process, N times. Only in a worker built with the `bench-hooks` feature (`cargo xtask
///   bench` builds it so); the shipped worker refuses it.
/// - anything else: [`run`], the jailed worker serving the host.
pub fn main() -> i32 {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == roma_ipc::BUILD_QUERY_ARG) {
        println!("{}", roma_ipc::BUILD_ID);
        println!("{}", roma_v8::v8_version());
        println!("{}", roma_v8::NODE_VERSION);
        return 0;
    }
    if args.first().is_some_and(|a| a == "--raw-baseline") {
        return raw_baseline_main(args.get(1).and_then(|a| a.to_str()));
    }
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("roma-worker: {e}");
            EXIT_FAILED.into()
        }
    }
}

/// `--raw-baseline N`: prints the seconds [`bench_hooks::raw_baseline`] took for `n` calls.
#[cfg(feature = "bench-hooks")]
fn raw_baseline_main(n: Option<&str>) -> i32 {
    let n = n.and_then(|a| a.parse().ok()).unwrap_or(1000);
    match bench_hooks::raw_baseline(n) {
        Ok(secs) => {
            println!("{secs}");
            0
        }
        Err(e) => {
            eprintln!("roma-worker: {e}");
            EXIT_FAILED.into()
        }
    }
}

/// Without the `bench-hooks` feature the benchmark baseline is not in this worker.
#[cfg(not(feature = "bench-hooks"))]
fn raw_baseline_main(_: Option<&str>) -> i32 {
    eprintln!(
        "roma-worker: --raw-baseline is a benchmark hook; this worker was built without the \
         bench-hooks feature (cargo xtask bench builds one with it)"
    );
    EXIT_FAILED.into()
}

/// Exit status of a worker that stopped on an error (the jail's own setup failures use
/// [`roma_sandbox::JAIL_SETUP_FAILED_EXIT_CODE`]).
pub const EXIT_FAILED: u8 = 70;
