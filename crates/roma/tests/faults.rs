//! Faults injected into a running service: killed workers. A test binary of its own, because
//! it kills every worker process of the test process and must not meet other tests' workers.

#[path = "all/common.rs"]
#[allow(dead_code)]
mod common;

use common::*;
use roma::ErrorKind;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

/// The tests here kill every worker of this process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_killed_worker_is_replaced_and_its_versions_reloaded() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let svc = service(1);
    load(&svc, code("v1", HELLO)).unwrap();
    load(&svc, code("v2", "function Handler() { return 2; }")).unwrap();
    let killed = kill_workers();
    assert!(killed > 0, "no worker process found");
    // The first request may meet the dead worker (WorkerCrashed); after that the service serves
    // both versions from a new worker.
    let _ = exec(&svc, request::<()>("v1", "Handler", &[r#""a""#]));
    let r = exec(&svc, request::<()>("v1", "Handler", &[r#""a""#])).unwrap();
    assert_eq!(r.resp, r#""Hello world! \"a\"""#);
    let r = exec(&svc, request::<()>("v2", "Handler", &[])).unwrap();
    assert_eq!(r.resp, "2");
}

#[test]
fn sigkill_mid_request_fails_only_that_request_and_the_new_worker_has_every_version() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let svc = service(1);
    load(
        &svc,
        code(
            "v1",
            &format!("function Spin() {{ while (true) {{}} }} {HELLO}"),
        ),
    )
    .unwrap();
    load(&svc, code("v2", "function Handler() { return 2; }")).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut spin = request::<()>("v1", "Spin", &[]);
    spin.timeout = Some(Duration::from_secs(30));
    svc.execute(spin, move |r| {
        let _ = tx.send(r);
    })
    .unwrap();
    // Queued behind the spinner: must survive the crash and run on the new worker.
    let (tx2, rx2) = mpsc::channel();
    svc.execute(request::<()>("v2", "Handler", &[]), move |r| {
        let _ = tx2.send(r);
    })
    .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while !svc.stats().workers[0].running {
        assert!(
            std::time::Instant::now() < deadline,
            "the spinner never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    assert!(kill_workers() > 0);
    let e = rx.recv_timeout(PATIENCE).unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerCrashed, "{e}");
    assert_eq!(rx2.recv_timeout(PATIENCE).unwrap().unwrap().resp, "2");
    let r = exec(&svc, request::<()>("v1", "Handler", &[r#""b""#])).unwrap();
    assert_eq!(r.resp, r#""Hello world! \"b\"""#);
}

/// SIGKILLs every roma-worker process that is a child of this test process.
fn kill_workers() -> usize {
    let me = std::process::id();
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = &stat[stat.find('(').unwrap_or(0) + 1..close];
        let ppid: u32 = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == me && comm.starts_with("roma-worker") {
            // SAFETY: kill(2) with a pid we just read; at worst the process is already gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            n += 1;
        }
    }
    n
}
