//! Hello world end to end through the sandboxed service, beside raw V8 in the same run.
//!
//! - `raw_v8_fresh_call_2proc`: two unjailed workers (`node` + the worker library) run with `--raw-baseline`, each doing
//!   `Context::New` from the version's snapshot plus the call in a loop, in parallel: the time
//!   per call of the pair (the inverse of raw V8's 2-process throughput).
//! - `service_saturated_2_workers`: 2 workers, 4 requests in flight: time per request (the
//!   inverse of throughput).
//! - `service_idle_latency`: one request at a time with a pause before each, so the worker has
//!   pre-warmed its next context: the latency a request meets at an idle service.
//! - `bindings/*`: host functions: a one-call request end to end, the round trip of one call
//!   inside a 1 000-call handler, an async fan-out, and 2 saturated workers whose requests make
//!   10 calls each; in the default mode (UDF thread), `_inline` and `_no_spin` (`Config::spin`
//!   off) in the same run.
//!
//! Needs the release worker library: `cargo xtask bench` builds it first.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roma::{
    CodeObject, Config, FunctionBindingIo, FunctionBindingObject, FunctionBindingPayload,
    InvocationRequest, RomaService,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const HELLO: &str =
    r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#;

fn request() -> InvocationRequest {
    InvocationRequest {
        id: "bench".into(),
        version_string: "v1".into(),
        handler_name: "Handler".into(),
        input: vec![r#""Foobar""#.into()],
        ..Default::default()
    }
}

fn service(workers: usize) -> RomaService {
    let mut c = Config::default();
    c.number_of_workers(workers);
    c.worker_queue_max_items(1000);
    start(c, "hello", HELLO)
}

/// Starts a service and loads `js` as version v1 into it.
fn start(config: Config, id: &str, js: &str) -> RomaService {
    let svc = RomaService::new(config).expect("service starts (build roma-worker --release first)");
    let (tx, rx) = mpsc::channel();
    svc.load_code_obj(
        CodeObject {
            id: id.into(),
            version_string: "v1".into(),
            js: js.into(),
            ..Default::default()
        },
        move |r| {
            let _ = tx.send(r);
        },
    )
    .expect("load accepted");
    rx.recv().expect("load answered").expect("load succeeds");
    svc
}

/// Submits one request whose callback submits the next, until `left` runs out; then reports
/// on `done`.
fn chain(svc: &Arc<RomaService>, left: &Arc<AtomicU64>, done: &mpsc::Sender<()>) {
    if left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_err()
    {
        let _ = done.send(());
        return;
    }
    let (svc2, left2, done2) = (Arc::clone(svc), Arc::clone(left), done.clone());
    svc.execute(request(), move |r| {
        assert!(r.is_ok());
        chain(&svc2, &left2, &done2);
    })
    .expect("accepted");
}

/// Runs `n` raw fresh-context calls in each of two processes; returns the slower loop time.
fn raw_pair(n: u64) -> Duration {
    let spawn = || {
        roma::tools::unjailed_worker_command(None, None)
            .expect("the release worker library and node (cargo xtask bench builds them)")
            .args(["--raw-baseline", &n.to_string()])
            .output()
            .expect("raw baseline runs")
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = spawn();
        (a.join().expect("raw thread"), b)
    });
    let secs = |o: std::process::Output| -> f64 {
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("raw baseline prints seconds")
    };
    Duration::from_secs_f64(secs(a).max(secs(b)))
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("hello_world");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));

    // Each process runs iters/2 calls: the pair's time per call is loop time / iters.
    g.bench_function("raw_v8_fresh_call_2proc", |b| {
        b.iter_custom(|iters| raw_pair(iters.div_ceil(2).max(1)))
    });

    let svc = service(2);
    g.bench_function("service_saturated_2_workers", |b| {
        b.iter_custom(|iters| saturated(&svc, "Handler", iters))
    });
    // The same load, with each callback submitting the next request itself (the dispatcher
    // allows calls from callbacks): no client thread between requests.
    let svc = Arc::new(svc);
    g.bench_function("service_saturated_2_workers_callback_chained", |b| {
        b.iter_custom(|iters| {
            let left = Arc::new(AtomicU64::new(iters));
            let (done_tx, done_rx) = mpsc::channel();
            let t0 = Instant::now();
            for _ in 0..iters.min(4) {
                chain(&svc, &left, &done_tx);
            }
            for _ in 0..iters.min(4) {
                done_rx.recv().expect("chain ended");
            }
            t0.elapsed()
        })
    });
    let svc = Arc::into_inner(svc).expect("no chain holds the service");
    drop(svc);

    let svc = service(1);
    g.bench_function("service_idle_latency", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Idle time for the worker to pre-warm its next context; not measured.
                std::thread::sleep(Duration::from_millis(2));
                let (tx, rx) = mpsc::channel();
                let t0 = Instant::now();
                svc.execute(request(), move |r| {
                    let _ = tx.send(r.is_ok());
                })
                .expect("accepted");
                assert!(rx.recv().expect("answered"));
                total += t0.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// A service whose JS calls host functions; `workers` workers, `inline` and `spin` as in
/// `Config`.
fn binding_service(workers: usize, inline: bool, spin: bool) -> RomaService {
    let mut c = Config::default();
    c.number_of_workers(workers);
    c.worker_queue_max_items(1000);
    c.host_functions_inline(inline);
    c.spin(spin);
    c.register_function_binding(FunctionBindingObject::new(
        "lookup",
        |p: &mut FunctionBindingPayload<'_, ()>| {
            let s = p.io.input_string().unwrap_or_default().to_owned();
            p.io.set_output_string(s);
        },
    ));
    c.register_function_binding(FunctionBindingObject::new_async(
        "slow_lookup",
        |io: FunctionBindingIo, _: &()| -> roma::BindingFuture {
            Box::pin(async move {
                std::thread::sleep(Duration::from_millis(50));
                io
            })
        },
    ));
    start(
        c,
        "udf",
        r#"
            function One(x) { return lookup(x); }
            function Thousand(x) { let n = 0; for (let i = 0; i < 1000; i++) n += lookup(x).length; return n; }
            function Ten(x) { let n = 0; for (let i = 0; i < 10; i++) n += lookup(x).length; return n; }
            async function FanOut() {
              const r = await Promise.all([slow_lookup("a"), slow_lookup("b"), slow_lookup("c")]);
              return r.length;
            }
        "#,
    )
}

