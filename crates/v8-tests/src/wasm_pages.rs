//! The WASM memory page cap: a process-wide V8 flag, hence run in a `node` process of its own
//! (the `wasm_pages` group).

use roma_core::{CodeObject, EngineLimits, ErrorKind, Invocation};

fn memory_growth_past_the_page_cap_fails() {
    let limits = EngineLimits {
        max_wasm_memory_pages: 16,
        ..Default::default()
    };
    let mut e = roma_v8::Engine::new(limits).unwrap();
    let m = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
    )
    .unwrap();
    e.load(&CodeObject {
        version_string: "w".into(),
        wasm: m,
        ..Default::default()
    })
    .unwrap();
    let mut grow = |pages: &str| {
        let mut i = Invocation::new("w", "grow", vec![pages.into()]);
        i.wasm_return_type = Some("i32".into());
        e.execute(&i, &mut |_, _| {}).map(|x| x.resp)
    };
    // memory.grow returns the old size in pages, or -1 when refused.
    assert_eq!(grow("10").unwrap(), "1");
    assert_eq!(grow("100").unwrap(), "-1");
    // JS cannot make a bigger memory either.
    let mut e2 = roma_v8::Engine::new(EngineLimits {
        max_wasm_memory_pages: 16,
        ..Default::default()
    })
    .unwrap();
    e2.load(&CodeObject {
        version_string: "j".into(),
        js: "function H() { try { new WebAssembly.Memory({initial: 17}); return 'made'; } catch (e) { return e.constructor.name; } }".into(),
        ..Default::default()
    })
    .unwrap();
    let r = e2
        .execute(&Invocation::new("j", "H", vec![]), &mut |_, _| {})
        .unwrap()
        .resp;
    assert_eq!(r, r#""RangeError""#);
    // Different flags in the same process are refused, clearly.
    let err = roma_v8::Engine::new(EngineLimits {
        max_wasm_memory_pages: 32,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// The tests of this module, by name.
pub const TESTS: &[(&str, fn())] = &[(
    "wasm_pages::memory_growth_past_the_page_cap_fails",
    memory_growth_past_the_page_cap_fails,
)];
