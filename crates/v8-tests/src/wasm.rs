//! JS with WASM, and standalone WASM.

use crate::common::*;
use roma_core::{CodeObject, ErrorKind, WASM_ARRAY_NAME_TAG, WASM_RETURN_TYPE_TAG};
use roma_v8::VersionMode;

const ADD: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;

/// A module with roma's string ABI: `greet(desc) -> desc` prepends "Hello, "; `count(list) -> i32`.
pub const GREET: &str = r#"
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 16) "Hello, ")
  (func $alloc (export "roma_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.get $p))
  (func (export "greet") (param $d i32) (result i32)
    (local $src i32) (local $len i32) (local $out i32) (local $desc i32)
    (local.set $src (i32.load (local.get $d)))
    (local.set $len (i32.load offset=4 (local.get $d)))
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 7))))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 7))
    (memory.copy (i32.add (local.get $out) (i32.const 7)) (local.get $src) (local.get $len))
    (local.set $desc (call $alloc (i32.const 8)))
    (i32.store (local.get $desc) (local.get $out))
    (i32.store offset=4 (local.get $desc) (i32.add (local.get $len) (i32.const 7)))
    (local.get $desc))
  (func (export "count") (param $l i32) (result i32) (i32.load offset=4 (local.get $l)))
  (func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func (export "boom") (result i32) unreachable)
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "grow") (result i32) (memory.grow (i32.const 1000)))
)"#;

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid wat")
}

fn js_with_wasm(version: &str, src: &str, module: &str) -> CodeObject {
    let mut c = js(version, src);
    c.wasm_bin = wasm(module);
    c.tags
        .insert(WASM_ARRAY_NAME_TAG.into(), "addModule".into());
    c
}

fn js_with_wasm_add_returns_3_and_is_not_recompiled_per_call() {
    let mut e = engine();
    e.load(&js_with_wasm(
        "v1",
        "const instance = new WebAssembly.Instance(new WebAssembly.Module(addModule));\n\
         function Handler(a, b) { return instance.exports.add(a, b); }",
        ADD,
    ))
    .unwrap();
    assert_eq!(e.version_mode("v1"), Some(VersionMode::UnboundScript));
    for _ in 0..5 {
        assert_eq!(run_ok(&mut e, "v1", "Handler", &["1", "2"]), "3");
    }
    let (compiles, hits) = e.wasm_stats("v1").unwrap();
    assert_eq!(compiles, 1, "compiled once, at load");
    assert_eq!(
        hits, 6,
        "the load's check run and each of 5 calls got the precompiled module"
    );
}

fn js_with_wasm_async_instantiate() {
    let mut e = engine();
    e.load(&js_with_wasm(
        "v1",
        "async function Handler(a, b) { const { instance } = await WebAssembly.instantiate(addModule); return instance.exports.add(a, b); }",
        ADD,
    ))
    .unwrap();
    assert_eq!(run_ok(&mut e, "v1", "Handler", &["40", "2"]), "42");
}

fn js_with_bad_wasm_fails_the_load() {
    let mut e = engine();
    let mut c = js("v1", "function H() {}");
    c.wasm_bin = vec![0, 97, 115, 109, 9, 9, 9, 9];
    c.tags.insert(WASM_ARRAY_NAME_TAG.into(), "m".into());
    assert_eq!(e.load(&c).unwrap_err().kind(), ErrorKind::Compile);
}

fn top_level_webassembly_without_wasm_bin_falls_back_to_unbound_script() {
    let mut e = engine();
    let bytes = wasm(ADD);
    let src = format!(
        "const m = new WebAssembly.Module(new Uint8Array({bytes:?}));\nconst i = new WebAssembly.Instance(m);\n\
         function Handler(a, b) {{ return i.exports.add(a, b); }}"
    );
    e.load(&js("v1", &src)).unwrap();
    assert_eq!(e.version_mode("v1"), Some(VersionMode::UnboundScript));
    assert_eq!(run_ok(&mut e, "v1", "Handler", &["2", "5"]), "7");
}

fn webassembly_inside_a_snapshot_handler() {
    let mut e = engine();
    let bytes = wasm(ADD);
    let src = format!(
        "const bytes = new Uint8Array({bytes:?});\n\
         function Handler(a, b) {{ return new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.add(a, b); }}"
    );
    e.load(&js("v1", &src)).unwrap();
    assert_eq!(e.version_mode("v1"), Some(VersionMode::Snapshot));
    assert_eq!(run_ok(&mut e, "v1", "Handler", &["2", "5"]), "7");
}

