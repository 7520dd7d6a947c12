//! Per-worker cgroups through `RomaService`: a handler that hoards memory is stopped by the
//! cgroup and the error says so, a pids limit too low for a worker is named at start, `roma
//! check` reports each limit, and no worker cgroup outlives its worker (recycled, killed or
//! stopped). Where the host has no writable cgroup, each test prints why and checks that the
//! service refuses cgroup limits it cannot honour.

use crate::common::*;
use roma::{Config, ErrorKind, RomaService, SandboxKind};
use roma_sandbox::CgroupLimits;
use roma_sandbox::cgroup::{live_worker_cgroups, probe_cgroups};

fn limits(memory_mb: u64, pids: u64) -> CgroupLimits {
    CgroupLimits {
        memory_max_bytes: Some(memory_mb << 20),
        pids_max: Some(pids),
        ..CgroupLimits::default()
    }
}

/// Whether the host can make cgroups with `limits`; when not, prints why and checks that a
/// service asking for them fails to start, naming the reason.
fn available(test: &str, limits: &CgroupLimits, config: Config) -> Option<Config> {
    match probe_cgroups(limits) {
        Ok(which) => {
            eprintln!("{test}: worker cgroups use {which}");
            Some(config)
        }
        Err(e) => {
            eprintln!("NOTE: {test}: this host cannot give workers cgroups: {e}");
            let err = RomaService::new(config).expect_err("cgroup limits it cannot honour");
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.message().contains("cgroup"), "{err}");
            None
        }
    }
}

#[test]
fn a_hoarding_handler_is_stopped_by_the_cgroup_and_no_cgroup_outlives_its_worker() {
    let _lock = cgroup_lock();
    let want = limits(192, 256);
    let mut c = config::<()>(1);
    c.cgroup_memory_max_mb(192)
        .cgroup_pids_max(256)
        // Neither V8's array buffer cap nor RLIMIT_DATA stops it first.
        .max_array_buffer_mb(4096)
        .worker_data_limit_mb(None)
        .recycle_after_requests(3);
    let Some(c) = available("memory limit", &want, c) else {
        return;
    };
    let svc = RomaService::new(c).expect("service starts");
    let mode = svc
        .cgroups()
        .expect("a service with cgroup limits names them");
    assert!(mode.starts_with("cgroup v"), "{mode}");
    let js = format!(
        "function Hoard() {{ const kept = []; for (;;) {{ const b = new Uint8Array(8 << 20); \
         b.fill(1); kept.push(b); }} }} {HELLO}"
    );
    load(&svc, code("v1", &js)).expect("load");
    // Recycles replace the worker (and its cgroup) every three requests.
    for i in 0..7 {
        exec(&svc, request("v1", "Handler", &[&i.to_string()])).expect("a request");
    }
    let recycled: u64 = svc.stats().workers.iter().map(|w| w.recycled).sum();
    assert!(recycled >= 2, "{recycled} recycles");
    wait_for(|| live_worker_cgroups(&want).len() == 1);
    let e = exec(&svc, request("v1", "Hoard", &[])).expect_err("the cgroup stops it");
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    assert!(
        e.message().contains("cgroup's memory limit (192 MiB)"),
        "{e}"
    );
    // The replacement serves, in a cgroup of its own; the killed worker's is gone.
    let r = exec(&svc, request("v1", "Handler", &["\"after\""])).expect("served after");
    assert!(r.resp.contains("after"), "{r:?}");
    wait_for(|| live_worker_cgroups(&want).len() == 1);
    svc.stop();
    let left = live_worker_cgroups(&want);
    assert!(left.is_empty(), "worker cgroups left after stop: {left:?}");
}

#[test]
fn a_pids_limit_too_low_for_a_worker_is_named_at_start() {
    let _lock = cgroup_lock();
    let want = CgroupLimits {
        pids_max: Some(3),
        ..CgroupLimits::default()
    };
    let mut c = config::<()>(1);
    c.cgroup_pids_max(3);
    let Some(c) = available("pids limit", &want, c) else {
        return;
    };
    let e = RomaService::new(c).expect_err("V8 needs more than three tasks");
    assert!(e.message().contains("pids limit (3)"), "{e}");
    assert!(live_worker_cgroups(&want).is_empty());
}

#[test]
fn check_reports_each_cgroup_limit_or_why_the_host_has_none() {
    let _lock = cgroup_lock();
    let results = roma::check(SandboxKind::Namespaces).expect("roma check");
    for name in ["memory", "pids", "cpu"] {
        let r = results
            .iter()
            .find(|r| r.name == format!("cgroup {name} limit"))
            .unwrap_or_else(|| panic!("no cgroup {name} limit in {results:?}"));
        let one = CgroupLimits {
            memory_max_bytes: (name == "memory").then_some(1 << 30),
            pids_max: (name == "pids").then_some(1024),
            cpu_max: (name == "cpu").then_some(roma_sandbox::CpuMax {
                quota_us: 100_000,
                period_us: 100_000,
            }),
            parent: None,
        };
        match probe_cgroups(&one) {
            Ok(_) => assert!(r.held, "{r:?}"),
            Err(e) => {
                eprintln!("NOTE: no cgroup {name} limit here: {e}");
                assert!(!r.held && r.detail.contains("cgroup"), "{r:?}");
            }
        }
    }
}
