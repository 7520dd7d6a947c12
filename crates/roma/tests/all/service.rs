//! The basic contract: load, execute, errors, timeouts, cancel, recovery.

use crate::common::*;
use roma::tools::{MAX_LINE_BYTES, MAX_LINES_PER_SECOND};
use roma::{Config, ErrorKind, InvocationRequest, RomaService};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

#[test]
fn hello_world_through_two_sandboxed_workers() {
    let svc = service(2);
    load(&svc, code("v1", HELLO)).unwrap();
    for _ in 0..4 {
        let r = exec(&svc, request::<()>("v1", "Handler", &[r#""Foobar""#])).unwrap();
        assert_eq!(r.resp, r#""Hello world! \"Foobar\"""#);
        assert_eq!(r.id, "req");
    }
    svc.stop();
}

#[test]
fn load_errors_are_typed_and_leave_no_version() {
    let svc = service(1);
    let e = load(&svc, code("bad", "function Handler( {")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Compile, "{e}");
    let e = exec(&svc, request::<()>("bad", "Handler", &[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VersionNotFound, "{e}");
    let e = load(&svc, code("throws", "throw new Error('top level boom');")).unwrap_err();
    assert!(e.message().contains("top level boom"), "{e}");
}

#[test]
fn execution_errors_are_typed() {
    let svc = service(1);
    load(
        &svc,
        code(
            "v1",
            "function Throw() { throw new Error('nope'); } function Id(x) { return x; }",
        ),
    )
    .unwrap();
    let e = exec(&svc, request::<()>("v1", "Throw", &[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Execution);
    assert!(e.message().contains("nope"), "{e}");
    let e = exec(&svc, request::<()>("v1", "Missing", &[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HandlerNotFound);
    let e = exec(&svc, request::<()>("v1", "Id", &["{not json"])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    let r = exec(&svc, request::<()>("v1", "Id", &[r#"{"a":[1,2]}"#])).unwrap();
    assert_eq!(r.resp, r#"{"a":[1,2]}"#);
}

#[test]
fn timeout_ends_the_request_and_the_worker_goes_on() {
    let svc = spin_and_hello_service(1);
    let mut req = request::<()>("v1", "Spin", &[]);
    req.tags.insert("TimeoutDuration".into(), "100ms".into());
    let e = exec(&svc, req).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let r = exec(&svc, request::<()>("v1", "Handler", &[r#""x""#])).unwrap();
    assert_eq!(r.resp, r#""Hello world! \"x\"""#);
}

#[test]
fn out_of_memory_is_typed_and_the_worker_recovers() {
    let mut c = config::<()>(1);
    c.configure_js_engine_resource_constraints(1, 15);
    let svc = roma::RomaService::new(c).unwrap();
    load(
        &svc,
        code(
            "v1",
            &format!("function Bomb() {{ let a = []; while (true) a.push('x'.repeat(1000) + a.length); }} {HELLO}"),
        ),
    )
    .unwrap();
    let e = exec(&svc, request::<()>("v1", "Bomb", &[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    let r = exec(&svc, request::<()>("v1", "Handler", &[r#""y""#])).unwrap();
    assert_eq!(r.resp, r#""Hello world! \"y\"""#);
}

#[test]
fn cancel_stops_a_running_request() {
    let svc = spin_and_hello_service(1);
    let (tx, rx) = mpsc::channel();
    let mut req: InvocationRequest = request("v1", "Spin", &[]);
    req.timeout = Some(Duration::from_secs(30));
    let token = svc
        .execute(req, move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
    // Cancel until it takes: the request may still be queued or just starting.
    let deadline = std::time::Instant::now() + PATIENCE;
    let result = loop {
        svc.cancel(&token);
        if let Ok(r) = rx.recv_timeout(Duration::from_millis(50)) {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cancel never took effect"
        );
    };
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
    let r = exec(&svc, request::<()>("v1", "Handler", &[r#""z""#])).unwrap();
    assert_eq!(r.resp, r#""Hello world! \"z\"""#);
}

#[test]
fn stop_refuses_new_work() {
    let svc = service(1);
    load(&svc, code("v1", HELLO)).unwrap();
    svc.stop();
    let e = exec(&svc, request::<()>("v1", "Handler", &[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
}

/// Checks that `RomaService::new` refuses a one-worker config that `spoil` changed, with
/// `InvalidArgument` and a message that names each of `named`.
fn new_refuses(spoil: impl FnOnce(&mut Config<()>), named: &[&str]) {
    let mut c = config::<()>(1);
    spoil(&mut c);
    let e = RomaService::new(c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    for part in named {
        assert!(e.message().contains(part), "{part}: {e}");
    }
}

#[test]
fn missing_worker_library_or_node_fails_new_clearly() {
    new_refuses(
        |c| {
            c.worker_library("/nonexistent/libroma_worker.so");
        },
        &["/nonexistent/libroma_worker.so", "-p roma-worker"],
    );
    new_refuses(
        |c| {
            c.node_binary("/nonexistent/bin/node");
        },
        &["/nonexistent/bin/node", "cargo xtask setup"],
    );
}

/// A node that does not carry the worker (here /bin/true in its place) fails `new` naming both
/// files, before any worker is started.
#[test]
fn a_node_that_does_not_answer_as_a_worker_fails_new() {
    new_refuses(
        |c| {
            c.node_binary("/bin/true");
        },
        &["/bin/true", "does not answer as a roma worker"],
    );
}

/// What a worker writes to its stderr (here a debug worker's injected fault: a plain line,
/// terminal escapes, a 10 000-byte line, 1 000 lines at once) reaches the worker output
/// function as escaped, cut, rate-limited lines, and the worker goes on serving.
#[test]
fn worker_stderr_reaches_the_output_function_escaped_cut_and_limited() {
    let lines: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let sink = Arc::clone(&lines);
    let mut c = config::<()>(1);
    c.set_worker_output_function(move |i, l| sink.lock().unwrap().push((i, l.to_owned())));
    let svc = RomaService::new(c).unwrap();
    load(&svc, code("v1", HELLO)).unwrap();
    let r = exec(&svc, request::<()>("v1", "__roma_fault_stderr", &[])).unwrap();
    assert_eq!(r.resp, r#""written""#);
    let r = exec(&svc, request::<()>("v1", "Handler", &[r#""after""#])).unwrap();
    assert_eq!(r.resp, r#""Hello world! \"after\"""#);
    // The worker exits; its relay passes on the count of dropped lines at end-of-file.
    svc.stop();
    drop(svc);
    let dropped = |l: &str| -> Option<u64> {
        l.strip_prefix("[roma: ")?
            .split_once(" more lines dropped")?
            .0
            .parse()
            .ok()
    };
    wait_for(|| {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|(_, l)| dropped(l).is_some())
    });
    let lines = lines.lock().unwrap();
    assert!(lines.iter().all(|(i, _)| *i == 0), "{lines:?}");
    let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(text.contains(&"plain line"), "{text:?}");
    assert!(text.iter().all(|l| !l.contains('\x1b')), "{text:?}");
    assert!(
        text.contains(&"\\u{1b}[2J\\u{1b}[31mforged\\u{1b}[0m"),
        "{text:?}"
    );
    let cut = format!(
        "{} [roma: line cut at {MAX_LINE_BYTES} bytes]",
        "x".repeat(MAX_LINE_BYTES)
    );
    assert!(text.contains(&cut.as_str()));
    let spam = text.iter().filter(|l| l.starts_with("spam ")).count();
    let dropped: u64 = text.iter().filter_map(|l| dropped(l)).sum();
    assert!(
        spam <= MAX_LINES_PER_SECOND as usize,
        "{spam} spam lines passed"
    );
    assert!(
        spam as u64 + dropped >= 1000,
        "{spam} passed + {dropped} dropped"
    );
}

/// The worker the tests run is built as it ships, without the benchmark hooks: the raw V8
/// baseline is refused, with what to build instead.
#[test]
fn the_shipped_worker_has_no_benchmark_hook() {
    let out = roma::tools::unjailed_worker_command(None, None)
        .expect("the worker library and node")
        .args(["--raw-baseline", "1"])
        .output()
        .expect("the worker runs");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without the bench-hooks feature"), "{err}");
}

/// A worker started by a host of another build refuses to serve, before it reads a frame, and
/// says which builds differ.
#[test]
fn a_worker_refuses_a_host_of_another_build() {
    let out = roma::tools::unjailed_worker_command(None, None)
        .expect("the worker library and node")
        .args([
            "roma-ipc1:kind=socket",
            "--roma-host-build=0.0.0+wire.other",
        ])
        .output()
        .expect("the worker runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the host is build 0.0.0+wire.other"), "{err}");
    assert!(err.contains("cargo build -p roma-worker"), "{err}");
}
