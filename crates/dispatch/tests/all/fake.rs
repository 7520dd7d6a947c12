//! An in-memory [`WorkerBackend`] whose behaviour the test picks per request, plus the helpers
//! tests use to wait on it without sleeping.
//!
//! Handlers (by `handler_name`):
//! - `echo`: answers `"<version>|<js>|<inputs joined by ,>"` from the fake's loaded versions,
//!   or `VersionNotFound` when the version was never loaded into this backend;
//! - `block:<gate>`: reports it started, then waits until the test opens `<gate>`;
//! - `crash-after:<gate>`: as `block:<gate>`, then dies (`WorkerCrashed`);
//! - `loop`: reports it started, then runs until interrupted, and returns `Cancelled`;
//! - `fail`: an `Execution` error; `crash`: dies (`WorkerCrashed`, `is_alive` false);
//! - `panic`: panics; `forget`: drops every loaded version (an engine-side eviction);
//! - `zombie`: succeeds but leaves the worker dead; `dead-fail`: an `Execution` error with the
//!   worker dead; `panic-alive`: an `Execution` error after which `is_alive` panics;
//!   `crash-panic-drop`: dies, and dropping the backend then panics.
//!
//! A dead fake answers every call with `WorkerCrashed`. [`Harness::kill`] kills a worker from
//! outside, as a SIGKILL would. After [`Harness::die_in_idle`], every backend of that worker
//! dies in `idle` (a worker that cannot even pre-warm: a crash loop).
//!
//! CPU time ([`WorkerBackend::cpu_time`]): zero, unless the test made the worker spin with
//! [`Harness::spin_while_idle`]: its backends then report one CPU-second per second of life,
//! as a worker whose own threads run between requests would.
//!
//! Loads: js `bad` fails everywhere with `Compile`; js `bad-on-<n>` fails only on worker `n`;
//! js `crash-on-<n>` kills worker `n` (`WorkerCrashed`).

use roma_core::{
    CodeObject, ErrorKind, ExecOutput, Invocation, InvocationRequest, ResponseObject, RomaError,
};
use roma_dispatch::{Dispatcher, ExecutionToken, Interrupt, WorkerBackend};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[path = "shared.rs"]
mod shared;
pub use shared::{block_on, code};

/// How long a test waits for something that must happen before calling it a failure. A safety
/// net against hangs, never a speed assertion.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// What the fakes did, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A factory call the test made fail (see [`Harness::fail_spawns`]).
    SpawnFailed {
        worker: usize,
    },
    Spawn {
        worker: usize,
        generation: usize,
    },
    Load {
        worker: usize,
        generation: usize,
        version: String,
    },
    Exec {
        worker: usize,
        generation: usize,
        request: u64,
        handler: String,
    },
    /// A backend was dropped.
    Dropped {
        worker: usize,
        generation: usize,
    },
}

/// Shared between the test and every fake backend it creates.
pub struct Harness {
    events: Mutex<Vec<Event>>,
    events_cv: Condvar,
    started_tx: Mutex<mpsc::Sender<(usize, u64)>>,
    started_rx: Mutex<mpsc::Receiver<(usize, u64)>>,
    gates: Mutex<HashMap<String, usize>>,
    gates_cv: Condvar,
    /// Upcoming factory calls that fail.
    pub fail_spawns: AtomicUsize,
    /// Upcoming backends whose `interrupter()` panics.
    pub panic_interrupters: AtomicUsize,
    /// The liveness flag of each worker's latest backend.
    alive: Mutex<HashMap<usize, Arc<AtomicBool>>>,
    /// Workers whose backends die in `idle`.
    idle_deaths: Mutex<HashSet<usize>>,
    generations: Mutex<HashMap<usize, usize>>,
    /// Workers whose backends report CPU time as if a thread spun all the time.
    spinning: Mutex<HashSet<usize>>,
    /// The name of the thread each execution ran on, in order.
    exec_threads: Mutex<Vec<String>>,
}

impl Harness {
    pub fn new() -> Arc<Self> {
        let (tx, rx) = mpsc::channel();
        Arc::new(Harness {
            events: Mutex::new(Vec::new()),
            events_cv: Condvar::new(),
            started_tx: Mutex::new(tx),
            started_rx: Mutex::new(rx),
            gates: Mutex::new(HashMap::new()),
            gates_cv: Condvar::new(),
            fail_spawns: AtomicUsize::new(0),
            panic_interrupters: AtomicUsize::new(0),
            alive: Mutex::new(HashMap::new()),
            idle_deaths: Mutex::new(HashSet::new()),
            generations: Mutex::new(HashMap::new()),
            spinning: Mutex::new(HashSet::new()),
            exec_threads: Mutex::new(Vec::new()),
        })
    }

