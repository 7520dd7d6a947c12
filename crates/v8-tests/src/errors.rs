//! Every error kind the engine can produce.

use crate::common::*;
use roma_core::{CodeObject, ErrorKind};

fn compile_error_has_message_and_line() {
    let mut e = engine();
    let err = load_err(
        &mut e,
        "function ok() {}\nfunction H( {",
        ErrorKind::Compile,
    );
    assert!(err.message().starts_with("line 2: SyntaxError"), "{err}");
    assert!(!e.has_version("v1"));
}

fn top_level_throw_fails_the_load() {
    let mut e = engine();
    let err = load_err(
        &mut e,
        "\n\nthrow new Error('boom at load');",
        ErrorKind::Compile,
    );
    assert!(
        err.message().contains("line 3") && err.message().contains("boom at load"),
        "{err}"
    );
}

fn handler_throw_is_execution_with_stack() {
    let mut e = loaded(
        "function inner() { throw new TypeError('bad thing'); }\nfunction Handler() { inner(); }",
    );
    let err = run_err(&mut e, "v1", "Handler", &[], ErrorKind::Execution);
    assert_eq!(err.message(), "Uncaught TypeError: bad thing");
    let stack = err.stack().expect("a stack");
    assert!(
        stack.contains("at inner") && stack.contains("at Handler"),
        "{stack}"
    );
}

fn non_error_throws_and_rejections() {
    let mut e = loaded(
        "function N() { throw 42; }\nfunction O() { throw {code: 7}; }\n\
         async function R() { throw new Error('rejected'); }\nfunction P() { return new Promise(() => {}); }",
    );
    assert_eq!(
        run(&mut e, "v1", "N", &[]).unwrap_err().message(),
        "Uncaught 42"
    );
    assert_eq!(
        run(&mut e, "v1", "O", &[]).unwrap_err().message(),
        r#"Uncaught {"code":7}"#
    );
    let r = run_err(&mut e, "v1", "R", &[], ErrorKind::Execution);
    assert_eq!(r.message(), "Uncaught (in promise) Error: rejected");
    let p = run_err(&mut e, "v1", "P", &[], ErrorKind::Execution);
    assert!(p.message().contains("never settles"), "{p}");
}

fn unserialisable_results() {
    let mut e =
        loaded("function C() { const a = {}; a.a = a; return a; }\nfunction B() { return 10n; }");
    run_err(&mut e, "v1", "C", &[], ErrorKind::Execution);
    run_err(&mut e, "v1", "B", &[], ErrorKind::Execution);
}

fn handler_not_found_names_what_exists() {
    let mut e = loaded("function Handler() {}\nvar notfn = 1;");
    let err = run_err(&mut e, "v1", "Handlr", &[], ErrorKind::HandlerNotFound);
    assert_eq!(
        err.message(),
        "handler `Handlr` not found in version v1; the code defines: Handler"
    );
    run_err(&mut e, "v1", "notfn", &[], ErrorKind::HandlerNotFound);
    run_err(&mut e, "v1", "a.b.c", &[], ErrorKind::HandlerNotFound);
}

fn bad_json_input() {
    let mut e = loaded("function H(x) { return x; }");
    let err = run_err(&mut e, "v1", "H", &["{not json"], ErrorKind::BadInput);
    assert!(
        err.message().starts_with("input 0 is not valid JSON"),
        "{err}"
    );
    assert_eq!(run_ok(&mut e, "v1", "H", &["1"]), "1");
}

fn version_not_found_and_invalid_arguments() {
    let mut e = engine();
    run_err(&mut e, "nope", "H", &[], ErrorKind::VersionNotFound);
    run_err(&mut e, "", "H", &[], ErrorKind::InvalidArgument);
    assert_eq!(
        e.load(&CodeObject::default()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let mut both = js("v1", "1");
    both.wasm = vec![0, 97, 115, 109];
    assert_eq!(
        e.load(&both).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

fn cancel_from_another_thread() {
    let mut e = loaded("function H() { while (true) {} }\nfunction Ok() { return 1; }");
    let t = e.terminator();
    let canceller = std::thread::spawn(move || {
        // Cancel the (tagged) request once it runs.
        for _ in 0..500 {
            if t.cancel(77) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        false
    });
    let err = e
        .execute_tagged(&inv("v1", "H", &[]), 77, &mut |_, _| {})
        .unwrap_err();
    assert!(canceller.join().unwrap());
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(run_ok(&mut e, "v1", "Ok", &[]), "1");
    // A cancel for a request that is not running does nothing.
    assert!(!e.terminator().cancel(77));
}

/// The tests of this module, by name.
pub const TESTS: &[(&str, fn())] = &[
    (
        "errors::compile_error_has_message_and_line",
        compile_error_has_message_and_line,
    ),
    (
        "errors::top_level_throw_fails_the_load",
        top_level_throw_fails_the_load,
    ),
    (
        "errors::handler_throw_is_execution_with_stack",
        handler_throw_is_execution_with_stack,
    ),
    (
        "errors::non_error_throws_and_rejections",
        non_error_throws_and_rejections,
    ),
    ("errors::unserialisable_results", unserialisable_results),
    (
        "errors::handler_not_found_names_what_exists",
        handler_not_found_names_what_exists,
    ),
    ("errors::bad_json_input", bad_json_input),
    (
        "errors::version_not_found_and_invalid_arguments",
        version_not_found_and_invalid_arguments,
    ),
    (
        "errors::cancel_from_another_thread",
        cancel_from_another_thread,
    ),
];
