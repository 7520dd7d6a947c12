//! Gives the worker binary an rpath to the libnode that roma-v8 linked, so it runs without
//! LD_LIBRARY_PATH, and records that folder so the jail can mount it read-only.
fn main() {
    // Set by roma-v8's build script (`links = "roma_v8"`, `cargo:libdir=`).
    if let Ok(dir) = std::env::var("DEP_ROMA_V8_LIBDIR") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=ROMA_V8_LIBDIR={dir}");
    } else {
        println!("cargo:rustc-env=ROMA_V8_LIBDIR=");
    }
    println!("cargo:rerun-if-env-changed=DEP_ROMA_V8_LIBDIR");
}
