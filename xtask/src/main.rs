//! roma's project tasks.
//!
//! - `cargo xtask setup`: make a fresh Debian or Ubuntu machine ready to build roma: a C++
//!   compiler, pkg-config (the C API's tests build their programs through it) and V8 (libnode). It uses `ROMA_V8_INCLUDE`/`ROMA_V8_LIB` when set, else a
//!   `target/libnode/` already filled, else a system `libnode-dev` whose headers match its
//!   library; otherwise it installs libnode's runtime dependencies with apt-get and unpacks
//!   `apt-get download`ed libnode + libnode-dev into `target/libnode/` (never `apt-get install
//!   libnode-dev`, which a preinstalled nodesource `nodejs` blocks), which roma-v8's build
//!   script finds.
//! - `cargo xtask hello [--verbose]`: setup, build, and run `examples/hello.js` through roma.
//!   What setup installs system-wide is said in one line each; apt's own output shows only
//!   with `--verbose` (or when apt fails). `setup` and `test` take `--verbose` too.
//! - `cargo xtask test`: setup, then every check CI runs, in order: fmt, the shim against newer
//!   V8 headers, clippy, every test, the docs' runnable commands, rustdoc without warnings, and
//!   the birdcage backend (built
//!   in `target/birdcage`): `roma check`, the service's integration tests, hello world.
//! - `cargo xtask docs-check`: every command README.md, examples/README.md and docs/ mark
//!   runnable runs as shown (run by `cargo xtask test` too).
//! - `cargo xtask bench`: the benchmarks.
//! - `cargo xtask fuzz [--seconds N]`: the cargo-fuzz targets in `fuzz/`, N seconds each.
//! - `cargo xtask soak --minutes N`: the release soak under faults (docs/reliability.md).
//! - `cargo xtask install-capi --prefix DIR`: the C API, its headers, the worker, a pkg-config
//!   file and a CMake package config under DIR (docs/c-api.md).

use anyhow::{Context, Result, bail};
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

mod capi;
mod docs;
mod fuzz;
mod soak;

/// Whether apt's output is shown (`--verbose`); otherwise it shows only when apt fails.
static VERBOSE: AtomicBool = AtomicBool::new(false);

