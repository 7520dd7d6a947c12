// Writes `roma_abi.h`, the shim's declarations of what crosses the C++/Rust line, from the Rust
// definitions: `abi` (src/abi.rs: result codes, version kinds, records) and roma-udf's `wire`
// (the host-function argument and reply kinds) and roma-core's worker OOM exit status. The build script writes it for the shim it
// compiles; `cargo xtask shim-check` writes it for its stricter compile. Both include this file
// beside `#[path = ".../src/abi.rs"] mod abi;`.

/// The text of `roma_abi.h`.
pub(crate) fn abi_header() -> String {
    use abi::CRecord;
    use roma_udf::wire::{ArgKind, ReplyKind};
    use std::fmt::Write;

    let mut h = String::from(
        "// roma_abi.h: generated from crates/v8/src/abi.rs and roma-udf's wire kinds by\n\
         // crates/v8/abi_header.rs. Do not edit: change the Rust definitions.\n\
         #pragma once\n\n#include <cstddef>\n#include <cstdint>\n\n",
    );
    fn put_enum(h: &mut String, name: &str, c_type: &str, prefix: &str, values: &[(String, i64)]) {
        let _ = writeln!(h, "enum {name} : {c_type} {{");
        for (n, v) in values {
            let _ = writeln!(h, "  {prefix}{n} = {v},");
        }
        h.push_str("};\n\n");
    }
    for e in [abi::code::C_ENUM, abi::kind::C_ENUM] {
        let values: Vec<(String, i64)> =
            e.values.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        put_enum(&mut h, e.name, e.c_type, e.prefix, &values);
    }
    h.push_str("// The kind byte that opens a host function's argument (shim to Rust).\n");
    let args: Vec<(String, i64)> = ArgKind::ALL
        .iter()
        .map(|k| (k.c_name().to_string(), *k as u8 as i64))
        .collect();
    put_enum(&mut h, "RomaArgKind", "uint8_t", "ROMA_ARG_", &args);
    h.push_str("// The kind byte that opens a host function's reply (Rust to shim).\n");
    let replies: Vec<(String, i64)> = ReplyKind::ALL
        .iter()
        .map(|k| (k.c_name().to_string(), *k as u8 as i64))
        .collect();
    put_enum(&mut h, "RomaReplyKind", "uint8_t", "ROMA_REPLY_", &replies);

    h.push_str("// The exit status of a worker V8 cannot keep alive through an out-of-memory.\n");
    let _ = writeln!(
        h,
        "constexpr int ROMA_FATAL_OOM_EXIT_CODE = {};\n",
        roma_core::WORKER_OOM_EXIT_CODE
    );
    h.push_str("extern \"C\" {\n\n");
    for t in abi::C_TYPEDEFS {
        let _ = writeln!(h, "{t}");
    }
    h.push('\n');
    fn record<R: CRecord>(h: &mut String) {
        let _ = writeln!(h, "struct {} {{", R::NAME);
        for f in R::FIELDS {
            let _ = writeln!(h, "  {} {};", f.c_type, f.name);
        }
        h.push_str("};\n");
        let _ = writeln!(h, "static_assert(sizeof({}) == {});", R::NAME, R::SIZE);
        for f in R::FIELDS {
            let _ = writeln!(
                h,
                "static_assert(offsetof({0}, {1}) == {2} && sizeof({0}::{1}) == {3});",
                R::NAME,
                f.name,
                f.offset,
                f.size
            );
        }
        h.push('\n');
    }
    record::<abi::RomaLimits>(&mut h);
    record::<abi::RomaOut>(&mut h);
    record::<abi::RomaStr>(&mut h);
    record::<abi::RomaExecParams>(&mut h);
    h.push_str("}  // extern \"C\"\n");
    h
}
