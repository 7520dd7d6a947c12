//! A tiny worker for roma-sandbox's integration tests, shaped like the real roma-worker: it
//! enters the jail first thing in `main`, installs the seccomp filter, then does one action and
//! reports on its channel (the first channel fd, or stdout without a jail).
//!
//! Usage (after the jail options): `<seccomp> <action>`, where `<seccomp>` is `off`, `kill`
//! (production filter) or `probe` (EPERM instead of kill), and `<action>` is one of:
//! - `echo`: copy lines from the channel back to it until end-of-file, then exit 0;
//! - `probe`: run the probes and write one `probe ...` line each, then `done`;
//! - `violate`: call `fork` (forbidden: glibc's fork is `clone` without `CLONE_THREAD`), which
//!   the `kill` filter traps: the process dies of SIGSYS after naming the call to the host;
//! - `violate-blocked`: the same with SIGSYS blocked, so the handler cannot run and the kernel
//!   kills the process unnamed;
//! - `forbidden FORM`: make one forbidden form of an argument-checked call (see
//!   [`forbidden_call`]), which the `kill` filter traps the same way; writes `survived ...` if
//!   it did not;
//! - `arg-forms`: make the allowed forms of each argument-checked call, and the `madvise` advice
//!   the filter answers with `EPERM`, writing `call NAME ok` or `call NAME errno N`, then `done`;
//! - `thread`: start a named thread after the filter, join it, write `thread ok`;
//! - `v8-calls`: make each system call V8, glibc and the worker may make after the filter is in
//!   (the CPU- and kernel-dependent ones included: memory protection keys, `MADV_FREE`,
//!   `clone3`), writing `call NAME ok` or `call NAME errno N` for each, then `done`;
//! - `fds`: write `fds N N ... violation=N`, every open descriptor (found with `fcntl`, no /proc
//!   needed) and which of them is the violation pipe;
//! - `limits`: write `limits core=N fsize=N nofile=N nproc=N as=N data=N` (soft limits, `-`
//!   for none);
//! - `no-userns`: (unjailed, `off`) forbid user namespaces for itself (a user namespace of its
//!   own with `user.max_user_namespaces` 0), try to spawn a `namespaces` worker, write `error
//!   <Debug of the SandboxError>` or `spawned`;
//! - `read PATH` / `write PATH`: write `ok <content>` / `ok`, or `err <io error>`;
//! - `env`: write `env KEY` for each environment variable;
//! - `info`: write `info pid=.. ppid=.. jail=..`.
//! - `touch MB`: map MB MiB of private memory and write to every page, as native code that
//!   hoards memory would; write `touch ok` or `touch errno N`;
//! - `hang`: write `hanging`, then ignore end-of-file and run forever, as a compromised worker
//!   would (it sleeps, so that it costs no CPU while a test waits on it);
//! - `threads N`: start up to N threads that park, write `threads started=K error=E` (E the
//!   first spawn error or `-`), then exit;
//! - `spin MS`: spin on one thread for MS ms of wall-clock time, then write `spin cpu_us=N`,
//!   the CPU time the process used (what a CPU limit throttles);
//! - `host BACKEND`: (unjailed) be a host: spawn a `BACKEND` worker running `kill hang`, wait for
//!   its `hanging`, write `host launcher=PID`, then wait forever without reaping it.

use roma_sandbox::probe::run_probes;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::process::ExitCode;

/// Exit code for a usage or I/O error (distinct from the jail-setup code).
const FAILED: u8 = 3;

fn main() -> ExitCode {
    let rest = match roma_sandbox::enter_jail_from_args(std::env::args_os().skip(1)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("roma-sandbox-testworker: {e}");
            return ExitCode::from(roma_sandbox::JAIL_SETUP_FAILED_EXIT_CODE as u8);
        }
    };
    let args: Vec<String> = rest
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let channel = rest
        .jail
        .as_ref()
        .and_then(|j| j.channel_fds.first().copied());
    match run(&args, channel) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roma-sandbox-testworker: {e}");
            ExitCode::from(FAILED)
        }
    }
}