    /// A factory for `Dispatcher::new`.
    pub fn factory(
        self: &Arc<Self>,
    ) -> impl Fn(usize) -> Result<Fake, RomaError> + Send + Sync + 'static {
        let h = Arc::clone(self);
        move |worker| {
            let failing = h
                .fail_spawns
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                h.push(Event::SpawnFailed { worker });
                return Err(RomaError::new(ErrorKind::Internal, "spawn refused by test"));
            }
            let generation = {
                let mut g = h.generations.lock().unwrap();
                let e = g.entry(worker).or_insert(0);
                *e += 1;
                *e
            };
            h.push(Event::Spawn { worker, generation });
            let alive = Arc::new(AtomicBool::new(true));
            h.alive.lock().unwrap().insert(worker, Arc::clone(&alive));
            let panic_interrupter = h
                .panic_interrupters
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            Ok(Fake {
                panic_interrupter,
                panic_alive: false,
                panic_on_drop: false,
                worker,
                generation,
                harness: Arc::clone(&h),
                versions: BTreeMap::new(),
                alive,
                interrupt: Arc::new(FakeInterrupt::default()),
                born: Instant::now(),
            })
        }
    }

    fn push(&self, e: Event) {
        self.events.lock().unwrap().push(e);
        self.events_cv.notify_all();
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the event log.
    pub fn wait_events(&self, what: &str, pred: impl Fn(&[Event]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        let mut g = self.events.lock().unwrap();
        while !pred(&g) {
            let now = Instant::now();
            assert!(now < deadline, "gave up waiting for {what}; events: {g:?}");
            g = self.events_cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits until `worker` has its backend number `generation`.
    pub fn wait_spawned(&self, worker: usize, generation: usize) {
        let what = format!("backend {generation} of worker {worker}");
        self.wait_events(&what, |e| e.contains(&Event::Spawn { worker, generation }));
    }

    /// Waits until `worker`'s backend number `generation` was given `version` to load.
    pub fn wait_loaded(&self, worker: usize, generation: usize, version: &str) {
        let what = format!("worker {worker} (backend {generation}) loading {version}");
        self.wait_events(&what, |e| {
            e.contains(&Event::Load {
                worker,
                generation,
                version: version.into(),
            })
        });
    }

    /// Waits until a blocking or looping handler has started; returns (worker, request id).
    pub fn wait_started(&self) -> (usize, u64) {
        self.started_rx
            .lock()
            .unwrap()
            .recv_timeout(PATIENCE)
            .expect("a request should have started")
    }

    /// Lets one request blocked on `gate` through (now or when it arrives).
    pub fn open(&self, gate: &str) {
        *self.gates.lock().unwrap().entry(gate.into()).or_insert(0) += 1;
        self.gates_cv.notify_all();
    }

    fn pass(&self, gate: &str) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let mut g = self.gates.lock().unwrap();
        loop {
            if let Some(n) = g.get_mut(gate).filter(|n| **n > 0) {
                *n -= 1;
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self.gates_cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// The versions loaded into `worker`'s backend number `generation`, in order.
    pub fn loads(&self, worker: usize, generation: usize) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Load {
                    worker: w,
                    generation: g,
                    version,
                } if w == worker && g == generation => Some(version),
                _ => None,
            })
            .collect()
    }

    /// Factory calls for `worker` the test made fail.
    pub fn failed_spawns(&self, worker: usize) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::SpawnFailed { worker: w } if *w == worker))
            .count()
    }

    /// The executions that reached a backend, as (worker, generation, handler).
    pub fn execs(&self) -> Vec<(usize, usize, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Exec {
                    worker,
                    generation,
                    handler,
                    ..
                } => Some((worker, generation, handler)),
                _ => None,
            })
            .collect()
    }

    /// The name of the thread each execution ran on (a slot thread's `roma-slot-<i>`, or the
    /// submitting thread's under the direct hand-off), in order.
    pub fn exec_threads(&self) -> Vec<String> {
        self.exec_threads.lock().unwrap().clone()
    }

    /// Whether every backend created so far has been dropped.
    pub fn all_dropped(&self) -> bool {
        let events = self.events();
        let spawned = events
            .iter()
            .filter(|e| matches!(e, Event::Spawn { .. }))
            .count();
        let dropped = events
            .iter()
            .filter(|e| matches!(e, Event::Dropped { .. }))
            .count();
        spawned == dropped
    }

    /// Kills `worker`'s current backend from outside (as a SIGKILL of its process would).
    pub fn kill(&self, worker: usize) {
        if let Some(a) = self.alive.lock().unwrap().get(&worker) {
            a.store(false, Ordering::SeqCst);
        }
    }

    /// Makes every backend of `worker`, the current one included, die when it is next idle.
    pub fn die_in_idle(&self, worker: usize) {
        self.idle_deaths.lock().unwrap().insert(worker);
    }

    /// Makes every backend of `worker` report CPU use as if it spun while idle.
    pub fn spin_while_idle(&self, worker: usize) {
        self.spinning.lock().unwrap().insert(worker);
    }

    /// Successful factory calls for `worker` (its backend generations so far).
    pub fn spawns(&self, worker: usize) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Spawn { worker: w, .. } if *w == worker))
            .count()
    }
}

