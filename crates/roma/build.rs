//! Records where the pinned `node` is expected, the last place `RomaService` looks for it:
//! `$ROMA_NODE_DIR/bin/node` when that is set at build time, else `target/node/bin/node` of the
//! workspace this crate is in (where `cargo xtask setup` unpacks it); and that workspace's
//! folder, whose `target/` is the last place it looks for the worker library.
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
    // The roma workspace this crate is in: a program outside it (a crate depending on roma by
    // path) finds the worker library that `cargo build -p roma-worker` built there.
    let workspace =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    println!("cargo:rustc-env=ROMA_WORKSPACE={}", workspace.display());
}
