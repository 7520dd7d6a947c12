//! Hello world round trips through roma's APIs in one run: `cargo bench -p roma-capi` (needs
//! `cargo build --release -p roma-worker`, or `$ROMA_WORKER_LIB`).
//!
//! Issue 15's target: the C++ API (roma.hpp's `RomaService<>::Execute` with a callback, as
//! Roma's Getting Started calls it) within 5% of the Rust API. The contenders, one jailed
//! worker each:
//! - `rust_api`: `RomaService::execute` with a callback, the answer awaited on a channel;
//! - `rust_api (condvar)`: the same awaited on a mutex and condition variable, the C++ side's
//!   wait;
//! - `c_api`: the C ABI, from the copy of roma linked into the bench;
//! - `c_api (libroma_c.so)`: the same calls into `libroma_c.so`, the copy the C++ side runs on;
//! - `cpp_api`: `cpp_round_trip.cpp`, compiled at the start with the system C++ compiler
//!   (`$CXX`, else `c++`) against `libroma_c.so`;
//! - `rust_api (A/A control)`: a second `rust_api` service, the noise floor;
//! - `rust_api (execute_blocking)` and `c_api (execute_blocking)`: the blocking forms, which
//!   take the dispatcher's direct hand-off to an idle worker (the request runs on the caller's
//!   thread), for the C ABI's cost on that path.
//!
//! Two services of one API differ by up to 30% for as long as they live (each worker's process
//! and threads settle differently on the cores), so each round starts a fresh service of each
//! contender, and an API's figure is its ratio to `rust_api`'s median in the same round, summed
//! up over rounds as their median and their geometric mean with its 95% interval. Each round
//! times its services in two orders, which one goes first alternating: **by block** (a block of
//! consecutive calls of each contender in turn, as one service's user makes them; the process's
//! CPU time over a block is that contender's host side per call), the figure to quote, and **by
//! call** (one call of each contender in turn). By call, each service idles through the other
//! contenders' calls and its code and data are colder at each of its own; the C++ API, with
//! the most code of its own (roma.hpp's layer and the copy of roma in `libroma_c.so`, which
//! only it and `c_api (libroma_c.so)` run), pays the most for that, which a program that uses
//! one API does not. The contenders' order, in starting and in timing, is shuffled anew each
//! round.
//!
//! `--rounds N` sets the number of rounds (200). Without `--bench` (as `cargo test --benches`
//! runs it), one short round checks that every contender answers. `round_trip --calls API N`
//! makes N calls of one contender and prints their wall and host CPU time per call.

#[path = "round_trip/c_abi.rs"]
mod c_abi;
#[path = "round_trip/cpp.rs"]
mod cpp;
#[path = "round_trip/dl.rs"]
mod dl;

use c_abi::{CAbi, CService};
use cpp::{CppLib, CppService};
use roma::{CodeObject, Config, InvocationRequest, RomaService};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

const JS: &str = r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#;

/// The contenders, in the order they are printed; the first is the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Rust,
    RustCondvar,
    CLinked,
    CShared,
    Cpp,
    RustControl,
    RustBlocking,
    CBlocking,
}

const APIS: [Api; 8] = [
    Api::Rust,
    Api::RustCondvar,
    Api::CLinked,
    Api::CShared,
    Api::Cpp,
    Api::RustControl,
    Api::RustBlocking,
    Api::CBlocking,
];

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Rust => "rust_api",
            Api::RustCondvar => "rust_api (condvar)",
            Api::CLinked => "c_api",
            Api::CShared => "c_api (libroma_c.so)",
            Api::Cpp => "cpp_api",
            Api::RustControl => "rust_api (A/A control)",
            Api::RustBlocking => "rust_api (execute_blocking)",
            Api::CBlocking => "c_api (execute_blocking)",
        }
    }

    /// The driver's names: `rust`, `rust-condvar`, `c`, `c-shared`, `cpp`, `rust-blocking`,
    /// `c-blocking`.
    fn parse(s: &str) -> Option<Api> {
        Some(match s {
            "rust" => Api::Rust,
            "rust-condvar" => Api::RustCondvar,
            "c" => Api::CLinked,
            "c-shared" => Api::CShared,
            "cpp" => Api::Cpp,
            "rust-blocking" => Api::RustBlocking,
            "c-blocking" => Api::CBlocking,
            _ => return None,
        })
    }
}

