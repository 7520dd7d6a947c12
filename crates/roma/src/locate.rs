//! Finding the `roma-worker` binary, and what its jail must be able to read.

use roma_core::RomaError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The worker binary's file name.
pub const WORKER_BINARY_NAME: &str = "roma-worker";

/// A worker binary and the folders it needs read-only inside the jail.
#[derive(Clone, Debug)]
pub(crate) struct WorkerBinary {
    pub path: PathBuf,
    pub read_only_paths: Vec<PathBuf>,
}

/// Finds the worker: `configured`, else `$ROMA_WORKER_BIN`, else next to the current
/// executable or in its parent folder (test binaries live in `target/<profile>/deps`).
pub(crate) fn find_worker(configured: Option<&Path>) -> Result<WorkerBinary, RomaError> {
    let path = locate(configured)?;
    // The worker knows where the libnode it links against lives (its build script recorded
    // it); the jail must mount that folder. An empty answer means the system's library dirs.
    let out = Command::new(&path)
        .arg("--print-libdir")
        .env_clear()
        .output()
        .map_err(|e| {
            RomaError::internal(format!("cannot run the worker {}: {e}", path.display()))
        })?;
    if !out.status.success() {
        return Err(RomaError::internal(format!(
            "the worker {} does not start ({}): {}; run `cargo xtask setup` if V8 is missing",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let read_only_paths = if libdir.is_empty() {
        Vec::new()
    } else {
        vec![PathBuf::from(libdir)]
    };
    Ok(WorkerBinary {
        path,
        read_only_paths,
    })
}

fn locate(configured: Option<&Path>) -> Result<PathBuf, RomaError> {
    if let Some(p) = configured {
        return check(p.to_path_buf(), "Config::worker_binary");
    }
    if let Some(p) = std::env::var_os("ROMA_WORKER_BIN") {
        return check(PathBuf::from(p), "ROMA_WORKER_BIN");
    }
    let exe = std::env::current_exe()
        .map_err(|e| RomaError::internal(format!("cannot find the current executable: {e}")))?;
    let mut tried = Vec::new();
    for dir in exe
        .parent()
        .into_iter()
        .flat_map(|d| [Some(d), d.parent()])
        .flatten()
    {
        let candidate = dir.join(WORKER_BINARY_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    Err(RomaError::internal(format!(
        "the {WORKER_BINARY_NAME} binary was not found (looked at {}); build it with \
         `cargo build -p roma-worker`, or set ROMA_WORKER_BIN or Config::worker_binary",
        tried.join(", ")
    )))
}

fn check(p: PathBuf, source: &str) -> Result<PathBuf, RomaError> {
    if p.is_file() {
        Ok(p)
    } else {
        Err(RomaError::invalid_argument(format!(
            "{source} names {}, which is not a file",
            p.display()
        )))
    }
}
