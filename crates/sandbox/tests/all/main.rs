//! Integration tests: real workers (the `roma-sandbox-testworker` binary) started under each
//! backend, talking over a socketpair.
//!
//! Tests that need user namespaces fail with a clear message where the kernel refuses them,
//! unless `ROMA_TEST_ALLOW_NO_USERNS=1` is set, in which case they print a note and pass.

mod cgroup;
mod persist;
mod util;

use roma_sandbox::probe::{PROBE_NAMES, ProbeOutcome};
use roma_sandbox::{ENV_ALLOW_LIST, ExitReport, SandboxError, WorkerSpec, sandbox_by_name};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;
use util::{
    Worker, read_lines, spawn, spawn_and_read, spawn_spec_and_read, worker_spec, worker_spec_with,
};

/// Generous bound for a worker that should end promptly; only a hang would reach it.
const END: Duration = Duration::from_secs(20);

#[test]
fn echo_round_trip_and_exit_when_the_host_closes() {
    for backend in ["none", "namespaces"] {
        let Some(mut w) = spawn(backend, "kill", "echo") else {
            continue;
        };
        w.channel.write_all(b"hello\nworld\n").unwrap();
        let mut buf = [0u8; 12];
        w.channel.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello\nworld\n", "{backend}");
        drop(w.channel);
        let report = w.process.wait_timeout(END).unwrap();
        assert_eq!(report, Some(ExitReport::Exited { code: 0 }), "{backend}");
    }
}

/// The probe outcomes among a worker's lines.
fn outcomes(lines: &[String]) -> Vec<ProbeOutcome> {
    lines
        .iter()
        .filter_map(|l| ProbeOutcome::parse_line(l))
        .collect()
}

/// The outcome of probe `name`, which must be among `outcomes`.
fn outcome<'a>(outcomes: &'a [ProbeOutcome], name: &str) -> &'a ProbeOutcome {
    outcomes
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no `{name}` in {outcomes:?}"))
}

#[test]
fn every_probe_holds_under_namespaces() {
    let Some((mut process, lines)) = spawn_and_read("namespaces", "probe", "probe") else {
        return;
    };
    let outcomes = outcomes(&lines);
    assert_eq!(lines.last().map(String::as_str), Some("done"), "{lines:?}");
    let names: Vec<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, PROBE_NAMES, "{lines:?}");
    let broken: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.held)
        .map(|o| o.to_string())
        .collect();
    assert!(broken.is_empty(), "protections not held: {broken:#?}");
    assert_eq!(
        process.wait_timeout(END).unwrap(),
        Some(ExitReport::Exited { code: 0 })
    );
}

#[test]
fn namespaces_alone_hold_files_network_and_pids() {
    // Without seccomp, the namespaces and the read-only root must still stop these.
    let Some((_alive, lines)) = spawn_and_read("namespaces", "off", "probe") else {
        return;
    };
    let outcomes = outcomes(&lines);
    for name in [
        "read /etc/passwd",
        "list /",
        "write a file in /tmp",
        "write a file in /",
        "tcp connect 127.0.0.1:80",
        "execve /bin/sh",
        "read /proc/1/environ",
        "mount",
        "see host pids",
    ] {
        let o = outcome(&outcomes, name);
        assert!(o.held, "{o}");
    }
}

#[test]
fn probes_show_an_unjailed_worker_as_not_held() {
    let Some((_alive, lines)) = spawn_and_read("none", "off", "probe") else {
        unreachable!("the none backend needs no namespaces");
    };
    let outcomes = outcomes(&lines);
    // The ones that need no privilege on the host, so this holds as root and as a user.
    for name in [
        "list /",
        "tcp connect 127.0.0.1:80",
        "unix socket",
        "fork",
        "execve /bin/sh",
        "see host pids",
    ] {
        let o = outcome(&outcomes, name);
        assert!(
            !o.held,
            "an unjailed worker should show `{name}` as not held: {o}"
        );
    }
}

