//! Attempts at what the jail forbids, for `roma check`: run inside a worker, after its seccomp
//! filter, and report for each protection whether it held.
//!
//! The probes only *attempt*; they never report content (a file that could be read is reported
//! as "readable", not shown). Each one is harmless when it succeeds: a written file is removed at
//! once, a forked child exits at once, `execve` is given an unreadable `argv` so that it fails
//! with `EFAULT` where it would otherwise have run the program, and `mount` is tried with
//! `fsopen`, which creates an unattached filesystem context and mounts nothing.
//!
//! Under the production filter ([`crate::FilterMode::KillProcess`]) the first forbidden call
//! would kill the worker, so a probing worker installs the filter in
//! [`crate::FilterMode::Probe`] mode instead ([`crate::install_worker_filter_for_probe`]): the
//! same allow-list, but an unlisted call fails with `EPERM`. The allow-list, the namespaces and
//! the read-only root are identical, so a probe that holds under the probe filter holds under
//! the real one (which kills rather than failing). Never run untrusted code under the probe
//! filter.

use Verdict::{Held, NotHeld};
use std::ffi::CStr;
use std::fmt;
use std::io;

/// The result of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Which protection, e.g. `read /etc/passwd`.
    pub name: String,
    /// Whether the forbidden action was actually tried (a probe that needs an earlier step
    /// which failed reports `false`, and `held` then says what stopped it).
    pub attempted: bool,
    /// Whether the protection held: the forbidden action failed.
    pub held: bool,
    /// What happened, e.g. `EACCES` or `succeeded`.
    pub detail: String,
}

const LINE_TAG: &str = "probe";

/// Whether a protection held: the forbidden action failed, or never got the chance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Held,
    NotHeld,
}

impl Verdict {
    /// [`Verdict::Held`] when `held` is true.
    pub(crate) fn held_if(held: bool) -> Self {
        if held {
            Verdict::Held
        } else {
            Verdict::NotHeld
        }
    }
}

impl ProbeOutcome {
    /// The forbidden action was tried; `verdict` says whether it failed.
    pub(crate) fn attempted(name: &str, verdict: Verdict, detail: impl Into<String>) -> Self {
        Self::new(name, true, verdict, detail.into())
    }

    /// An earlier step that the action needs failed, so the action itself was not tried;
    /// `verdict` says whether what stopped it counts as the protection holding.
    pub(crate) fn not_attempted(name: &str, verdict: Verdict, detail: impl Into<String>) -> Self {
        Self::new(name, false, verdict, detail.into())
    }

    fn new(name: &str, attempted: bool, verdict: Verdict, detail: String) -> Self {
        ProbeOutcome {
            name: name.to_owned(),
            attempted,
            held: verdict == Verdict::Held,
            detail,
        }
    }

    /// One line (without a newline): `probe<TAB>name<TAB>attempted<TAB>held<TAB>detail`, the
    /// booleans as `0`/`1`. Tabs and line breaks in the text become spaces.
    pub fn to_line(&self) -> String {
        format!(
            "{LINE_TAG}\t{}\t{}\t{}\t{}",
            clean(&self.name),
            u8::from(self.attempted),
            u8::from(self.held),
            clean(&self.detail)
        )
    }

    /// Reads back a line written by [`ProbeOutcome::to_line`]; `None` if it is not one.
    pub fn parse_line(line: &str) -> Option<ProbeOutcome> {
        let mut parts = line.trim_end_matches(['\n', '\r']).splitn(5, '\t');
        if parts.next()? != LINE_TAG {
            return None;
        }
        let name = parts.next()?.to_owned();
        let flag = |s: &str| match s {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
        let attempted = flag(parts.next()?)?;
        let held = flag(parts.next()?)?;
        let detail = parts.next()?.to_owned();
        Some(ProbeOutcome {
            name,
            attempted,
            held,
            detail,
        })
    }
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.held { "held" } else { "NOT HELD" };
        write!(f, "{:<28} {verdict:<9} {}", self.name, self.detail)
    }
}

