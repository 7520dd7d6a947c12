//! The C and C++ programs in `tests/c/`, built with the system compilers through the
//! pkg-config file (`roma.pc.in`, filled for this build) against `libroma_c`, and run under the
//! default jail: Roma's Getting Started (`getting_started.cpp`), the C API's edges (`edges.c`),
//! its settings beyond the basics (`settings.c`) and the C++ layer's edges (`cpp_edges.cpp`),
//! each also under AddressSanitizer and UndefinedBehaviorSanitizer.
//!
//! They need `roma-worker` built (`cargo build -p roma-worker`, as the service tests do) and a
//! C/C++ compiler and pkg-config (`cargo xtask setup` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The folder the test binary and `libroma_c.so` of this build live in (`target/<profile>/deps`).
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .expect("the test binary's folder")
        .to_path_buf()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

fn worker() -> PathBuf {
    let w = deps_dir()
        .parent()
        .expect("the profile folder")
        .join("libroma_worker.so");
    assert!(
        w.exists(),
        "{} is missing: run `cargo build -p roma-worker` first",
        w.display()
    );
    w
}

/// Fills `roma.pc.in` for this build into a folder of program `name`'s own (tests run in
/// parallel) and returns that folder.
fn pkg_config_dir(name: &str) -> PathBuf {
    let dir = deps_dir().join("capi-programs").join(name);
    std::fs::create_dir_all(&dir).expect("the capi-programs folder");
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("roma.pc.in"))
            .expect("roma.pc.in");
    let pc = template
        .replace("@PREFIX@", &repo().display().to_string())
        .replace("@LIBDIR@", &deps_dir().display().to_string())
        .replace(
            "@INCLUDEDIR@",
            &repo().join("include").display().to_string(),
        )
        .replace("@WORKER@", &worker().display().to_string())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::write(dir.join("roma.pc"), pc).expect("roma.pc");
    dir
}

fn pkg_config_flags(name: &str) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(["--cflags", "--libs", "roma"])
        .env("PKG_CONFIG_PATH", pkg_config_dir(name))
        .output()
        .expect("pkg-config (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "pkg-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 flags")
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Compiles `tests/c/<source>` into a program named after it, `_san` added (and built with
/// [`SANITIZE`]) when `sanitize`.
fn build(source: &str, sanitize: bool) -> PathBuf {
    let (stem, ext) = source
        .rsplit_once('.')
        .expect("a source named NAME.c or NAME.cpp");
    let cpp = ext == "cpp";
    let name = &if sanitize {
        format!("{stem}_san")
    } else {
        stem.to_string()
    };
    let extra = if sanitize { SANITIZE } else { &[] };
    let compiler = if cpp {
        std::env::var("CXX").unwrap_or_else(|_| "c++".into())
    } else {
        std::env::var("CC").unwrap_or_else(|_| "cc".into())
    };
    let out = pkg_config_dir(name).join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(source);
    let std = if cpp { "-std=c++17" } else { "-std=c11" };
    let status = Command::new(&compiler)
        .args([std, "-Wall", "-Wextra", "-g"])
        .args(extra)
        .arg(&src)
        .args(pkg_config_flags(name))
        .arg("-lpthread")
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{compiler}: {e} (cargo xtask setup installs a compiler)"));
    assert!(
        status.status.success(),
        "{compiler} {source} failed:\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

fn run(program: &Path) -> Output {
    let out = Command::new(program)
        .env("ROMA_WORKER_LIB", worker())
        // cargo's LD_LIBRARY_PATH for tests lists target/<profile> before deps/, where a
        // libroma_c.so of an older build may lie; the program must load this build's.
        .env("LD_LIBRARY_PATH", deps_dir())
        .env("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .output()
        .expect("the test program runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        program.display(),
        out.status
    );
    for report in ["AddressSanitizer", "LeakSanitizer", "runtime error:"] {
        assert!(!stderr.contains(report), "a sanitizer reported:\n{stderr}");
    }
    out
}

const SANITIZE: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=undefined",
    "-fno-omit-frame-pointer",
];

fn check_getting_started(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let hello = r#""Hello world! \"Foobar\"""#;
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"load: "), "{stdout}");
    assert!(
        lines.contains(&format!("execute: {hello}").as_str()),
        "{stdout}"
    );
    assert!(lines.contains(&"batch size: 5"), "{stdout}");
    let batch = format!("batch: {hello}");
    assert_eq!(lines.iter().filter(|l| **l == batch).count(), 5, "{stdout}");
    assert!(
        lines.contains(&r#"udf: "Foobar String from C++""#),
        "{stdout}"
    );
    assert!(lines.contains(&"stop: ok"), "{stdout}");
}

/// Checks that the program printed, for each of `checks`, a line that `matches` it.
fn check_lines(out: &Output, checks: &[&str], matches: fn(&str, &str) -> bool) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    for check in checks {
        assert!(
            stdout.lines().any(|l| matches(l, check)),
            "no {check:?} in:\n{stdout}"
        );
    }
}

const EDGES: &[&str] = &[
    "ok hello",
    "ok bad_arguments",
    "ok host_functions",
    "ok logging",
    "ok batch",
    "ok exactly_once",
    "ok stop_with_queued",
    "all ok",
];

const CPP_EDGES: &[&str] = &[
    "ok execute_before_init",
    "ok settings_checked",
    "ok host_function_errors",
    "ok metadata",
    "ok list_map_bytes",
    "ok logging",
    "ok async_bindings",
    "ok profiles",
    "ok shared_buffer_only",
    "ok error_kinds",
    "ok use_after_stop",
    "all ok",
];

const SETTINGS: &[&str] = &[
    "ok async_host_functions",
    "ok profiles",
    "ok recycling_and_toggles",
    "ok worker_output",
    "ok worker_output_env_delete",
    "ok profile_refused_without_enable_profilers",
    "ok oversize_reject",
    "ok tenant_pools",
    "all ok",
];

/// Two tests per program: `tests/c/<source>` built plain and under the sanitizers, each run
/// and its output checked.
macro_rules! program_tests {
    ($($plain:ident, $sanitized:ident: $source:literal => $check:expr;)*) => {$(
        #[test]
        fn $plain() {
            ($check)(&run(&build($source, false)));
        }

        #[test]
        fn $sanitized() {
            ($check)(&run(&build($source, true)));
        }
    )*};
}

program_tests! {
    roma_getting_started_runs_through_the_cpp_header, roma_getting_started_under_sanitizers:
        "getting_started.cpp" => check_getting_started;
    the_c_api_edges_hold, the_c_api_edges_hold_under_sanitizers:
        "edges.c" => |out| check_lines(out, EDGES, |l, c| l.starts_with(c));
    the_cpp_layer_edges_hold, the_cpp_layer_edges_hold_under_sanitizers:
        "cpp_edges.cpp" => |out| check_lines(out, CPP_EDGES, |l, c| l == c);
    the_c_settings_take_effect, the_c_settings_take_effect_under_sanitizers:
        "settings.c" => |out| check_lines(out, SETTINGS, |l, c| l == c);
}