fn run(args: &[String], channel: Option<i32>) -> Result<(), Box<dyn std::error::Error>> {
    let [seccomp, action, operand @ ..] = args else {
        return Err(format!("usage: <off|kill|probe> <action> [path], got {args:?}").into());
    };
    let path = operand.first().map(String::as_str).unwrap_or("");
    let fd = channel.unwrap_or(1);
    // SAFETY: the channel fd was handed to this process by the host and stays open for its
    // whole life; ManuallyDrop keeps this File from closing it (stdout when unjailed).
    let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });

    // Gather what needs no filter but must be seen before it (nothing here needs it yet).
    match seccomp.as_str() {
        "off" => {}
        "kill" => roma_sandbox::install_worker_filter()?,
        "probe" => roma_sandbox::install_worker_filter_for_probe()?,
        other => return Err(format!("unknown seccomp mode {other}").into()),
    }

    match action.as_str() {
        "echo" => {
            // SAFETY: as above; a second handle on the same fd, also never closed.
            let input = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
            let mut reader = BufReader::new(&*input);
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                out.write_all(line.as_bytes())?;
            }
        }
        "probe" => {
            let mut text = String::new();
            for o in run_probes() {
                text.push_str(&o.to_line());
                text.push('\n');
            }
            text.push_str("done\n");
            out.write_all(text.as_bytes())?;
        }
        "violate" => {
            // SAFETY: fork in a single-threaded process; a child (if the filter let one be
            // made) exits at once.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: _exit ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(0) };
            }
            out.write_all(format!("survived fork() = {pid}\n").as_bytes())?;
        }
        "violate-blocked" => {
            // SAFETY: sigprocmask changes only this thread's mask, from a set initialised by
            // sigemptyset/sigaddset; the fork is as in `violate`.
            let pid = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGSYS);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                let pid = libc::fork();
                if pid == 0 {
                    libc::_exit(0);
                }
                pid
            };
            out.write_all(format!("survived fork() = {pid}\n").as_bytes())?;
        }
        "forbidden" => {
            let ret = forbidden_call(path).ok_or_else(|| format!("unknown form {path}"))?;
            out.write_all(format!("survived {path} = {ret:?}\n").as_bytes())?;
        }
        "arg-forms" => out.write_all(call_report(allowed_forms()).as_bytes())?,
        "thread" => {
            let t = std::thread::Builder::new()
                .name("probe-thread".into())
                .spawn(|| 6 * 7)?;
            let v = t.join().map_err(|_| "the thread panicked")?;
            out.write_all(format!("thread ok {v}\n").as_bytes())?;
        }
        "v8-calls" => out.write_all(call_report(v8_calls()).as_bytes())?,
        "fds" => {
            let mut text = String::from("fds");
            for n in 0..1024 {
                // SAFETY: F_GETFD only reads the descriptor's flags.
                if unsafe { libc::fcntl(n, libc::F_GETFD) } != -1 {
                    text.push_str(&format!(" {n}"));
                }
            }
            // The violation pipe (see roma_sandbox::JailInfo) is the one other descriptor.
            if let Some(fd) = roma_sandbox::current_jail().and_then(|j| j.violation_fd) {
                text.push_str(&format!(" violation={fd}"));
            }
            text.push('\n');
            out.write_all(text.as_bytes())?;
        }
        "limits" => {
            let mut text = String::from("limits");
            for (name, resource) in [
                ("core", libc::RLIMIT_CORE),
                ("fsize", libc::RLIMIT_FSIZE),
                ("nofile", libc::RLIMIT_NOFILE),
                ("nproc", libc::RLIMIT_NPROC),
                ("as", libc::RLIMIT_AS),
                ("data", libc::RLIMIT_DATA),
            ] {
                let mut r = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                // SAFETY: getrlimit writes only to `r`, which lives for the call.
                if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
                if r.rlim_cur == libc::RLIM_INFINITY {
                    text.push_str(&format!(" {name}=-"));
                } else {
                    text.push_str(&format!(" {name}={}", r.rlim_cur));
                }
            }
            text.push('\n');
            out.write_all(text.as_bytes())?;
        }
        "no-userns" => {
            let line = match spawn_without_userns() {
                Ok(()) => "spawned\n".to_owned(),
                Err(e) => format!("error {e:?}\n"),
            };
            out.write_all(line.as_bytes())?;
        }
        "read" => {
            let line = match std::fs::read_to_string(path) {
                Ok(text) => format!("ok {}\n", text.trim_end()),
                Err(e) => format!("err {e}\n"),
            };
            out.write_all(line.as_bytes())?;
        }
        "write" => {
            let line = match std::fs::write(path, "x") {
                Ok(()) => "ok\n".to_owned(),
                Err(e) => format!("err {e}\n"),
            };
            out.write_all(line.as_bytes())?;
        }
        "env" => {
            let mut text = String::new();
            for (k, _) in std::env::vars_os() {
                text.push_str(&format!("env {}\n", k.to_string_lossy()));
            }
            text.push_str("done\n");
            out.write_all(text.as_bytes())?;
        }
        "info" => {
            let jail = roma_sandbox::current_jail().map_or("-".to_owned(), |j| j.kind.to_string());
            let line = format!(
                "info pid={} ppid={} jail={jail}\n",
                std::process::id(),
                std::os::unix::process::parent_id()
            );
            out.write_all(line.as_bytes())?;
        }
        "touch" => {
            let mb: usize = path.parse().map_err(|_| format!("touch {path:?}"))?;
            let len = mb << 20;
            // SAFETY: a fresh anonymous private mapping, written only within its length and
            // unmapped before the process goes on.
            let line = unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
                    format!("touch errno {errno}\n")
                } else {
                    for off in (0..len).step_by(4096) {
                        *p.cast::<u8>().add(off) = 1;
                    }
                    libc::munmap(p, len);
                    "touch ok\n".to_owned()
                }
            };
            out.write_all(line.as_bytes())?;
        }
        "hang" => {
            out.write_all(b"hanging\n")?;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        "threads" => {
            let n: usize = path.parse().map_err(|_| format!("threads {path:?}"))?;
            let mut started = 0usize;
            let mut error = "-".to_owned();
            let mut handles = Vec::new();
            for _ in 0..n {
                match std::thread::Builder::new().spawn(std::thread::park) {
                    Ok(h) => {
                        started += 1;
                        handles.push(h);
                    }
                    Err(e) => {
                        error = e.raw_os_error().map_or(e.to_string(), |n| n.to_string());
                        break;
                    }
                }
            }
            out.write_all(format!("threads started={started} error={error}\n").as_bytes())?;
            // Exit without joining: the parked threads end with the process.
            std::process::exit(0);
        }
        "spin" => {
            let ms: u64 = path.parse().map_err(|_| format!("spin {path:?}"))?;
            let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            let mut n = 0u64;
            while std::time::Instant::now() < end {
                n = std::hint::black_box(n.wrapping_add(1));
            }
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime writes one timespec into `ts`, which lives on this stack.
            if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            let us = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
            out.write_all(format!("spin cpu_us={us}\n").as_bytes())?;
        }
        "host" => {
            let backend = roma_sandbox::sandbox_by_name(path)?;
            let (host_end, worker_end) = std::os::unix::net::UnixStream::pair()?;
            let worker_fd = std::os::fd::AsRawFd::as_raw_fd(&worker_end);
            let spec = roma_sandbox::WorkerSpec {
                args: vec!["kill".into(), "hang".into()],
                inherited_fds: vec![worker_fd],
                ..roma_sandbox::WorkerSpec::new(std::env::current_exe()?)
            };
            let line = match backend.spawn(&spec) {
                Ok(worker) => {
                    drop(worker_end);
                    let mut reader = BufReader::new(&host_end);
                    let mut hello = String::new();
                    reader.read_line(&mut hello)?;
                    if hello.trim_end() != "hanging" {
                        return Err(format!("the worker said {hello:?}").into());
                    }
                    out.write_all(format!("host launcher={}\n", worker.pid()).as_bytes())?;
                    // Keep the worker (and the channel) and never reap: only a SIGKILL ends this.
                    let _keep = (worker, host_end);
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(3600));
                    }
                }
                Err(e) => format!("error {e:?}\n"),
            };
            out.write_all(line.as_bytes())?;
        }
        other => return Err(format!("unknown action {other}").into()),
    }
    Ok(())
}