fn clean(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// The names of the probes, in the order [`run_probes`] reports them.
pub const PROBE_NAMES: [&str; 19] = [
    "read /etc/passwd",
    "list /",
    "write a file in /tmp",
    "write a file in /",
    "tcp connect 127.0.0.1:80",
    "unix socket",
    "fork",
    "execve /bin/sh",
    "read /proc/1/environ",
    "ptrace",
    "mount",
    "see host pids",
    "setuid(0)",
    "new user namespace",
    "futex FUTEX_LOCK_PI",
    "madvise MADV_REMOVE",
    "sendmsg (could pass fds)",
    "replace the SIGSYS handler",
    "name a refused call",
];

/// Runs every probe in this process and reports each.
///
/// Safe in a multi-threaded worker: the probes that fork run only raw system calls and `_exit`
/// in the child. Under the probe filter the forks fail anyway (`EPERM`).
pub fn run_probes() -> Vec<ProbeOutcome> {
    vec![
        read_file(PROBE_NAMES[0], "/etc/passwd"),
        list_root(PROBE_NAMES[1]),
        write_file(PROBE_NAMES[2], "/tmp"),
        write_file(PROBE_NAMES[3], ""),
        tcp_connect(PROBE_NAMES[4]),
        unix_socket(PROBE_NAMES[5]),
        fork(PROBE_NAMES[6]),
        execve(PROBE_NAMES[7]),
        read_file(PROBE_NAMES[8], "/proc/1/environ"),
        ptrace(PROBE_NAMES[9]),
        mount(PROBE_NAMES[10]),
        host_pids(PROBE_NAMES[11]),
        setuid(PROBE_NAMES[12]),
        new_userns(PROBE_NAMES[13]),
        futex_lock_pi(PROBE_NAMES[14]),
        madvise_remove(PROBE_NAMES[15]),
        sendmsg(PROBE_NAMES[16]),
        replace_sigsys_handler(PROBE_NAMES[17]),
        sigsys_reporter(PROBE_NAMES[18]),
    ]
}

fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EROFS) => "EROFS",
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::EFAULT) => "EFAULT",
        Some(libc::ESRCH) => "ESRCH",
        Some(libc::ENETUNREACH) => "ENETUNREACH",
        Some(libc::ECONNREFUSED) => "ECONNREFUSED",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EAGAIN) => "EAGAIN",
        Some(libc::EFBIG) => "EFBIG",
        _ => return e.to_string(),
    };
    name.to_owned()
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn read_file(name: &str, path: &str) -> ProbeOutcome {
    match std::fs::read(path) {
        Ok(_) => ProbeOutcome::attempted(name, NotHeld, "readable"),
        Err(e) => ProbeOutcome::attempted(name, Held, errno_name(&e)),
    }
}

fn list_root(name: &str) -> ProbeOutcome {
    match std::fs::read_dir("/") {
        Ok(entries) => {
            let names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            // Listing the jail's own root is harmless; the host's root has /etc.
            let host_root = names.iter().any(|n| n == "etc");
            let detail = format!("listed {} entries", names.len());
            ProbeOutcome::attempted(name, Verdict::held_if(!host_root), detail)
        }
        Err(e) => ProbeOutcome::attempted(name, Held, errno_name(&e)),
    }
}

fn write_file(name: &str, dir: &str) -> ProbeOutcome {
    let path = format!("{dir}/roma-probe-{}", std::process::id());
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path);
    match created {
        Ok(mut f) => {
            let written = io::Write::write_all(&mut f, b"x");
            drop(f);
            let _ = std::fs::remove_file(&path);
            match written {
                Ok(()) => ProbeOutcome::attempted(name, NotHeld, "created and written (removed)"),
                // RLIMIT_FSIZE 0 stops the write (EFBIG): no data can leave.
                Err(e) => ProbeOutcome::attempted(
                    name,
                    Held,
                    format!("created, write failed: {} (removed)", errno_name(&e)),
                ),
            }
        }
        Err(e) => ProbeOutcome::attempted(name, Held, errno_name(&e)),
    }
}

/// A socket fd closed on drop.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the fd was returned by socket() in this module and is closed only here.
        unsafe { libc::close(self.0) };
    }
}

fn socket(domain: libc::c_int) -> io::Result<Fd> {
    // SAFETY: socket takes integer arguments only.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        Err(last_error())
    } else {
        Ok(Fd(fd))
    }
}

fn tcp_connect(name: &str) -> ProbeOutcome {
    let fd = match socket(libc::AF_INET) {
        Ok(fd) => fd,
        Err(e) => {
            return ProbeOutcome::attempted(name, Held, format!("socket: {}", errno_name(&e)));
        }
    };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 80u16.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in that lives for the call, and the length matches it.
    let rc = unsafe {
        libc::connect(
            fd.0,
            (&raw const addr).cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return ProbeOutcome::attempted(name, NotHeld, "socket created, connected");
    }
    let e = last_error();
    // Refused means the host's loopback answered: the network is reachable.
    let held = matches!(
        e.raw_os_error(),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES | libc::EPERM)
    );
    ProbeOutcome::attempted(
        name,
        Verdict::held_if(held),
        format!("socket created, connect: {}", errno_name(&e)),
    )
}