/// How a contender awaits its answer.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// A callback sends it on a channel.
    Channel,
    /// A callback sets it under a mutex and notifies a condition variable.
    Condvar,
    /// The blocking execute returns it.
    Blocking,
}

/// A one-shot answer on a mutex and condition variable, as the C++ side's `Answer`: set on
/// roma's thread, notified after unlocking.
#[derive(Default)]
struct Answer {
    ok: Mutex<Option<bool>>,
    cv: Condvar,
}

impl Answer {
    fn set(&self, ok: bool) {
        *self.ok.lock().expect("the answer's lock") = Some(ok);
        self.cv.notify_all();
    }

    fn wait(&self) -> bool {
        let mut g = self.ok.lock().expect("the answer's lock");
        loop {
            if let Some(ok) = *g {
                return ok;
            }
            g = self.cv.wait(g).expect("the answer's lock");
        }
    }
}

/// A started contender.
enum Service {
    Rust(RomaService, Wait),
    C(CService, Wait),
    Cpp(CppService),
}

impl Service {
    fn call(&self) {
        match self {
            Service::Rust(roma, wait) => rust_call(roma, *wait),
            Service::C(c, Wait::Blocking) => c.call_blocking(),
            Service::C(c, _) => c.call(),
            Service::Cpp(c) => c.call(),
        }
    }
}