/// Makes user namespaces unavailable to this process and its children, then asks the
/// `namespaces` backend for a worker.
fn spawn_without_userns() -> Result<(), roma_sandbox::SandboxError> {
    let io_err = |what: &str| {
        let e = std::io::Error::last_os_error();
        roma_sandbox::SandboxError::InvalidSpec(format!("test setup: {what}: {e}"))
    };
    // SAFETY: getuid/getgid take no arguments.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare takes flags only; this process is single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        return Err(io_err("unshare"));
    }
    for (path, text) in [
        ("/proc/self/setgroups", "deny".to_owned()),
        ("/proc/self/uid_map", format!("0 {uid} 1\n")),
        ("/proc/self/gid_map", format!("0 {gid} 1\n")),
        // Root of its own user namespace may lower the limit for namespaces created under it.
        ("/proc/sys/user/max_user_namespaces", "0\n".to_owned()),
    ] {
        std::fs::write(path, text).map_err(|e| {
            roma_sandbox::SandboxError::InvalidSpec(format!("test setup: write {path}: {e}"))
        })?;
    }
    let exe = std::env::current_exe().map_err(|_| io_err("current_exe"))?;
    let spec = roma_sandbox::WorkerSpec {
        args: vec!["off".into(), "info".into()],
        ..roma_sandbox::WorkerSpec::new(exe)
    };
    roma_sandbox::sandbox_by_name("namespaces")?
        .spawn(&spec)
        .map(drop)
}

