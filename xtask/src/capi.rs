//! `cargo xtask install-capi --prefix DIR [--debug]`: builds roma's C API (`libroma_c`) and the
//! worker (in release mode, or the debug build with `--debug`) and installs them with the
//! headers, a pkg-config file and a CMake package config, so C and C++ programs find roma with
//! `pkg-config --cflags --libs roma` or `find_package(roma)`. Also the test command's CMake
//! check: Roma's Getting Started built with `find_package(roma)` against such a prefix, and run.

use crate::{cargo, root, run};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn install(rest: &[String]) -> Result<()> {
    let (prefix, debug) = match rest {
        [flag, dir] if flag == "--prefix" => (PathBuf::from(dir), false),
        [flag, dir, d] | [d, flag, dir] if flag == "--prefix" && d == "--debug" => {
            (PathBuf::from(dir), true)
        }
        _ => bail!("usage: cargo xtask install-capi --prefix DIR [--debug]"),
    };
    install_into(&prefix, debug)
}

/// Builds and installs the C API into `prefix`: the release build, or the debug one.
fn install_into(prefix: &Path, debug: bool) -> Result<()> {
    std::fs::create_dir_all(prefix).with_context(|| format!("creating {}", prefix.display()))?;
    let prefix = prefix.canonicalize()?;
    let mut build = cargo();
    build.arg("build");
    if !debug {
        build.arg("--release");
    }
    run(build.args(["-p", "roma-capi", "-p", "roma-worker", "--lib"]))?;
    let release = root()
        .join("target")
        .join(if debug { "debug" } else { "release" });
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

/// The lines Roma's Getting Started prints when each of its callbacks got what it should: the
/// load, the hello world, a batch of five, the host function's string, and a clean stop.
pub const GETTING_STARTED_LINES: [(&str, usize); 6] = [
    ("load: ", 1),
    (r#"execute: "Hello world! \"Foobar\"""#, 1),
    ("batch size: 5", 1),
    (r#"batch: "Hello world! \"Foobar\"""#, 5),
    (r#"udf: "Foobar String from C++""#, 1),
    ("stop: ok", 1),
];

/// The test command's CMake check: the debug build installed by `install-capi --debug` into
/// `target/capi-cmake/prefix`, Roma's Getting Started (`crates/capi/tests/c/getting_started.cpp`)
/// configured and built by CMake with `find_package(roma)` (`crates/capi/tests/cmake`), then
/// run with the installed worker and node, and its output checked.
pub fn cmake_check() -> Result<()> {
    let work = root().join("target/capi-cmake");
    let prefix = work.join("prefix");
    let build = work.join("build");
    // A fresh prefix and build folder, so nothing of an earlier check is found instead.
    for d in [&prefix, &build] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
        }
    }
    install_into(&prefix, true)?;
    run(Command::new("cmake")
        .arg("-S")
        .arg(root().join("crates/capi/tests/cmake"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg("-DCMAKE_BUILD_TYPE=Debug"))?;
    run(Command::new("cmake").arg("--build").arg(&build))?;
    let exe = build.join("getting_started");
    let libexec = prefix.join("libexec/roma");
    eprintln!("xtask: running {}", exe.display());
    let out = Command::new(&exe)
        .env("ROMA_WORKER_LIB", libexec.join("libroma_worker.so"))
        .env("ROMA_NODE", libexec.join("node"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{stdout}\n{}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (line, count) in GETTING_STARTED_LINES {
        let n = stdout.lines().filter(|l| *l == line).count();
        if n != count {
            bail!(
                "the CMake-built Getting Started printed {line:?} {n} times, not {count}:\n{stdout}"
            );
        }
    }
    eprintln!("xtask: the CMake-built Getting Started ran against the installed prefix");
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
