//! roma's project tasks.
//!
//! - `cargo xtask setup`: make a fresh Debian or Ubuntu machine ready to build roma: a C++20
//!   compiler, pkg-config (the C API's tests build their programs through it), `protoc`
//!   (Debian's protobuf-compiler, for roma-serve's gRPC code), the libraries `node` loads
//!   (libstdc++6, libatomic1), and V8: the official Node.js build pinned in
//!   `crates/v8/node_pin.rs`, fetched with npm, checked against its sha512 and unpacked into
//!   `target/node/` (see [`node`]).
//! - `cargo xtask hello [--verbose]`: setup, build, and run `examples/hello.js` through roma.
//!   What setup installs system-wide is said in one line each; apt's own output shows only
//!   with `--verbose` (or when apt fails). `setup` and `test` take `--verbose` too.
//! - `cargo xtask test`: setup, then every check CI runs, in order: fmt, the shim with every
//!   warning an error, clippy, every test, the docs' runnable commands, rustdoc without
//!   warnings, and the birdcage backend (built in `target/birdcage`): `roma check`, the
//!   service's integration tests, hello world.
//! - `cargo xtask docs-check`: every command README.md, examples/README.md and docs/ mark
//!   runnable runs as shown (run by `cargo xtask test` too).
//! - `cargo xtask bench`: the benchmarks.
//! - `cargo xtask bench-serve`: `roma serve` over HTTP/JSON and gRPC against the in-process
//!   service, interleaved in one run, and h2load against the HTTP/JSON API (see
//!   [`serve_bench`]).
//! - `cargo xtask fuzz [--seconds N]`: the cargo-fuzz targets in `fuzz/`, N seconds each.
//! - `cargo xtask soak --minutes N`: the release soak under faults (docs/reliability.md).
//! - `cargo xtask cluster [--short] [--release]`: etcd, three `roma serve` replicas and
//!   HAProxy under wrk's load: a new version, a replica SIGKILLed, etcd stopped 10 s
//!   (docs/deploy.md); `--short` runs inside `cargo xtask test`.
//! - `cargo xtask install-capi --prefix DIR [--debug]`: the C API, its headers, the worker, a
//!   pkg-config file and a CMake package config under DIR (docs/c-api.md).
//! - `cargo xtask capi-cmake`: Roma's Getting Started built with `find_package(roma)` against a
//!   prefix `install-capi --debug` filled, and run (run by `cargo xtask test` too).

use anyhow::{Context, Result, bail};
use std::env;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

mod capi;
mod cluster;
mod docs;
mod flags;
mod fuzz;
mod hostile_serve;
// The machine a bench ran on, named as `roma bench` names it.
#[path = "../../crates/cli/src/machine.rs"]
mod machine;
mod node;
mod serve_bench;
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
        "bench-serve" => serve_bench::bench_serve(rest),
        "hostile-serve" => hostile_serve::hostile_serve(rest),
        "shim-check" => shim_check(),
        "docs-check" => docs_check(),
        "fuzz" => fuzz::fuzz(rest),
        "soak" => soak::soak(rest),
        "soak-inner" => soak::soak_inner(rest),
        "install-capi" => capi::install(rest),
        "capi-cmake" => capi::cmake_check(),
        "cluster" => cluster::cluster(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  setup       install what a fresh machine needs (C++ compiler, pinned Node/V8)\n  \
                 hello       setup, build, run examples/hello.js through roma [--verbose]\n  \
                 test        setup, then fmt, clippy, shim check and every test\n  \
                 bench       run the criterion benchmarks\n  \
                 bench-serve roma serve (HTTP/JSON, gRPC) against in-process, and h2load\n  \
                 hostile-serve  hostile clients at full size against a release roma serve, with its RSS\n  \
                 shim-check  compile the V8 shim with -Wall -Wextra -Werror\n  \
                 docs-check  run every command README.md and docs/ mark runnable\n  \
                 fuzz        run each fuzz target [--seconds N] (default 60)\n  \
                 soak        release soak under faults [--minutes N] [--fuzz-seconds S]\n  \
                 cluster     etcd, three roma serve replicas and HAProxy under wrk, with failures [--short] [--release]\n  \
                 install-capi  install the C/C++ API, pkg-config file and CMake config --prefix DIR [--debug]\n  \
                 capi-cmake  build and run Roma's Getting Started through find_package(roma)"
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

/// Installs Debian packages system-wide (apt-get update first when a plain install fails),
/// saying in one line what and why.
fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    eprintln!(
        "xtask: installing system-wide with apt-get: {} ({why})",
        packages.join(" ")
    );
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(packages);
    if !succeeds_quietly(&mut apt(&args)) {
        run_quiet(&mut apt(&["update"]))?;
        run_quiet(&mut apt(&args))?;
    }
    Ok(())
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
    ensure_compiler()?;
    ensure_protoc()?;
    // The C API's CMake check builds Roma's Getting Started with `find_package(roma)`.
    ensure_program_for(
        "cmake",
        "cmake",
        "the C API's CMake package check builds with it",
    )?;
    ensure_runtime_libraries()?;
    ensure_cluster_tools();
    node::ensure(&root.join("target"))?;
    Ok(())
}

