//! Hashes the sources of the wire into `ROMA_IPC_WIRE_HASH`, the build part of
//! `roma_ipc::BUILD_ID`: host and worker compare it before they talk.
//!
//! The wire is this crate's messages and the roma-core types they carry (the invocation, the
//! code object, the execution's result, the error, the limits), which live in the top-level
//! files of roma-core's `src`; the dispatcher below it never crosses the process line.

use std::path::{Path, PathBuf};

/// The `.rs` files directly in `dir`, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
}

fn main() {
    let own = Path::new("src");
    let core = Path::new("../core/src");
    println!("cargo:rerun-if-changed=src");
    let mut files = sources(own);
    let core_files = sources(core);
    for f in &core_files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    files.extend(core_files);
    // FNV-1a, 64 bits: a fingerprint of the sources, not a security measure.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let text = std::fs::read(&f).expect("readable source file");
        for b in name.unwrap_or_default().bytes().chain([0]).chain(text) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=ROMA_IPC_WIRE_HASH={h:016x}");
}
