//! The roma worker process.
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

pub mod cancel;
#[cfg(debug_assertions)]
mod fault;
mod serve;

pub use serve::{WorkerError, run};

/// Folder of the libnode this binary was linked against (empty when the system one was used),
/// recorded by the build script. The host asks for it (`--print-libdir`) to mount it read-only
/// into the jail.
pub const V8_LIBDIR: &str = env!("ROMA_V8_LIBDIR");

/// The benchmark baseline: raw V8 without roma (no channel, no jail, no watchdog): `n`
/// fresh-context calls of the hello-world handler, each `Context::New` from the version's
/// snapshot, `JSON.parse` of the input, the call and `JSON.stringify`. Returns the seconds
/// they took.
pub fn raw_baseline(n: usize) -> Result<f64, roma_core::RomaError> {
    let mut engine = roma_v8::Engine::new(roma_core::EngineLimits::default())?;
    let code = roma_core::CodeObject {
        id: "raw".into(),
        version_string: "raw".into(),
        js: r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#.into(),
        ..Default::default()
    };
    engine.load(&code)?;
    let call = |engine: &mut roma_v8::Engine| {
        engine
            .raw_baseline("raw", "Handler", r#""Foobar""#, roma_v8::Raw::FreshCall)
            .ok_or_else(|| roma_core::RomaError::internal("the raw baseline call failed"))
    };
    // Warm-up, as every measured system gets.
    for _ in 0..n.min(100) {
        call(&mut engine)?;
    }
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        call(&mut engine)?;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Exit status of a worker that stopped on an error (the jail's own setup failures use
/// [`roma_sandbox::JAIL_SETUP_FAILED_EXIT_CODE`]).
pub const EXIT_FAILED: u8 = 70;