/// The raw result of a system call: `Ok` for a non-negative return, else the errno.
fn checked(ret: libc::c_long) -> Result<(), i32> {
    if ret < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    } else {
        Ok(())
    }
}

/// Makes, with the arguments V8 and glibc use, each call the worker may make after the filter is
/// installed. A call the filter kills ends the process here, so a test that reads `done` knows
/// every one of them was let through (or answered with the filter's errno).
/// What the `arg-forms` and `v8-calls` actions write: `call NAME ok` or `call NAME errno N` for
/// each call, then `done`.
fn call_report(calls: Vec<(&'static str, Result<(), i32>)>) -> String {
    let mut text = String::new();
    for (name, result) in calls {
        match result {
            Ok(()) => text.push_str(&format!("call {name} ok\n")),
            Err(errno) => text.push_str(&format!("call {name} errno {errno}\n")),
        }
    }
    text.push_str("done\n");
    text
}

fn v8_calls() -> Vec<(&'static str, Result<(), i32>)> {
    const PAGE: usize = 4096;
    let mut calls = Vec::new();
    // SAFETY: every call below either takes no pointer, or pointers to locals that outlive the
    // call, or the anonymous mapping made here, which is used only within its length and
    // unmapped last.
    unsafe {
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let page = libc::mmap(std::ptr::null_mut(), 2 * PAGE, rw, flags, -1, 0);
        calls.push((
            "mmap",
            if page == libc::MAP_FAILED {
                checked(-1)
            } else {
                Ok(())
            },
        ));
        if page == libc::MAP_FAILED {
            return calls;
        }
        let addr = page as libc::c_long;
        let exec = libc::PROT_READ | libc::PROT_EXEC;
        calls.push((
            "mprotect",
            checked(libc::syscall(libc::SYS_mprotect, addr, PAGE, exec)),
        ));
        // V8's PKU support test allocates and frees a key; its WASM code space then gets the key
        // with pkey_mprotect. Without PKU, pkey_alloc fails with an errno and V8 falls back to
        // mprotect; pkey -1 is plain mprotect on any kernel with the call.
        let key = libc::syscall(libc::SYS_pkey_alloc, 0, 0);
        calls.push(("pkey_alloc", checked(key)));
        let pkey = if key >= 0 { key } else { -1 };
        calls.push((
            "pkey_mprotect",
            checked(libc::syscall(libc::SYS_pkey_mprotect, addr, PAGE, rw, pkey)),
        ));
        if key >= 0 {
            calls.push((
                "pkey_free",
                checked(libc::syscall(libc::SYS_pkey_free, key)),
            ));
        } else {
            // An unallocated key: the kernel answers EINVAL, the filter lets it ask.
            calls.push(("pkey_free", checked(libc::syscall(libc::SYS_pkey_free, 15))));
        }
        for (name, advice) in [
            ("madvise(MADV_DONTNEED)", libc::MADV_DONTNEED),
            ("madvise(MADV_FREE)", libc::MADV_FREE),
        ] {
            calls.push((
                name,
                checked(libc::syscall(libc::SYS_madvise, addr, PAGE, advice)),
            ));
        }
        calls.push((
            "mremap",
            checked(libc::syscall(libc::SYS_mremap, addr, 2 * PAGE, PAGE, 0)),
        ));
        calls.push((
            "munmap",
            checked(libc::syscall(libc::SYS_munmap, addr, PAGE)),
        ));

        let mut usage: libc::rusage = std::mem::zeroed();
        calls.push((
            "getrusage",
            checked(libc::syscall(
                libc::SYS_getrusage,
                libc::RUSAGE_SELF,
                &mut usage,
            )),
        ));
        let mut info: libc::sysinfo = std::mem::zeroed();
        calls.push((
            "sysinfo",
            checked(libc::syscall(libc::SYS_sysinfo, &mut info)),
        ));
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        calls.push((
            "sched_getaffinity",
            checked(libc::syscall(
                libc::SYS_sched_getaffinity,
                0,
                std::mem::size_of::<libc::cpu_set_t>(),
                &mut set,
            )),
        ));
        let mut param: libc::sched_param = std::mem::zeroed();
        calls.push((
            "sched_getparam",
            checked(libc::syscall(libc::SYS_sched_getparam, 0, &mut param)),
        ));
        calls.push((
            "sched_getscheduler",
            checked(libc::syscall(libc::SYS_sched_getscheduler, 0)),
        ));
        calls.push(("sched_yield", checked(libc::syscall(libc::SYS_sched_yield))));
        let mut ts: libc::timespec = std::mem::zeroed();
        for (name, nr) in [
            ("clock_gettime", libc::SYS_clock_gettime),
            ("clock_getres", libc::SYS_clock_getres),
        ] {
            calls.push((
                name,
                checked(libc::syscall(nr, libc::CLOCK_MONOTONIC, &mut ts)),
            ));
        }
        let mut random = [0u8; 16];
        calls.push((
            "getrandom",
            checked(libc::syscall(
                libc::SYS_getrandom,
                random.as_mut_ptr(),
                16,
                0,
            )),
        ));
        calls.push(("gettid", checked(libc::syscall(libc::SYS_gettid))));
        let name = c"v8-calls";
        calls.push((
            "prctl(PR_SET_NAME)",
            checked(libc::syscall(
                libc::SYS_prctl,
                libc::PR_SET_NAME,
                name.as_ptr(),
            )),
        ));
        let mut limit: libc::rlimit = std::mem::zeroed();
        calls.push((
            "prlimit64(read)",
            checked(libc::syscall(
                libc::SYS_prlimit64,
                0,
                libc::RLIMIT_STACK,
                std::ptr::null::<libc::rlimit>(),
                &mut limit,
            )),
        ));
        // The WASM trap handler and Rust's stack-overflow handler: query (and so may install)
        // the SIGSEGV action; query the alternate stack.
        let mut old: libc::sigaction = std::mem::zeroed();
        calls.push((
            "rt_sigaction(SIGSEGV)",
            checked(libc::syscall(
                libc::SYS_rt_sigaction,
                libc::SIGSEGV,
                std::ptr::null::<libc::sigaction>(),
                &mut old,
                8,
            )),
        ));
        let mut stack: libc::stack_t = std::mem::zeroed();
        calls.push((
            "sigaltstack",
            checked(libc::syscall(
                libc::SYS_sigaltstack,
                std::ptr::null::<libc::stack_t>(),
                &mut stack,
            )),
        ));
        // Answered by the filter's errno rules: glibc falls back to clone, ICU and V8 to their
        // defaults.
        calls.push((
            "clone3",
            checked(libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0)),
        ));
        let path = c"/proc/self/maps";
        calls.push((
            "openat",
            checked(libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::O_RDONLY,
            )),
        ));
        let mut buf = [0u8; 64];
        calls.push((
            "readlink",
            checked(libc::syscall(
                libc::SYS_readlink,
                path.as_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
            )),
        ));
    }
    calls
}

