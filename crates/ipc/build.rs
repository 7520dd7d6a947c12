//! Hashes the sources of the wire into `ROMA_IPC_WIRE_HASH`, the build part of
//! `roma_ipc::BUILD_ID`: host and worker compare it before they talk.
//!
//! The wire is this crate's messages and the roma-core types they carry (the invocation, the
//! code object, the execution's result, the error, the limits, the log level). roma-core is
//! the crate of those shared types (the host's dispatcher is roma-dispatch, which never crosses
//! the process line), so its `src` is hashed whole, each file under its path there.

use std::path::{Path, PathBuf};

/// The `.rs` files below `dir`, each with its path relative to `dir`, sorted by that path.
fn sources(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot read {}: {e}", d.display()));
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                files.push((rel.to_string_lossy().into_owned(), path));
            }
        }
    }
    files.sort();
    files
}

fn main() {
    let own = Path::new("src");
    let core = Path::new("../core/src");
    // A folder makes cargo watch every file below it.
    println!("cargo:rerun-if-changed={}", own.display());
    println!("cargo:rerun-if-changed={}", core.display());
    let mut files = sources(own);
    files.extend(sources(core));
    // FNV-1a, 64 bits: a fingerprint of the sources, not a security measure.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, f) in files {
        let text = std::fs::read(&f).expect("readable source file");
        for b in name.bytes().chain([0]).chain(text) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=ROMA_IPC_WIRE_HASH={h:016x}");
}
