//! Per-worker cgroups: each limit stops a test worker that runs into it, the worker is in its
//! cgroup from its start, and the cgroup is gone once the worker is. Where this host has no
//! writable cgroup for a limit, each test prints why and checks nothing else.

use crate::util::{Worker, read_lines, spawn_spec, worker_spec_with};
use roma_sandbox::{CgroupLimits, CpuMax, ExitReport};
use std::time::Duration;

const END: Duration = Duration::from_secs(20);

/// Whether cgroups with `limits` can be made here; prints the reason when not.
fn available(test: &str, limits: &CgroupLimits) -> bool {
    match roma_sandbox::cgroup::probe_cgroups(limits) {
        Ok(which) => {
            eprintln!("{test}: worker cgroups use {which}");
            true
        }
        Err(e) => {
            eprintln!("NOTE: {test} checks nothing on this host: {e}");
            false
        }
    }
}

fn spawn_limited(limits: CgroupLimits, action: &[&str]) -> Option<Worker> {
    let mut spec = worker_spec_with(&[], "kill", action);
    spec.cgroup = limits;
    spawn_spec("namespaces", spec)
}

#[test]
fn a_worker_at_its_pids_limit_cannot_start_more_tasks() {
    let limits = CgroupLimits {
        pids_max: Some(8),
        ..CgroupLimits::default()
    };
    if !available("pids limit", &limits) {
        return;
    }
    // Far below the jail's RLIMIT_NPROC, so only the cgroup can stop it.
    let Some(mut w) = spawn_limited(limits, &["threads", "64"]) else {
        return;
    };
    let lines = read_lines(w.channel);
    let line = lines.first().cloned().unwrap_or_default();
    let started: usize = line
        .strip_prefix("threads started=")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the worker said {lines:?}"));
    assert!(started < 8, "{started} threads under pids.max 8: {line}");
    assert!(line.ends_with(&format!("error={}", libc::EAGAIN)), "{line}");
    let report = w.process.wait_timeout(END).unwrap().unwrap();
    assert_eq!(report, ExitReport::Exited { code: 0 });
    let events = w
        .process
        .cgroup_events()
        .expect("events of a reaped worker");
    assert!(events.pids_limit_hit(), "{events:?}");
    let note = events.describe().unwrap_or_default();
    assert!(note.contains("pids limit (8)"), "{note}");
}

#[test]
fn a_worker_over_its_memory_limit_is_killed_by_the_cgroup() {
    let limits = CgroupLimits {
        memory_max_bytes: Some(64 << 20),
        ..CgroupLimits::default()
    };
    if !available("memory limit", &limits) {
        return;
    }
    // First within the limit, then far past it (no RLIMIT_DATA or RLIMIT_AS is set).
    let Some(mut w) = spawn_limited(limits.clone(), &["touch", "16"]) else {
        return;
    };
    assert_eq!(read_lines(w.channel), ["touch ok"]);
    assert!(w.process.wait_timeout(END).unwrap().unwrap().success());
    assert!(!w.process.cgroup_events().unwrap().memory_limit_killed());
    let Some(mut w) = spawn_limited(limits, &["touch", "512"]) else {
        return;
    };
    let said = read_lines(w.channel);
    let report = w.process.wait_timeout(END).unwrap().unwrap();
    assert_eq!(
        report,
        ExitReport::Signaled {
            signal: libc::SIGKILL
        },
        "the worker said {said:?}"
    );
    let events = w.process.cgroup_events().unwrap();
    assert!(events.memory_limit_killed(), "{events:?}");
    let note = events.describe().unwrap_or_default();
    assert!(note.contains("memory limit (64 MiB)"), "{note}");
}

fn spin_cpu_us(limits: CgroupLimits, ms: &str) -> Option<(u64, Option<u64>)> {
    let mut w = spawn_limited(limits, &["spin", ms])?;
    let lines = read_lines(w.channel);
    let cpu = lines
        .first()
        .and_then(|l| l.strip_prefix("spin cpu_us="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the worker said {lines:?}"));
    w.process.wait_timeout(END).unwrap().unwrap();
    let throttled = w
        .process
        .cgroup_events()
        .and_then(|e| e.cpu_throttled_periods);
    Some((cpu, throttled))
}

#[test]
fn cpu_max_throttles_a_spinning_worker() {
    // 10% of one core: 10 ms per 100 ms period.
    let limits = CgroupLimits {
        cpu_max: Some(CpuMax {
            quota_us: 10_000,
            period_us: 100_000,
        }),
        ..CgroupLimits::default()
    };
    if !available("cpu limit", &limits) {
        return;
    }
    let Some((limited, throttled)) = spin_cpu_us(limits, "1000") else {
        return;
    };
    let (free, _) = spin_cpu_us(CgroupLimits::default(), "1000").unwrap();
    eprintln!(
        "spinning 1 s of wall time: {limited} us of CPU at cpu.max 10%, {free} us without a \
         limit ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // The kernel grants 10 ms per 100 ms period, so about 110 ms in 1 s; three times that
    // leaves room for scheduling noise while an unthrottled spin uses most of the second.
    assert!(limited < 330_000, "{limited} us of CPU under a 10% limit");
    assert!(throttled.is_some_and(|n| n > 0), "{throttled:?}");
}

#[test]
fn the_worker_is_in_its_cgroup_and_the_cgroup_goes_with_it() {
    let limits = CgroupLimits {
        pids_max: Some(64),
        memory_max_bytes: Some(256 << 20),
        ..CgroupLimits::default()
    };
    if !available("cgroup lifetime", &limits) {
        return;
    }
    let Some(mut w) = spawn_limited(limits, &["hang"]) else {
        return;
    };
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&w.channel), &mut line).unwrap();
    assert_eq!(line.trim_end(), "hanging");
    let pid = w.process.pid();
    let cg = w
        .process
        .cgroup()
        .expect("a worker with limits has a cgroup");
    let dirs: Vec<std::path::PathBuf> = cg.dirs().iter().map(|d| d.to_path_buf()).collect();
    for check in cg.check(pid) {
        assert!(check.held, "{check:?}");
    }
    // Every process of the jail (the launcher and what it started) is in the cgroup.
    let members: Vec<String> = std::fs::read_to_string(dirs[0].join("cgroup.procs"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(members.len() >= 2, "{members:?}");
    assert!(members.contains(&pid.to_string()), "{members:?}");
    // A hanging worker ignores end-of-file; killing it ends it, and its cgroup is removed.
    drop(w.channel);
    w.process.kill().unwrap();
    w.process.wait_timeout(END).unwrap().unwrap();
    for d in &dirs {
        assert!(
            !d.exists(),
            "{} is left after the worker ended",
            d.display()
        );
    }
    // And a worker dropped while running leaves nothing either.
    let Some(w) = spawn_limited(
        CgroupLimits {
            pids_max: Some(64),
            ..CgroupLimits::default()
        },
        &["hang"],
    ) else {
        return;
    };
    let dirs: Vec<std::path::PathBuf> = w
        .process
        .cgroup()
        .unwrap()
        .dirs()
        .iter()
        .map(|d| d.to_path_buf())
        .collect();
    drop(w);
    for d in &dirs {
        assert!(
            !d.exists(),
            "{} is left after the worker was dropped",
            d.display()
        );
    }
}
