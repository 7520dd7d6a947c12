//! Faults injected into a running service: killed and stopped workers, and the debug worker's
//! injected faults (`crates/worker/src/fault.rs`: garbage, wrong ids, exit, abort, hang, log
//! flood), blocking and panicking host code. A test binary of its own, because it signals every
//! worker process of the test process and must not meet other tests' workers.
//!
//! After each scenario: the service still serves hello world, every accepted request got
//! exactly one callback, and no worker process is left over: `2 * number_of_workers` (launcher
//! and jailed worker; one per worker with `ROMA_TEST_SANDBOX=none`) while it runs, at most that
//! after `stop()`, none once it is dropped.

#[path = "all/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "hostile/harness.rs"]
#[allow(dead_code)]
mod harness;

use common::*;
use harness::{Answer, Harness};
use roma::{
    Config, ErrorKind, FunctionBindingObject, FunctionBindingPayload, InvocationRequest, RomaError,
};
use roma_sandbox::procfs::{self, ProcInfo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

/// The tests here kill every worker of this process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`SERIAL`] (a test that panicked holding it leaves nothing to protect).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn a_killed_worker_is_replaced_and_its_versions_reloaded() {
    let _serial = serial();
    let svc = service(1);
    load(&svc, code("v1", HELLO)).unwrap();
    load(&svc, code("v2", "function Handler() { return 2; }")).unwrap();
    // Waiting for the death makes this deterministic: without it, the first request may still
    // be served by the dying worker and the second meet its death.
    kill_workers_and_wait();
    // The slot sees the death before it sends the next request: it is served by a new worker,
    // which gets both versions.
    let r = exec(&svc, request::<()>("v1", "Handler", &[r#""a""#])).unwrap();
    assert_eq!(r.resp, r#""Hello world! \"a\"""#);
    let r = exec(&svc, request::<()>("v2", "Handler", &[])).unwrap();
    assert_eq!(r.resp, "2");
    workers_settle("while serving", |n| n == per_worker());
    drop(svc);
    workers_settle("after drop", |n| n == 0);
}

#[test]
fn sigkill_mid_request_fails_only_that_request_and_the_new_worker_has_every_version() {
    let _serial = serial();
    let svc = spin_and_hello_service(1);
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
    workers_settle("while serving", |n| n == per_worker());
    drop(svc);
    workers_settle("after drop", |n| n == 0);
}

/// Every `roma-worker` process descending from this test process (zombies included).
fn worker_rows() -> Vec<ProcInfo> {
    procfs::descendants_named(std::process::id(), roma::tools::WORKER_PROCESS_NAME)
        .expect("read /proc")
}

/// SIGKILLs every roma-worker process that is a child of this test process.
fn kill_workers() -> usize {
    let me = std::process::id();
    let mut n = 0;
    for row in worker_rows() {
        if row.ppid == me {
            // SAFETY: kill(2) with a pid we just read; at worst the process is already gone.
            unsafe { libc::kill(row.pid as i32, libc::SIGKILL) };
            n += 1;
        }
    }
    n
}

/// A `roma-worker` process below this test process.
#[derive(Clone, Copy, Debug)]
struct Proc {
    pid: i32,
    /// Whether no `roma-worker` runs below it: the process that runs V8 (the jailed worker
    /// under its launcher, or the only process without a jail).
    engine: bool,
}

/// Every `roma-worker` process descending from this test process (zombies excluded).
fn worker_procs() -> Vec<Proc> {
    let live: Vec<ProcInfo> = worker_rows()
        .into_iter()
        .filter(|r| !r.is_zombie())
        .collect();
    live.iter()
        .map(|r| Proc {
            pid: r.pid as i32,
            engine: !live.iter().any(|c| c.ppid == r.pid),
        })
        .collect()
}

fn signal(procs: &[Proc], sig: i32) {
    for p in procs {
        // SAFETY: kill(2) with a pid we just read; at worst the process is already gone.
        unsafe { libc::kill(p.pid, sig) };
    }
}

/// SIGKILLs every worker and waits until its processes are gone. SIGKILL is asynchronous, and
/// it reaches the jailed worker only through its launcher's death (PDEATHSIG).
fn kill_workers_and_wait() {
    let doomed = worker_pids();
    assert!(kill_workers() > 0, "no worker process found");
    workers_settle("killed", |_| {
        worker_procs().iter().all(|p| !doomed.contains(&p.pid))
    });
}

/// Waits (a safety net, not a timing assertion) until `ok` holds for the worker count.
fn workers_settle(what: &str, ok: impl Fn(usize) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let n = worker_procs().len();
        if ok(n) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {n} worker processes");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes per worker: the launcher and the jailed worker (namespaces), plus birdcage's init
/// process under birdcage, or one without a jail.
fn per_worker() -> usize {
    match sandbox() {
        roma::SandboxKind::None => 1,
        roma::SandboxKind::Namespaces => 2,
        roma::SandboxKind::Birdcage => 3,
    }
}

/// Hello world works, nothing was lost, and the worker processes are exactly the live ones,
/// none after stop beyond them, none at all after drop.
fn finish<M: Default + Send + Sync + 'static>(h: Harness<M>, workers: usize) {
    h.finish();
    workers_settle("while serving", |n| n == per_worker() * workers);
    h.svc.stop();
    workers_settle("after stop", |n| n <= per_worker() * workers);
    drop(h);
    workers_settle("after drop", |n| n == 0);
}

const FAULT_JS: &str = r#"
function Spin() { while (true) {} }
function Count() { return 1; }
function Block() { return blocker('x'); }
"#;

/// `Config::worker_grace`'s default.
const DEFAULT_GRACE: Duration = Duration::from_secs(2);

fn fault_config<M>(grace: Duration) -> Config<M> {
    let mut c = config::<M>(1);
    c.worker_grace(grace);
    c
}

fn harness(c: Config<()>) -> Harness {
    Harness::with_code(c, code("v1", FAULT_JS))
}

/// Waits until worker 0 runs an execution.
fn until_running(h: &Harness) {
    let deadline = Instant::now() + PATIENCE;
    while !h.svc.stats().workers[0].running {
        assert!(Instant::now() < deadline, "the request never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Submits `req` without waiting, counted in the tally.
fn submit<M: Default + Send + Sync + 'static>(h: &Harness<M>, req: InvocationRequest<M>) -> Answer {
    h.submit(req).expect("the request is accepted")
}

/// Loads version `slow`, whose top-level code runs for 1.5 s (then `Slow` returns "slow"),
/// counted in the tally, without waiting for it.
fn submit_slow_load(h: &Harness<()>) -> Answer {
    let slow = "const end = Date.now() + 1500; while (Date.now() < end) {} \
                function Slow() { return 'slow'; }";
    h.submit_load(code("slow", slow))
        .expect("the slow load is accepted")
}

/// The pids of the worker processes now.
fn worker_pids() -> Vec<i32> {
    worker_procs().iter().map(|p| p.pid).collect()
}

/// Checks that none of the worker processes `before` is left: `what` replaced them.
fn assert_replaced(before: &[i32], what: &str) {
    let after = worker_pids();
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{what}: the worker was not replaced ({before:?} -> {after:?})"
    );
}

/// SIGSTOPs the one engine process (the jailed worker, or the only process without a jail)
/// and returns it: its watchdog cannot run, only the host's deadline can end what it runs.
fn stop_the_engine() -> Proc {
    let engine: Vec<Proc> = worker_procs().into_iter().filter(|p| p.engine).collect();
    assert_eq!(engine.len(), 1, "{engine:?}");
    signal(&engine, libc::SIGSTOP);
    engine[0]
}

/// Checks that `e` is what the host's deadline answers: `Timeout`, or `WorkerCrashed` where
/// the kill came first.
fn assert_deadline(e: &RomaError) {
    assert!(
        matches!(e.kind(), ErrorKind::Timeout | ErrorKind::WorkerCrashed),
        "{e}"
    );
}

#[test]
fn a_worker_that_breaks_the_protocol_or_dies_is_replaced() {
    let _serial = serial();
    let h = harness(fault_config(DEFAULT_GRACE));
    for fault in [
        "__roma_fault_garbage",
        "__roma_fault_wrong_id",
        "__roma_fault_exit",
        "__roma_fault_abort",
    ] {
        let before = worker_pids();
        let e = h.exec(request::<()>("v1", fault, &[])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerCrashed, "{fault}: {e}");
        // The next request runs on a new worker, with the version reloaded.
        assert_eq!(h.ok("Count", &[]), "1", "after {fault}");
        h.assert_hello();
        assert_replaced(&before, fault);
    }
    finish(h, 1);
}

/// A real worker that makes a system call the filter refuses dies of SIGSYS, the request's
/// error names the call (as the worker's SIGSYS handler reported it), and a new worker serves.
#[test]
fn a_forbidden_system_call_is_named_in_the_error() {
    if common::sandbox() == roma::SandboxKind::None {
        eprintln!("NOTE: no seccomp filter with the `none` sandbox; nothing to name");
        return;
    }
    let _serial = serial();
    let h = harness(fault_config(DEFAULT_GRACE));
    let e = h
        .exec(request::<()>("v1", "__roma_fault_forbidden_call", &[]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerCrashed, "{e}");
    let msg = e.message();
    let (name, rest) = msg
        .split_once("seccomp violation: forbidden system call ")
        .and_then(|(_, rest)| rest.split_once(" ("))
        .unwrap_or_else(|| panic!("the error does not name the call: {msg}"));
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "{msg}"
    );
    let nr: i64 = rest
        .split_once(')')
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no number: {msg}"));
    assert_eq!(roma_sandbox::syscall_name(nr), Some(name), "{msg}");
    assert_eq!(h.ok("Count", &[]), "1");
    h.assert_hello();
    finish(h, 1);
}

#[test]
fn a_worker_that_ignores_its_timeout_is_killed_after_the_grace() {
    let _serial = serial();
    let h = harness(fault_config(Duration::from_millis(300)));
    let before = worker_pids();
    let mut req = request::<()>("v1", "__roma_fault_hang", &[]);
    req.timeout = Some(Duration::from_millis(200));
    // Answered after 200 ms + 300 ms grace; the harness waits up to a minute as a safety net.
    assert_deadline(&h.exec(req).unwrap_err());
    assert_eq!(h.ok("Count", &[]), "1");
    assert_replaced(&before, "the hang");
    finish(h, 1);
}

#[test]
fn a_log_flood_is_delivered_and_the_service_serves() {
    let _serial = serial();
    let lines = Arc::new(AtomicUsize::new(0));
    let mut c = fault_config::<()>(DEFAULT_GRACE);
    let counter = Arc::clone(&lines);
    c.set_logging_function(move |_, _: &(), _| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let h = harness(c);
    let r = h
        .exec(request::<()>("v1", "__roma_fault_log_flood", &[]))
        .unwrap();
    assert_eq!(r.resp, r#""flooded""#);
    assert_eq!(lines.load(Ordering::SeqCst), 10_000);
    finish(h, 1);
}

#[test]
fn a_stopped_worker_fails_its_request_after_the_grace_and_is_replaced() {
    let _serial = serial();
    let h = harness(fault_config(Duration::from_millis(300)));
    let mut spin = request::<()>("v1", "Spin", &[]);
    spin.timeout = Some(Duration::from_millis(500));
    let rx = submit(&h, spin);
    until_running(&h);
    let stopped = stop_the_engine();
    let r = rx
        .recv_timeout(Duration::from_millis(800) + PATIENCE)
        .expect("the request ends although its worker is stopped");
    // Cleanup whatever happens next: a stopped process would otherwise stay.
    signal(&[stopped], libc::SIGCONT);
    assert_deadline(&r.unwrap_err());
    assert_eq!(h.ok("Count", &[]), "1");
    assert_replaced(&[stopped.pid], "the stop");
    signal(&[stopped], libc::SIGKILL);
    finish(h, 1);
}

#[test]
fn sigkill_while_idle_is_survived() {
    let _serial = serial();
    let h = harness(fault_config(DEFAULT_GRACE));
    kill_workers_and_wait();
    // A worker that died while idle costs no request: the slot sees the death before it sends
    // the next request, and starts a new worker for it.
    assert_eq!(h.ok("Count", &[]), "1");
    assert_eq!(h.ok("Count", &[]), "1");
    finish(h, 1);
}

#[test]
fn sigkill_mid_load_answers_the_load_exactly_once() {
    let _serial = serial();
    let h = harness(fault_config(DEFAULT_GRACE));
    let rx = submit_slow_load(&h);
    // Not a timing assertion: the kill lands during the 1.5 s top-level loop, or (on a very
    // slow machine) before or after it; every case must still answer the load once.
    std::thread::sleep(Duration::from_millis(400));
    assert!(kill_workers() > 0);
    let r = rx.recv_timeout(PATIENCE).expect("the load is answered");
    match &r {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::WorkerCrashed, "{e}"),
    }
    // The service goes on; the version is either loaded everywhere or not at all.
    assert_eq!(h.ok("Count", &[]), "1");
    match h.exec(request::<()>("slow", "Slow", &[])) {
        Ok(resp) => assert_eq!(resp.resp, r#""slow""#),
        Err(e) => assert_eq!(e.kind(), ErrorKind::VersionNotFound, "{e}"),
    }
    println!("load after SIGKILL: {r:?}");
    finish(h, 1);
}

/// A worker stopped in the middle of a load: the load is answered once, at the load timeout
/// plus grace at the latest, and the stopped worker is replaced.
#[test]
fn sigstop_mid_load_answers_the_load_once_and_replaces_the_worker() {
    let _serial = serial();
    let mut c = fault_config::<()>(Duration::from_millis(300));
    c.load_timeout(Duration::from_secs(1));
    let h = harness(c);
    let rx = submit_slow_load(&h);
    std::thread::sleep(Duration::from_millis(300));
    let stopped = stop_the_engine();
    let r = rx.recv_timeout(PATIENCE).expect("the load is answered");
    signal(&[stopped], libc::SIGCONT);
    println!("load with a stopped worker: {r:?}");
    assert_deadline(&r.unwrap_err());
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "a second answer"
    );
    assert_eq!(h.ok("Count", &[]), "1");
    assert_replaced(&[stopped.pid], "the stop");
    finish(h, 1);
}

/// A host function `blocker` that signals when it starts, then blocks until the test drops
/// the returned sender (at most 30 s).
fn blocker_config() -> (Config<()>, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let mut c = fault_config(Duration::from_millis(300));
    let entered_tx = Mutex::new(entered_tx);
    c.register_function_binding(FunctionBindingObject::new(
        "blocker",
        move |p: &mut FunctionBindingPayload<'_, ()>| {
            let _ = entered_tx.lock().unwrap().send(());
            // Bounded, so that a broken test cannot hang the binary.
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30));
            p.io.set_output_string("released");
        },
    ));
    (c, entered_rx, release_tx)
}

/// A harness over [`blocker_config`] with a `Block` request of `timeout` submitted and blocked
/// in `blocker`; returns the harness, the request's answer, and the sender whose drop releases
/// the host function.
fn blocked_in_a_host_call(timeout: Duration) -> (Harness, Answer, mpsc::Sender<()>) {
    let (c, entered, release) = blocker_config();
    let h = harness(c);
    let mut req = request::<()>("v1", "Block", &[]);
    req.timeout = Some(timeout);
    let rx = submit(&h, req);
    entered
        .recv_timeout(PATIENCE)
        .expect("the host function starts");
    (h, rx, release)
}

#[test]
fn sigkill_mid_host_call_fails_only_that_request() {
    let _serial = serial();
    let (h, rx, release) = blocked_in_a_host_call(Duration::from_secs(30));
    // Release the host function only once the worker is gone, or it could still take the reply
    // and answer.
    kill_workers_and_wait();
    drop(release);
    let r = rx.recv_timeout(PATIENCE).unwrap();
    if sandbox() == roma::SandboxKind::Birdcage {
        // birdcage's init outlives its killed launcher, so the jailed worker may still finish
        // the request; the host ends the rest of the jail when it next checks the worker.
        assert!(
            r.as_ref().map_or_else(
                |e| e.kind() == ErrorKind::WorkerCrashed,
                |r| r.resp == r#""released""#
            ),
            "{r:?}"
        );
    } else {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerCrashed, "{e}");
    }
    assert_eq!(h.ok("Count", &[]), "1");
    finish(h, 1);
}

/// A synchronous host function that blocks is cut off at its request's timeout (it runs on the
/// worker's UDF thread, not the slot's): the request ends, and the worker serves on while the
/// host function is still blocked.
#[test]
fn a_blocking_host_function_is_bounded_by_the_request_timeout() {
    let _serial = serial();
    let (h, rx, release) = blocked_in_a_host_call(Duration::from_millis(300));
    // 300 ms timeout + 300 ms grace; ten seconds is only a safety net.
    let r = rx.recv_timeout(Duration::from_secs(10));
    let r = match r {
        Ok(r) => r,
        Err(_) => {
            drop(release);
            let late = rx.recv_timeout(PATIENCE);
            panic!("no answer while the host function blocked; after release: {late:?}");
        }
    };
    // Two outcomes race at the deadline, both typed and documented: the worker's watchdog ends
    // the JS (Timeout), or the host's cut-off answers the call first and the JS throws it
    // uncaught (Execution, "did not return within the request's timeout").
    let cut_off = |e: &RomaError| {
        e.kind() == ErrorKind::Timeout
            || (e.kind() == ErrorKind::Execution
                && e.message()
                    .contains("did not return within the request's timeout"))
    };
    let e = r.unwrap_err();
    assert!(cut_off(&e), "{e}");
    // Still blocked: requests that need no host function are served meanwhile, and one that
    // calls the busy host function again is bounded by its own timeout too.
    assert_eq!(h.ok("Count", &[]), "1");
    h.assert_hello();
    let mut again = request::<()>("v1", "Block", &[]);
    again.timeout = Some(Duration::from_millis(300));
    let r = submit(&h, again).recv_timeout(Duration::from_secs(10));
    drop(release);
    let e = r
        .expect("the second call ends while the first still blocks")
        .unwrap_err();
    assert!(cut_off(&e), "{e}");
    assert_eq!(h.ok("Count", &[]), "1");
    finish(h, 1);
}

#[test]
fn a_panicking_callback_does_not_stop_later_requests() {
    let _serial = serial();
    let h = harness(fault_config(DEFAULT_GRACE));
    for _ in 0..3 {
        let tally = Arc::clone(&h.tally);
        h.svc
            .execute(request::<()>("v1", "Count", &[]), move |r| {
                tally.record(&r);
                panic!("callback bug");
            })
            .unwrap();
        h.tally.submitted.fetch_add(1, Ordering::SeqCst);
    }
    for _ in 0..3 {
        assert_eq!(h.ok("Count", &[]), "1");
    }
    finish(h, 1);
}

/// The host side going away (the service dropped) with a request running and others queued:
/// every one of them is answered, and every worker process is gone.
#[test]
fn dropping_the_service_answers_everything_and_leaves_no_worker() {
    let _serial = serial();
    let h = harness(fault_config(DEFAULT_GRACE));
    let mut spin = request::<()>("v1", "Spin", &[]);
    spin.timeout = Some(Duration::from_millis(500));
    let mut receivers = vec![submit(&h, spin)];
    until_running(&h);
    for _ in 0..5 {
        receivers.push(submit(&h, request::<()>("v1", "Count", &[])));
    }
    let tally = Arc::clone(&h.tally);
    drop(h);
    let mut kinds = Vec::new();
    for rx in receivers {
        let r = rx.recv_timeout(PATIENCE).expect("answered at drop");
        kinds.push(r.map(|r| r.resp).map_err(|e| e.kind()));
    }
    assert_eq!(kinds[0], Err(ErrorKind::Timeout), "{kinds:?}");
    for k in &kinds[1..] {
        assert!(
            matches!(k, Err(ErrorKind::Cancelled)) || k.as_deref() == Ok("1"),
            "{kinds:?}"
        );
    }
    assert_eq!(
        tally.submitted.load(Ordering::SeqCst),
        tally.delivered.load(Ordering::SeqCst)
    );
    workers_settle("after drop", |n| n == 0);
}

/// Metadata values alive now (only `random_kills_and_stops_lose_no_callback` makes them).
static LIVE_METADATA: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

/// Request metadata that counts its live values.
struct Tracked;

impl Default for Tracked {
    fn default() -> Self {
        LIVE_METADATA.fetch_add(1, Ordering::SeqCst);
        Tracked
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE_METADATA.fetch_sub(1, Ordering::SeqCst);
    }
}

/// SIGKILLs and SIGSTOPs at pseudo-random moments (a fixed seed) while two workers serve a mix
/// of hello world, throws and timeouts: every accepted request is answered exactly once, with
/// its own outcome or `WorkerCrashed`/`Timeout` for the ones its worker's death or stop hit,
/// and no request's metadata outlives the service.
#[test]
fn random_kills_and_stops_lose_no_callback() {
    let _serial = serial();
    let mut c = fault_config::<Tracked>(Duration::from_millis(300));
    c.number_of_workers(2);
    let js = format!("{FAULT_JS} function Throw() {{ throw new Error('boom'); }}");
    let h = Harness::with_code(c, code("v1", &js));
    let mut seed: u64 = 0x5eed_1234_abcd_ef01;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut pending = Vec::new();
    for round in 0..12 {
        for _ in 0..10 {
            let (handler, timeout) = match next(3) {
                0 => ("Count", Duration::from_secs(30)),
                1 => ("Throw", Duration::from_secs(30)),
                _ => ("Spin", Duration::from_millis(100)),
            };
            let mut req = request::<Tracked>("v1", handler, &[]);
            req.timeout = Some(timeout);
            pending.push((handler, submit(&h, req)));
        }
        std::thread::sleep(Duration::from_millis(next(150)));
        let procs = worker_procs();
        if let Some(victim) = procs.get(next(procs.len().max(1) as u64) as usize) {
            if round % 3 == 2 {
                // A stop: the host's deadline must end whatever runs there.
                signal(&[*victim], libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(next(100)));
            } else {
                signal(&[*victim], libc::SIGKILL);
            }
        }
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (handler, rx) in pending {
        let r = rx
            .recv_timeout(PATIENCE)
            .expect("every request is answered");
        let kind = match &r {
            Ok(_) => "ok",
            Err(e) => e.kind().as_str(),
        };
        let expected = match handler {
            "Count" => r.as_ref().is_ok_and(|r| r.resp == "1"),
            "Throw" => r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Execution),
            _ => r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Timeout),
        };
        let casualty = r
            .as_ref()
            .is_err_and(|e| matches!(e.kind(), ErrorKind::WorkerCrashed | ErrorKind::Timeout));
        assert!(expected || casualty, "{handler}: {r:?}");
        *outcomes.entry(format!("{handler}:{kind}")).or_default() += 1;
    }
    println!("random faults: {outcomes:?}");
    // Nothing stays stopped: the stopped workers were killed by the host at their deadline,
    // or, if idle, are killed here.
    for p in worker_procs() {
        signal(&[p], libc::SIGCONT);
    }
    for _ in 0..4 {
        h.assert_hello();
    }
    finish(h, 2);
    // Every request's metadata was dropped, crashed or not.
    let deadline = Instant::now() + PATIENCE;
    while LIVE_METADATA.load(Ordering::SeqCst) != 0 {
        assert!(
            Instant::now() < deadline,
            "{} metadata values left over",
            LIVE_METADATA.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Failures the engine recovers from in place keep the worker process: a heap exhausted by
/// many objects (`OutOfMemory`, the isolate is rebuilt), a result too large for the channel
/// (`PayloadTooLarge`), a timeout, an uncaught throw.
#[test]
fn recoverable_failures_keep_the_same_worker_process() {
    let _serial = serial();
    let mut c = fault_config::<()>(DEFAULT_GRACE);
    c.configure_js_engine_resource_constraints(1, 15);
    c.max_payload_bytes(1 << 20);
    c.payload_fast_path_bytes(1 << 20);
    c.oversize_payloads(roma::OversizePolicy::Reject);
    let js = format!(
        "{FAULT_JS} function Bomb() {{ const k = []; while (true) k.push(new Array(10000).fill({{a: 1}})); }} \
         function Big() {{ return 'x'.repeat(4 << 20); }} function Throw() {{ throw new Error('boom'); }}"
    );
    let h = Harness::with_code(c, code("v1", &js));
    let before = worker_pids();
    assert_eq!(before.len(), per_worker(), "{before:?}");
    for (handler, timeout, kind) in [
        ("Bomb", Duration::from_secs(30), ErrorKind::OutOfMemory),
        ("Big", Duration::from_secs(30), ErrorKind::PayloadTooLarge),
        ("Spin", Duration::from_millis(200), ErrorKind::Timeout),
        ("Throw", Duration::from_secs(30), ErrorKind::Execution),
    ] {
        h.fails(handler, timeout, kind);
        assert_eq!(h.ok("Count", &[]), "1", "after {handler}");
        assert_eq!(worker_pids(), before, "{handler} replaced the worker");
    }
    finish(h, 1);
}
