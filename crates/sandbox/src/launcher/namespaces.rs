//! The `namespaces` launcher: roma's own jail, built in the worker binary while it is still
//! single-threaded.
//!
//! ```text
//! host ── spawn ──> launcher (host pid, new user/mnt/net/ipc/uts/cgroup namespaces)
//!                     │ fork
//!                     └──> worker: pid 1 of a new pid namespace, PDEATHSIG=SIGKILL,
//!                          new root, no capabilities ── exec ──> worker --jail-entered ...
//! ```
//! The launcher keeps no copy of the channel (the worker sees EOF when the host closes its end),
//! waits for the worker and relays its exit code or signal as its own.

use super::args::JailArgs;
use super::{fds, privileges, relay, rootfs, status};
use crate::SandboxError;
use crate::exit::JAIL_SETUP_FAILED_EXIT_CODE;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::thread::UnshareFlags;
use std::convert::Infallible;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The hostname the worker sees (its own UTS namespace).
const JAIL_HOSTNAME: &[u8] = b"roma-worker";

/// Builds the jail and runs the worker in it. In the launcher this never returns on success (it
/// exits as the worker did); an error means nothing was started.
pub(crate) fn launch(jail: &JailArgs) -> Result<Infallible, SandboxError> {
    let exe = std::env::current_exe().map_err(SandboxError::at("find the worker binary"))?;
    let mut keep = jail.channel_fds.clone();
    keep.extend(jail.status_fd);
    keep.extend(jail.violation_fd);
    fds::close_all_except(&keep)?;
    for &fd in &keep {
        if !fds::is_open(fd) {
            return Err(SandboxError::InvalidSpec(format!(
                "channel fd {fd} is not open in the launcher"
            )));
        }
    }
    if let Some(fd) = jail.status_fd {
        // The jailed child's exec must close it: that is how the host learns the jail is up.
        fds::close_on_exec(fd)?;
    }
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    // SAFETY: unshare_unsafe is unsafe because changing namespaces under other threads can break
    // their assumptions; this process is single-threaded (see enter_jail_from_args).
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }
        .map_err(|e| SandboxError::NamespacesUnavailable(format!("unshare(CLONE_NEWUSER): {e}")))?;
    write_id_maps(uid, gid)?;
    // SAFETY: as above; this process is single-threaded.
    unsafe {
        rustix::thread::unshare_unsafe(
            UnshareFlags::NEWNS
                | UnshareFlags::NEWPID
                | UnshareFlags::NEWNET
                | UnshareFlags::NEWIPC
                | UnshareFlags::NEWUTS
                | UnshareFlags::NEWCGROUP,
        )
    }
    .map_err(SandboxError::at(
        "unshare mount, pid, net, ipc, uts and cgroup namespaces",
    ))?;

    // Prepare everything that allocates before forking.
    let entered = jail.entered().to_args();
    let argv: Vec<CString> = std::iter::once(exe.as_os_str().as_bytes().to_vec())
        .chain(entered.iter().map(|a| a.as_bytes().to_vec()))
        .map(CString::new)
        .collect::<Result<_, _>>()
        .map_err(|_| SandboxError::BadArgs("an argument contains a NUL byte".into()))?;
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let (alive_r, alive_w) =
        pipe_with(PipeFlags::CLOEXEC).map_err(SandboxError::at("pipe for the launcher"))?;

    // SAFETY: this process is single-threaded (enter_jail_from_args runs first thing in main),
    // so the child gets a consistent copy of the whole address space, locks included.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(SandboxError::os("fork", io::Error::last_os_error())),
        0 => {
            drop(alive_w);
            let err = match jailed_child(jail, &exe, alive_r, &argv, &envp) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            status::report(jail.status_fd, &err);
            eprintln!("roma-sandbox: cannot enter the namespaces jail: {err}");
            // SAFETY: _exit ends the process at once without running the parent's atexit
            // handlers or flushing stdio buffers it copied.
            unsafe { libc::_exit(JAIL_SETUP_FAILED_EXIT_CODE) }
        }
        child => {
            drop(alive_r);
            // Keep no copy of the channel (the worker must see EOF when the host closes its
            // end) nor of the status pipe (the host must see EOF when the child execs), nor of
            // the violation pipe (the worker's alone).
            if let Err(e) = fds::close_all_except(&[alive_w.as_raw_fd()]) {
                // The child is already running with the channel: it is the one to report.
                eprintln!("roma-sandbox launcher: {e}");
            }
            // `alive_w` stays open until this process ends (relay never returns), so the
            // child's liveness check sees it closed only if the launcher died.
            relay::wait_and_relay(child)
        }
    }
}

/// Maps uid/gid 0 in the new user namespace to the launcher's own ids (the only mapping an
/// unprivileged process may write).
fn write_id_maps(uid: u32, gid: u32) -> Result<(), SandboxError> {
    std::fs::write("/proc/self/setgroups", "deny")
        .map_err(SandboxError::at("write /proc/self/setgroups"))?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1\n"))
        .map_err(SandboxError::at("write /proc/self/uid_map"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1\n"))
        .map_err(SandboxError::at("write /proc/self/gid_map"))?;
    Ok(())
}

/// The forked child: pid 1 of the new pid namespace. Builds the root, drops privileges, execs.
fn jailed_child(
    jail: &JailArgs,
    exe: &Path,
    alive_r: OwnedFd,
    argv: &[CString],
    envp: &[CString],
) -> Result<Infallible, SandboxError> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(SandboxError::at("PR_SET_PDEATHSIG"))?;
    // The launcher may have died before PDEATHSIG was armed: its end of the pipe is then closed.
    let mut pfd = [PollFd::new(&alive_r, PollFlags::IN)];
    let ready = poll(&mut pfd, Some(&rustix::event::Timespec::default()))
        .map_err(SandboxError::at("poll the launcher pipe"))?;
    if ready > 0 {
        return Err(SandboxError::InvalidSpec("the launcher died".into()));
    }
    drop(alive_r);

    rootfs::build_and_enter(exe, &jail.read_only_paths)?;
    rustix::system::sethostname(JAIL_HOSTNAME).map_err(SandboxError::at("sethostname"))?;
    fds::keep_across_exec(&jail.channel_fds)?;
    fds::keep_across_exec(jail.violation_fd.as_slice())?;
    privileges::drop_all()?;

    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: argv and envp are NUL-terminated arrays of pointers to NUL-terminated strings that
    // outlive the call (execve only returns on failure).
    unsafe { libc::execve(argv[0].as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    Err(SandboxError::os(
        format!("execve {} inside the jail", exe.display()),
        io::Error::last_os_error(),
    ))
}
