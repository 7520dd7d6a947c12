//! The `birdcage` launcher (cargo feature `birdcage`; birdcage is GPL-3.0-or-later, so a binary
//! built with this feature is GPL-3.0).
//!
//! birdcage builds its jail in the process that calls it, panics in a multi-threaded caller,
//! wipes the caller's environment, and its init process keeps a copy of every descriptor the
//! caller had (close-on-exec ones included), readable from inside through `/proc/1/fd`. So it is
//! called here, in the worker binary's launcher stage: single-threaded, after closing every
//! descriptor but stdio and the channel, with only the allow-listed environment left.
//!
//! Because birdcage's init also keeps the status pipe, the launcher closes that pipe itself just
//! before the spawn (the host then sees "started"); a failure after that shows as the worker's
//! exit. The worker installs roma's own seccomp filter on top of birdcage's: stacked filters
//! apply together, so the stricter rule wins.

use super::args::JailArgs;
use super::{fds, privileges, relay, rootfs, status};
use crate::SandboxError;
use crate::backend::{ENV_ALLOW_LIST, PRELOAD_VAR};
use birdcage::process::{Command, Stdio};
use birdcage::{Birdcage, Exception, Sandbox};
use std::convert::Infallible;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

/// Builds birdcage's jail and runs the worker in it; never returns on success.
pub(crate) fn launch(jail: &JailArgs) -> Result<Infallible, SandboxError> {
    let exe = std::env::current_exe().map_err(SandboxError::at("find the worker binary"))?;
    let keep = jail.launcher_fds();
    fds::close_all_except(&keep)?;
    let host = fds::take_host_fd(jail.host_fd)?;
    // birdcage maps the caller's own uid into its namespace: be an unprivileged one first.
    if rustix::process::getuid().as_raw() == 0 && privileges::zero_is_parent_root() {
        let target = jail.worker_uid.unwrap_or(crate::DEFAULT_WORKER_UID);
        privileges::become_unprivileged(target)?;
        privileges::check_access_as(target, &exe, &jail.read_only_paths)?;
    }
    // The worker inherits the channel and the violation pipe across birdcage's exec.
    fds::keep_across_exec(&jail.channel_fds)?;
    fds::keep_across_exec(jail.violation_fd.as_slice())?;

    let mut cage = Birdcage::new();
    let bc = |e: birdcage::error::Error| SandboxError::Birdcage(e.to_string());
    cage.add_exception(Exception::ExecuteAndRead(exe.clone()))
        .map_err(bc)?;
    let dirs = rootfs::SYSTEM_LIBRARY_DIRS
        .iter()
        .map(Path::new)
        .chain(jail.read_only_paths.iter().map(|p| p.as_path()));
    for dir in dirs {
        // birdcage refuses paths that do not exist; a missing library folder needs no access.
        if dir.exists() {
            cage.add_exception(Exception::ExecuteAndRead(dir.to_path_buf()))
                .map_err(bc)?;
        }
    }
    // The preloaded worker library (the host set it, and bound its path above) must reach
    // the jailed stage too: without it `node` would run as node.
    for var in ENV_ALLOW_LIST.iter().chain([&PRELOAD_VAR]) {
        cage.add_exception(Exception::Environment(var.to_string()))
            .map_err(bc)?;
    }
    let mut cmd = Command::new(&exe);
    cmd.args(jail.entered().to_args());
    cmd.stdin(Stdio::null());
    cmd.stdout(Stdio::null());
    cmd.stderr(Stdio::inherit());
    if let Some(fd) = jail.status_fd {
        // SAFETY: `fd` is the status pipe this process owns (kept above) and nothing else uses;
        // closing it tells the host the launcher got this far.
        unsafe { libc::close(fd) };
    }
    match cage.spawn(cmd) {
        // birdcage's init exits with code 1 when the worker dies of a signal and passes the
        // signal on a pipe that `Child::wait` reads: relay what `wait` says, so that the host
        // sees a worker's SIGSYS (and reads its violation report) as with the namespaces jail.
        Ok(mut child) => {
            // Until the jail ends, end it if the host goes first.
            if let Some(host) = &host {
                relay::watch_host_until_child_ends(child.id() as libc::pid_t, host);
            }
            match child.wait() {
                Ok(status) => relay::end_as(status.into_raw()),
                Err(e) => {
                    eprintln!("roma-sandbox launcher: waiting for the birdcage jail failed: {e}");
                    std::process::exit(crate::exit::JAIL_SETUP_FAILED_EXIT_CODE)
                }
            }
        }
        Err(e) => {
            let err = SandboxError::Birdcage(e.to_string());
            status::report(None, &err);
            Err(err)
        }
    }
}
