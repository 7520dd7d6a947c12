//! Hello world through the C ABI against the same through the Rust API, one worker each, in one
//! run: `cargo bench -p roma-capi`. The two are interleaved: each timed call of one API is
//! followed by an untimed call of the other, so both see the same machine state. The C side is
//! what roma.hpp's `Execute` does underneath (a request built, submitted with a callback, the
//! answer handed back through a channel); the C++ layer adds only copies into std types.
//! Needs `cargo build --release -p roma-worker` (or `$ROMA_WORKER_LIB`).

use criterion::{Criterion, criterion_group, criterion_main};
use roma::{CodeObject, Config, InvocationRequest, RomaService};
use roma_c::*;
use std::ffi::c_void;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const JS: &str = r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#;

fn worker() -> PathBuf {
    if let Some(p) = std::env::var_os("ROMA_WORKER_LIB") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("the bench's path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("the profile folder")
        .join("libroma_worker.so")
}

fn ok(e: *mut roma_error_t) {
    assert!(e.is_null(), "a C API call failed");
}

unsafe extern "C" fn answered(data: *mut c_void, r: *mut roma_response_t, e: *mut roma_error_t) {
    // SAFETY: `data` is the boxed `Sender` that `sender` made for this one callback, which
    // owns it: the submitter cannot free it while `send` still runs.
    let tx = unsafe { Box::from_raw(data.cast::<mpsc::Sender<bool>>()) };
    let _ = tx.send(!r.is_null());
    // SAFETY: the callback owns both; null is ignored.
    unsafe {
        roma_response_delete(r);
        roma_error_delete(e);
    }
}

/// A sender for one callback, owned by it.
fn sender(tx: &mpsc::Sender<bool>) -> *mut c_void {
    Box::into_raw(Box::new(tx.clone())).cast()
}

struct CService(*mut roma_service_t);

impl CService {
    fn new() -> CService {
        let w = worker().display().to_string();
        // SAFETY: every pointer comes from the C API or a live Rust value, as the headers ask.
        unsafe {
            let c = roma_config_new();
            ok(roma_config_set_number_of_workers(c, 1));
            ok(roma_config_set_worker_library(
                c,
                w.as_ptr().cast(),
                w.len(),
            ));
            let mut s = std::ptr::null_mut();
            ok(roma_service_new(c, &mut s));
            let code = roma_code_object_new();
            ok(roma_code_object_set_version(code, c"v1".as_ptr(), 2));
            ok(roma_code_object_set_js(code, JS.as_ptr().cast(), JS.len()));
            let (tx, rx) = mpsc::channel::<bool>();
            ok(roma_service_load(s, code, Some(answered), sender(&tx)));
            assert!(rx.recv().expect("the load's answer"));
            roma_code_object_delete(code);
            CService(s)
        }
    }

    fn call(&self) {
        let input = r#""Foobar""#;
        let (tx, rx) = mpsc::channel::<bool>();
        // SAFETY: as in `new`; `tx` outlives the callback, which is awaited below.
        unsafe {
            let r = roma_request_new();
            ok(roma_request_set_version(r, c"v1".as_ptr(), 2));
            ok(roma_request_set_handler(r, c"Handler".as_ptr(), 7));
            ok(roma_request_add_input(
                r,
                input.as_ptr().cast(),
                input.len(),
            ));
            ok(roma_service_execute(
                self.0,
                r,
                Some(answered),
                sender(&tx),
                std::ptr::null_mut(),
            ));
            roma_request_delete(r);
        }
        assert!(rx.recv().expect("the answer"));
    }
}

impl Drop for CService {
    fn drop(&mut self) {
        // SAFETY: the service was made by `roma_service_new` and is deleted once.
        unsafe { roma_service_delete(self.0) };
    }
}

fn rust_call(roma: &RomaService) {
    let input = vec![r#""Foobar""#.to_string()];
    let r = roma.execute_blocking(InvocationRequest::new("v1", "Handler", input));
    black_box(r.expect("hello world"));
}

fn bench(c: &mut Criterion) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!("{cpu}; {cores} cores");
    let mut config = Config::default();
    config.number_of_workers(1).worker_library(worker());
    let rust = RomaService::new(config).expect("the Rust service");
    rust.load_blocking(CodeObject::js("v1", JS)).expect("load");
    let capi = CService::new();
    let mut g = c.benchmark_group("hello_round_trip");
    g.bench_function("rust_api", |b| {
        b.iter_custom(|n| {
            let mut t = Duration::ZERO;
            for _ in 0..n {
                let s = Instant::now();
                rust_call(&rust);
                t += s.elapsed();
                capi.call();
            }
            t
        })
    });
    g.bench_function("c_api", |b| {
        b.iter_custom(|n| {
            let mut t = Duration::ZERO;
            for _ in 0..n {
                rust_call(&rust);
                let s = Instant::now();
                capi.call();
                t += s.elapsed();
            }
            t
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