/// What the code store's tests and `cargo xtask cluster` run: etcd (Debian's etcd-server),
/// HAProxy and wrk. Missing ones are said loudly, not fatal: the etcd tests then skip with a
/// banner and `cargo xtask cluster` stops with the reason.
fn ensure_cluster_tools() {
    for (program, package) in [
        ("etcd", "etcd-server"),
        ("haproxy", "haproxy"),
        ("wrk", "wrk"),
    ] {
        if let Err(e) = ensure_program(program, package) {
            eprintln!("xtask: WARNING: {e:#}; the tests that need {program} will skip");
        }
    }
}

/// Installs the Debian package `package` when `program` is not on the PATH.
fn ensure_program(program: &str, package: &str) -> Result<()> {
    ensure_program_for(program, package, &format!("roma's build needs `{program}`"))
}

/// [`ensure_program`], saying `why` roma needs it when it installs it.
fn ensure_program_for(program: &str, package: &str, why: &str) -> Result<()> {
    if have(program) {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("`{program}` is missing and there is no apt-get to install {package}: install it");
    }
    apt_install(&[package], why)?;
    if !have(program) {
        bail!("installed {package} but `{program}` is still not on the PATH");
    }
    Ok(())
}

/// A C++ compiler that speaks C++20 (V8 14's headers need it; Debian 12's g++ 12 does).
fn ensure_compiler() -> Result<()> {
    // The C API's tests build their C and C++ programs through `pkg-config --cflags --libs roma`.
    ensure_program_for(
        "pkg-config",
        "pkg-config",
        "the C API's tests build with it",
    )?;
    if !have("c++") && !have("g++") {
        ensure_program("g++", "g++")?;
    }
    let probe = Command::new(if have("c++") { "c++" } else { "g++" })
        .args(["-std=c++20", "-fsyntax-only", "-x", "c++", "-"])
        .stdin(std::process::Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        bail!("the C++ compiler does not accept -std=c++20; V8 14's headers need g++ 12 or newer");
    }
    Ok(())
}

/// `protoc`, which roma-serve's build script runs on its `.proto` (Debian's
/// protobuf-compiler; `PROTOC` names another), and protobuf's well-known types, which
/// etcd-client's `.proto` files import (`google/protobuf/descriptor.proto`, in Debian's
/// libprotobuf-dev: protobuf-compiler does not carry them).
fn ensure_protoc() -> Result<()> {
    let have_protoc = env::var_os("PROTOC").is_some() || have("protoc");
    let have_types = std::path::Path::new(WELL_KNOWN_PROTO).exists();
    if have_protoc && have_types {
        return Ok(());
    }
    if !have("apt-get") {
        bail!(
            "no protoc or no {WELL_KNOWN_PROTO}, and no apt-get to install them: install \
             protobuf-compiler and libprotobuf-dev"
        );
    }
    let mut packages = Vec::new();
    if !have_protoc {
        packages.push("protobuf-compiler");
    }
    if !have_types {
        packages.push("libprotobuf-dev");
    }
    apt_install(
        &packages,
        "roma-serve generates its gRPC code from crates/serve/proto and etcd's protos",
    )
}

/// One of protobuf's well-known types where Debian's libprotobuf-dev puts them, on protoc's
/// default include path.
const WELL_KNOWN_PROTO: &str = "/usr/include/google/protobuf/descriptor.proto";

/// The shared libraries the pinned `node` executable loads besides glibc.
const NODE_RUNTIME_LIBRARIES: [(&str, &str); 2] = [
    ("libstdc++.so.6", "libstdc++6"),
    ("libatomic.so.1", "libatomic1"),
];