fn a_caught_top_level_webassembly_probe_keeps_the_snapshot() {
    // The top level reads WebAssembly, which a snapshotting context lacks, and survives: the
    // version stays a snapshot, and the probe the shim put in WebAssembly's place is gone from
    // it (each call's context has the real WebAssembly).
    let mut e = loaded(
        "let seen; try { seen = typeof WebAssembly.Module; } catch (err) { seen = err.name; }\n\
         function Handler() { return [seen, typeof WebAssembly, Object.keys(globalThis).includes('WebAssembly')]; }",
    );
    assert_eq!(e.version_mode("v1"), Some(VersionMode::Snapshot));
    assert_eq!(
        run_ok(&mut e, "v1", "Handler", &[]),
        r#"["ReferenceError","object",false]"#
    );
}

fn a_top_level_failure_that_never_reads_webassembly_stays_a_compile_error() {
    let mut e = engine();
    load_err(
        &mut e,
        "throw new ReferenceError('WebAssembly is not defined');",
        ErrorKind::Compile,
    );
    assert!(!e.has_version("v1"));
}

/// A standalone WASM code object of version `version`, from the text `module`.
fn standalone_code(version: &str, module: &str) -> CodeObject {
    CodeObject {
        id: "w".into(),
        version_string: version.into(),
        wasm: wasm(module),
        ..Default::default()
    }
}

fn standalone(e: &mut roma_v8::Engine) {
    e.load(&standalone_code("w1", GREET)).unwrap();
    assert_eq!(e.version_mode("w1"), Some(VersionMode::Wasm));
}

