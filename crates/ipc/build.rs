//! Hashes this crate's sources into `ROMA_IPC_WIRE_HASH`, the build part of
//! `roma_ipc::BUILD_ID`: host and worker compare it before they talk.

use std::path::Path;

fn main() {
    let src = Path::new("src");
    println!("cargo:rerun-if-changed=src");
    let mut files: Vec<_> = std::fs::read_dir(src)
        .expect("roma-ipc's src folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
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
