//! Finding the worker: the pinned `node` executable and roma's worker library that it carries,
//! and checking that they belong to this host's build.
//!
//! A worker process is `node` with `libroma_worker.so` preloaded (V8 lives in the executable;
//! see roma-v8's `node_entry`). Before any worker starts, the host runs that pair once with
//! [`roma_ipc::BUILD_QUERY_ARG`]: a missing or broken `node`, a library that does not load, or
//! a library from another build fails `RomaService::new` at once, naming the path and the
//! command that fixes it, instead of as dead workers later.
//!
//! Search order (first hit wins), documented in docs/config.md:
//! - the library: `Config::worker_library`, `$ROMA_WORKER_LIB`, then `libroma_worker.so` next to
//!   the current executable or in its parent folder (test binaries live in `target/*/deps`),
//!   then in `target/release/` and `target/debug/` of the roma workspace this crate was built in
//!   (for a program outside that workspace that depends on roma by path);
//! - `node`: `Config::node_binary`, `$ROMA_NODE`, then the pinned build this crate was compiled
//!   beside (`target/node/bin/node` of the workspace, or `$ROMA_NODE_DIR/bin/node` at build
//!   time).

use roma_core::RomaError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The worker library's file name.
pub const WORKER_LIBRARY_NAME: &str = "libroma_worker.so";

/// The name worker processes give themselves (their `comm`, what `ps` and `/proc/*/stat`
/// show), though their executable is `node`.
pub const WORKER_PROCESS_NAME: &str = roma_ipc::WORKER_PROCESS_NAME;

/// The `node` this crate was built beside (see the build script).
const DEFAULT_NODE: &str = env!("ROMA_DEFAULT_NODE");

/// The command that installs the pinned `node`.
const INSTALL_NODE: &str = "`cargo xtask setup` in the roma workspace";

/// The command that builds the worker library.
const BUILD_LIBRARY: &str = concat!(
    "`cargo build --release -p roma-worker` in the roma workspace (",
    env!("ROMA_WORKSPACE"),
    ")"
);

/// The roma workspace this crate was built in.
const WORKSPACE: &str = env!("ROMA_WORKSPACE");

/// The answer to the build query is three short lines; only this much of it is looked at.
const MAX_QUERY_OUTPUT: usize = 1024;

/// The worker's two files and what they reported about themselves.
#[derive(Clone, Debug)]
pub(crate) struct WorkerBinary {
    /// The `node` executable.
    pub node: PathBuf,
    /// The worker library it preloads.
    pub library: PathBuf,
    /// V8's version, as the worker reported it.
    pub v8_version: String,
    /// Node's version, as the worker reported it.
    pub node_version: String,
}

/// Finds `node` and the worker library (search order in the module docs) and checks them.
pub(crate) fn find_worker(
    library: Option<&Path>,
    node: Option<&Path>,
) -> Result<WorkerBinary, RomaError> {
    let node = find_node(node)?;
    let library = find_library(library)?;
    query(node, library)
}

fn find_node(configured: Option<&Path>) -> Result<PathBuf, RomaError> {
    let (path, source) = match (configured, std::env::var_os("ROMA_NODE")) {
        (Some(p), _) => (p.to_path_buf(), "Config::node_binary"),
        (None, Some(p)) => (PathBuf::from(p), "ROMA_NODE"),
        (None, None) => (PathBuf::from(DEFAULT_NODE), "the pinned build"),
    };
    if !path.is_file() {
        return Err(RomaError::invalid_argument(format!(
            "the node executable roma's workers run in was not found at {} ({source}); {INSTALL_NODE} \
             installs it, or set ROMA_NODE or Config::node_binary",
            path.display()
        )));
    }
    Ok(path)
}

