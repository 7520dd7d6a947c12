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
//! waits for the worker and relays its exit code or signal as its own, and ends the jail when
//! the host is gone (see `relay`). A launcher started as root runs the jail as an unprivileged
//! host uid ([`crate::WorkerSpec::worker_uid`]); one started as any other user, as that user.

use super::args::JailArgs;
use super::{fds, privileges, relay, rootfs, status};
use crate::exit::JAIL_SETUP_FAILED_EXIT_CODE;
use crate::{DEFAULT_WORKER_UID, SandboxError};
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
    let keep = jail.launcher_fds();
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
    // The launcher's alone: the jailed worker never sees the host's lifeline.
    let host = fds::take_host_fd(jail.host_fd)?;
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    if uid == 0 && privileges::zero_is_parent_root() {
        let target = jail.worker_uid.unwrap_or(DEFAULT_WORKER_UID);
        enter_user_namespace_as(target)?;
        privileges::check_access_as(target, &exe, &jail.read_only_paths)?;
    } else {
        unshare_user_namespace()?;
        write_id_maps(uid, gid)?;
    }
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
            drop(host);
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
            let mut keep = vec![alive_w.as_raw_fd()];
            keep.extend(host.as_ref().map(|h| h.as_raw_fd()));
            if let Err(e) = fds::close_all_except(&keep) {
                // The child is already running with the channel: it is the one to report.
                eprintln!("roma-sandbox launcher: {e}");
            }
            // `alive_w` stays open until this process ends (relay never returns), so the
            // child's liveness check sees it closed only if the launcher died.
            relay::wait_and_relay(child, host)
        }
    }
}

fn unshare_user_namespace() -> Result<(), SandboxError> {
    // SAFETY: unshare_unsafe is unsafe because changing namespaces under other threads can break
    // their assumptions; this process is single-threaded (see enter_jail_from_args).
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }
        .map_err(|e| SandboxError::NamespacesUnavailable(format!("unshare(CLONE_NEWUSER): {e}")))
}

/// For a launcher started as root: enters a new user namespace whose uid and gid 0 are host
/// uid and gid `target`, and becomes that uid 0, so the jail is never host root (for which the
/// kernel skips `RLIMIT_NPROC`, and which would own every file a namespace escape reaches).
///
/// A process may map only its own ids into a user namespace it created unless it holds
/// `CAP_SETUID` in the *parent* namespace, which it loses by entering the new one. So a helper
/// forked beforehand, still root outside, writes the maps, as `newuidmap` does for
/// unprivileged users. Root's supplementary groups are dropped first: `setgroups` is denied
/// inside the new namespace, and they would keep host gid 0's file access.
fn enter_user_namespace_as(target: u32) -> Result<(), SandboxError> {
    // SAFETY: setgroups with a count of 0 reads no memory; it only changes this process's
    // credentials (single-threaded, so no other thread keeps the old ones).
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        let e = io::Error::last_os_error();
        // EPERM: a user namespace whose creator denied setgroups, so the groups are the ones it
        // fixed and nothing here can change them; the unshare below says whether a jail can
        // still be built.
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(SandboxError::os("drop supplementary groups", e));
        }
    }
    let launcher = rustix::process::getpid().as_raw_nonzero().get();
    let (go_r, go_w) = pipe_with(PipeFlags::CLOEXEC).map_err(SandboxError::at("pipe"))?;
    let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC).map_err(SandboxError::at("pipe"))?;
    let maps = [
        (format!("/proc/{launcher}/setgroups"), "deny".to_owned()),
        (
            format!("/proc/{launcher}/uid_map"),
            format!("0 {target} 1\n"),
        ),
        (
            format!("/proc/{launcher}/gid_map"),
            format!("0 {target} 1\n"),
        ),
    ];
    // SAFETY: this process is single-threaded, so the child gets a consistent copy of the
    // address space (allocator locks included) and may allocate.
    let helper = unsafe { libc::fork() };
    if helper == -1 {
        return Err(SandboxError::os(
            "fork the uid-map helper",
            io::Error::last_os_error(),
        ));
    }
    if helper == 0 {
        drop((go_w, err_r));
        let mut byte = [0u8; 1];
        // End-of-file: the launcher could not enter the namespace and has given up.
        let go = matches!(rustix::io::read(&go_r, &mut byte), Ok(1));
        let mut failed = !go;
        if go {
            for (path, text) in &maps {
                if let Err(e) = std::fs::write(path, text) {
                    let msg = format!("write {path} ({text:?}) from the uid-map helper: {e}");
                    let _ = rustix::io::write(&err_w, msg.as_bytes());
                    failed = true;
                    break;
                }
            }
        }
        // SAFETY: _exit ends the helper without running the launcher's exit handlers.
        unsafe { libc::_exit(i32::from(failed)) }
    }
    drop((go_r, err_w));
    let entered = unshare_user_namespace();
    if entered.is_ok() {
        // The helper waits for this byte; if the write fails it reads end-of-file instead.
        let _ = rustix::io::write(&go_w, b"1");
    }
    drop(go_w);
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes only to `status`; `helper` is this process's own child.
    while unsafe { libc::waitpid(helper, &mut status, 0) } == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(SandboxError::os("wait for the uid-map helper", e));
        }
    }
    entered?;
    let mut msg = [0u8; 512];
    let n = rustix::io::read(&err_r, &mut msg).unwrap_or(0);
    if n > 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(SandboxError::JailSetup(format!(
            "cannot map the jail to host uid {target}: {}",
            if n > 0 {
                String::from_utf8_lossy(&msg[..n]).into_owned()
            } else {
                format!("the uid-map helper ended with status {status:#x}")
            }
        )));
    }
    // Uid and gid 0 of the new namespace are host `target` now; become them. This keeps the
    // full capability set of the new namespace (the kernel drops capabilities on a setuid only
    // when leaving the namespace's root uid, and the old ids were unmapped there).
    // SAFETY: setresgid/setresuid take integers and change only this process's credentials.
    unsafe {
        if libc::setresgid(0, 0, 0) != 0 {
            return Err(SandboxError::os(
                "setresgid(0) in the jail",
                io::Error::last_os_error(),
            ));
        }
        if libc::setresuid(0, 0, 0) != 0 {
            return Err(SandboxError::os(
                "setresuid(0) in the jail",
                io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
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