#[test]
fn a_seccomp_violation_kills_the_worker_with_sigsys() {
    for backend in ["none", "namespaces"] {
        let Some((mut process, lines)) = spawn_and_read(backend, "kill", "violate") else {
            continue;
        };
        assert!(
            lines.is_empty(),
            "{backend}: the worker survived: {lines:?}"
        );
        let report = process.wait_timeout(END).unwrap().unwrap();
        assert!(report.is_seccomp_violation(), "{backend}: {report}");
        assert_eq!(report.signal(), Some(libc::SIGSYS));
        // glibc's fork() is clone(SIGCHLD): the thread-only clone rule traps it, and the
        // worker's SIGSYS handler names it.
        assert_eq!(
            report,
            ExitReport::SeccompViolation {
                syscall: Some(libc::SYS_clone)
            },
            "{backend}: {report}"
        );
        assert!(
            report
                .to_string()
                .contains("forbidden system call clone (56)"),
            "{backend}: {report}"
        );
    }
}

/// With SIGSYS blocked the handler cannot run: the kernel still kills the worker with SIGSYS,
/// and the report says honestly that the worker did not name the call.
#[test]
fn a_violation_with_sigsys_blocked_still_kills_but_unnamed() {
    let Some((mut process, lines)) = spawn_and_read("namespaces", "kill", "violate-blocked") else {
        return;
    };
    assert!(lines.is_empty(), "the worker survived: {lines:?}");
    let report = process.wait_timeout(END).unwrap().unwrap();
    assert_eq!(
        report,
        ExitReport::SeccompViolation { syscall: None },
        "{report}"
    );
    assert!(
        report.to_string().contains("did not report which"),
        "{report}"
    );
}

/// Each forbidden form of an argument-checked call is trapped, and the error names the call.
#[test]
fn forbidden_argument_forms_are_trapped_and_named() {
    for (form, nr) in [
        ("futex-lock-pi", libc::SYS_futex),
        ("futex-unlock-pi", libc::SYS_futex),
        ("fcntl-setown", libc::SYS_fcntl),
        ("fcntl-setpipe-sz", libc::SYS_fcntl),
        ("fcntl-setfl-async", libc::SYS_fcntl),
        ("mmap-hugetlb", libc::SYS_mmap),
        ("mmap-populate", libc::SYS_mmap),
        ("mmap-growsdown", libc::SYS_mmap),
        ("mmap-shared-validate", libc::SYS_mmap),
        ("mprotect-growsdown", libc::SYS_mprotect),
        ("pkey_mprotect-growsdown", libc::SYS_pkey_mprotect),
        ("sendmsg", libc::SYS_sendmsg),
        ("rt_sigaction-sigsys", libc::SYS_rt_sigaction),
    ] {
        let spec = worker_spec_with(&[], "kill", &["forbidden", form]);
        let Some((mut process, lines)) = spawn_spec_and_read("namespaces", spec) else {
            return;
        };
        assert!(lines.is_empty(), "{form}: the worker survived: {lines:?}");
        let report = process.wait_timeout(END).unwrap().unwrap();
        assert_eq!(
            report,
            ExitReport::SeccompViolation { syscall: Some(nr) },
            "{form}: {report}"
        );
        let name = roma_sandbox::syscall_name(nr).unwrap();
        assert!(
            report
                .to_string()
                .contains(&format!("forbidden system call {name} ({nr})")),
            "{form}: {report}"
        );
    }
}

/// The allowed forms of each argument-checked call work under the production filter, and the
/// refused madvise advice fails with EPERM instead of killing.
#[test]
fn allowed_argument_forms_work_and_refused_advice_fails_softly() {
    for backend in ["none", "namespaces"] {
        let Some(lines) = lines_until_done(backend, "arg-forms") else {
            continue;
        };
        let eperm = format!("errno {}", libc::EPERM);
        for line in &lines {
            let (name, result) = line
                .strip_prefix("call ")
                .and_then(|l| l.rsplit_once(") "))
                .unwrap_or_else(|| panic!("{backend}: odd line {line:?}"));
            let refused = ["MERGEABLE", "PAGEOUT", "REMOVE"]
                .iter()
                .any(|a| name == format!("madvise({a}"));
            if refused {
                assert_eq!(result, eperm, "{backend}: {line}");
            } else {
                assert_eq!(result, "ok", "{backend}: {line}");
            }
        }
        assert!(lines.len() >= 30, "{backend}: {lines:?}");
    }
}