fn find_library(configured: Option<&Path>) -> Result<PathBuf, RomaError> {
    if let Some(p) = configured {
        return file(p.to_path_buf(), "Config::worker_library");
    }
    if let Some(p) = std::env::var_os("ROMA_WORKER_LIB") {
        return file(PathBuf::from(p), "ROMA_WORKER_LIB");
    }
    let exe = std::env::current_exe()
        .map_err(|e| RomaError::internal(format!("cannot find the current executable: {e}")))?;
    let mut tried = Vec::new();
    let beside = exe
        .parent()
        .into_iter()
        .flat_map(|d| [Some(d), d.parent()])
        .flatten()
        .map(Path::to_path_buf);
    let workspace = ["release", "debug"].map(|p| Path::new(WORKSPACE).join("target").join(p));
    for dir in beside.chain(workspace) {
        let candidate = dir.join(WORKER_LIBRARY_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    Err(RomaError::invalid_argument(format!(
        "the worker library {WORKER_LIBRARY_NAME} was not found (looked at {}); {BUILD_LIBRARY} \
         builds it, or set ROMA_WORKER_LIB or Config::worker_library",
        tried.join(", ")
    )))
}

fn file(p: PathBuf, source: &str) -> Result<PathBuf, RomaError> {
    if p.is_file() {
        Ok(p)
    } else {
        Err(RomaError::invalid_argument(format!(
            "{source} names {}, which is not a file; {BUILD_LIBRARY} builds the worker library",
            p.display()
        )))
    }
}

/// Runs `node` with the library and the build query; checks the answer.
fn query(node: PathBuf, library: PathBuf) -> Result<WorkerBinary, RomaError> {
    // These are the operator's own files, run outside any jail before a worker exists; only
    // the answer's first lines are read.
    let output = Command::new(&node)
        .arg(roma_ipc::BUILD_QUERY_ARG)
        .env_clear()
        .env("LD_PRELOAD", &library)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            RomaError::invalid_argument(format!(
                "cannot run the node executable {}: {e}; {INSTALL_NODE} installs it",
                node.display()
            ))
        })?;
    let status = output.status;
    let out = &output.stdout[..output.stdout.len().min(MAX_QUERY_OUTPUT)];
    let err = &output.stderr[..output.stderr.len().min(MAX_QUERY_OUTPUT)];
    let text = String::from_utf8_lossy(out);
    let mut lines = text.lines();
    let (build, v8, node_version) = (lines.next(), lines.next(), lines.next());
    let (Some(build), Some(v8), Some(node_version), true) =
        (build, v8, node_version, status.success())
    else {
        return Err(RomaError::invalid_argument(format!(
            "{} with the worker library {} preloaded does not answer as a roma worker ({status}: \
             {}); {BUILD_LIBRARY} rebuilds the library, {INSTALL_NODE} reinstalls node",
            node.display(),
            library.display(),
            String::from_utf8_lossy(err).trim()
        )));
    };
    if build != roma_ipc::BUILD_ID {
        return Err(RomaError::invalid_argument(format!(
            "the worker library {} is from another build of roma (build {build}, this host is \
             {}); {BUILD_LIBRARY} rebuilds it from the same sources as the host",
            library.display(),
            roma_ipc::BUILD_ID
        )));
    }
    Ok(WorkerBinary {
        v8_version: v8.to_owned(),
        node_version: node_version.to_owned(),
        node,
        library,
    })
}

/// The V8 and Node versions of the worker this host would start with `config`'s settings
/// (`roma --version`, `roma check`).
pub fn worker_versions(
    library: Option<&Path>,
    node: Option<&Path>,
) -> Result<(String, String), RomaError> {
    let w = find_worker(library, node)?;
    Ok((w.v8_version, w.node_version))
}

/// A command that runs the worker (`node` with the worker library preloaded, found and checked
/// as `RomaService::new` would) outside any jail, for benchmarks: `--raw-baseline N` times raw
/// V8 in that process. Not a way to serve requests: nothing is jailed.
pub fn unjailed_worker_command(
    library: Option<&Path>,
    node: Option<&Path>,
) -> Result<Command, RomaError> {
    let w = find_worker(library, node)?;
    let mut c = Command::new(&w.node);
    c.env_clear().env("LD_PRELOAD", &w.library);
    Ok(c)
}
