//! Tells the launcher test and bench (`tests/engine.rs`, `benches/engine.rs`) where the pinned
//! `node` is: roma-v8's build script found it (`DEP_ROMA_V8_NODE_DIR`).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_ROMA_V8_NODE_DIR");
    let dir = std::env::var("DEP_ROMA_V8_NODE_DIR").expect("roma-v8 reports its node folder");
    println!("cargo:rustc-env=ROMA_TEST_NODE={dir}/bin/node");
}
