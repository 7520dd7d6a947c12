//! Hello world through the engine, beside raw V8 doing the same work, in one run (`cargo bench
//! -p roma-v8-tests`; it runs inside `node` like the tests).
//!
//! - `raw_v8/context_new`: `Context::New` from the version's snapshot, nothing else.
//! - `raw_v8/fresh_call`: `Context::New` + JSON.parse + call + JSON.stringify (bare V8).
//! - `raw_v8/reused_call`: the same call in one kept context.
//! - `engine/fresh_context_execute`: `Engine::execute` (fresh context, watchdog, console,
//!   errors): the issue asks it to stay within 10% of `raw_v8/fresh_call`.
//! - `engine/prewarmed_execute`: `Engine::execute` after `Engine::prewarm` (context made while
//!   idle, outside the timed part).

use criterion::{Criterion, criterion_group};
use roma_core::{CodeObject, EngineLimits, Invocation};
use roma_v8::{Engine, Raw};
use std::hint::black_box;
use std::time::{Duration, Instant};

const HELLO: &str =
    r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#;

fn engine() -> Engine {
    let mut e = Engine::new(EngineLimits::default()).expect("engine");
    e.load(&CodeObject {
        version_string: "v1".into(),
        js: HELLO.into(),
        ..Default::default()
    })
    .expect("load");
    e
}

fn bench(c: &mut Criterion) {
    let mut e = engine();
    let inv = Invocation::new("v1", "Handler", vec![r#""Foobar""#.into()]);
    assert_eq!(
        e.execute(&inv, &mut |_, _| {}).unwrap().resp,
        r#""Hello world! \"Foobar\"""#
    );
    assert!(
        e.raw_baseline("v1", "Handler", r#""Foobar""#, Raw::FreshCall)
            .is_some()
    );

    let mut g = c.benchmark_group("raw_v8");
    g.bench_function("context_new", |b| {
        b.iter(|| black_box(e.raw_baseline("v1", "Handler", "", Raw::ContextOnly)))
    });
    g.bench_function("fresh_call", |b| {
        b.iter(|| black_box(e.raw_baseline("v1", "Handler", r#""Foobar""#, Raw::FreshCall)))
    });
    g.bench_function("reused_call", |b| {
        b.iter(|| black_box(e.raw_baseline("v1", "Handler", r#""Foobar""#, Raw::ReusedCall)))
    });
    g.finish();

    let mut g = c.benchmark_group("engine");
    g.bench_function("fresh_context_execute", |b| {
        b.iter(|| black_box(e.execute(&inv, &mut |_, _| {}).is_ok()))
    });
    // The cost of a profile when a request asks for one; `fresh_context_execute` beside
    // `raw_v8/fresh_call` is the cost of the feature when off.
    let mut profiled = inv.clone();
    profiled.profile = true;
    g.bench_function("profiled_execute", |b| {
        b.iter(|| black_box(e.execute(&profiled, &mut |_, _| {}).is_ok()))
    });
    g.bench_function("prewarmed_execute", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                e.prewarm(1);
                let t = Instant::now();
                black_box(e.execute(&inv, &mut |_, _| {}).is_ok());
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}

/// `criterion_main!` as a function: the bench runs inside `node`, started by `benches/engine.rs`.
pub fn run() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