fn standalone_wasm_string_in_string_out() {
    let mut e = engine();
    standalone(&mut e);
    for _ in 0..3 {
        assert_eq!(
            run_ok(&mut e, "w1", "greet", &[r#""roma""#]),
            r#""Hello, roma""#
        );
    }
    assert_eq!(
        run_ok(&mut e, "w1", "greet", &[r#""ünïcødé""#]),
        r#""Hello, ünïcødé""#
    );
    assert_eq!(e.wasm_stats("w1").unwrap().0, 1, "compiled once");
    let err = run_err(
        &mut e,
        "w1",
        "greeet",
        &[r#""roma""#],
        ErrorKind::HandlerNotFound,
    );
    assert!(
        err.message()
            .starts_with("export `greeet` not found in version w1; the module exports: "),
        "{err}"
    );
    assert!(err.message().contains("greet"), "{err}");
}

fn standalone_wasm_ints_and_lists() {
    let mut e = engine();
    standalone(&mut e);
    let mut i = inv("w1", "double", &["21"]);
    i.wasm_return_type = Some("i32".into());
    assert_eq!(e.execute(&i, &mut |_, _| {}).unwrap().resp, "42");
    let mut l = inv("w1", "count", &[r#"["a","b","c"]"#]);
    l.wasm_return_type = Some("i32".into());
    assert_eq!(e.execute(&l, &mut |_, _| {}).unwrap().resp, "3");
    let _ = WASM_RETURN_TYPE_TAG;
}

fn standalone_wasm_errors_are_typed() {
    let mut e = engine();
    standalone(&mut e);
    let missing = run_err(&mut e, "w1", "nope", &[], ErrorKind::HandlerNotFound);
    assert!(missing.message().contains("greet"), "{missing}");
    let trap = run_err(&mut e, "w1", "boom", &[], ErrorKind::Execution);
    assert!(trap.message().contains("unreachable"), "{trap}");
    assert!(
        trap.stack().is_some_and(|s| s.contains("wasm")),
        "{:?}",
        trap.stack()
    );
    run_err(
        &mut e,
        "w1",
        "greet",
        &[r#"{"an":"object"}"#],
        ErrorKind::BadInput,
    );
    let mut spin = with_timeout(inv("w1", "spin", &[]), 100);
    spin.wasm_return_type = Some("i32".into());
    assert_eq!(
        e.execute(&spin, &mut |_, _| {}).unwrap_err().kind(),
        ErrorKind::Timeout
    );
    assert_eq!(
        run_ok(&mut e, "w1", "greet", &[r#""again""#]),
        r#""Hello, again""#
    );
}

fn invalid_standalone_module_fails_the_load() {
    let mut e = engine();
    let c = CodeObject {
        version_string: "w".into(),
        wasm: b"\0asm\x01\0\0\0garbage".to_vec(),
        ..Default::default()
    };
    assert_eq!(e.load(&c).unwrap_err().kind(), ErrorKind::Compile);
}

/// Console output works in every code kind: JS with WASM (console in the JS), and standalone
/// WASM through its `roma.log` import.
fn console_reaches_the_sink_from_js_with_wasm_and_from_standalone_wasm() {
    let mut e = engine();
    e.load(&js_with_wasm(
        "v1",
        "const instance = new WebAssembly.Instance(new WebAssembly.Module(addModule));\n\
         function Handler(a, b) { const r = instance.exports.add(a, b); console.warn('sum', r); return r; }",
        ADD,
    ))
    .unwrap();
    let (out, logs) = run_logged(&mut e, &inv("v1", "Handler", &["1", "2"]));
    assert_eq!(out.unwrap().resp, "3");
    assert_eq!(
        logs,
        vec![(roma_core::LogLevel::Warning, "sum 3".to_string())]
    );

    let logging = r#"
    (module
      (import "roma" "log" (func $log (param i32 i32 i32)))
      (memory (export "memory") 1)
      (data (i32.const 64) "from wasm")
      (func (export "roma_alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "Handler") (result i32)
        (call $log (i32.const 3) (i32.const 64) (i32.const 9))
        (i32.const 7)))"#;
    e.load(&standalone_code("w2", logging)).unwrap();
    let mut i = inv("w2", "Handler", &[]);
    i.wasm_return_type = Some("i32".into());
    let (out, logs) = run_logged(&mut e, &i);
    assert_eq!(out.unwrap().resp, "7");
    assert_eq!(
        logs,
        vec![(roma_core::LogLevel::Error, "from wasm".to_string())]
    );
}

/// A standalone module that imports what roma does not provide fails its load, naming the
/// import, instead of loading and failing every call.
fn a_standalone_module_with_an_unknown_import_fails_its_load() {
    let mut e = engine();
    let c = standalone_code(
        "w3",
        r#"(module (import "env" "fetch" (func (param i32))) (func (export "Handler") (result i32) (i32.const 1)))"#,
    );
    let err = e.load(&c).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Compile, "{err}");
    assert!(err.message().contains("env.fetch"), "{err}");
    assert!(!e.has_version("w3"));
}

/// The tests of this module, by name.
pub const TESTS: &[(&str, fn())] = &[
    (
        "wasm::js_with_wasm_add_returns_3_and_is_not_recompiled_per_call",
        js_with_wasm_add_returns_3_and_is_not_recompiled_per_call,
    ),
    (
        "wasm::js_with_wasm_async_instantiate",
        js_with_wasm_async_instantiate,
    ),
    (
        "wasm::js_with_bad_wasm_fails_the_load",
        js_with_bad_wasm_fails_the_load,
    ),
    (
        "wasm::top_level_webassembly_without_wasm_bin_falls_back_to_unbound_script",
        top_level_webassembly_without_wasm_bin_falls_back_to_unbound_script,
    ),
    (
        "wasm::webassembly_inside_a_snapshot_handler",
        webassembly_inside_a_snapshot_handler,
    ),
    (
        "wasm::a_caught_top_level_webassembly_probe_keeps_the_snapshot",
        a_caught_top_level_webassembly_probe_keeps_the_snapshot,
    ),
    (
        "wasm::a_top_level_failure_that_never_reads_webassembly_stays_a_compile_error",
        a_top_level_failure_that_never_reads_webassembly_stays_a_compile_error,
    ),
    (
        "wasm::standalone_wasm_string_in_string_out",
        standalone_wasm_string_in_string_out,
    ),
    (
        "wasm::standalone_wasm_ints_and_lists",
        standalone_wasm_ints_and_lists,
    ),
    (
        "wasm::standalone_wasm_errors_are_typed",
        standalone_wasm_errors_are_typed,
    ),
    (
        "wasm::invalid_standalone_module_fails_the_load",
        invalid_standalone_module_fails_the_load,
    ),
    (
        "wasm::console_reaches_the_sink_from_js_with_wasm_and_from_standalone_wasm",
        console_reaches_the_sink_from_js_with_wasm_and_from_standalone_wasm,
    ),
    (
        "wasm::a_standalone_module_with_an_unknown_import_fails_its_load",
        a_standalone_module_with_an_unknown_import_fails_its_load,
    ),
];
