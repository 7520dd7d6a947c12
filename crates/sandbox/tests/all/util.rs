//! Helpers: start the test worker under a backend with a socketpair channel.

use roma_sandbox::{SandboxError, WorkerProcess, WorkerSpec, sandbox_by_name};
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Bound on any read from a worker, so a broken jail fails the test instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A started worker and the host's end of its channel.
pub struct Worker {
    pub process: Box<dyn WorkerProcess>,
    pub channel: UnixStream,
    /// The number of the worker's end of the channel (the same in host and worker).
    pub channel_fd: i32,
}

pub fn allow_no_userns() -> bool {
    std::env::var_os("ROMA_TEST_ALLOW_NO_USERNS").is_some_and(|v| v == "1")
}

pub fn worker_spec(fds: &[i32], seccomp: &str, action: &str) -> WorkerSpec {
    worker_spec_with(fds, seccomp, &[action])
}

/// [`worker_spec`] with an action that takes operands.
pub fn worker_spec_with(fds: &[i32], seccomp: &str, action: &[&str]) -> WorkerSpec {
    WorkerSpec {
        args: std::iter::once(seccomp)
            .chain(action.iter().copied())
            .map(Into::into)
            .collect(),
        inherited_fds: fds.to_vec(),
        ..WorkerSpec::new(env!("CARGO_BIN_EXE_roma-sandbox-testworker"))
    }
}

/// Starts the test worker; `None` only when user namespaces are missing and the environment
/// allows skipping (a note is printed). Panics with a clear message otherwise.
pub fn spawn(backend: &str, seccomp: &str, action: &str) -> Option<Worker> {
    spawn_spec(backend, worker_spec(&[], seccomp, action))
}

/// [`spawn`], then every line the worker writes until it closes its channel.
pub fn spawn_and_read(
    backend: &str,
    seccomp: &str,
    action: &str,
) -> Option<(Box<dyn WorkerProcess>, Vec<String>)> {
    spawn_spec_and_read(backend, worker_spec(&[], seccomp, action))
}

/// [`spawn_spec`], then every line the worker writes until it closes its channel.
pub fn spawn_spec_and_read(
    backend: &str,
    spec: WorkerSpec,
) -> Option<(Box<dyn WorkerProcess>, Vec<String>)> {
    spawn_spec(backend, spec).map(|w| (w.process, read_lines(w.channel)))
}

/// [`spawn`] with a spec of one's own; the channel fd is added to it.
pub fn spawn_spec(backend: &str, mut spec: WorkerSpec) -> Option<Worker> {
    let (host, child) = UnixStream::pair().unwrap();
    host.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let child: OwnedFd = child.into();
    spec.inherited_fds.push(child.as_raw_fd());
    match sandbox_by_name(backend).unwrap().spawn(&spec) {
        Ok(process) => Some(Worker {
            process,
            channel: host,
            // The worker has its own copy; the host's must close, or the worker never sees EOF.
            channel_fd: {
                let n = child.as_raw_fd();
                drop(child);
                n
            },
        }),
        Err(SandboxError::NamespacesUnavailable(msg)) if allow_no_userns() => {
            eprintln!("NOTE: skipping a `{backend}` test: {msg}");
            None
        }
        Err(e @ SandboxError::NamespacesUnavailable(_)) => panic!(
            "{e}\n(set ROMA_TEST_ALLOW_NO_USERNS=1 to skip the tests that need user namespaces)"
        ),
        Err(e) => panic!("spawn under {backend} failed: {e}"),
    }
}

/// Every line the worker writes until it closes its end.
pub fn read_lines(channel: UnixStream) -> Vec<String> {
    BufReader::new(channel)
        .lines()
        .map(|l| l.expect("reading the worker's channel"))
        .collect()
}
