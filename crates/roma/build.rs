//! Records where the pinned `node` is expected, the last place `RomaService` looks for it:
//! `$ROMA_NODE_DIR/bin/node` when that is set at build time, else `target/node/bin/node` of the
//! workspace this crate is in (where `cargo xtask setup` unpacks it).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=ROMA_NODE_DIR");
    let dir = match std::env::var_os("ROMA_NODE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
            .join("../../target/node"),
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    println!(
        "cargo:rustc-env=ROMA_DEFAULT_NODE={}",
        dir.join("bin/node").display()
    );
}
