//! Compiles the C++ shim against the V8 headers of the pinned Node.js build.
//!
//! The build lives in `target/node/` of the workspace (`cargo xtask setup` fills it), or in
//! `$ROMA_NODE_DIR` (a folder with `bin/node` and `include/node/`). Nothing is linked: the V8
//! symbols the shim calls stay undefined in the shared library that carries roma-v8 and resolve,
//! when `node` loads that library, from the `node` executable, which exports the whole V8 API.
//! The headers must be the pinned version's (`node_pin.rs`): a library compiled against other
//! headers would call into a V8 with another object layout.

use std::env;
use std::path::PathBuf;

include!("node_pin.rs");

// The one definition of the C++/Rust line; the shim includes the header written from it.
#[allow(dead_code)]
#[path = "src/abi.rs"]
mod abi;
include!("abi_header.rs");

const FIX: &str = "run `cargo xtask setup` (it fetches the pinned Node.js build into target/node), \
                   or set ROMA_NODE_DIR to a folder holding that build";

fn main() {
    println!("cargo:rerun-if-changed=shim/roma_v8_shim.cc");
    println!("cargo:rerun-if-changed=node_pin.rs");
    println!("cargo:rerun-if-changed=src/abi.rs");
    println!("cargo:rerun-if-changed=abi_header.rs");
    println!("cargo:rerun-if-env-changed=ROMA_NODE_DIR");
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dir = match env::var_os("ROMA_NODE_DIR") {
        Some(d) => PathBuf::from(d),
        None => manifest.join("../../target/node"),
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("include/node").display()
    );
    let include = dir.join("include/node");
    let version_h = include.join("node_version.h");
    let found = match std::fs::read_to_string(&version_h) {
        Ok(text) => node_version(&text),
        Err(e) => fail(&format!("cannot read {}: {e}", version_h.display())),
    };
    if found != NODE_VERSION {
        fail(&format!(
            "{} is Node {found}, but roma pins Node {NODE_VERSION}",
            include.display()
        ));
    }

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let header = out.join("roma_abi.h");
    if let Err(e) = std::fs::write(&header, abi_header()) {
        fail(&format!("cannot write {}: {e}", header.display()));
    }
    if env::var("HOST").ok() != env::var("TARGET").ok() {
        // The header's static_asserts carry the build script's (host) layout.
        println!(
            "cargo:warning=roma-v8: cross-compiling; roma_abi.h asserts the host's record layout"
        );
    }

    cc::Build::new()
        .cpp(true)
        .std("c++20")
        .file("shim/roma_v8_shim.cc")
        // -isystem: V8's own headers are not the shim's to keep warning-free.
        .flag("-isystem")
        .flag(
            include
                .to_str()
                .unwrap_or_else(|| fail("the include path is not UTF-8")),
        )
        .include(&out)
        .flag("-fno-rtti")
        .warnings(true)
        .compile("roma_v8_shim");

    // Dependents (the worker library, the engine tests) read DEP_ROMA_V8_NODE_DIR.
    println!("cargo:node_dir={}", dir.display());
    println!("cargo:rustc-env=ROMA_NODE_DIR={}", dir.display());
}

/// `MAJOR.MINOR.PATCH` from `node_version.h`.
fn node_version(text: &str) -> String {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("#define NODE_{k}_VERSION ")))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    format!("{}.{}.{}", get("MAJOR"), get("MINOR"), get("PATCH"))
}

fn fail(why: &str) -> ! {
    eprintln!("roma-v8: {why}.\nroma-v8: to fix it, {FIX}.");
    panic!("roma-v8: {why}; {FIX}");
}
