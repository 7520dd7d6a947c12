//! Runs roma-v8's engine tests inside `node` (see `src/lib.rs`): `node` with this package's
//! shared library preloaded, once per group, forwarding the command line (name filters,
//! `--exact`, `--list`). `cargo test` builds the library before this runs.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// The groups, each a `node` process of its own (V8's flags are process-wide).
const GROUPS: [&str; 2] = ["engine", "wasm_pages"];

/// The test library's file name.
const LIBRARY: &str = "libroma_v8_tests.so";

fn library() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let deps = exe.parent().ok_or("the test binary has no folder")?;
    let tried = [deps.join(LIBRARY), deps.join("..").join(LIBRARY)];
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| format!("{LIBRARY} was not built (looked at {tried:?})"))
}

fn main() -> ExitCode {
    let node = env!("ROMA_TEST_NODE");
    let lib = match library() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("roma-v8-tests: {e}");
            return ExitCode::from(101);
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut failed = false;
    for group in GROUPS {
        let status = Command::new(node)
            .env("LD_PRELOAD", &lib)
            .args(["--group", group])
            .args(&args)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("roma-v8-tests: group {group} failed: {s}");
                failed = true;
            }
            Err(e) => {
                eprintln!("roma-v8-tests: cannot start {node}: {e} (run `cargo xtask setup`)");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(101)
    } else {
        ExitCode::SUCCESS
    }
}
