//! Helpers shared by the engine tests.

use roma_core::{CodeObject, EngineLimits, Invocation, LogLevel, RomaError};
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