fn main() -> Result<()> {
    let mut args: Vec<String> = env::args().skip(1).collect();
    if matches!(
        args.first().map(String::as_str),
        Some("setup" | "hello" | "test")
    ) {
        let before = args.len();
        args.retain(|a| a != "--verbose" && a != "-v");
        VERBOSE.store(args.len() != before, Ordering::Relaxed);
    }
    let task = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    match task {
        "setup" => setup(),
        "hello" => hello(rest),
        "test" => test(rest),
        "bench" => bench(rest),
        "shim-check" => shim_check(),
        "docs-check" => docs_check(),
        "fuzz" => fuzz::fuzz(rest),
        "soak" => soak::soak(rest),
        "soak-inner" => soak::soak_inner(rest),
        "install-capi" => capi::install(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  setup       install what a fresh machine needs (C++ compiler, system V8)\n  \
                 hello       setup, build, run examples/hello.js through roma [--verbose]\n  \
                 test        setup, then fmt, clippy, shim check and every test\n  \
                 bench       run the criterion benchmarks\n  \
                 shim-check  compile the V8 shim against /usr/include/node (newer V8 headers)\n  \
                 docs-check  run every command README.md and docs/ mark runnable\n  \
                 fuzz        run each fuzz target [--seconds N] (default 60)\n  \
                 soak        release soak under faults [--minutes N] [--fuzz-seconds S]\n  \
                 install-capi  install the C/C++ API, pkg-config file and CMake config --prefix DIR"
            );
            if task == "help" {
                Ok(())
            } else {
                bail!("unknown task `{task}`")
            }
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Runs a package-manager command: with `--verbose` as [`run`] does; otherwise its output is
/// kept and shown only if it fails, so that what the task prints stays the task's result.
fn run_quiet(cmd: &mut Command) -> Result<()> {
    if VERBOSE.load(Ordering::Relaxed) {
        return run(cmd);
    }
    let out = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("{cmd:?} failed with {}", out.status);
    }
    Ok(())
}

/// Whether a package-manager command succeeds, its output shown only with `--verbose`.
fn succeeds_quietly(cmd: &mut Command) -> bool {
    if VERBOSE.load(Ordering::Relaxed) {
        return cmd.status().is_ok_and(|s| s.success());
    }
    cmd.output().is_ok_and(|o| o.status.success())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// apt-get (through sudo when not root).
fn apt(args: &[&str]) -> Command {
    let mut c = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
    c
}

fn setup() -> Result<()> {
    let root = root();
    let dest = root.join("target/libnode");
    if env::var_os("ROMA_V8_INCLUDE").is_some() && env::var_os("ROMA_V8_LIB").is_some() {
        eprintln!("xtask: ROMA_V8_INCLUDE/ROMA_V8_LIB are set; using them");
        return ensure_compiler();
    }
    ensure_compiler()?;
    if dest.join("usr/include/node/v8.h").exists() && find_libnode(&dest.join("usr/lib")).is_some()
    {
        eprintln!("xtask: V8 is ready in {}", dest.display());
        return Ok(());
    }
    if system_libnode_matches() {
        eprintln!("xtask: using the system libnode-dev");
        return Ok(());
    }
    if !have("apt-get") {
        bail!(
            "no V8 found and no apt-get to fetch it: install libnode-dev (Debian/Ubuntu), or set \
             ROMA_V8_INCLUDE and ROMA_V8_LIB to V8 headers and a libnode.so"
        );
    }
    let pkg = libnode_package()?;
    eprintln!(
        "xtask: unpacking {pkg} and libnode-dev into {}",
        dest.display()
    );
    // Runtime dependencies of libnode, without the nodejs-dependent node-* packages that conflict
    // with a preinstalled nodesource nodejs.
    let deps = runtime_deps(&pkg)?;
    if !deps.is_empty() {
        eprintln!(
            "xtask: installing system-wide with apt-get: {} (the shared libraries {pkg} links \
             against; roma's V8 in target/libnode loads them at run time)",
            deps.join(" ")
        );
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend(deps.iter().map(String::as_str));
        if !succeeds_quietly(&mut apt(&args)) {
            run_quiet(&mut apt(&["update"]))?;
            run_quiet(&mut apt(&args))?;
        }
    }
    let dl = root.join("target/libnode-debs");
    std::fs::create_dir_all(&dl)?;
    for f in std::fs::read_dir(&dl)?.flatten() {
        let _ = std::fs::remove_file(f.path());
    }
    let download = |dl: &Path| {
        succeeds_quietly(Command::new("apt-get").current_dir(dl).args([
            "download",
            &pkg,
            "libnode-dev",
        ]))
    };
    if !download(&dl) {
        run_quiet(&mut apt(&["update"]))?;
        if !download(&dl) {
            bail!("apt-get download {pkg} libnode-dev failed");
        }
    }
    std::fs::create_dir_all(&dest)?;
    for f in std::fs::read_dir(&dl)?.flatten() {
        if f.path().extension().is_some_and(|e| e == "deb") {
            run_quiet(Command::new("dpkg-deb").arg("-x").arg(f.path()).arg(&dest))?;
        }
    }
    if find_libnode(&dest.join("usr/lib")).is_none() {
        bail!(
            "unpacked {pkg} but found no libnode.so under {}",
            dest.display()
        );
    }
    eprintln!("xtask: V8 ready in {}", dest.display());
    Ok(())
}

fn ensure_compiler() -> Result<()> {
    ensure_pkg_config()?;
    if have("g++") || have("c++") {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("no C++ compiler (g++) and no apt-get to install one");
    }
    eprintln!(
        "xtask: installing system-wide with apt-get: g++ (roma-v8 compiles its C++ shim over V8)"
    );
    let args = ["install", "-y", "--no-install-recommends", "g++"];
    if !succeeds_quietly(&mut apt(&args)) {
        run_quiet(&mut apt(&["update"]))?;
        run_quiet(&mut apt(&args))?;
    }
    Ok(())
}

/// The C API's tests build their C and C++ programs through `pkg-config --cflags --libs roma`.
fn ensure_pkg_config() -> Result<()> {
    if have("pkg-config") {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("no pkg-config and no apt-get to install it");
    }
    eprintln!(
        "xtask: installing system-wide with apt-get: pkg-config (the C API's tests build with it)"
    );
    let args = ["install", "-y", "--no-install-recommends", "pkg-config"];
    if !succeeds_quietly(&mut apt(&args)) {
        run_quiet(&mut apt(&["update"]))?;
        run_quiet(&mut apt(&args))?;
    }
    Ok(())
}

fn find_libnode(usr_lib: &Path) -> Option<PathBuf> {
    for dir in std::fs::read_dir(usr_lib).ok()?.flatten() {
        for f in std::fs::read_dir(dir.path()).ok()?.flatten() {
            if f.file_name().to_string_lossy().starts_with("libnode.so.") {
                return Some(f.path());
            }
        }
    }
    None
}

/// A system libnode-dev whose headers match an installed libnode.so.N.
fn system_libnode_matches() -> bool {
    let Ok(text) = std::fs::read_to_string("/usr/include/node/node_version.h") else {
        return false;
    };
    let Some(abi) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("#define NODE_MODULE_VERSION "))
    else {
        return false;
    };
    let name = format!("libnode.so.{}", abi.trim());
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .any(|d| d.path().join(&name).exists())
}

/// The libnodeNNN package this distribution ships with V8 10.x (Debian 12: libnode108;
/// Ubuntu 24.04: libnode109).
fn libnode_package() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["search", "--names-only", "^libnode[0-9]+$"])
        .output()?;
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    if names.is_empty() {
        run_quiet(&mut apt(&["update"]))?;
        let out = Command::new("apt-cache")
            .args(["search", "--names-only", "^libnode[0-9]+$"])
            .output()?;
        names = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
    }
    names.sort_by_key(|n| n.trim_start_matches("libnode").parse::<u32>().unwrap_or(0));
    names
        .pop()
        .context("apt has no libnodeNNN package (is this Debian 12+ or Ubuntu 24.04+?)")
}

