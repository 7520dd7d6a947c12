//! Timeouts and memory limits: the engine ends the call and stays usable.

use crate::common::*;
use roma_core::ErrorKind;
use std::time::{Duration, Instant};

fn infinite_loop_times_out_and_engine_recovers() {
    let mut e = loaded("function H() { while (true) {} }\nfunction Ok() { return 'fine'; }");
    // The issue's bound is 100-300 ms; take the best of three runs on a noisy machine.
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let err = e
            .execute(&with_timeout(inv("v1", "H", &[]), 100), &mut |_, _| {})
            .unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(took >= Duration::from_millis(100), "{took:?}");
        best = best.min(took);
        assert_eq!(run_ok(&mut e, "v1", "Ok", &[]), r#""fine""#);
    }
    assert!(best < Duration::from_millis(300), "best {best:?}");
}

fn timeouts_in_promises_and_microtasks() {
    let mut e = loaded(
        "async function A() { await null; while (true) {} }\n\
         function M() { const loop = () => Promise.resolve().then(loop); loop(); return new Promise(() => {}); }\n\
         function G() { return { get x() { while (true) {} } }; }",
    );
    for h in ["A", "M", "G"] {
        let err = e
            .execute(&with_timeout(inv("v1", h, &[]), 100), &mut |_, _| {})
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{h}: {err}");
    }
}

fn top_level_infinite_loop_fails_the_load_within_the_timeout() {
    let mut e = engine_with(|l| l.default_timeout = Duration::from_millis(200));
    let start = Instant::now();
    load_err(&mut e, "while (true) {}", ErrorKind::Timeout);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    e.load(&js("v1", HELLO)).unwrap();
    assert_eq!(
        run_ok(&mut e, "v1", "Handler", &["1"]),
        r#""Hello world! 1""#
    );
}

/// A top-level timeout leaves the watchdog re-terminating the snapshot creator's isolate every
/// few milliseconds until the engine disarms it; the creator (and its isolate) may only be
/// deleted after that. Many timed-out loads in a row give a use after free every chance to show
/// (it crashed a jailed worker once: a corrupt mutex inside V8).
fn repeated_top_level_timeouts_never_touch_a_disposed_isolate() {
    let mut e = engine_with(|l| l.default_timeout = Duration::from_millis(20));
    for i in 0..100 {
        let err = e
            .load(&js(&format!("loop{i}"), "let x = 0; while (true) { x++; }"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "load {i}: {err}");
    }
    e.load(&js("v1", HELLO)).unwrap();
    assert_eq!(
        run_ok(&mut e, "v1", "Handler", &["1"]),
        r#""Hello world! 1""#
    );
}

fn heap_exhaustion_is_out_of_memory_and_the_engine_recovers() {
    let mut e = loaded_with(
        |l| {
            l.initial_heap_mb = 1;
            l.max_heap_mb = 15;
        },
        "var kept = 'loaded';\n\
         function Bomb() { const a = []; for (let i = 0; i < 1024; i++) a.push(new Array(1024 * 128).fill(i)); return a.length; }\n\
         function Ok() { return kept; }",
    );
    // Twice: the rebuilt isolate has the same limit.
    for _ in 0..2 {
        run_err(&mut e, "v1", "Bomb", &[], ErrorKind::OutOfMemory);
        assert_eq!(run_ok(&mut e, "v1", "Ok", &[]), r#""loaded""#);
    }
}

fn array_buffers_and_strings_past_the_cap() {
    let mut e = loaded_with(
        |l| {
            l.max_heap_mb = 15;
            l.max_array_buffer_mb = 64;
        },
        "function Buf() { const k = []; for (let i = 0; i < 100; i++) k.push(new ArrayBuffer(16 << 20)); return k.length; }\n\
         function Str() { return 'x'.repeat(1 << 30).length; }\nfunction Ok() { return 1; }",
    );
    run_err(&mut e, "v1", "Buf", &[], ErrorKind::OutOfMemory);
    assert_eq!(run_ok(&mut e, "v1", "Ok", &[]), "1");
    // V8 refuses strings this long up front: a RangeError, not a crash.
    let s = run(&mut e, "v1", "Str", &[]).unwrap_err();
    assert!(
        matches!(s.kind(), ErrorKind::Execution | ErrorKind::OutOfMemory),
        "{s}"
    );
    assert_eq!(run_ok(&mut e, "v1", "Ok", &[]), "1");
}

fn deep_recursion_is_an_execution_error() {
    let mut e = loaded("function R(n) { return R(n + 1) + 1; }\nfunction Ok() { return 2; }");
    let err = run_err(&mut e, "v1", "R", &["0"], ErrorKind::Execution);
    assert!(
        err.message().contains("Maximum call stack size exceeded"),
        "{err}"
    );
    assert_eq!(run_ok(&mut e, "v1", "Ok", &[]), "2");
}

fn timeout_tag_style_durations() {
    let req: roma_core::InvocationRequest = roma_core::InvocationRequest {
        version_string: "v1".into(),
        handler_name: "H".into(),
        tags: [(
            roma_core::TIMEOUT_DURATION_TAG.to_string(),
            "150ms".to_string(),
        )]
        .into(),
        ..Default::default()
    };
    let i = req.to_invocation(Duration::from_secs(5)).unwrap();
    assert_eq!(i.timeout, Duration::from_millis(150));
    let mut e = loaded("function H() { for (;;) {} }");
    let start = Instant::now();
    assert_eq!(
        e.execute(&i, &mut |_, _| {}).unwrap_err().kind(),
        ErrorKind::Timeout
    );
    assert!(start.elapsed() >= Duration::from_millis(150));
}

/// The tests of this module, by name.
pub const TESTS: &[(&str, fn())] = &[
    (
        "limits::infinite_loop_times_out_and_engine_recovers",
        infinite_loop_times_out_and_engine_recovers,
    ),
    (
        "limits::timeouts_in_promises_and_microtasks",
        timeouts_in_promises_and_microtasks,
    ),
    (
        "limits::top_level_infinite_loop_fails_the_load_within_the_timeout",
        top_level_infinite_loop_fails_the_load_within_the_timeout,
    ),
    (
        "limits::repeated_top_level_timeouts_never_touch_a_disposed_isolate",
        repeated_top_level_timeouts_never_touch_a_disposed_isolate,
    ),
    (
        "limits::heap_exhaustion_is_out_of_memory_and_the_engine_recovers",
        heap_exhaustion_is_out_of_memory_and_the_engine_recovers,
    ),
    (
        "limits::array_buffers_and_strings_past_the_cap",
        array_buffers_and_strings_past_the_cap,
    ),
    (
        "limits::deep_recursion_is_an_execution_error",
        deep_recursion_is_an_execution_error,
    ),
    (
        "limits::timeout_tag_style_durations",
        timeout_tag_style_durations,
    ),
];
