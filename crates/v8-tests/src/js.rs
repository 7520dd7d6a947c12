//! Plain JS: results, fresh contexts, async, dotted handlers, byte strings, console.

use crate::common::*;
use crate::spin::{SPIN, profile_functions};
use roma_core::LogLevel;

fn hello_world() {
    let mut e = loaded(HELLO);
    assert_eq!(
        run_ok(&mut e, "v1", "Handler", &[r#""Foobar""#]),
        r#""Hello world! \"Foobar\"""#
    );
}

fn globals_do_not_survive_between_calls() {
    let mut e = loaded(
        "var counter = 10; const list = [1];\n\
         function Handler() { counter++; list.push(2); globalThis.leak = 'x';\n\
           Object.prototype.polluted = true; return [counter, list.length, typeof leak]; }\n\
         function Check() { return [counter, list.length, typeof leak, ({}).polluted === undefined]; }",
    );
    for _ in 0..3 {
        assert_eq!(run_ok(&mut e, "v1", "Handler", &[]), r#"[11,2,"string"]"#);
    }
    assert_eq!(
        run_ok(&mut e, "v1", "Check", &[]),
        r#"[10,1,"undefined",true]"#
    );
}

fn inputs_are_json_and_missing_are_undefined() {
    let mut e = loaded("function H(a, b, c) { return [typeof a, a, b, typeof c]; }");
    assert_eq!(
        run_ok(&mut e, "v1", "H", &[r#"{"x":1}"#, "[1,2]"]),
        r#"["object",{"x":1},[1,2],"undefined"]"#
    );
    assert_eq!(
        run_ok(&mut e, "v1", "H", &["", "3"]),
        r#"["undefined",null,3,"undefined"]"#
    );
}

fn undefined_result_is_roma_text() {
    let mut e = loaded("function H() {}");
    assert_eq!(run_ok(&mut e, "v1", "H", &[]), "undefined");
}

fn async_handlers_are_awaited() {
    let mut e = loaded(
        "async function H(x) { const a = await Promise.resolve(x); const b = await new Promise(r => r(2)); return a + b; }\n\
         function Then(x) { return Promise.resolve(x).then(v => v * 10); }",
    );
    assert_eq!(run_ok(&mut e, "v1", "H", &["40"]), "42");
    assert_eq!(run_ok(&mut e, "v1", "Then", &["4"]), "40");
}

fn dotted_handlers() {
    let mut e = loaded(
        "var foo = { bar: { Handler(x) { return 'deep ' + x + ' ' + (this === foo.bar); } } };\n\
         class K { static m() { return 'static'; } }\n globalThis.K = K;",
    );
    assert_eq!(
        run_ok(&mut e, "v1", "foo.bar.Handler", &["1"]),
        r#""deep 1 true""#
    );
    assert_eq!(run_ok(&mut e, "v1", "K.m", &[]), r#""static""#);
}

fn byte_string_mode() {
    let mut e = loaded("function H(s) { return s.length + ':' + s; }\nfunction N(s) { return 1; }");
    let mut i = inv("v1", "H", &["not json {"]);
    i.treat_input_as_byte_str = true;
    assert_eq!(e.execute(&i, &mut |_, _| {}).unwrap().resp, "10:not json {");
    i.handler_name = "N".into();
    let err = e.execute(&i, &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), roma_core::ErrorKind::Execution);
    assert!(err.message().contains("must return a string"), "{err}");
}

fn console_levels_and_min_level_filter() {
    let mut e = loaded(
        "function H() { console.debug('d'); console.log('l', 1, {a: 2}); console.info('i');\n\
         console.warn('w'); console.error('e'); return typeof performance.now(); }",
    );
    let mut i = inv("v1", "H", &[]);
    i.min_log_level = LogLevel::Debug;
    let (r, logs) = run_logged(&mut e, &i);
    assert_eq!(r.unwrap().resp, r#""number""#);
    assert_eq!(
        logs,
        vec![
            (LogLevel::Debug, "d".to_string()),
            (LogLevel::Info, r#"l 1 {"a":2}"#.to_string()),
            (LogLevel::Info, "i".to_string()),
            (LogLevel::Warning, "w".to_string()),
            (LogLevel::Error, "e".to_string()),
        ]
    );
    i.min_log_level = LogLevel::Warning;
    let (_, logs) = run_logged(&mut e, &i);
    assert_eq!(
        logs.iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![LogLevel::Warning, LogLevel::Error]
    );
}

fn performance_now_advances() {
    let mut e = loaded(
        "function H() { const a = performance.now(); let x = 0; for (let i = 0; i < 3e6; i++) x += i; return performance.now() >= a && a >= 0; }",
    );
    assert_eq!(run_ok(&mut e, "v1", "H", &[]), "true");
}

fn prewarmed_context_is_fresh() {
    let mut e = loaded("var n = 0; function H() { return ++n; }");
    assert_eq!(e.prewarm(4), 1);
    let first = run(&mut e, "v1", "H", &[]).unwrap();
    assert!(first.prewarmed);
    assert_eq!(first.resp, "1");
    e.prewarm(4);
    assert_eq!(run_ok(&mut e, "v1", "H", &[]), "1");
    let cold = run(&mut e, "v1", "H", &[]).unwrap();
    assert!(!cold.prewarmed);
    assert_eq!(cold.resp, "1");
}

/// The function names of the profile of a profiled `SpinHandler` call that sampled
/// `busyLoop`. The sampler is a thread of its own: on a loaded machine it may not run during
/// one call's 30 ms, so up to five calls are made; a profiler that never samples the spin
/// fails all five.
fn spin_profile(e: &mut roma_v8::Engine, version: &str) -> Vec<String> {
    let mut i = inv(version, "SpinHandler", &[]);
    i.profile = true;
    let mut names = Vec::new();
    for _ in 0..5 {
        let x = e.execute(&i, &mut |_, _| {}).unwrap();
        assert_eq!(x.resp, "true");
        assert!(x.profile.len() <= roma_core::MAX_PROFILE_BYTES);
        names = profile_functions(&x.profile);
        if names.iter().any(|n| n == "busyLoop") {
            return names;
        }
    }
    panic!("five profiled calls sampled no busyLoop: {names:?}");
}

fn profiled_call_names_the_handler() {
    let mut e = loaded(SPIN);
    let names = spin_profile(&mut e, "v1");
    assert!(names.iter().any(|n| n == "SpinHandler"), "{names:?}");
    // The next call without the flag carries no profile: no profiler outlives its call.
    let plain = run(&mut e, "v1", "SpinHandler", &[]).unwrap();
    assert_eq!(plain.profile, "");
}

fn profiled_call_that_throws_still_profiles() {
    let mut e = engine();
    e.load(&js(
        "v1",
        &format!("{SPIN}\nfunction Thrower() {{ busyLoop(10); throw new Error('boom'); }}"),
    ))
    .unwrap();
    let mut i = inv("v1", "Thrower", &[]);
    i.profile = true;
    assert!(e.execute(&i, &mut |_, _| {}).is_err());
    // The engine is still usable, profiled or not, after a profiled failure.
    spin_profile(&mut e, "v1");
}

/// The tests of this module, by name.
pub const TESTS: &[(&str, fn())] = &[
    (
        "js::profiled_call_names_the_handler",
        profiled_call_names_the_handler,
    ),
    (
        "js::profiled_call_that_throws_still_profiles",
        profiled_call_that_throws_still_profiles,
    ),
    ("js::hello_world", hello_world),
    (
        "js::globals_do_not_survive_between_calls",
        globals_do_not_survive_between_calls,
    ),
    (
        "js::inputs_are_json_and_missing_are_undefined",
        inputs_are_json_and_missing_are_undefined,
    ),
    (
        "js::undefined_result_is_roma_text",
        undefined_result_is_roma_text,
    ),
    ("js::async_handlers_are_awaited", async_handlers_are_awaited),
    ("js::dotted_handlers", dotted_handlers),
    ("js::byte_string_mode", byte_string_mode),
    (
        "js::console_levels_and_min_level_filter",
        console_levels_and_min_level_filter,
    ),
    ("js::performance_now_advances", performance_now_advances),
    ("js::prewarmed_context_is_fresh", prewarmed_context_is_fresh),
];