#[derive(Default)]
struct FakeInterrupt {
    latest: Mutex<u64>,
    cv: Condvar,
}

impl Interrupt for FakeInterrupt {
    fn interrupt(&self, request_id: u64) {
        let mut g = self.latest.lock().unwrap();
        *g = (*g).max(request_id);
        self.cv.notify_all();
    }
}

/// One fake worker.
pub struct Fake {
    worker: usize,
    generation: usize,
    harness: Arc<Harness>,
    versions: BTreeMap<String, String>,
    alive: Arc<AtomicBool>,
    panic_interrupter: bool,
    panic_alive: bool,
    panic_on_drop: bool,
    interrupt: Arc<FakeInterrupt>,
    born: Instant,
}

impl Fake {
    fn dead(&self) -> bool {
        !self.alive.load(Ordering::SeqCst)
    }

    fn die(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }

    fn started(&self, id: u64) {
        let _ = self
            .harness
            .started_tx
            .lock()
            .unwrap()
            .send((self.worker, id));
    }
}

impl<M> WorkerBackend<M> for Fake {
    fn load(&mut self, code: &CodeObject) -> Result<(), RomaError> {
        self.harness.push(Event::Load {
            worker: self.worker,
            generation: self.generation,
            version: code.version_string.clone(),
        });
        if self.dead() {
            return Err(RomaError::new(
                ErrorKind::WorkerCrashed,
                "fake worker is dead",
            ));
        }
        if code.js == "crash" || code.js == format!("crash-on-{}", self.worker) {
            self.die();
            return Err(RomaError::new(
                ErrorKind::WorkerCrashed,
                "fake worker died loading",
            ));
        }
        if code.js == "bad" || code.js == format!("bad-on-{}", self.worker) {
            return Err(RomaError::new(ErrorKind::Compile, "SyntaxError: fake"));
        }
        self.versions
            .insert(code.version_string.clone(), code.js.clone());
        Ok(())
    }

