//! A compromised worker cannot outlive its host nor run as host root: the jail ends within a
//! second of the host's SIGKILL even when the worker ignores end-of-file, a root host's jail
//! runs as an unprivileged host uid, and `RLIMIT_NPROC` holds there.

use crate::util::{Worker, allow_no_userns, spawn, spawn_spec, spawn_spec_and_read, worker_spec};
use roma_sandbox::procfs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The bound: no process of a killed host's jail may be left after this.
const HOST_DEATH_BOUND: Duration = Duration::from_secs(1);

/// The host-side uids (real, effective, saved, fs) and gids of `pid`, from `/proc/PID/status`.
fn ids(pid: u32) -> (Vec<u32>, Vec<u32>, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .trim()
            .to_owned()
    };
    let nums =
        |s: String| -> Vec<u32> { s.split_whitespace().map(|n| n.parse().unwrap()).collect() };
    (nums(field("Uid:")), nums(field("Gid:")), field("Groups:"))
}

/// The jailed process under a launcher (its only child).
fn jailed_child(launcher: u32) -> u32 {
    let below = procfs::descendants_of(launcher).unwrap();
    assert_eq!(
        below.len(),
        1,
        "expected one jailed process below the launcher: {below:?}"
    );
    below[0].pid
}

fn host_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

#[test]
fn no_process_of_a_jail_outlives_a_sigkilled_host() {
    let mut host = Command::new(env!("CARGO_BIN_EXE_roma-sandbox-testworker"))
        .args(["off", "host", "namespaces"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(host.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.contains("NamespacesUnavailable") && allow_no_userns() {
        eprintln!("NOTE: skipping: {line}");
        let _ = host.kill();
        let _ = host.wait();
        return;
    }
    assert!(line.starts_with("host launcher="), "the host said {line:?}");
    // The jail: the launcher and the worker it started, which ignores end-of-file and sleeps.
    let jail: Vec<procfs::ProcInfo> = procfs::descendants_of(host.id())
        .unwrap()
        .into_iter()
        .filter(|p| !p.is_zombie())
        .collect();
    assert_eq!(jail.len(), 2, "launcher and worker expected: {jail:?}");
    host.kill().unwrap();
    host.wait().unwrap();
    let killed = Instant::now();
    // Alive: the same pid, not a zombie, and the same name (a reused pid would be another
    // program's).
    let alive = || -> Vec<procfs::ProcInfo> {
        jail.iter()
            .filter_map(|p| procfs::process(p.pid).unwrap())
            .filter(|now| {
                !now.is_zombie() && jail.iter().any(|p| p.pid == now.pid && p.comm == now.comm)
            })
            .collect()
    };
    let mut left = alive();
    while !left.is_empty() && killed.elapsed() < HOST_DEATH_BOUND {
        std::thread::sleep(Duration::from_millis(5));
        left = alive();
    }
    for p in &left {
        // Leftovers would hold the test harness's output pipes open: end them before failing.
        // SAFETY: kill(2) only sends a signal, to a pid checked alive just above.
        unsafe { libc::kill(p.pid as i32, libc::SIGKILL) };
    }
    assert!(
        left.is_empty(),
        "{:?} after the host's SIGKILL, still running: {left:?}",
        killed.elapsed()
    );
}

#[test]
fn a_jail_runs_as_the_hosts_uid_or_an_unprivileged_one_for_root() {
    // The echo worker lives until its channel closes: keep it.
    let Some(Worker {
        process,
        channel: _channel,
        ..
    }) = spawn("namespaces", "kill", "echo")
    else {
        return;
    };
    let worker = jailed_child(process.pid());
    let (uids, gids, groups) = ids(worker);
    if host_uid() == 0 {
        let expect = roma_sandbox::DEFAULT_WORKER_UID;
        assert_eq!(uids, vec![expect; 4], "uids of the jailed worker");
        assert_eq!(gids, vec![expect; 4], "gids of the jailed worker");
        assert_eq!(groups, "", "supplementary groups of the jailed worker");
        // The launcher too: it is in the jail's user namespace.
        assert_eq!(
            ids(process.pid()).0,
            vec![expect; 4],
            "uids of the launcher"
        );
    } else {
        assert_eq!(uids, vec![host_uid(); 4], "uids of the jailed worker");
    }
}

#[test]
fn a_root_host_runs_the_jail_as_the_configured_uid() {
    if host_uid() != 0 {
        eprintln!("NOTE: not root: worker_uid is ignored, nothing to test");
        return;
    }
    let spec = roma_sandbox::WorkerSpec {
        worker_uid: Some(43_210),
        ..worker_spec(&[], "kill", "echo")
    };
    let Some(Worker {
        process,
        channel: _channel,
        ..
    }) = spawn_spec("namespaces", spec)
    else {
        return;
    };
    let (uids, gids, _) = ids(jailed_child(process.pid()));
    assert_eq!(uids, vec![43_210; 4]);
    assert_eq!(gids, vec![43_210; 4]);
}

#[test]
fn the_data_limit_bounds_what_native_code_can_touch() {
    let run = |mb: &str| -> String {
        let spec = roma_sandbox::WorkerSpec {
            args: vec!["kill".into(), "touch".into(), mb.into()],
            data_limit_mb: Some(64),
            ..worker_spec(&[], "kill", "touch")
        };
        let Some((_process, lines)) = spawn_spec_and_read("namespaces", spec) else {
            return "skipped".into();
        };
        lines.join("|")
    };
    let small = run("16");
    if small == "skipped" {
        return;
    }
    assert_eq!(small, "touch ok");
    assert_eq!(run("128"), format!("touch errno {}", libc::ENOMEM));
}

#[test]
fn the_task_limit_holds_in_the_jail_whoever_the_host_is() {
    let spec = roma_sandbox::WorkerSpec {
        args: vec!["kill".into(), "threads".into(), "1000".into()],
        ..worker_spec(&[], "kill", "threads")
    };
    let Some((_process, lines)) = spawn_spec_and_read("namespaces", spec) else {
        return;
    };
    let line = lines.first().map(String::as_str).unwrap_or("");
    let started: usize = line
        .strip_prefix("threads started=")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the worker said {lines:?}"));
    let limit = roma_sandbox::DEFAULT_MAX_PROCESSES as usize;
    assert!(
        started < limit,
        "{started} threads started in a jail whose task limit is {limit}: {line}"
    );
    assert!(line.ends_with(&format!("error={}", libc::EAGAIN)), "{line}");
}