/// The Rust API as its user calls it.
fn rust_call(roma: &RomaService, wait: Wait) {
    let request = InvocationRequest::new("v1", "Handler", vec![r#""Foobar""#.to_string()]);
    match wait {
        Wait::Channel => {
            let (tx, rx) = mpsc::channel();
            roma.execute(request, move |r| {
                let _ = tx.send(r);
            })
            .expect("accepted");
            black_box(rx.recv().expect("the answer").expect("hello world"));
        }
        Wait::Condvar => {
            let answer = Arc::new(Answer::default());
            let a = Arc::clone(&answer);
            roma.execute(request, move |r| a.set(r.is_ok()))
                .expect("accepted");
            assert!(answer.wait(), "the Rust round trip failed");
        }
        Wait::Blocking => {
            black_box(roma.execute_blocking(request).expect("hello world"));
        }
    }
}

/// What starting a contender needs: the worker, both copies' C functions, the C++ library.
struct Libs {
    worker: PathBuf,
    linked: &'static CAbi,
    shared: &'static CAbi,
    cpp: Option<CppLib>,
}

impl Libs {
    /// Opens `libroma_c.so` and, `with_cpp`, builds the C++ side, both in the bench's folder.
    fn new(with_cpp: bool) -> Libs {
        let exe = std::env::current_exe().expect("the bench's path");
        let deps = exe.parent().expect("the bench's folder");
        let worker = match std::env::var_os("ROMA_WORKER_LIB") {
            Some(p) => p.into(),
            None => deps
                .parent()
                .expect("the profile folder")
                .join("libroma_worker.so"),
        };
        // The bench lives for one run: the tables may live as long.
        let linked: &'static CAbi = Box::leak(Box::new(CAbi::linked()));
        let cpp = with_cpp.then(|| cpp::build(deps));
        // The library the C++ side is linked against, so the two share one copy.
        let shared: &'static CAbi = Box::leak(Box::new(CAbi::shared(&deps.join("libroma_c.so"))));
        Libs {
            worker,
            linked,
            shared,
            cpp,
        }
    }

    fn start(&self, api: Api) -> Service {
        match api {
            Api::Rust | Api::RustControl => Service::Rust(self.rust_service(), Wait::Channel),
            Api::RustCondvar => Service::Rust(self.rust_service(), Wait::Condvar),
            Api::RustBlocking => Service::Rust(self.rust_service(), Wait::Blocking),
            Api::CLinked => Service::C(self.c_service(self.linked), Wait::Channel),
            Api::CShared => Service::C(self.c_service(self.shared), Wait::Channel),
            Api::CBlocking => Service::C(self.c_service(self.linked), Wait::Blocking),
            Api::Cpp => Service::Cpp(CppService::new(
                self.cpp.expect("the C++ side is built"),
                &self.worker,
            )),
        }
    }

    fn c_service(&self, abi: &'static CAbi) -> CService {
        CService::new(abi, &self.worker, JS)
    }

    fn rust_service(&self) -> RomaService {
        let mut config = Config::default();
        config.number_of_workers(1).worker_library(&self.worker);
        let roma = RomaService::new(config).expect("the Rust service");
        roma.load_blocking(CodeObject::js("v1", JS)).expect("load");
        roma
    }
}

/// How a round alternates its contenders' calls.
#[derive(Debug, Clone, Copy)]
enum Order {
    ByCall,
    ByBlock,
}

const N: usize = APIS.len();

/// A fixed pseudo-random order of the contenders for `round` (a shuffle driven by xorshift64,
/// seeded by the round), so that no contender always starts first, runs first or follows the
/// same one; the same in every run.
fn shuffled(round: usize) -> [usize; N] {
    let mut x = (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut order: [usize; N] = std::array::from_fn(|i| i);
    for i in (1..N).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

/// The CPU time this process has used, all its threads (user and system): the host side of
/// every service in it, not the workers, which are other processes.
fn host_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is valid for a write of a `rusage`, which getrusage fills on success.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage failed");
    // SAFETY: zeroed is a valid `rusage` (plain integers), and getrusage filled it.
    let u = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// One order's measurements in one round.
struct Timed {
    /// Each contender's call times.
    times: [Vec<Duration>; N],
    /// Each contender's host CPU time per call, measured over its block (by block only: by
    /// call, the contenders' calls share the process's CPU clock).
    cpu: [Option<Duration>; N],
}

/// Times `calls` calls of each service in `order`, the contenders taken in `perm`'s order.
fn time(services: &[Service], order: Order, perm: &[usize; N], calls: usize) -> Timed {
    let mut times: [Vec<Duration>; N] = Default::default();
    let mut cpu = [None; N];
    let mut timed = |i: usize| {
        let s = Instant::now();
        services[i].call();
        times[i].push(s.elapsed());
    };
    match order {
        Order::ByCall => {
            for call in 0..calls {
                for k in 0..N {
                    timed(perm[(call + k) % N]);
                }
            }
        }
        Order::ByBlock => {
            for &i in perm {
                let before = host_cpu();
                for _ in 0..calls {
                    timed(i);
                }
                cpu[i] = Some((host_cpu() - before) / calls as u32);
            }
        }
    }
    Timed { times, cpu }
}

/// Each contender's ratios to `rust_api` (one per round) and all its calls, for one order.
#[derive(Default)]
struct Tally {
    ratios: [Vec<f64>; N],
    all: [Vec<Duration>; N],
    cpu: [Vec<Duration>; N],
}

impl Tally {
    fn add(&mut self, mut t: Timed) {
        let m: Vec<Duration> = t.times.iter_mut().map(|t| median(t)).collect();
        for i in 0..N {
            self.ratios[i].push(m[i].as_secs_f64() / m[0].as_secs_f64());
            self.all[i].append(&mut t.times[i]);
            self.cpu[i].extend(t.cpu[i]);
        }
    }

    fn print(&mut self, order: Order, rounds: usize, calls: usize) {
        let reference = median(&mut self.all[0]).as_secs_f64();
        for (i, api) in APIS.iter().enumerate() {
            let r = &mut self.ratios[i];
            r.sort_by(f64::total_cmp);
            let all = median(&mut self.all[i]).as_secs_f64();
            let (mean, low, high) = geometric_mean(r);
            let cpu = if self.cpu[i].is_empty() {
                String::new()
            } else {
                format!(
                    "; host CPU per call {:.1} µs (median of the blocks)",
                    median(&mut self.cpu[i]).as_secs_f64() * 1e6
                )
            };
            eprintln!(
                "{order:?}, {rounds} rounds x {calls} calls: {:<28} x rust_api: median {:.3} \
                 (middle half {:.3}-{:.3}), geometric mean {mean:.3} (95% interval \
                 {low:.3}-{high:.3}); all calls' median {:.1} µs ({:.3}){cpu}",
                api.name(),
                r[r.len() / 2],
                r[r.len() / 4],
                r[r.len() * 3 / 4],
                all * 1e6,
                all / reference,
            );
        }
    }
}

fn rounds(libs: &Libs, rounds: usize, calls: usize) {
    let mut by_call = Tally::default();
    let mut by_block = Tally::default();
    for round in 0..rounds {
        let perm = shuffled(round);
        let mut started: Vec<Option<Service>> = (0..N).map(|_| None).collect();
        for &i in &perm {
            started[i] = Some(libs.start(APIS[i]));
        }
        let services: Vec<Service> = started
            .into_iter()
            .map(|s| s.expect("each contender is started once a round"))
            .collect();
        let orders = if round % 2 == 0 {
            [Order::ByCall, Order::ByBlock]
        } else {
            [Order::ByBlock, Order::ByCall]
        };
        for order in orders {
            let timed = time(&services, order, &perm, calls);
            match order {
                Order::ByCall => by_call.add(timed),
                Order::ByBlock => by_block.add(timed),
            }
        }
    }
    by_block.print(Order::ByBlock, rounds, calls);
    by_call.print(Order::ByCall, rounds, calls);
}

/// The geometric mean of `ratios` and its 95% interval (two standard errors of the mean of
/// their logarithms either side): the spread between rounds is mostly which placement each
/// fresh service got, which averages out over rounds but not within one.
fn geometric_mean(ratios: &[f64]) -> (f64, f64, f64) {
    let n = ratios.len() as f64;
    let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
    let mean = logs.iter().sum::<f64>() / n;
    let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let se = (var / n).sqrt();
    (mean.exp(), (mean - 2.0 * se).exp(), (mean + 2.0 * se).exp())
}

fn median(t: &mut [Duration]) -> Duration {
    t.sort();
    t[t.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--calls") {
        let api = args
            .get(i + 1)
            .and_then(|a| Api::parse(a))
            .expect("--calls API N: API is rust, rust-condvar, c, c-shared or cpp");
        let n: usize = args
            .get(i + 2)
            .and_then(|n| n.parse().ok())
            .expect("--calls API N: N is a count");
        let service = Libs::new(api == Api::Cpp).start(api);
        let (wall, cpu) = (Instant::now(), host_cpu());
        for _ in 0..n {
            service.call();
        }
        let per_call = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
        eprintln!(
            "{}: {n} calls, {:.1} µs each, {:.1} µs of host CPU each",
            api.name(),
            per_call(wall.elapsed()),
            per_call(host_cpu() - cpu)
        );
        return;
    }
    let libs = Libs::new(true);
    if !args.iter().any(|a| a == "--bench") {
        rounds(&libs, 1, 3);
        return;
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!("{cpu}; {cores} cores; load average {}", load_average());
    let n = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map_or(200, |n| n.parse().expect("--rounds N: N is a count"));
    rounds(&libs, n, 40);
    eprintln!("load average after: {}", load_average());
}