    fn execute(
        &mut self,
        id: u64,
        inv: &Invocation,
        _meta: &Arc<M>,
    ) -> Result<ExecOutput, RomaError> {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        self.harness.exec_threads.lock().unwrap().push(thread);
        self.harness.push(Event::Exec {
            worker: self.worker,
            generation: self.generation,
            request: id,
            handler: inv.handler_name.clone(),
        });
        if self.dead() {
            return Err(RomaError::new(
                ErrorKind::WorkerCrashed,
                "fake worker is dead",
            ));
        }
        let handler = inv.handler_name.as_str();
        if let Some(gate) = handler.strip_prefix("block:") {
            self.started(id);
            return if self.harness.pass(gate) {
                Ok(ExecOutput {
                    resp: format!("released {gate}"),
                    metrics: BTreeMap::new(),
                    profiler_output: String::new(),
                })
            } else {
                Err(RomaError::new(ErrorKind::Timeout, "gate never opened"))
            };
        }
        if let Some(gate) = handler.strip_prefix("crash-after:") {
            self.started(id);
            self.harness.pass(gate);
            self.die();
            return Err(RomaError::new(ErrorKind::WorkerCrashed, "fake worker died"));
        }
        match handler {
            "echo" => {
                let js = self.versions.get(&inv.version_string).ok_or_else(|| {
                    RomaError::new(ErrorKind::VersionNotFound, "fake: not loaded")
                })?;
                let mut metrics = BTreeMap::new();
                metrics.insert("fake.metric".to_string(), 1.5);
                Ok(ExecOutput {
                    resp: format!("{}|{}|{}", inv.version_string, js, inv.input.join(",")),
                    metrics,
                    profiler_output: String::new(),
                })
            }
            "loop" => {
                self.started(id);
                let deadline = Instant::now() + PATIENCE;
                let mut g = self.interrupt.latest.lock().unwrap();
                while *g < id {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(RomaError::new(ErrorKind::Timeout, "never interrupted"));
                    }
                    g = self.interrupt.cv.wait_timeout(g, deadline - now).unwrap().0;
                }
                Err(RomaError::new(ErrorKind::Cancelled, "terminated"))
            }
            "fail" => Err(RomaError::new(ErrorKind::Execution, "Uncaught Error: fake")),
            "crash" => {
                self.die();
                Err(RomaError::new(ErrorKind::WorkerCrashed, "fake worker died"))
            }
            "panic" => panic!("fake backend bug"),
            "zombie" => {
                self.die();
                Ok(ExecOutput::default())
            }
            "dead-fail" => {
                self.die();
                Err(RomaError::new(
                    ErrorKind::Execution,
                    "failed, and the worker died",
                ))
            }
            "panic-alive" => {
                self.panic_alive = true;
                Err(RomaError::new(
                    ErrorKind::Execution,
                    "failed; is_alive will panic",
                ))
            }
            "crash-panic-drop" => {
                self.panic_on_drop = true;
                self.die();
                Err(RomaError::new(ErrorKind::WorkerCrashed, "fake worker died"))
            }
            "forget" => {
                self.versions.clear();
                Ok(ExecOutput::default())
            }
            other => Err(RomaError::new(
                ErrorKind::HandlerNotFound,
                format!("fake has no handler {other}"),
            )),
        }
    }

    fn is_alive(&mut self) -> bool {
        assert!(!self.panic_alive, "fake is_alive bug");
        !self.dead()
    }

    fn idle(&mut self) {
        if self
            .harness
            .idle_deaths
            .lock()
            .unwrap()
            .contains(&self.worker)
        {
            self.die();
        }
    }

    fn cpu_time(&mut self) -> Option<Duration> {
        let spins = self.harness.spinning.lock().unwrap().contains(&self.worker);
        Some(if spins {
            self.born.elapsed()
        } else {
            Duration::ZERO
        })
    }

    fn interrupter(&self) -> Arc<dyn Interrupt> {
        assert!(!self.panic_interrupter, "fake interrupter bug");
        Arc::clone(&self.interrupt) as Arc<dyn Interrupt>
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.harness.push(Event::Dropped {
            worker: self.worker,
            generation: self.generation,
        });
        if self.panic_on_drop && !std::thread::panicking() {
            panic!("fake backend Drop bug");
        }
    }
}

/// A request without metadata.
pub fn req(version: &str, handler: &str, input: &[&str]) -> InvocationRequest {
    InvocationRequest {
        id: format!("{handler}-{}", input.join(",")),
        version_string: version.into(),
        handler_name: handler.into(),
        input: input.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// `r` carrying metadata `m`.
pub fn with_meta<M>(r: InvocationRequest, m: M) -> InvocationRequest<M> {
    InvocationRequest {
        id: r.id,
        version_string: r.version_string,
        handler_name: r.handler_name,
        tags: r.tags,
        input: r.input,
        treat_input_as_byte_str: r.treat_input_as_byte_str,
        timeout: r.timeout,
        min_log_level: r.min_log_level,
        profile: r.profile,
        metadata: m,
    }
}

/// What an execution's or a load's callback gets.
pub type Reply = Result<ResponseObject, RomaError>;

/// A callback that sends what it gets (a [`Reply`], or a batch's replies) to `tx`.
pub fn sink<T: Send + 'static>(tx: &mpsc::Sender<T>) -> impl FnOnce(T) + Send + 'static {
    let tx = tx.clone();
    move |r| {
        let _ = tx.send(r);
    }
}

/// [`sink`], counting its calls in `calls`: a test of "one callback" reads the count once the
/// dispatcher is dropped.
pub fn counted<T: Send + 'static>(
    calls: &Arc<AtomicUsize>,
    tx: &mpsc::Sender<T>,
) -> impl FnOnce(T) + Send + 'static {
    let calls = Arc::clone(calls);
    let tx = tx.clone();
    move |r| {
        calls.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(r);
    }
}

/// Receives one result, failing the test after [`PATIENCE`].
pub fn recv<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(PATIENCE)
        .expect("a callback should have run")
}