fn unix_socket(name: &str) -> ProbeOutcome {
    match socket(libc::AF_UNIX) {
        Ok(_fd) => ProbeOutcome::attempted(name, NotHeld, "socket(AF_UNIX) created"),
        Err(e) => ProbeOutcome::attempted(name, Held, errno_name(&e)),
    }
}

/// `fork`s a child that runs `in_child` (async-signal-safe code only) and `_exit`s with its
/// result; returns the child's exit code, or the fork error.
fn in_forked_child(in_child: fn() -> i32) -> io::Result<i32> {
    // SAFETY: the probes run single-threaded (see run_probes); the child only runs `in_child`,
    // which makes raw system calls, then `_exit`s without touching the parent's state.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_error());
    }
    if pid == 0 {
        let code = in_child();
        // SAFETY: _exit ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes only to `status`, which lives for the call.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let e = last_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    })
}

fn fork(name: &str) -> ProbeOutcome {
    match in_forked_child(|| 0) {
        Ok(_) => ProbeOutcome::attempted(name, NotHeld, "forked a child"),
        Err(e) => ProbeOutcome::attempted(name, Held, errno_name(&e)),
    }
}

fn execve(name: &str) -> ProbeOutcome {
    const SH: &CStr = c"/bin/sh";
    // An argv pointer into the never-mapped first page: the kernel opens and checks the program
    // first, then fails to read argv with EFAULT, so EFAULT means "it would have run" and the
    // process is never replaced.
    // `dangling` is the address 8: inside the first page, which is never mapped.
    let bad_argv = std::ptr::dangling::<*const libc::c_char>();
    // SAFETY: the kernel validates the user pointers; no user-space code dereferences
    // `bad_argv`, and execve cannot succeed with an unreadable argv.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_execve,
            SH.as_ptr(),
            bad_argv,
            std::ptr::null::<*const libc::c_char>(),
        )
    };
    let e = last_error();
    if rc == 0 || e.raw_os_error() == Some(libc::EFAULT) {
        ProbeOutcome::attempted(name, NotHeld, "the program was found and executable")
    } else {
        ProbeOutcome::attempted(name, Held, errno_name(&e))
    }
}

fn ptrace(name: &str) -> ProbeOutcome {
    fn traceme() -> i32 {
        // SAFETY: PTRACE_TRACEME takes no pointers; it only marks this process as traced.
        let rc = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
        if rc == 0 {
            0
        } else {
            io::Error::last_os_error().raw_os_error().unwrap_or(255)
        }
    }
    // In a throw-away child when one can be forked, so the probing process is never traced.
    match in_forked_child(traceme) {
        Ok(0) => ProbeOutcome::attempted(name, NotHeld, "PTRACE_TRACEME succeeded (in a child)"),
        Ok(code) => {
            ProbeOutcome::attempted(name, Held, errno_name(&io::Error::from_raw_os_error(code)))
        }
        Err(_) => match traceme() {
            0 => ProbeOutcome::attempted(name, NotHeld, "PTRACE_TRACEME succeeded"),
            code => {
                ProbeOutcome::attempted(name, Held, errno_name(&io::Error::from_raw_os_error(code)))
            }
        },
    }
}

fn mount(name: &str) -> ProbeOutcome {
    // SAFETY: fsopen reads the NUL-terminated fs name and returns a new fd (or -1).
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), libc::O_CLOEXEC) };
    if fd >= 0 {
        drop(Fd(fd as libc::c_int));
        ProbeOutcome::attempted(name, NotHeld, "fsopen(tmpfs) succeeded (nothing mounted)")
    } else {
        ProbeOutcome::attempted(name, Held, errno_name(&last_error()))
    }
}

fn host_pids(name: &str) -> ProbeOutcome {
    // SAFETY: getpid/getppid take no arguments.
    let (pid, ppid) = unsafe { (libc::getpid(), libc::getppid()) };
    // SAFETY: signal 0 only checks that pid 1 exists and may be signalled.
    let err = (unsafe { libc::kill(1, 0) } != 0).then(last_error);
    let kill = match &err {
        None => "kill(1, 0) succeeded".to_owned(),
        Some(e) => format!("kill(1, 0): {}", errno_name(e)),
    };
    // In a pid namespace of its own the worker is pid 1 (namespaces) or pid 2 under its jail's
    // init, pid 1 (birdcage): host pids that low belong to the kernel, never to a spawned
    // process. Or pid 1 does not exist for it at all.
    let own_namespace = pid == 1 || (pid == 2 && ppid == 1);
    let held = own_namespace || err.is_some_and(|e| e.raw_os_error() == Some(libc::ESRCH));
    ProbeOutcome::attempted(
        name,
        Verdict::held_if(held),
        format!("pid {pid}, parent {ppid}, {kill}"),
    )
}