#[test]
fn threads_can_start_under_the_filter() {
    for backend in ["none", "namespaces"] {
        let Some((mut process, lines)) = spawn_and_read(backend, "kill", "thread") else {
            continue;
        };
        assert_eq!(lines, ["thread ok 42"], "{backend}");
        let report = process.wait_timeout(END).unwrap();
        assert_eq!(report, Some(ExitReport::Exited { code: 0 }), "{backend}");
    }
}

/// Runs `action` in a worker of `backend` under the production filter and returns the lines
/// it wrote before its last line, `done`, after checking that it lived to write `done` and
/// exited with 0. `None` where `backend` cannot run here.
fn lines_until_done(backend: &str, action: &str) -> Option<Vec<String>> {
    let (mut process, mut lines) = spawn_and_read(backend, "kill", action)?;
    let report = process.wait_timeout(END).unwrap();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("done"),
        "{backend}: the worker died under the filter ({report:?}) after {lines:?}"
    );
    assert_eq!(report, Some(ExitReport::Exited { code: 0 }), "{backend}");
    lines.pop();
    Some(lines)
}

/// Whether this CPU (and kernel) offer memory protection keys, so `pkey_alloc` must succeed.
fn cpu_has_pku() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|text| {
        text.lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| {
                let flags: BTreeSet<&str> = l.split_whitespace().collect();
                flags.contains("pku") && flags.contains("ospke")
            })
    })
}

/// Every call V8 may make after the filter (memory protection keys among them, which only a CPU
/// with PKU makes for real) is let through by the production filter on any machine: the worker
/// lives to write `done`, and the errno-answered calls get their errno.
#[test]
fn every_call_v8_may_make_survives_the_filter() {
    for backend in ["none", "namespaces"] {
        let Some(lines) = lines_until_done(backend, "v8-calls") else {
            continue;
        };
        let result = |name: &str| {
            let prefix = format!("call {name} ");
            lines
                .iter()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("{backend}: no result for {name}: {lines:?}"))
                .to_owned()
        };
        for name in [
            "mmap",
            "mprotect",
            "pkey_mprotect",
            "madvise(MADV_DONTNEED)",
            "munmap",
            "getrusage",
            "sysinfo",
            "sched_getaffinity",
            "sched_getparam",
            "sched_getscheduler",
            "clock_gettime",
            "getrandom",
            "prctl(PR_SET_NAME)",
            "prlimit64(read)",
            "rt_sigaction(SIGSEGV)",
            "sigaltstack",
        ] {
            assert_eq!(result(name), "ok", "{backend}: {name}");
        }
        assert_eq!(result("clone3"), format!("errno {}", libc::ENOSYS));
        assert_eq!(result("openat"), format!("errno {}", libc::EACCES));
        assert_eq!(result("readlink"), format!("errno {}", libc::EACCES));
        let pkey_alloc = result("pkey_alloc");
        if cpu_has_pku() {
            assert_eq!(pkey_alloc, "ok", "{backend}: this CPU has PKU");
            assert_eq!(result("pkey_free"), "ok", "{backend}");
        } else {
            // The kernel, not the filter, refuses: no PKU (EINVAL/ENOSPC) or no pkeys (ENOSYS).
            assert_ne!(pkey_alloc, "ok", "{backend}: pkey_alloc without PKU");
            assert_ne!(pkey_alloc, format!("errno {}", libc::EPERM), "{backend}");
        }
    }
}