/// The forbidden forms `forbidden FORM` makes: each is refused by an argument rule (or, for
/// `sendmsg`, by its absence from the list). `None` for an unknown form; otherwise the call's
/// result, which only a process the filter let live gets to see.
fn forbidden_call(form: &str) -> Option<Result<(), i32>> {
    const PAGE: usize = 4096;
    let mut word: u32 = 0;
    let addr = std::ptr::addr_of_mut!(word);
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: each call takes no pointer, or a pointer to `word` (alive for the call), or maps
    // fresh memory at an address of the kernel's choosing; nothing is dereferenced afterwards.
    let ret = unsafe {
        match form {
            "futex-lock-pi" => libc::syscall(libc::SYS_futex, addr, libc::FUTEX_LOCK_PI, 0, 0),
            "futex-unlock-pi" => libc::syscall(
                libc::SYS_futex,
                addr,
                libc::FUTEX_UNLOCK_PI | libc::FUTEX_PRIVATE_FLAG,
                0,
                0,
            ),
            "fcntl-setown" => libc::syscall(libc::SYS_fcntl, 0, libc::F_SETOWN, 1),
            "fcntl-setpipe-sz" => libc::syscall(libc::SYS_fcntl, 0, libc::F_SETPIPE_SZ, 1 << 20),
            "fcntl-setfl-async" => libc::syscall(libc::SYS_fcntl, 0, libc::F_SETFL, libc::O_ASYNC),
            "mmap-hugetlb" => libc::syscall(
                libc::SYS_mmap,
                0,
                2 << 20,
                rw,
                anon | libc::MAP_HUGETLB,
                -1,
                0,
            ),
            "mmap-populate" => libc::syscall(
                libc::SYS_mmap,
                0,
                PAGE,
                rw,
                anon | libc::MAP_POPULATE,
                -1,
                0,
            ),
            "mmap-growsdown" => libc::syscall(
                libc::SYS_mmap,
                0,
                PAGE,
                rw,
                anon | libc::MAP_GROWSDOWN,
                -1,
                0,
            ),
            "mmap-shared-validate" => libc::syscall(
                libc::SYS_mmap,
                0,
                PAGE,
                rw,
                libc::MAP_SHARED_VALIDATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            ),
            "mprotect-growsdown" => {
                libc::syscall(libc::SYS_mprotect, 0, PAGE, rw | libc::PROT_GROWSDOWN)
            }
            "pkey_mprotect-growsdown" => libc::syscall(
                libc::SYS_pkey_mprotect,
                0,
                PAGE,
                rw | libc::PROT_GROWSDOWN,
                -1,
            ),
            "sendmsg" => {
                let msg: libc::msghdr = std::mem::zeroed();
                libc::syscall(libc::SYS_sendmsg, 1, &msg, 0)
            }
            "rt_sigaction-sigsys" => {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_DFL;
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    libc::SIGSYS,
                    &action,
                    std::ptr::null_mut::<libc::sigaction>(),
                    8,
                )
            }
            _ => return None,
        }
    };
    Some(checked(ret))
}

