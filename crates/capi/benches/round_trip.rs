//! Hello world through the C++ API (roma.hpp's `RomaService<>::Execute`, as Roma's Getting
//! Started calls it), through the C ABI underneath it, and through the Rust API, one worker
//! each, in one run: `cargo bench -p roma-capi`. The three are interleaved: each timed call of
//! one API is followed by an untimed call of each other one, so all see the same machine state.
//! The C++ side is `cpp_round_trip.cpp`, compiled at the start with the system C++ compiler
//! (`$CXX`, else `c++`) into a shared library against this build's `libroma_c.so`, and loaded
//! with `dlopen`. Needs `cargo build --release -p roma-worker` (or `$ROMA_WORKER_LIB`).

use criterion::{Criterion, criterion_group, criterion_main};
use roma::{CodeObject, Config, InvocationRequest, RomaService};
use roma_c::*;
use std::ffi::{CString, c_char, c_void};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
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

type CppStart = unsafe extern "C" fn(worker_library: *const c_char) -> *mut c_void;
type CppCall = unsafe extern "C" fn(service: *mut c_void) -> bool;
type CppStop = unsafe extern "C" fn(service: *mut c_void);

/// The C++ API's service, in the shared library built from `cpp_round_trip.cpp`.
struct CppService {
    service: *mut c_void,
    call: CppCall,
    stop: CppStop,
}

/// Compiles `cpp_round_trip.cpp` against this build's `libroma_c.so` (next to the bench, in
/// `target/release/deps`) and the repository's headers.
fn build_cpp() -> PathBuf {
    let deps = std::env::current_exe()
        .expect("the bench's path")
        .parent()
        .expect("its folder")
        .to_path_buf();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = deps.join("libroma_bench_cpp.so");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = Command::new(&cxx)
        .args(["-std=c++17", "-O2", "-fPIC", "-shared"])
        .arg(format!("-I{}", manifest.join("../../include").display()))
        .arg(manifest.join("benches/cpp_round_trip.cpp"))
        .arg(format!("-L{}", deps.display()))
        .arg(format!("-Wl,-rpath,{}", deps.display()))
        .args(["-lroma_c", "-lpthread", "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{cxx}: {e}"));
    assert!(status.success(), "{cxx} cpp_round_trip.cpp failed");
    out
}

/// The address of `name` in `lib`.
///
/// # Safety
/// `lib` is a live `dlopen` handle; the caller casts the result to the symbol's true type.
unsafe fn symbol(lib: *mut c_void, name: &std::ffi::CStr) -> *mut c_void {
    // SAFETY: the caller's contract; `name` is NUL-terminated.
    let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
    assert!(!p.is_null(), "{name:?} is not in the C++ bench library");
    p
}

impl CppService {
    fn new(lib: &Path) -> CppService {
        let so = CString::new(lib.display().to_string()).expect("a path without NUL");
        let w = CString::new(worker().display().to_string()).expect("a path without NUL");
        // SAFETY: `so` is NUL-terminated; the library's three functions have the types named
        // here (cpp_round_trip.cpp's extern "C" declarations); the library is never closed, so
        // they stay valid.
        unsafe {
            let lib = libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            assert!(!lib.is_null(), "dlopen of the C++ bench library failed");
            let start: CppStart = std::mem::transmute(symbol(lib, c"bench_cpp_start"));
            let call: CppCall = std::mem::transmute(symbol(lib, c"bench_cpp_call"));
            let stop: CppStop = std::mem::transmute(symbol(lib, c"bench_cpp_stop"));
            let service = start(w.as_ptr());
            assert!(!service.is_null(), "the C++ service did not start");
            CppService {
                service,
                call,
                stop,
            }
        }
    }

    fn call(&self) {
        // SAFETY: `service` came from `bench_cpp_start` and is stopped only on drop.
        let ok = unsafe { (self.call)(self.service) };
        assert!(ok, "the C++ round trip failed");
    }
}

impl Drop for CppService {
    fn drop(&mut self) {
        // SAFETY: as in `call`; stopped once.
        unsafe { (self.stop)(self.service) };
    }
}