/// libnode's dependencies that are plain libraries (not node-* JS packages).
fn runtime_deps(pkg: &str) -> Result<Vec<String>> {
    let out = Command::new("apt-cache").args(["depends", pkg]).output()?;
    let mut deps: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: ").map(str::trim))
        .filter(|d| !d.starts_with('<') && !d.starts_with("node-") && !d.starts_with("nodejs"))
        .map(str::to_string)
        .collect();
    deps.sort();
    deps.dedup();
    Ok(deps)
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn hello(rest: &[String]) -> Result<()> {
    setup()?;
    run(cargo().args(["build", "--release", "-p", "roma-cli", "-p", "roma-worker"]))?;
    let mut c = Command::new(root().join("target/release/roma"));
    c.args(["run", "examples/hello.js", "--input", "\"Foobar\""])
        .args(rest)
        .current_dir(root());
    run(&mut c)
}

/// Builds the debug `roma` and its worker, then runs the docs' runnable commands with them.
fn docs_check() -> Result<()> {
    run(cargo().args(["build", "-p", "roma-cli", "-p", "roma-worker", "--bins"]))?;
    docs::check(&root())
}

fn shim_check() -> Result<()> {
    let header = Path::new("/usr/include/node/v8-version.h");
    if !header.exists() {
        eprintln!(
            "xtask: /usr/include/node has no V8 headers; shim check against newer V8 skipped"
        );
        return Ok(());
    }
    let version = std::fs::read_to_string(header)?;
    let get = |k: &str| {
        version
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("#define V8_{k}_VERSION "))
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    eprintln!(
        "xtask: compiling the shim against V8 {}.{} headers in /usr/include/node (compile only)",
        get("MAJOR"),
        get("MINOR")
    );
    run(Command::new("c++")
        .args([
            "-std=c++17",
            "-fno-rtti",
            "-fsyntax-only",
            "-Wall",
            "-Werror",
            "-I/usr/include/node",
        ])
        .arg(root().join("crates/v8/shim/roma_v8_shim.cc")))
}

fn test(rest: &[String]) -> Result<()> {
    setup()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    shim_check()?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The service tests start real roma-worker processes: build the binary first.
    run(cargo().args(["build", "-p", "roma-worker", "--bins"]))?;
    run(cargo().args(["test", "--workspace"]).args(rest))?;
    docs_check()?;
    // Every crate's rustdoc builds without warnings.
    run(cargo()
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    birdcage_smoke()?;
    Ok(())
}

/// The birdcage backend (a cargo feature, GPL-3.0) in its own target folder, so the main build
/// stays free of it: `roma check` must find every protection held, the service's integration
/// tests must pass with birdcage workers, and hello world must run.
fn birdcage_smoke() -> Result<()> {
    let target = root().join("target/birdcage");
    run(cargo()
        .args([
            "build",
            "-p",
            "roma-worker",
            "-p",
            "roma-cli",
            "--features",
            "roma-worker/birdcage,roma-cli/birdcage",
        ])
        .env("CARGO_TARGET_DIR", &target))?;
    let roma = target.join("debug/roma");
    run(Command::new(&roma).args(["check", "--sandbox", "birdcage"]))?;
    // The service's integration suites (service, pool, host functions, hostile code, faults)
    // with every worker in the birdcage jail.
    run(cargo()
        .args(["test", "-p", "roma", "--features", "birdcage", "--tests"])
        .env("CARGO_TARGET_DIR", &target)
        .env("ROMA_TEST_SANDBOX", "birdcage"))?;
    run(Command::new(&roma)
        .args([
            "run",
            "examples/hello.js",
            "--input",
            "\"birdcage\"",
            "--sandbox",
            "birdcage",
        ])
        .current_dir(root()))
}

fn bench(rest: &[String]) -> Result<()> {
    setup()?;
    run(cargo().args(["build", "--release", "-p", "roma-worker", "--bins"]))?;
    run(cargo().args(["bench", "--workspace"]).args(rest))
}
