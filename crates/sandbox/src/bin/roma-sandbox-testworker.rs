//! A tiny worker for roma-sandbox's integration tests, shaped like the real roma-worker: it
//! enters the jail first thing in `main`, installs the seccomp filter, then does one action and
//! reports on its channel (the first channel fd, or stdout without a jail).
//!
//! Usage (after the jail options): `<seccomp> <action>`, where `<seccomp>` is `off`, `kill`
//! (production filter) or `probe` (EPERM instead of kill), and `<action>` is one of:
//! - `echo`: copy lines from the channel back to it until end-of-file, then exit 0;
//! - `probe`: run the probes and write one `probe ...` line each, then `done`;
//! - `violate`: call `fork` (forbidden), which the `kill` filter answers with SIGSYS;
//! - `thread`: start a named thread after the filter, join it, write `thread ok`;
//! - `fds`: write `fds N N ...`, every open descriptor (found with `fcntl`, no /proc needed);
//! - `limits`: write `limits core=N fsize=N nofile=N nproc=N as=N` (soft limits, `-` for none);
//! - `no-userns`: (unjailed, `off`) forbid user namespaces for itself (a user namespace of its
//!   own with `user.max_user_namespaces` 0), try to spawn a `namespaces` worker, write `error
//!   <Debug of the SandboxError>` or `spawned`;
//! - `read PATH` / `write PATH`: write `ok <content>` / `ok`, or `err <io error>`;
//! - `env`: write `env KEY` for each environment variable;
//! - `info`: write `info pid=.. ppid=.. jail=..`.

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
        "thread" => {
            let t = std::thread::Builder::new()
                .name("probe-thread".into())
                .spawn(|| 6 * 7)?;
            let v = t.join().map_err(|_| "the thread panicked")?;
            out.write_all(format!("thread ok {v}\n").as_bytes())?;
        }
        "fds" => {
            let mut text = String::from("fds");
            for n in 0..1024 {
                // SAFETY: F_GETFD only reads the descriptor's flags.
                if unsafe { libc::fcntl(n, libc::F_GETFD) } != -1 {
                    text.push_str(&format!(" {n}"));
                }
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