/// The allowed forms of each argument-checked call (each must work under the filter), and the
/// refused `madvise` advice (each must fail with `EPERM`).
fn allowed_forms() -> Vec<(&'static str, Result<(), i32>)> {
    const PAGE: usize = 4096;
    let mut calls = Vec::new();
    let mut word: u32 = 0;
    let mut other: u32 = 0;
    let w = std::ptr::addr_of_mut!(word);
    let o = std::ptr::addr_of_mut!(other);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: futex calls get pointers to `word`/`other`, alive for each call (waits use a value
    // that differs from the word's, so they return EAGAIN at once); mappings are fresh, used
    // within their length and unmapped; fcntl works on stderr (2) and a duplicate it closes.
    unsafe {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let futex =
            |op: i32, val: u32, timeout: *const libc::timespec, uaddr2: *mut u32, val3: i32| {
                checked(libc::syscall(
                    libc::SYS_futex,
                    w,
                    op,
                    val,
                    timeout,
                    uaddr2,
                    val3,
                ))
            };
        let p = libc::FUTEX_PRIVATE_FLAG;
        // A wait on a value the word does not hold returns EAGAIN: the filter let it through.
        let eagain = |r: Result<(), i32>| match r {
            Err(libc::EAGAIN) => Ok(()),
            other => other,
        };
        calls.push((
            "futex(WAIT)",
            eagain(futex(libc::FUTEX_WAIT, 1, &zero, o, 0)),
        ));
        calls.push((
            "futex(WAKE)",
            futex(libc::FUTEX_WAKE, 1, std::ptr::null(), o, 0),
        ));
        calls.push((
            "futex(WAKE|PRIVATE)",
            futex(libc::FUTEX_WAKE | p, 1, std::ptr::null(), o, 0),
        ));
        calls.push((
            "futex(WAIT_BITSET|PRIVATE|CLOCK_REALTIME)",
            eagain(futex(
                libc::FUTEX_WAIT_BITSET | p | libc::FUTEX_CLOCK_REALTIME,
                1,
                &zero,
                o,
                -1,
            )),
        ));
        calls.push((
            "futex(WAKE_BITSET)",
            futex(libc::FUTEX_WAKE_BITSET | p, 1, std::ptr::null(), o, -1),
        ));
        calls.push((
            "futex(REQUEUE)",
            futex(libc::FUTEX_REQUEUE | p, 1, std::ptr::null(), o, 0),
        ));
        calls.push((
            "futex(CMP_REQUEUE)",
            futex(libc::FUTEX_CMP_REQUEUE | p, 1, std::ptr::null(), o, 0),
        ));
        // FUTEX_OP_SET of 0 on `other`, then wake waiters on `word` (none).
        calls.push((
            "futex(WAKE_OP)",
            futex(libc::FUTEX_WAKE_OP | p, 1, std::ptr::null(), o, 0),
        ));

        let mmap = |prot: i32, flags: i32| {
            let m = libc::syscall(libc::SYS_mmap, 0, PAGE, prot, flags, -1, 0);
            if m < 0 {
                return checked(m);
            }
            checked(libc::syscall(libc::SYS_munmap, m, PAGE))
        };
        let exec = libc::PROT_READ | libc::PROT_EXEC;
        calls.push((
            "mmap(PROT_NONE, NORESERVE)",
            mmap(libc::PROT_NONE, anon | libc::MAP_NORESERVE),
        ));
        calls.push(("mmap(RW, STACK)", mmap(rw, anon | libc::MAP_STACK)));
        calls.push(("mmap(RWX)", mmap(rw | libc::PROT_EXEC, anon)));
        calls.push((
            "mmap(SHARED)",
            mmap(rw, libc::MAP_SHARED | libc::MAP_ANONYMOUS),
        ));
        let page = libc::syscall(libc::SYS_mmap, 0, 2 * PAGE, rw, anon, -1, 0);
        if page < 0 {
            calls.push(("mmap(RW)", checked(page)));
            return calls;
        }
        calls.push((
            "mmap(FIXED)",
            checked(libc::syscall(
                libc::SYS_mmap,
                page,
                PAGE,
                rw,
                anon | libc::MAP_FIXED,
                -1,
                0,
            )),
        ));
        calls.push((
            "mmap(FIXED_NOREPLACE)",
            // The range is taken: EEXIST, but the filter let it ask.
            match checked(libc::syscall(
                libc::SYS_mmap,
                page,
                PAGE,
                rw,
                anon | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )) {
                Err(libc::EEXIST) => Ok(()),
                other => other,
            },
        ));
        for (name, prot) in [
            ("mprotect(NONE)", libc::PROT_NONE),
            ("mprotect(RX)", exec),
            ("mprotect(RWX)", rw | libc::PROT_EXEC),
            ("mprotect(RW)", rw),
        ] {
            calls.push((
                name,
                checked(libc::syscall(libc::SYS_mprotect, page, PAGE, prot)),
            ));
        }
        calls.push((
            "pkey_mprotect(RX, no key)",
            checked(libc::syscall(libc::SYS_pkey_mprotect, page, PAGE, exec, -1)),
        ));
        for (name, advice) in [
            ("madvise(NORMAL)", libc::MADV_NORMAL),
            ("madvise(WILLNEED)", libc::MADV_WILLNEED),
            ("madvise(DONTNEED)", libc::MADV_DONTNEED),
            ("madvise(FREE)", libc::MADV_FREE),
            ("madvise(DONTDUMP)", libc::MADV_DONTDUMP),
            ("madvise(DONTFORK)", libc::MADV_DONTFORK),
            ("madvise(DOFORK)", libc::MADV_DOFORK),
            ("madvise(MERGEABLE)", libc::MADV_MERGEABLE),
            ("madvise(PAGEOUT)", libc::MADV_PAGEOUT),
            ("madvise(REMOVE)", libc::MADV_REMOVE),
        ] {
            calls.push((
                name,
                checked(libc::syscall(libc::SYS_madvise, page, PAGE, advice)),
            ));
        }
        libc::syscall(libc::SYS_munmap, page, 2 * PAGE);

        for (name, cmd, arg) in [
            ("fcntl(F_GETFD)", libc::F_GETFD, 0),
            ("fcntl(F_SETFD)", libc::F_SETFD, libc::FD_CLOEXEC),
            ("fcntl(F_GETFL)", libc::F_GETFL, 0),
        ] {
            calls.push((name, checked(libc::syscall(libc::SYS_fcntl, 2, cmd, arg))));
        }
        // What rustix's set-non-blocking does: F_SETFL of F_GETFL's answer plus O_NONBLOCK (on a
        // duplicate, whose flags are shared with stderr's description, so set them back).
        let flags = libc::syscall(libc::SYS_fcntl, 2, libc::F_GETFL, 0);
        calls.push((
            "fcntl(F_SETFL, GETFL|O_NONBLOCK)",
            checked(libc::syscall(
                libc::SYS_fcntl,
                2,
                libc::F_SETFL,
                flags | libc::O_NONBLOCK as i64,
            )),
        ));
        libc::syscall(libc::SYS_fcntl, 2, libc::F_SETFL, flags);
        let dup = libc::syscall(libc::SYS_fcntl, 2, libc::F_DUPFD_CLOEXEC, 3);
        calls.push(("fcntl(F_DUPFD_CLOEXEC)", checked(dup)));
        if dup >= 0 {
            libc::syscall(libc::SYS_close, dup);
        }
        let mut old: libc::sigaction = std::mem::zeroed();
        calls.push((
            "rt_sigaction(SIGSYS, query)",
            checked(libc::syscall(
                libc::SYS_rt_sigaction,
                libc::SIGSYS,
                std::ptr::null::<libc::sigaction>(),
                &mut old,
                8,
            )),
        ));
        calls.push((
            "rt_sigaction(SIGUSR1, query)",
            checked(libc::syscall(
                libc::SYS_rt_sigaction,
                libc::SIGUSR1,
                std::ptr::null::<libc::sigaction>(),
                &mut old,
                8,
            )),
        ));
    }
    calls
}