fn setuid(name: &str) -> ProbeOutcome {
    // SAFETY: setuid takes an integer.
    let rc = unsafe { libc::setuid(0) };
    if rc == 0 {
        ProbeOutcome::attempted(name, NotHeld, "setuid(0) succeeded")
    } else {
        ProbeOutcome::attempted(name, Held, errno_name(&last_error()))
    }
}

fn new_userns(name: &str) -> ProbeOutcome {
    fn in_child() -> i32 {
        // SAFETY: unshare takes flags only; it runs in a throw-away child.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0 {
            0
        } else {
            io::Error::last_os_error().raw_os_error().unwrap_or(255)
        }
    }
    // A throw-away child keeps the probing process in its namespaces; without fork, try here
    // (harmless: a fresh user namespace grants nothing outside it).
    let code = match in_forked_child(in_child) {
        Ok(code) => code,
        Err(_) => in_child(),
    };
    if code == 0 {
        ProbeOutcome::attempted(name, NotHeld, "unshare(CLONE_NEWUSER) succeeded")
    } else {
        ProbeOutcome::attempted(name, Held, errno_name(&io::Error::from_raw_os_error(code)))
    }
}

/// The outcome of a call that only the filter's argument rules refuse: held when it failed
/// with `EPERM` (the probe filter's answer; the production filter traps it), not held when the
/// kernel got to answer it.
fn refused_by_the_filter(name: &str, rc: libc::c_long, what: &str) -> ProbeOutcome {
    if rc >= 0 {
        return ProbeOutcome::attempted(name, NotHeld, format!("{what} succeeded"));
    }
    let e = last_error();
    let held = e.raw_os_error() == Some(libc::EPERM);
    let detail = if held {
        errno_name(&e)
    } else {
        format!(
            "{} (from the kernel: the filter let it through)",
            errno_name(&e)
        )
    };
    ProbeOutcome::attempted(name, Verdict::held_if(held), detail)
}

fn futex_lock_pi(name: &str) -> ProbeOutcome {
    let mut word: u32 = 0;
    let addr = std::ptr::addr_of_mut!(word);
    let op = libc::FUTEX_LOCK_PI | libc::FUTEX_PRIVATE_FLAG;
    // SAFETY: the futex word is a local that outlives both calls; a lock taken is released
    // before the word goes out of scope.
    unsafe {
        let rc = libc::syscall(libc::SYS_futex, addr, op, 0, 0, 0, 0);
        if rc == 0 {
            let unlock = libc::FUTEX_UNLOCK_PI | libc::FUTEX_PRIVATE_FLAG;
            libc::syscall(libc::SYS_futex, addr, unlock, 0, 0, 0, 0);
        }
        refused_by_the_filter(name, rc, "FUTEX_LOCK_PI")
    }
}

fn madvise_remove(name: &str) -> ProbeOutcome {
    const PAGE: usize = 4096;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let shared = libc::MAP_SHARED | libc::MAP_ANONYMOUS;
    // SAFETY: a fresh shared anonymous page (the kind of memory MADV_REMOVE empties), advised
    // and unmapped here, never dereferenced.
    unsafe {
        let page = libc::mmap(std::ptr::null_mut(), PAGE, rw, shared, -1, 0);
        if page == libc::MAP_FAILED {
            let e = last_error();
            return ProbeOutcome::not_attempted(name, Held, format!("mmap: {}", errno_name(&e)));
        }
        let rc = libc::syscall(libc::SYS_madvise, page, PAGE, libc::MADV_REMOVE);
        let outcome = refused_by_the_filter(name, rc, "MADV_REMOVE on shared memory");
        libc::munmap(page, PAGE);
        outcome
    }
}

fn sendmsg(name: &str) -> ProbeOutcome {
    // SAFETY: an empty msghdr (no data, no control) on fd -1: the kernel would answer EBADF.
    let rc = unsafe {
        let msg: libc::msghdr = std::mem::zeroed();
        libc::syscall(libc::SYS_sendmsg, -1, &msg, 0)
    };
    refused_by_the_filter(name, rc, "sendmsg")
}

