//! `cargo xtask install-capi --prefix DIR`: builds roma's C API (`libroma_c`) and the worker in
//! release mode and installs them with the headers, a pkg-config file and a CMake package
//! config, so C and C++ programs find roma with `pkg-config --cflags --libs roma` or
//! `find_package(roma)`.

use crate::{cargo, root, run};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

pub fn install(rest: &[String]) -> Result<()> {
    let prefix = match rest {
        [flag, dir] if flag == "--prefix" => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask install-capi --prefix DIR"),
    };
    std::fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
    let prefix = prefix.canonicalize()?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "roma-capi",
        "-p",
        "roma-worker",
        "--lib",
    ]))?;
    let release = root().join("target/release");
    let lib = prefix.join("lib");
    let include = prefix.join("include");
    let libexec = prefix.join("libexec/roma");
    for d in [
        &lib,
        &include.join("roma"),
        &libexec,
        &lib.join("pkgconfig"),
        &lib.join("cmake/roma"),
    ] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    copy(&release.join("libroma_c.so"), &lib.join("libroma_c.so"))?;
    copy(&release.join("libroma_c.a"), &lib.join("libroma_c.a"))?;
    copy(
        &release.join("libroma_worker.so"),
        &libexec.join("libroma_worker.so"),
    )?;
    // The pinned node whose V8 the workers run (`cargo xtask setup` unpacked it).
    copy(&root().join("target/node/bin/node"), &libexec.join("node"))?;
    let headers = root().join("include");
    copy(&headers.join("roma.h"), &include.join("roma.h"))?;
    for entry in std::fs::read_dir(headers.join("roma"))? {
        let path = entry?.path();
        let name = path.file_name().context("a header's name")?;
        copy(&path, &include.join("roma").join(name))?;
    }
    let fill = |template: &str| -> Result<String> {
        let text = std::fs::read_to_string(root().join("crates/capi").join(template))?;
        Ok(text
            .replace("@PREFIX@", &prefix.display().to_string())
            .replace("@LIBDIR@", &lib.display().to_string())
            .replace("@INCLUDEDIR@", &include.display().to_string())
            .replace(
                "@WORKER@",
                &libexec.join("libroma_worker.so").display().to_string(),
            )
            .replace("@NODE@", &libexec.join("node").display().to_string())
            .replace("@VERSION@", env!("CARGO_PKG_VERSION")))
    };
    std::fs::write(lib.join("pkgconfig/roma.pc"), fill("roma.pc.in")?)?;
    std::fs::write(
        lib.join("cmake/roma/romaConfig.cmake"),
        fill("romaConfig.cmake.in")?,
    )?;
    eprintln!(
        "xtask: installed roma's C API in {p}\n  pkg-config: PKG_CONFIG_PATH={p}/lib/pkgconfig pkg-config --cflags --libs roma\n  \
         CMake: cmake -DCMAKE_PREFIX_PATH={p} ... with find_package(roma) and roma::roma\n  \
         worker: {p}/libexec/roma/libroma_worker.so and {p}/libexec/roma/node (set ROMA_WORKER_LIB \
         and ROMA_NODE, or roma_config_set_worker_library/roma_config_set_node_binary)",
        p = prefix.display()
    );
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
