//! Helpers shared by the engine tests.

use roma_core::{CodeObject, EngineLimits, ErrorKind, Invocation, LogLevel, RomaError};
use roma_v8::{Engine, Execution};
use std::time::Duration;

pub const HELLO: &str =
    r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#;

pub fn engine() -> Engine {
    Engine::new(EngineLimits::default()).expect("engine starts")
}

pub fn engine_with(f: impl FnOnce(&mut EngineLimits)) -> Engine {
    let mut limits = EngineLimits::default();
    f(&mut limits);
    Engine::new(limits).expect("engine starts")
}

/// An engine with `src` loaded as version `v1`.
pub fn loaded(src: &str) -> Engine {
    loaded_with(|_| {}, src)
}

/// An engine with the limits `f` sets and `src` loaded as version `v1`.
pub fn loaded_with(f: impl FnOnce(&mut EngineLimits), src: &str) -> Engine {
    let mut e = engine_with(f);
    if let Err(err) = e.load(&js("v1", src)) {
        panic!("v1 does not load: {err}");
    }
    e
}

pub fn js(version: &str, src: &str) -> CodeObject {
    CodeObject {
        id: "test".into(),
        version_string: version.into(),
        js: src.into(),
        ..Default::default()
    }
}

pub fn inv(version: &str, handler: &str, input: &[&str]) -> Invocation {
    Invocation::new(
        version,
        handler,
        input.iter().map(|s| s.to_string()).collect(),
    )
}

pub fn run(
    e: &mut Engine,
    version: &str,
    handler: &str,
    input: &[&str],
) -> Result<Execution, RomaError> {
    e.execute(&inv(version, handler, input), &mut |_, _| {})
}

pub fn run_ok(e: &mut Engine, version: &str, handler: &str, input: &[&str]) -> String {
    match run(e, version, handler, input) {
        Ok(x) => x.resp,
        Err(err) => panic!("{handler} failed: {err} {:?}", err.stack()),
    }
}

/// The error of loading `src` as version `v1`, which must fail with `kind`.
pub fn load_err(e: &mut Engine, src: &str, kind: ErrorKind) -> RomaError {
    match e.load(&js("v1", src)) {
        Ok(_) => panic!("v1 loaded"),
        Err(err) => {
            assert_eq!(err.kind(), kind, "{err}");
            err
        }
    }
}

/// The error of a call that must fail with `kind`.
pub fn run_err(
    e: &mut Engine,
    version: &str,
    handler: &str,
    input: &[&str],
    kind: ErrorKind,
) -> RomaError {
    match run(e, version, handler, input) {
        Ok(x) => panic!("{handler} succeeded: {}", x.resp),
        Err(err) => {
            assert_eq!(err.kind(), kind, "{handler}: {err}");
            err
        }
    }
}

pub fn run_logged(
    e: &mut Engine,
    i: &Invocation,
) -> (Result<Execution, RomaError>, Vec<(LogLevel, String)>) {
    let mut logs = Vec::new();
    let r = e.execute(i, &mut |l, m| logs.push((l, m.to_string())));
    (r, logs)
}

pub fn with_timeout(mut i: Invocation, ms: u64) -> Invocation {
    i.timeout = Duration::from_millis(ms);
    i
}