#[test]
fn kill_and_wait_timeout() {
    for backend in ["none", "namespaces"] {
        let Some(Worker {
            mut process,
            mut channel,
            ..
        }) = spawn(backend, "kill", "echo")
        else {
            continue;
        };
        // The echo worker blocks on its channel, so it cannot have ended.
        assert_eq!(process.try_wait().unwrap(), None, "{backend}");
        assert_eq!(
            process.wait_timeout(Duration::from_millis(20)).unwrap(),
            None,
            "{backend}"
        );
        process.kill().unwrap();
        let report = process.wait_timeout(END).unwrap();
        assert_eq!(
            report,
            Some(ExitReport::Signaled {
                signal: libc::SIGKILL
            }),
            "{backend}"
        );
        // The jailed worker itself is gone too (PDEATHSIG): its end of the channel closed.
        let mut buf = [0u8; 1];
        assert_eq!(channel.read(&mut buf).unwrap(), 0, "{backend}");
        process.kill().unwrap();
        assert_eq!(process.try_wait().unwrap(), report);
    }
}

#[test]
fn only_stdio_and_the_channel_are_open_inside() {
    // A descriptor the host leaks (not close-on-exec) must not reach the jailed worker.
    // SAFETY: open reads a NUL-terminated path; the fd is closed below.
    let leaked = unsafe { libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY) };
    assert!(leaked >= 0);
    let result = spawn("namespaces", "kill", "fds").map(|w| (read_lines(w.channel), w.channel_fd));
    // SAFETY: `leaked` was opened above and is not used elsewhere.
    unsafe { libc::close(leaked) };
    let Some((lines, channel_fd)) = result else {
        return;
    };
    let (fds, violation) = lines[0]
        .strip_prefix("fds")
        .unwrap()
        .split_once(" violation=")
        .unwrap_or_else(|| panic!("no violation pipe: {lines:?}"));
    let got: BTreeSet<i32> = fds.split_whitespace().map(|n| n.parse().unwrap()).collect();
    let violation: i32 = violation.trim().parse().unwrap();
    assert_ne!(violation, leaked);
    assert_eq!(
        got,
        BTreeSet::from([0, 1, 2, channel_fd, violation]),
        "leaked fd was {leaked}"
    );
}

#[test]
fn rlimits_are_applied_inside_the_jail() {
    let mut spec = worker_spec(&[], "kill", "limits");
    spec.address_space_limit_mb = Some(64 * 1024);
    spec.data_limit_mb = Some(3 * 1024);
    let Some((mut process, lines)) = spawn_spec_and_read("namespaces", spec) else {
        return;
    };
    assert_eq!(
        lines,
        [format!(
            "limits core=0 fsize=0 nofile={} nproc={} as={} data={}",
            roma_sandbox::DEFAULT_MAX_OPEN_FILES,
            roma_sandbox::DEFAULT_MAX_PROCESSES,
            64u64 << 30,
            3u64 << 30
        )]
    );
    assert_eq!(
        process.wait_timeout(END).unwrap(),
        Some(ExitReport::Exited { code: 0 })
    );
}

#[test]
fn environment_is_only_the_allow_list() {
    for backend in ["none", "namespaces"] {
        let Some((_alive, lines)) = spawn_and_read(backend, "kill", "env") else {
            continue;
        };
        assert_eq!(lines.last().map(String::as_str), Some("done"), "{backend}");
        for l in &lines[..lines.len() - 1] {
            let key = l.strip_prefix("env ").unwrap();
            assert!(
                ENV_ALLOW_LIST.contains(&key),
                "{backend}: {key} reached the worker"
            );
        }
    }
}