fn ensure_runtime_libraries() -> Result<()> {
    let cache = Command::new("ldconfig")
        .arg("-p")
        .output()
        .or_else(|_| Command::new("/sbin/ldconfig").arg("-p").output())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let missing: Vec<&str> = NODE_RUNTIME_LIBRARIES
        .iter()
        .filter(|(lib, _)| !cache.contains(lib))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("node needs {missing:?} and there is no apt-get to install them");
    }
    apt_install(
        &missing,
        "the shared libraries the pinned node executable, which runs every worker, loads",
    )
}

/// Builds the `roma` command and the worker library (release unless `debug`) and returns the
/// path of `roma`: what the serve bench, the hostile clients and the cluster run.
fn build_roma(debug: bool) -> Result<PathBuf> {
    let profile: &[&str] = if debug { &[] } else { &["--release"] };
    run(cargo()
        .args(["build", "-p", "roma-cli", "-p", "roma-worker"])
        .args(profile))?;
    Ok(root()
        .join("target")
        .join(if debug { "debug" } else { "release" })
        .join("roma"))
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

/// Builds the debug `roma` and its worker library, then runs the docs' runnable commands with
/// them.
fn docs_check() -> Result<()> {
    run(cargo().args(["build", "-p", "roma-cli", "-p", "roma-worker"]))?;
    docs::check(&root())
}

/// The shim with every warning an error, against the pinned V8 headers (the build script
/// compiles it with warnings shown but not fatal).
fn shim_check() -> Result<()> {
    let include = root().join("target/node/include/node");
    // The shim includes the header roma-v8's build script generates; write the same text.
    let generated = root().join("target/shim-check");
    std::fs::create_dir_all(&generated)?;
    std::fs::write(generated.join("roma_abi.h"), shim_abi::abi_header())?;
    run(Command::new("c++")
        .args([
            "-std=c++20",
            "-fno-rtti",
            "-fsyntax-only",
            "-Wall",
            "-Werror",
        ])
        .arg("-isystem")
        .arg(&include)
        .arg("-I")
        .arg(&generated)
        .arg(root().join("crates/v8/shim/roma_v8_shim.cc")))
}

/// The one definition of the shim's C++/Rust line, as roma-v8's build script reads it.
#[allow(dead_code)]
#[path = "../../crates/v8/src/abi.rs"]
mod abi;

/// The generator of the shim's `roma_abi.h`, from the same files roma-v8's build script uses.
mod shim_abi {
    use super::abi;
    include!("../../crates/v8/abi_header.rs");
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
    // The service tests start real workers: build the worker library first.
    run(cargo().args(["build", "-p", "roma-worker"]))?;
    run(cargo().args(["test", "--workspace"]).args(rest))?;
    capi::cmake_check()?;
    docs_check()?;
    k8s_validate()?;
    // The cluster on one machine, in its short form: etcd, three replicas, HAProxy, wrk.
    cluster::cluster(&["--short".to_string()])?;
    // Every crate's rustdoc builds without warnings.
    run(cargo()
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    birdcage_smoke()?;
    Ok(())
}

/// The Kubernetes manifests in deploy/k8s/ against the API's schemas, strictly (an unknown
/// field fails): PyPI's kubernetes-validate, installed with pip into `target/k8s-venv`. If
/// pip cannot install it, that is said loudly and the check is skipped.
fn k8s_validate() -> Result<()> {
    let venv = root().join("target/k8s-venv");
    let tool = venv.join("bin/kubernetes-validate");
    if !tool.exists() {
        let made = succeeds_quietly(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            && succeeds_quietly(Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "kubernetes-validate==1.37.0",
            ]));
        if !made || !tool.exists() {
            eprintln!(
                "\n########\n# SKIPPED: pip could not install kubernetes-validate into {} (python3-venv \n# and network needed); deploy/k8s/ was NOT validated.\n########\n",
                venv.display()
            );
            return Ok(());
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/k8s"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    run(Command::new(&tool)
        .args(["--strict", "--quiet", "-k", "1.33.0"])
        .args(&files))
}

/// The birdcage backend (a cargo feature, GPL-3.0) in its own target folder, so the main build
/// stays free of it: `roma check` must find every protection held, the service's integration
/// tests must pass with birdcage workers, and hello world must run. `roma` is built without
/// its default `serve` feature: the smoke runs `check` and `run`, and the network service
/// (tonic, axum, rustls) would only double the build.
fn birdcage_smoke() -> Result<()> {
    let target = root().join("target/birdcage");
    run(cargo()
        .args([
            "build",
            "-p",
            "roma-worker",
            "-p",
            "roma-cli",
            "--no-default-features",
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
    // The facade's bench compares the service with raw V8 run by the worker's benchmark hook.
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "roma-worker",
        "--features",
        "roma-worker/bench-hooks",
    ]))?;
    run(cargo().args(["bench", "--workspace"]).args(rest))
}

#[cfg(test)]
mod tests {
    use super::abi::{self, CRecord};
    use roma_udf::wire::{ArgKind, ReplyKind};
    use std::collections::{BTreeMap, BTreeSet};

    /// docs/architecture.md's crate table names, for each workspace crate, the in-tree crates it
    /// depends on (normal dependencies, short names: `core` for `roma-core`): exactly what
    /// `cargo metadata` says.
    #[test]
    fn the_architecture_crate_table_matches_cargo_metadata() {
        let mut cmd = super::cargo();
        cmd.args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ]);
        let meta = match cmd.current_dir(super::root()).output() {
            Ok(out) if out.status.success() => out.stdout,
            other => panic!("cargo metadata failed: {other:?}"),
        };
        let meta: serde_json::Value = serde_json::from_slice(&meta).expect("metadata JSON");
        let packages = meta["packages"].as_array().expect("packages");
        let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
        let mut actual: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for p in packages {
            let name = p["name"].as_str().expect("name");
            let deps = p["dependencies"].as_array().expect("dependencies");
            let inner = deps
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|d| members.contains(d))
                .map(str::to_owned)
                .collect();
            actual.insert(name, inner);
        }

        let doc = std::fs::read_to_string(super::root().join("docs/architecture.md"))
            .expect("docs/architecture.md");
        let table = doc
            .split("## Crates")
            .nth(1)
            .expect("a Crates section")
            .split("\n## ")
            .next()
            .expect("its text");
        let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in table.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells[0].trim_matches('`').to_owned();
            let deps = cells.last().expect("a dependency cell");
            let full = |short: &str| {
                let prefixed = format!("roma-{short}");
                if members.contains(prefixed.as_str()) {
                    prefixed
                } else {
                    short.to_owned()
                }
            };
            let set = if *deps == "none" {
                BTreeSet::new()
            } else {
                deps.split(',').map(|d| full(d.trim())).collect()
            };
            documented.insert(name, set);
        }
        for (name, deps) in &actual {
            assert_eq!(
                documented.get(*name),
                Some(deps),
                "docs/architecture.md's row for `{name}` (in-tree dependencies per cargo metadata: {deps:?})"
            );
        }
    }

    fn assert_record<R: CRecord>(h: &str) {
        use super::shim_abi::{field_assert, size_assert};
        assert!(h.contains(&format!("struct {} {{", R::NAME)), "{}", R::NAME);
        assert!(h.contains(&size_assert::<R>()), "{}", R::NAME);
        for f in R::FIELDS {
            assert!(h.contains(&field_assert::<R>(f)), "{}.{}", R::NAME, f.name);
            assert!(h.contains(&format!("  {} {};", f.c_type, f.name)));
        }
    }

    /// The shim's header names every kind byte and code by its Rust value and checks every
    /// record field's layout (the C++ compiler then holds the shim to it).
    #[test]
    fn the_shim_header_carries_every_definition() {
        let h = super::shim_abi::abi_header();
        for &k in ArgKind::ALL {
            assert!(h.contains(&format!("  ROMA_ARG_{} = {},", k.c_name(), k as u8)));
        }
        for &k in ReplyKind::ALL {
            assert!(h.contains(&format!("  ROMA_REPLY_{} = {},", k.c_name(), k as u8)));
        }
        for e in [abi::code::C_ENUM, abi::kind::C_ENUM] {
            for (name, value) in e.values {
                assert!(h.contains(&format!("  {}{name} = {value},", e.prefix)));
            }
        }
        assert!(h.contains(&format!(
            "ROMA_FATAL_OOM_EXIT_CODE = {};",
            roma_core::WORKER_OOM_EXIT_CODE
        )));
        assert_record::<abi::RomaLimits>(&h);
        assert_record::<abi::RomaOut>(&h);
        assert_record::<abi::RomaStr>(&h);
        assert_record::<abi::RomaExecParams>(&h);
    }
}
