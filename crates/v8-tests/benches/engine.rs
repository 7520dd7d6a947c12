//! Runs the engine benchmark (`src/bench.rs`) inside `node`: `node` with this package's shared
//! library preloaded and `--bench`, forwarding criterion's command line.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const LIBRARY: &str = "libroma_v8_tests.so";

fn main() -> ExitCode {
    let node = env!("ROMA_TEST_NODE");
    let exe = std::env::current_exe().unwrap_or_default();
    let deps = exe.parent().map(PathBuf::from).unwrap_or_default();
    let Some(lib) = [deps.join(LIBRARY), deps.join("..").join(LIBRARY)]
        .into_iter()
        .find(|p| p.is_file())
    else {
        eprintln!(
            "roma-v8-tests: {LIBRARY} was not built next to {}",
            exe.display()
        );
        return ExitCode::from(101);
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        args.push("--bench".into());
    }
    // Criterion's reports go where they would for an ordinary bench (`target/criterion`), not
    // into the package folder, which is the working directory here.
    let mut cmd = Command::new(node);
    cmd.env("LD_PRELOAD", &lib).args(&args);
    if std::env::var_os("CRITERION_HOME").is_none()
        && let Some(target) = deps.parent().and_then(|profile| profile.parent())
    {
        cmd.env("CRITERION_HOME", target.join("criterion"));
    }
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("roma-v8-tests: the engine bench failed: {s}");
            ExitCode::from(101)
        }
        Err(e) => {
            eprintln!("roma-v8-tests: cannot start {node}: {e} (run `cargo xtask setup`)");
            ExitCode::from(101)
        }
    }
}
