//! Benchmark hooks: code that only benchmarks run, kept out of the shipped worker.
//!
//! Why it exists: the facade's criterion bench compares the service with raw V8 measured in the
//! same run, in the same kind of process (`node` carrying this library). That baseline has no
//! place in a jailed worker serving requests, so it is compiled only with the `bench-hooks`
//! feature, which `cargo xtask bench` turns on and nothing else does.

/// The benchmark baseline: raw V8 without roma (no channel, no jail, no watchdog): `n`
/// fresh-context calls of the hello-world handler, each `Context::New` from the version's
/// snapshot, `JSON.parse` of the input, the call and `JSON.stringify`. Returns the seconds
/// they took.
pub(crate) fn raw_baseline(n: usize) -> Result<f64, roma_core::RomaError> {
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