#[test]
fn the_jailed_worker_is_pid_1_in_its_own_namespaces() {
    let Some(Worker {
        mut process,
        channel,
        ..
    }) = spawn("namespaces", "kill", "info")
    else {
        return;
    };
    let host_pid = process.pid();
    // The launcher (the host's child) is in the new namespaces; read them before it exits. It
    // may exit first on a loaded machine (the worker only prints and ends): a link that cannot
    // be read is skipped, but every one that can must differ from ours.
    let read: Vec<(&str, bool)> = [
        "user",
        "mnt",
        "net",
        "ipc",
        "uts",
        "cgroup",
        "pid_for_children",
    ]
    .into_iter()
    .filter_map(|ns| {
        let theirs = std::fs::read_link(format!("/proc/{host_pid}/ns/{ns}")).ok()?;
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).ok()?;
        Some((ns, theirs != ours))
    })
    .collect();
    let lines = read_lines(channel);
    assert_eq!(lines, ["info pid=1 ppid=0 jail=namespaces"]);
    assert_eq!(
        process.wait_timeout(END).unwrap(),
        Some(ExitReport::Exited { code: 0 })
    );
    // Reading another process's ns links needs ptrace access; as root (CI, this VM) it works.
    let shared: Vec<&str> = read
        .iter()
        .filter(|(_, differs)| !differs)
        .map(|(ns, _)| *ns)
        .collect();
    assert!(
        shared.is_empty(),
        "the launcher shares these namespaces with the host: {shared:?}"
    );
}

#[test]
fn spawn_reports_a_missing_binary_and_setup_failures() {
    for backend in ["none", "namespaces"] {
        let err = sandbox_by_name(backend)
            .unwrap()
            .spawn(&WorkerSpec::new("/nonexistent/roma-worker"))
            .unwrap_err();
        assert!(matches!(err, SandboxError::Os { .. }), "{backend}: {err}");
    }
    // A read-only path that cannot be a bind source is reported by the launcher through spawn.
    let mut spec = worker_spec(&[], "off", "info");
    spec.extra_read_only_paths = vec!["/".into()];
    match sandbox_by_name("namespaces").unwrap().spawn(&spec) {
        Err(SandboxError::JailSetup(text)) => assert!(text.contains('/'), "{text}"),
        Err(SandboxError::NamespacesUnavailable(_)) if util::allow_no_userns() => {}
        other => panic!("expected a jail setup error, got {other:?}"),
    }
}

#[test]
fn spawn_fails_clearly_without_user_namespaces() {
    // The worker runs unjailed, takes user namespaces away from itself, then spawns.
    let Some((mut process, lines)) = spawn_and_read("none", "off", "no-userns") else {
        unreachable!("the none backend needs no namespaces");
    };
    assert_eq!(
        process.wait_timeout(END).unwrap(),
        Some(ExitReport::Exited { code: 0 })
    );
    let [line] = &lines[..] else {
        panic!("{lines:?}")
    };
    if line.contains("test setup") {
        // This kernel does not let a process lower its own namespace limit: nothing to test.
        eprintln!("NOTE: cannot simulate missing user namespaces here: {line}");
        return;
    }
    assert!(line.starts_with("error NamespacesUnavailable("), "{line}");
    let err = SandboxError::NamespacesUnavailable(String::new()).to_string();
    assert!(err.contains("--sandbox none"), "{err}");
}

#[test]
fn extra_read_only_paths_are_readable_and_not_writable() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ro-path-test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.txt"), "hello from the host\n").unwrap();
    let run = |action: &str, path: std::path::PathBuf| {
        let mut spec = worker_spec(&[], "off", action);
        spec.args.push(path.into_os_string());
        spec.extra_read_only_paths = vec![dir.clone()];
        spawn_spec_and_read("namespaces", spec).map(|(_alive, lines)| lines)
    };
    let Some(read) = run("read", dir.join("data.txt")) else {
        return;
    };
    assert_eq!(read, ["ok hello from the host"]);
    let written = run("write", dir.join("new.txt")).unwrap();
    assert!(
        written[0].starts_with("err Read-only file system"),
        "{written:?}"
    );
    assert!(!dir.join("new.txt").exists());
    // A sibling of the bound folder, present on the host, is not in the jail.
    std::fs::write(dir.with_file_name("elsewhere.txt"), "secret").unwrap();
    let sibling = run("read", dir.with_file_name("elsewhere.txt")).unwrap();
    assert!(sibling[0].starts_with("err No such file"), "{sibling:?}");
}