/// The Rust API in the shape the C and C++ calls have: `execute` with a callback, the answer
/// awaited on a channel. (`execute_blocking` takes the direct hand-off to an idle worker, which
/// runs the request on the calling thread; the C ABI has no blocking form yet, so comparing
/// with it would measure that path, not the API layers.)
fn rust_call(roma: &RomaService) {
    let input = vec![r#""Foobar""#.to_string()];
    let (tx, rx) = mpsc::channel();
    roma.execute(InvocationRequest::new("v1", "Handler", input), move |r| {
        let _ = tx.send(r);
    })
    .expect("accepted");
    black_box(rx.recv().expect("the answer").expect("hello world"));
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
    let cpp_lib = build_cpp();
    {
        let rust = rust_service();
        let capi = CService::new();
        let cpp = CppService::new(&cpp_lib);
        let mut g = c.benchmark_group("hello_round_trip");
        // Each timed call is followed by an untimed call of each other API.
        let calls: [(&str, &dyn Fn()); 3] = [
            ("rust_api", &|| rust_call(&rust)),
            ("c_api", &|| capi.call()),
            ("cpp_api", &|| cpp.call()),
        ];
        for (i, (name, timed)) in calls.iter().enumerate() {
            g.bench_function(*name, |b| {
                b.iter_custom(|n| {
                    let mut t = Duration::ZERO;
                    for _ in 0..n {
                        let s = Instant::now();
                        timed();
                        t += s.elapsed();
                        for (j, (_, other)) in calls.iter().enumerate() {
                            if j != i {
                                other();
                            }
                        }
                    }
                    t
                })
            });
        }
        g.finish();
    }
    rounds(&cpp_lib);
}

fn rust_service() -> RomaService {
    let mut config = Config::default();
    config.number_of_workers(1).worker_library(worker());
    let rust = RomaService::new(config).expect("the Rust service");
    rust.load_blocking(CodeObject::js("v1", JS)).expect("load");
    rust
}

/// The comparison to quote. Two services of the same API differ by up to 30% here, for as
/// long as they live (each worker's process and threads settle differently on the cores), so
/// one service per API (criterion's figures above) cannot resolve a few percent between the
/// APIs. Each round starts a fresh service of each API, plus a second Rust service (the A/A
/// control), in a rotated order, and interleaves their calls; each API's figure is the median
/// over rounds of its ratio to the first Rust service's median in the same round. The control's
/// ratio is the noise floor a difference between the APIs has to stand out of.
fn rounds(cpp_lib: &Path) {
    const ROUNDS: usize = 100;
    const CALLS: usize = 50;
    const NAMES: [&str; 4] = ["rust_api", "c_api", "cpp_api", "rust_api (A/A control)"];
    let mut ratios: [Vec<f64>; 4] = Default::default();
    let mut all: [Vec<Duration>; 4] = Default::default();
    for round in 0..ROUNDS {
        let (mut rust, mut capi, mut cpp, mut control) = (None, None, None, None);
        for k in 0..4 {
            match (round + k) % 4 {
                0 => rust = Some(rust_service()),
                1 => capi = Some(CService::new()),
                2 => cpp = Some(CppService::new(cpp_lib)),
                _ => control = Some(rust_service()),
            }
        }
        let (Some(rust), Some(capi), Some(cpp), Some(control)) = (rust, capi, cpp, control) else {
            unreachable!("each of the four is started once a round");
        };
        let calls: [&dyn Fn(); 4] = [
            &|| rust_call(&rust),
            &|| capi.call(),
            &|| cpp.call(),
            &|| rust_call(&control),
        ];
        let mut times: [Vec<Duration>; 4] = Default::default();
        for call in 0..CALLS {
            // Rotate which API goes first, so none always follows the same one.
            for k in 0..4 {
                let i = (call + k) % 4;
                let s = Instant::now();
                calls[i]();
                times[i].push(s.elapsed());
            }
        }
        let m: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
        for i in 0..4 {
            ratios[i].push(m[i].as_secs_f64() / m[0].as_secs_f64());
            all[i].extend_from_slice(&times[i]);
        }
    }
    for i in 0..4 {
        let mut r = ratios[i].clone();
        r.sort_by(f64::total_cmp);
        eprintln!(
            "hello_round_trip over {ROUNDS} rounds of fresh services x {CALLS} interleaved calls: \
             {} median {:.1} µs, {:.3} x rust_api (median of the rounds' ratios; middle half {:.3}-{:.3})",
            NAMES[i],
            median(&mut all[i]).as_secs_f64() * 1e6,
            r[r.len() / 2],
            r[r.len() / 4],
            r[r.len() * 3 / 4],
        );
    }
}

fn median(t: &mut [Duration]) -> Duration {
    t.sort();
    t[t.len() / 2]
}

criterion_group!(benches, bench);
criterion_main!(benches);