fn replace_sigsys_handler(name: &str) -> ProbeOutcome {
    // SAFETY: rt_sigaction reads a zeroed sigaction (SIG_DFL) that outlives the call. Only run
    // in a jailed worker, where the filter refuses it (a replaced handler only loses names).
    let rc = unsafe {
        let action: libc::sigaction = std::mem::zeroed();
        libc::syscall(
            libc::SYS_rt_sigaction,
            libc::SIGSYS,
            &action,
            std::ptr::null_mut::<libc::sigaction>(),
            8,
        )
    };
    refused_by_the_filter(name, rc, "rt_sigaction(SIGSYS)")
}

fn sigsys_reporter(name: &str) -> ProbeOutcome {
    // SAFETY: sigaction with no new action only writes the current one into `old`.
    let (rc, old) = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        let rc = libc::sigaction(libc::SIGSYS, std::ptr::null(), &mut old);
        (rc, old)
    };
    if rc != 0 {
        let e = last_error();
        return ProbeOutcome::attempted(name, NotHeld, format!("sigaction: {}", errno_name(&e)));
    }
    let installed = old.sa_sigaction != libc::SIG_DFL
        && old.sa_sigaction != libc::SIG_IGN
        && old.sa_flags & libc::SA_SIGINFO != 0;
    match (
        installed,
        crate::current_jail().and_then(|j| j.violation_fd),
    ) {
        (true, Some(fd)) => ProbeOutcome::attempted(
            name,
            Held,
            format!("SIGSYS handler reports the call's number to the host on fd {fd}"),
        ),
        (true, None) => ProbeOutcome::attempted(
            name,
            NotHeld,
            "no violation pipe from the host: a refused call kills unnamed",
        ),
        (false, _) => ProbeOutcome::attempted(
            name,
            NotHeld,
            "no SIGSYS handler: a refused call kills unnamed",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_reject_garbage() {
        let o = ProbeOutcome::attempted("fork", NotHeld, "forked\ta child\n");
        let line = o.to_line();
        assert!(!line.contains('\n'));
        let back = ProbeOutcome::parse_line(&line).unwrap();
        assert_eq!(back.name, "fork");
        assert!(back.attempted && !back.held);
        assert_eq!(back.detail, "forked a child ");
        for bad in [
            "",
            "probe",
            "probe\tx\t2\t0\td",
            "echo\tx\t1\t1\td",
            "probe\tx\t1\t1",
        ] {
            assert_eq!(ProbeOutcome::parse_line(bad), None, "{bad:?}");
        }
        assert!(o.to_string().contains("NOT HELD"));
    }

    #[test]
    fn the_constructors_say_what_was_tried_and_whether_it_held() {
        let flags = |o: ProbeOutcome| (o.attempted, o.held);
        assert_eq!(flags(ProbeOutcome::attempted("a", Held, "")), (true, true));
        assert_eq!(
            flags(ProbeOutcome::attempted("a", NotHeld, "")),
            (true, false)
        );
        assert_eq!(
            flags(ProbeOutcome::not_attempted("a", Held, "")),
            (false, true)
        );
        assert_eq!(
            flags(ProbeOutcome::not_attempted("a", NotHeld, "")),
            (false, false)
        );
        assert_eq!(Verdict::held_if(true), Held);
        assert_eq!(Verdict::held_if(false), NotHeld);
    }

    #[test]
    fn unjailed_test_process_sees_the_host() {
        // The test runner itself is not jailed: probes that need no privilege must report the
        // protections as not held, which proves the probes can tell the difference.
        let by_name = |n: &str| run_one(n);
        assert!(!by_name("list /").held);
        assert!(!by_name("execve /bin/sh").held);
        assert!(!by_name("unix socket").held);
        assert!(!by_name("futex FUTEX_LOCK_PI").held);
        assert!(!by_name("madvise MADV_REMOVE").held);
        assert!(!by_name("sendmsg (could pass fds)").held);
        assert!(!by_name("name a refused call").held);
    }

    fn run_one(n: &str) -> ProbeOutcome {
        match n {
            "list /" => list_root(n),
            "execve /bin/sh" => execve(n),
            "unix socket" => unix_socket(n),
            "futex FUTEX_LOCK_PI" => futex_lock_pi(n),
            "madvise MADV_REMOVE" => madvise_remove(n),
            "sendmsg (could pass fds)" => sendmsg(n),
            "name a refused call" => sigsys_reporter(n),
            _ => unreachable!(),
        }
    }
}
