// Writes `roma_abi.h`, the shim's declarations of what crosses the C++/Rust line, from the Rust
// definitions: `abi` (src/abi.rs: result codes, version kinds, records) and roma-udf's `wire`
// (the host-function argument and reply kinds) and roma-core's worker OOM exit status. The build script writes it for the shim it
// compiles; `cargo xtask shim-check` writes it for its stricter compile. Both include this file
// beside `#[path = ".../src/abi.rs"] mod abi;`.

/// The text of `roma_abi.h`.
pub(crate) fn abi_header() -> String {
    use roma_udf::wire::{ArgKind, ReplyKind};
    use std::fmt::Write;

    let mut h = String::from(
        "// roma_abi.h: generated from crates/v8/src/abi.rs and roma-udf's wire kinds by\n\
         // crates/v8/abi_header.rs. Do not edit: change the Rust definitions.\n\
         #pragma once\n\n#include <cstddef>\n#include <cstdint>\n\n",
    );
    // Each enum: a comment line (or none), its name, C type, prefix and (name, value) pairs.
    type Decl = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Vec<(String, i64)>,
    );
    let from_abi = |e: abi::CEnum| -> Decl {
        let values = e.values.iter().map(|(n, v)| (n.to_string(), *v));
        ("", e.name, e.c_type, e.prefix, values.collect())
    };
    let args = ArgKind::ALL
        .iter()
        .map(|&k| (k.c_name().to_string(), k as i64));
    let replies = ReplyKind::ALL
        .iter()
        .map(|&k| (k.c_name().to_string(), k as i64));
    let enums: [Decl; 4] = [
        from_abi(abi::code::C_ENUM),
        from_abi(abi::kind::C_ENUM),
        (
            "// The kind byte that opens a host function's argument (shim to Rust).\n",
            "RomaArgKind",
            "uint8_t",
            "ROMA_ARG_",
            args.collect(),
        ),
        (
            "// The kind byte that opens a host function's reply (Rust to shim).\n",
            "RomaReplyKind",
            "uint8_t",
            "ROMA_REPLY_",
            replies.collect(),
        ),
    ];
    for (comment, name, c_type, prefix, values) in enums {
        let _ = writeln!(h, "{comment}enum {name} : {c_type} {{");
        for (n, v) in values {
            let _ = writeln!(h, "  {prefix}{n} = {v},");
        }
        h.push_str("};\n\n");
    }

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
    record::<abi::RomaLimits>(&mut h);
    record::<abi::RomaOut>(&mut h);
    record::<abi::RomaStr>(&mut h);
    record::<abi::RomaExecParams>(&mut h);
    h.push_str("}  // extern \"C\"\n");
    h
}

/// A record's declaration and the `static_assert`s that hold the C++ compiler to rustc's layout.
fn record<R: abi::CRecord>(h: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(h, "struct {} {{", R::NAME);
    for f in R::FIELDS {
        let _ = writeln!(h, "  {} {};", f.c_type, f.name);
    }
    h.push_str("};\n");
    let _ = writeln!(h, "{}", size_assert::<R>());
    for f in R::FIELDS {
        let _ = writeln!(h, "{}", field_assert::<R>(f));
    }
    h.push('\n');
}

/// The header's check of a record's size.
pub(crate) fn size_assert<R: abi::CRecord>() -> String {
    format!("static_assert(sizeof({}) == {});", R::NAME, R::SIZE)
}

/// The header's check of a field's offset and size.
pub(crate) fn field_assert<R: abi::CRecord>(f: &abi::CField) -> String {
    format!(
        "static_assert(offsetof({0}, {1}) == {2} && sizeof({0}::{1}) == {3});",
        R::NAME,
        f.name,
        f.offset,
        f.size
    )
}