fn run(svc: &RomaService, handler: &str) -> roma::ResponseObject {
    let (tx, rx) = mpsc::channel();
    let mut r = request();
    r.handler_name = handler.into();
    svc.execute(r, move |r| {
        let _ = tx.send(r);
    })
    .expect("accepted");
    rx.recv().expect("answered").expect("succeeds")
}

/// Time per binding round trip for `iters` calls: requests of 1 000 calls each, scaled to
/// `iters` (the request's own fixed cost, ~0.3 ms, adds 0.3 µs per call).
fn per_binding_call(svc: &RomaService, iters: u64) -> Duration {
    let requests = iters.div_ceil(1000).max(1);
    let t0 = Instant::now();
    for _ in 0..requests {
        run(svc, "Thousand");
    }
    t0.elapsed()
        .mul_f64(iters as f64 / (requests * 1000) as f64)
}

/// Time per request for `iters` requests of `handler`, four in flight.
fn saturated(svc: &RomaService, handler: &str, iters: u64) -> Duration {
    let (tx, rx) = mpsc::channel();
    let submit = |tx: &mpsc::Sender<()>| {
        let tx = tx.clone();
        let mut r = request();
        r.handler_name = handler.into();
        svc.execute(r, move |r| {
            assert!(r.is_ok());
            let _ = tx.send(());
        })
        .expect("accepted");
    };
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < iters.min(4) {
        submit(&tx);
        sent += 1;
    }
    for _ in 0..iters {
        rx.recv().expect("answered");
        if sent < iters {
            submit(&tx);
            sent += 1;
        }
    }
    t0.elapsed()
}

fn binding_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("bindings");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    // Each mode (default: UDF thread; inline; spinning off) in one run, for ratios.
    for (name, inline, spin) in [
        ("", false, true),
        ("_inline", true, true),
        ("_no_spin", false, false),
    ] {
        let svc = binding_service(1, inline, spin);
        g.bench_function(format!("one_call_end_to_end{name}"), |b| {
            b.iter(|| run(&svc, "One"))
        });
        g.bench_function(format!("round_trip_in_a_1000_call_handler{name}"), |b| {
            b.iter_custom(|iters| per_binding_call(&svc, iters))
        });
        if name.is_empty() {
            g.bench_function("async_fan_out_3x50ms", |b| b.iter(|| run(&svc, "FanOut")));
        }
        drop(svc);
        // Throughput with host calls: does spinning cost the busy workers their CPU?
        let svc = binding_service(2, inline, spin);
        g.bench_function(format!("saturated_2_workers_10_calls{name}"), |b| {
            b.iter_custom(|iters| saturated(&svc, "Ten", iters))
        });
    }
    g.finish();
}

criterion_group!(service_benches, benches, binding_benches);
criterion_main!(service_benches);