/// Submits `r` and waits for its answer.
pub fn run(d: &Dispatcher<()>, r: InvocationRequest) -> Reply {
    let (tx, rx) = mpsc::channel();
    d.execute(r, sink(&tx)).expect("request accepted");
    recv(&rx)
}

/// Loads `code` and waits for the load's callback.
pub fn load_ok<M: Send + Sync + 'static>(d: &Dispatcher<M>, c: CodeObject) {
    let (tx, rx) = mpsc::channel();
    d.load(c, sink(&tx)).expect("load accepted");
    recv(&rx).expect("load succeeded");
}

/// Metadata that records when it is dropped, next to when its callback ran.
pub struct Meta {
    pub tag: u32,
    pub log: Arc<MetaLog>,
}

impl Drop for Meta {
    fn drop(&mut self) {
        self.log.push(Seen::Dropped(self.tag));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Callback(u32),
    Dropped(u32),
}

#[derive(Default)]
pub struct MetaLog {
    seen: Mutex<Vec<Seen>>,
    cv: Condvar,
}

impl MetaLog {
    pub fn push(&self, s: Seen) {
        self.seen.lock().unwrap().push(s);
        self.cv.notify_all();
    }

    /// Waits until `s` was recorded; returns the log.
    pub fn wait_for(&self, s: Seen) -> Vec<Seen> {
        let deadline = Instant::now() + PATIENCE;
        let mut g = self.seen.lock().unwrap();
        while !g.contains(&s) {
            let now = Instant::now();
            assert!(now < deadline, "never saw {s:?}; log {g:?}");
            g = self.cv.wait_timeout(g, deadline - now).unwrap().0;
        }
        g.clone()
    }

    /// The entries about `tag`, in order.
    pub fn of(&self, tag: u32) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|s| matches!(s, Seen::Callback(t) | Seen::Dropped(t) if *t == tag))
            .collect()
    }
}

impl MetaLog {
    pub fn new() -> Arc<Self> {
        Arc::new(MetaLog::default())
    }

    /// A metadata value tagged `tag` that logs its drop here.
    pub fn meta(self: &Arc<Self>, tag: u32) -> Meta {
        Meta {
            tag,
            log: Arc::clone(self),
        }
    }

    /// `r` carrying a `Meta` tagged `tag`.
    pub fn req(self: &Arc<Self>, tag: u32, r: InvocationRequest) -> InvocationRequest<Meta> {
        with_meta(r, self.meta(tag))
    }

    /// A callback that logs `Callback(tag)`, then sends its result to `tx`.
    pub fn sink(
        self: &Arc<Self>,
        tag: u32,
        tx: &mpsc::Sender<Reply>,
    ) -> impl FnOnce(Reply) + Send + 'static {
        let log = Arc::clone(self);
        let tx = tx.clone();
        move |r| {
            log.push(Seen::Callback(tag));
            let _ = tx.send(r);
        }
    }

    /// Submits request `tag`: `handler` of version `v1` without inputs, answering to `tx`
    /// through [`sink`](Self::sink). Returns its token.
    pub fn submit(
        self: &Arc<Self>,
        d: &Dispatcher<Meta>,
        tag: u32,
        handler: &str,
        tx: &mpsc::Sender<Reply>,
    ) -> ExecutionToken {
        d.execute(self.req(tag, req("v1", handler, &[])), self.sink(tag, tx))
            .unwrap_or_else(|e| panic!("request {tag} ({handler}) refused: {e}"))
    }

    /// Waits for `tag`'s metadata to be dropped and checks it was dropped exactly once, after
    /// exactly one callback.
    pub fn assert_answered_once(&self, tag: u32) {
        self.wait_for(Seen::Dropped(tag));
        assert_eq!(
            self.of(tag),
            vec![Seen::Callback(tag), Seen::Dropped(tag)],
            "request {tag}"
        );
    }

    /// Checks that `tag`'s request was refused: its metadata is already dropped and no callback
    /// ran.
    pub fn assert_refused(&self, tag: u32) {
        assert_eq!(self.of(tag), vec![Seen::Dropped(tag)], "request {tag}");
    }

    /// Waits for `tag`'s metadata to be dropped and checks it was dropped once, with no
    /// callback of its own (a request of a batch: the batch's callback answers it).
    pub fn assert_dropped_uncalled(&self, tag: u32) {
        self.wait_for(Seen::Dropped(tag));
        self.assert_refused(tag);
    }

    /// How many metadata values were dropped.
    pub fn drops(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| matches!(s, Seen::Dropped(_)))
            .count()
    }
}
