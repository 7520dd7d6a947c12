//! The slot thread: owns one backend, takes loads then executions, answers them, and replaces
//! the backend when it dies (at once, or after a backoff wait in a crash loop; see `backoff.rs`)
//! or when a recycling rule says it has served long enough (see `recycle.rs`). While it waits
//! with nothing to do, it parks its backend where a blocking submit may borrow it (`direct.rs`).

use super::backend::{Interrupt, WorkerBackend};
use super::backoff::{Backoff, Lifetime};
use super::config::Recycle;
use super::direct::{Lend, Parking};
use super::job::{Job, LoadJob, call_guarded, millis};
use super::recycle::Usage;
use super::state::{LendReport, LoadReply, Shared, State, Work, WorkerHealth};
use roma_core::{ErrorKind, ExecOutput, Invocation, ResponseObject, RomaError, metrics};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Creates the backend of slot `index` (again after a crash).
pub(crate) type Factory<B> = dyn Fn(usize) -> Result<B, RomaError> + Send + Sync + 'static;

/// A slot thread's own state.
pub(crate) struct SlotWorker<M, B> {
    shared: Arc<Shared<M>>,
    index: usize,
    factory: Arc<Factory<B>>,
    backend: Option<B>,
    /// Where the backend waits while the slot is idle, for a blocking submit to borrow.
    parking: Arc<Parking<B>>,
    /// How the current backend has fared: whether its death would be early.
    life: Lifetime,
    /// The slot's respawn waits, shared by failed attempts and early deaths.
    backoff: Backoff,
    /// What the current backend has done, for the recycling rules.
    usage: Usage,
}

/// What the slot thread does next.
enum Next<M> {
    Work(Work<M>),
    /// Nothing to take: pre-warm, then wait.
    Idle,
    /// A recycling check came due while idle.
    Check,
    /// A borrower found the backend dead, or saw it die.
    Respawn,
}

/// The low-latency mode's state in one slot thread: how long to poll for work once idle
/// (about twice the last idle gap, within the configured bound), and whether this idle
/// stretch has polled yet.
struct IdlePoll {
    bound: Duration,
    /// When the slot last went idle.
    idle_since: Option<Instant>,
    /// The last idle gap (idle until work arrived).
    last_gap: Option<Duration>,
    polled: bool,
}

impl IdlePoll {
    fn new(bound: Duration) -> IdlePoll {
        IdlePoll {
            bound,
            idle_since: None,
            last_gap: None,
            polled: false,
        }
    }

    fn went_idle(&mut self) {
        self.idle_since = Some(Instant::now());
        self.polled = false;
    }

    fn work_arrived(&mut self) {
        if let Some(since) = self.idle_since.take() {
            self.last_gap = Some(since.elapsed());
        }
    }

    /// Whether this idle stretch still has its poll to do.
    fn due(&self) -> bool {
        !self.polled
    }

    /// How long this idle stretch polls ([`roma_core::idle_poll_budget`] of the last gap).
    fn budget(&self) -> Duration {
        roma_core::idle_poll_budget(self.last_gap, self.bound)
    }

    /// Polls `rang` until it says yes or the budget (counted from going idle) is spent.
    fn poll(&mut self, rang: impl Fn() -> bool) {
        self.polled = true;
        let start = self.idle_since.unwrap_or_else(Instant::now);
        let until = start + self.budget();
        let mut n = 0u32;
        while !rang() {
            n = n.wrapping_add(1);
            // Read the clock every few dozen loads only: the bell is the fast path.
            if n.is_multiple_of(64) {
                if Instant::now() >= until {
                    return;
                }
                // Between rounds the CPU goes to any runnable thread on it (a worker, the
                // caller that would ring): a poll that only spun would hold them off on a
                // machine with fewer cores than runnable threads.
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
    }
}

/// Whether `result` means the backend must be replaced.
pub(crate) fn is_fatal<B: WorkerBackend<M>, M, T>(
    backend: &mut B,
    result: &Result<T, RomaError>,
) -> bool {
    match result {
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WorkerCrashed => true,
        Err(_) => !alive(backend),
    }
}

/// `backend.is_alive()`; a panic counts as dead.
pub(crate) fn alive<B: WorkerBackend<M>, M>(backend: &mut B) -> bool {
    catch_unwind(AssertUnwindSafe(|| backend.is_alive())).unwrap_or(false)
}

/// `backend.interrupter()`; a panic is an error, as if the backend could not be created.
fn interrupter_of<B: WorkerBackend<M>, M>(backend: &B) -> Result<Arc<dyn Interrupt>, RomaError> {
    catch_unwind(AssertUnwindSafe(|| backend.interrupter()))
        .map_err(|_| RomaError::internal("the worker backend panicked in interrupter"))
}

/// Drops a backend; a panic in its `Drop` is contained so the slot thread goes on.
fn discard<B>(backend: Option<B>) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(backend)));
}

/// Runs a backend call, turning a panic into an `Internal` error.
pub(crate) fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, RomaError>,
) -> (Result<T, RomaError>, bool) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => (r, false),
        Err(_) => (
            Err(RomaError::internal(format!(
                "the worker backend panicked in {what}"
            ))),
            true,
        ),
    }
}

impl<M: Send + Sync + 'static, B: WorkerBackend<M>> SlotWorker<M, B> {
    /// The thread body: create the backend, report readiness on `ready`, then serve until stop.
    pub fn run(
        shared: Arc<Shared<M>>,
        index: usize,
        factory: Arc<Factory<B>>,
        ready: mpsc::Sender<Result<(), RomaError>>,
    ) {
        let (created, _) = guarded("the factory", || factory(index));
        let started = created.and_then(|b| match interrupter_of(&b) {
            Ok(i) => Ok((b, i)),
            Err(e) => {
                discard(Some(b));
                Err(e)
            }
        });
        let (backend, interrupter) = match started {
            Ok(pair) => pair,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let parking = Arc::new(Parking::new());
        {
            let mut st = shared.lock();
            st.slots[index].interrupter = Some(interrupter);
            st.slots[index].health = WorkerHealth::Up;
            st.slots[index].lending.lender = Some(Arc::clone(&parking) as Arc<dyn Lend<M>>);
        }
        let _ = ready.send(Ok(()));
        drop(ready);
        let backoff = Backoff::new(shared.config.backoff_initial, shared.config.backoff_max);
        let mut worker = SlotWorker {
            shared,
            index,
            factory,
            backend: Some(backend),
            parking,
            life: Lifetime::starting_at(Instant::now()),
            backoff,
            usage: Usage::new(Instant::now()),
        };
        worker.serve();
        discard(worker.backend.take());
    }

    fn serve(&mut self) {
        let mut idled = false;
        // The lock guard borrows this, not `self`, which parking and unparking change.
        let shared = Arc::clone(&self.shared);
        let rules = shared.config.recycle;
        let mut poll = shared.config.idle_poll.map(IdlePoll::new);
        loop {
            let (next, lent) = {
                let mut st = shared.lock();
                st.slots[self.index].active = false;
                loop {
                    if st.slots[self.index].lending.claimed {
                        // A blocking submit has borrowed the backend (`direct.rs`): nothing
                        // here may touch it. The borrower wakes this thread when it gives the
                        // backend back.
                        st.slots[self.index].lending.wants_back = true;
                        st = shared.slot_cv[self.index]
                            .wait(st)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        continue;
                    }
                    if st.stopping {
                        self.unpark(&mut st);
                        return;
                    }
                    if std::mem::take(&mut st.slots[self.index].lending.respawn_due) {
                        break (Next::Respawn, self.unpark(&mut st));
                    }
                    if let Some(w) = st.take_work(self.index) {
                        if matches!(w, Work::Exec(_)) {
                            shared.room_freed(&st);
                        }
                        if let Some(p) = &mut poll {
                            p.work_arrived();
                        }
                        break (Next::Work(w), self.unpark(&mut st));
                    }
                    if !idled {
                        // Not parked: the slot parks only once it has idled.
                        if let Some(p) = &mut poll {
                            p.went_idle();
                        }
                        break (Next::Idle, LendReport::default());
                    }
                    if let Some(p) = poll.as_mut().filter(|p| p.due()) {
                        // Low-latency mode: watch the slot's bell without the lock for a
                        // while; any wake of this slot (work, stop, stealing) rings it.
                        let bell = &shared.slot_bell[self.index];
                        let seen = bell.load(std::sync::atomic::Ordering::SeqCst);
                        drop(st);
                        p.poll(|| bell.load(std::sync::atomic::Ordering::SeqCst) != seen);
                        st = shared.lock();
                        continue;
                    }
                    self.park(&mut st, &rules);
                    let cv = &shared.slot_cv[self.index];
                    // With recycling off this is the plain wait: no timer, no clock reads.
                    st = match self.usage.next_check(&rules) {
                        None => cv
                            .wait(st)
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                        Some(at) => {
                            let now = Instant::now();
                            if now >= at {
                                break (Next::Check, self.unpark(&mut st));
                            }
                            cv.wait_timeout(st, at - now)
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0
                        }
                    };
                }
            };
            self.absorb(lent, &rules);
            let fatal = match next {
                Next::Respawn => true,
                Next::Idle => {
                    idled = true;
                    let fatal = self.idle();
                    if !fatal && rules.idle_cpu_per_sec.is_some() {
                        // Pre-warming is the last work the slot gave it: from here it is idle.
                        self.usage.idle_from(Instant::now());
                    }
                    fatal
                }
                Next::Check => {
                    self.judge_idle_cpu(&rules, false);
                    false
                }
                Next::Work(Work::Load(job)) => {
                    idled = false;
                    self.usage.busy();
                    self.run_load(job)
                }
                Next::Work(Work::Exec(job)) => {
                    idled = false;
                    if rules.idle_cpu_per_sec.is_some() {
                        self.judge_idle_cpu(&rules, true);
                    }
                    self.usage.busy();
                    if self.usage.due(&rules, Instant::now()) {
                        // A worker due for recycling (it worked while idle) gets no more
                        // requests: this one waits for its successor, at its place in the queue.
                        self.put_back(job);
                        self.recycle();
                        continue;
                    }
                    let fatal = self.run_exec(job);
                    self.usage.served += 1;
                    fatal
                }
            };
            if fatal {
                if !self.respawn() {
                    return;
                }
                self.usage = Usage::new(Instant::now());
                idled = false; // let the new backend pre-warm
            } else if rules.any() && self.usage.due(&rules, Instant::now()) && self.recycle() {
                idled = false;
            }
        }
    }

    /// Parks the backend for blocking submits to borrow while this thread waits (see
    /// `direct.rs`), with the limits the recycling rules put on what borrowers may run
    /// before this thread counts it. Does nothing when already parked or with the direct
    /// hand-off off.
    fn park(&mut self, st: &mut State<M>, rules: &Recycle) {
        let lending = &mut st.slots[self.index].lending;
        if lending.parked || !self.shared.config.direct || self.backend.is_none() {
            return;
        }
        self.parking.put(self.backend.take());
        lending.parked = true;
        lending.budget = rules
            .after_requests
            .map(|n| n.saturating_sub(self.usage.served));
        lending.until = self.usage.age_limit(rules);
        lending.proven = self.life.proven();
    }

    /// Takes the parked backend back (the slot must not be claimed); returns what borrowers
    /// did with it meanwhile.
    fn unpark(&mut self, st: &mut State<M>) -> LendReport {
        let lending = &mut st.slots[self.index].lending;
        if !lending.parked {
            return LendReport::default();
        }
        debug_assert!(!lending.claimed, "a claimed backend is the borrower's");
        lending.parked = false;
        self.backend = self.parking.take();
        std::mem::take(&mut lending.report)
    }

    /// Counts what borrowers ran on the backend into the slot's accounts: executions for the
    /// request rule, proof of health, and the end of the idle stretch they ran in (an idle
    /// stretch with work in it is not the worker's own CPU use).
    fn absorb(&mut self, lent: LendReport, rules: &Recycle) {
        if lent.served == 0 {
            return;
        }
        self.usage.served += lent.served;
        if lent.proved && !self.life.proven() {
            self.life.prove();
        }
        self.usage.busy();
        if rules.idle_cpu_per_sec.is_some() {
            self.usage.idle_from(Instant::now());
        }
    }

    /// Samples the idle backend's CPU time when a sample is due and records whether it used
    /// more than the rule allows over the window the sample ends. `before_work`: the slot is
    /// about to give it a request, and only a complete window is judged (a first sample would
    /// start a window that the request ends at once).
    fn judge_idle_cpu(&mut self, rules: &super::config::Recycle, before_work: bool) {
        let Some(limit) = rules.idle_cpu_per_sec else {
            return;
        };
        let now = Instant::now();
        let due = if before_work {
            self.usage.window_due(now)
        } else {
            self.usage.sample_due(now)
        };
        if !due {
            return;
        }
        let cpu = self.backend.as_mut().and_then(|b| b.cpu_time());
        self.usage.sample(now, cpu, limit);
    }

    /// A planned replacement of a healthy backend: a new one is created and given every cached
    /// version first, and only then takes the old one's place, so no request sees the change.
    /// Meanwhile the slot counts as respawning (new executions prefer other slots, and idle
    /// ones may steal its queue); queued work waits, none fails. If the new backend cannot be
    /// made, the old one serves on and the next attempt waits `respawn_backoff_max`. Returns
    /// whether the backend was replaced.
    fn recycle(&mut self) -> bool {
        let replay = {
            let mut st = self.shared.lock();
            if st.stopping {
                return false;
            }
            let slot = &mut st.slots[self.index];
            slot.health = WorkerHealth::Respawning;
            slot.active = true;
            st.replay_list(self.index)
        };
        self.shared.wake_all();
        let now = Instant::now();
        match self.attempt(&replay) {
            Ok((b, interrupter)) => {
                {
                    let mut st = self.shared.lock();
                    let slot = &mut st.slots[self.index];
                    slot.interrupter = Some(interrupter);
                    slot.health = WorkerHealth::Up;
                    slot.recycled += 1;
                }
                discard(self.backend.replace(b));
                let now = Instant::now();
                self.life = Lifetime::starting_at(now);
                self.usage = Usage::new(now);
                true
            }
            Err(_) => {
                self.shared.lock().slots[self.index].health = WorkerHealth::Up;
                self.usage.postpone(now + self.shared.config.backoff_max);
                false
            }
        }
    }

    /// Lets the backend pre-warm; true when it turns out dead.
    fn idle(&mut self) -> bool {
        let Some(b) = self.backend.as_mut() else {
            return true;
        };
        let (r, panicked) = guarded("idle", || {
            b.idle();
            Ok(())
        });
        panicked || r.is_err() || !alive(b)
    }

    fn run_load(&mut self, job: LoadJob) -> bool {
        // A worker that died while idle (killed from outside) is replaced before it is given
        // the load: the load goes back to the front of the slot's control queue, which marking
        // the slot down acknowledges, and the replacement gets the version with the rest of
        // the cache. Otherwise the load would fail on a worker already gone.
        if self.backend.as_mut().is_some_and(|b| !alive(b)) {
            self.shared.lock().slots[self.index].loads.push_front(job);
            return true;
        }
        let (result, fatal) = match self.backend.as_mut() {
            Some(b) => {
                let (r, panicked) = guarded("load", || b.load(&job.code));
                let fatal = panicked || is_fatal(b, &r);
                (r, fatal)
            }
            None => (
                Err(RomaError::new(ErrorKind::WorkerCrashed, "no worker")),
                true,
            ),
        };
        let reply = {
            let mut st = self.shared.lock();
            let reply = st.ack_load(job.seq, result);
            if reply.is_none() {
                // No callback to run here: the thread comes straight back for work, so its
                // queue is not up for stealing (see `State::steal_for`).
                st.slots[self.index].active = false;
            }
            reply
        };
        deliver_load(reply);
        fatal
    }

    fn run_exec(&mut self, job: Job<M>) -> bool {
        let taken = Instant::now();
        // A worker that died while idle (killed from outside) is replaced before it is given
        // the request, which then runs on the new one instead of failing.
        if self.backend.as_mut().is_some_and(|b| !alive(b)) {
            self.put_back(job);
            return true;
        }
        let (result, fatal) = self.call_execute(&job);
        let cancelled = self.shared.lock().finish_running(self.index);
        let result = if cancelled {
            Err(RomaError::new(
                ErrorKind::Cancelled,
                "cancelled while running",
            ))
        } else {
            result.map(|out| respond(&job, out, taken, self.index))
        };
        job.finish(result);
        if !fatal && !self.life.proven() && self.backend.as_mut().is_some_and(|b| alive(b)) {
            // Checked once per backend: one that returns and then dies (a zombie) is no proof.
            self.life.prove();
        }
        fatal
    }

    /// Returns a job taken for a dead backend to this slot's queue, at its old place (queues
    /// are ordered by id), unless `cancel` flagged it meanwhile or the dispatcher is stopping:
    /// then it is answered with `Cancelled`, since `stop` has already emptied the queues.
    fn put_back(&self, job: Job<M>) {
        let unqueued = {
            let mut st = self.shared.lock();
            let cancelled = st.finish_running(self.index);
            if cancelled || st.stopping {
                Some(job)
            } else {
                st.enqueue(self.index, job);
                None
            }
        };
        if let Some(job) = unqueued {
            job.finish(Err(RomaError::new(
                ErrorKind::Cancelled,
                "cancelled before it ran",
            )));
        }
    }

    /// Runs the job on the backend ([`execute_job`]).
    fn call_execute(&mut self, job: &Job<M>) -> (Result<ExecOutput, RomaError>, bool) {
        let Some(b) = self.backend.as_mut() else {
            return (
                Err(RomaError::new(ErrorKind::WorkerCrashed, "no worker")),
                true,
            );
        };
        execute_job(b, &self.shared, job)
    }

    /// Replaces the dead backend: create a new one, replay the cached versions in load order,
    /// mark the slot up. A backend that died early (see `backoff.rs`) is replaced only after
    /// the next backoff wait, during which the slot is respawning (its queue waits or is
    /// stolen). Retries with backoff; after the first failed attempt the slot is down (its
    /// queue moves to other slots or fails). Returns false when the dispatcher stopped.
    fn respawn(&mut self) -> bool {
        let early = self
            .life
            .died_early(Instant::now(), self.shared.config.backoff_max);
        discard(self.backend.take()); // drop the old one first: it may hold a process to reap
        {
            let mut st = self.shared.lock();
            let slot = &mut st.slots[self.index];
            slot.interrupter = None;
            if slot.health == WorkerHealth::Up {
                slot.health = WorkerHealth::Respawning;
            }
        }
        // Idle slots may steal what is queued here meanwhile.
        self.shared.wake_all();
        if !early {
            self.backoff.reset();
        } else if !self.back_off() {
            return false;
        }
        loop {
            let replay = {
                let mut st = self.shared.lock();
                if st.stopping {
                    return false;
                }
                // From here on, new loads are queued for this slot; everything older is replayed.
                st.slots[self.index].health = WorkerHealth::Respawning;
                st.replay_list(self.index)
            };
            match self.attempt(&replay) {
                Ok((b, interrupter)) => {
                    let mut st = self.shared.lock();
                    st.slots[self.index].interrupter = Some(interrupter);
                    st.slots[self.index].health = WorkerHealth::Up;
                    st.slots[self.index].active = false;
                    drop(st);
                    self.backend = Some(b);
                    self.life = Lifetime::starting_at(Instant::now());
                    return true;
                }
                Err(e) => {
                    let (orphans, replies) = {
                        let mut st = self.shared.lock();
                        let down = st.mark_down(self.index);
                        // Orphans left the queues, and a waiter may now find every slot down.
                        self.shared.room_freed(&st);
                        down
                    };
                    self.shared.wake_all();
                    for job in orphans {
                        job.finish(Err(RomaError::new(
                            ErrorKind::WorkerCrashed,
                            format!(
                                "worker {} is down and could not be restarted: {e}",
                                self.index
                            ),
                        )));
                    }
                    for reply in replies {
                        deliver_load(Some(reply));
                    }
                }
            }
            if !self.back_off() {
                return false;
            }
        }
    }

    /// One respawn attempt: a new backend with `replay` loaded. A replayed version failing to
    /// load is tolerated (it loaded before; executions of it get the backend's error); the new
    /// backend dying is not.
    fn attempt(
        &self,
        replay: &[Arc<roma_core::CodeObject>],
    ) -> Result<(B, Arc<dyn Interrupt>), RomaError> {
        let (created, _) = guarded("the factory", || (self.factory)(self.index));
        let mut b = created?;
        for code in replay {
            let (r, panicked) = guarded("load", || b.load(code));
            if panicked || is_fatal(&mut b, &r) {
                discard(Some(b));
                return Err(r.err().unwrap_or_else(|| {
                    RomaError::new(ErrorKind::WorkerCrashed, "worker died during replay")
                }));
            }
        }
        // A backend dead on arrival is a failed attempt (with backoff), not a backend to
        // replace at once in a tight loop.
        let checked = if alive(&mut b) {
            interrupter_of(&b)
        } else {
            Err(RomaError::new(
                ErrorKind::WorkerCrashed,
                "the new worker died at startup",
            ))
        };
        match checked {
            Ok(i) => Ok((b, i)),
            Err(e) => {
                discard(Some(b));
                Err(e)
            }
        }
    }

    /// Waits out the next step of the backoff schedule unless the dispatcher stops first; false
    /// when it stopped.
    fn back_off(&mut self) -> bool {
        let wait = self.backoff.next_wait();
        self.sleep(wait)
    }

    /// Waits `d` unless the dispatcher stops first; false when it stopped. A wait too long for
    /// the clock to represent lasts until stop.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now().checked_add(d);
        let mut st = self.shared.lock();
        loop {
            if st.stopping {
                return false;
            }
            let cv = &self.shared.slot_cv[self.index];
            st = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return true;
                    }
                    cv.wait_timeout(st, deadline - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
                None => cv
                    .wait(st)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            };
        }
    }
}

/// Runs `job` on `b`; returns the result and whether `b` must be replaced. When the backend
/// lacks the version but the host still has it (the engine evicted it, or a replay failed),
/// loads it and retries once.
pub(crate) fn execute_job<M, B: WorkerBackend<M>>(
    b: &mut B,
    shared: &Shared<M>,
    job: &Job<M>,
) -> (Result<ExecOutput, RomaError>, bool) {
    let run = |b: &mut B, inv: &Invocation| {
        let (r, panicked) = guarded("execute", || b.execute(job.id, inv, &job.metadata));
        let fatal = panicked || is_fatal(b, &r);
        (r, fatal)
    };
    let (r, fatal) = run(b, &job.invocation);
    if fatal || !matches!(&r, Err(e) if e.kind() == ErrorKind::VersionNotFound) {
        return (r, fatal);
    }
    let code = shared.lock().cache.get(&job.invocation.version_string);
    let Some(code) = code else {
        return (r, fatal);
    };
    let (loaded, panicked) = guarded("load", || b.load(&code));
    if panicked || is_fatal(b, &loaded) {
        return (r, true);
    }
    if loaded.is_err() {
        return (r, false);
    }
    run(b, &job.invocation)
}

/// The response to `job`, which its slot (`index`) took at `taken` and its backend answered
/// with `out`: the backend's metrics plus the host's (wait, worker, hops, duration).
pub(crate) fn respond<M>(
    job: &Job<M>,
    out: ExecOutput,
    taken: Instant,
    index: usize,
) -> ResponseObject {
    let mut metrics = out.metrics;
    metrics.insert(
        metrics::WAIT_TIME_MS.into(),
        millis(taken.duration_since(job.accepted)),
    );
    metrics.insert(metrics::WORKER_INDEX.into(), index as f64);
    let total = millis(job.accepted.elapsed());
    place_hops(
        &mut metrics,
        job.accepted,
        millis(taken.duration_since(job.accepted)),
        total,
    );
    metrics.insert(metrics::DURATION_MS.into(), total);
    ResponseObject {
        id: job.caller_id.clone(),
        resp: out.resp,
        metrics,
        profiler_output: out.profiler_output,
    }
}

/// Turns the backend's hop stamps ([`metrics::BACKEND_HOPS`], as [`metrics::hop_stamp`]) into
/// milliseconds since `accepted`, and adds the slot's own [`metrics::HOP_TAKEN_MS`]. Each hop is
/// clamped between the one before it and `total` (a backend's clock is not trusted to be in
/// order); one that is not a finite number is dropped.
pub(crate) fn place_hops(
    metrics: &mut std::collections::BTreeMap<String, f64>,
    accepted: Instant,
    taken_ms: f64,
    total_ms: f64,
) {
    let origin = metrics::hop_stamp(accepted);
    let mut floor = taken_ms.min(total_ms);
    metrics.insert(metrics::HOP_TAKEN_MS.into(), floor);
    for key in metrics::BACKEND_HOPS {
        let Some(v) = metrics.get_mut(key) else {
            continue;
        };
        let since = *v - origin;
        if since.is_finite() {
            *v = since.clamp(floor, total_ms);
            floor = *v;
        } else {
            metrics.remove(key);
        }
    }
}

/// Calls a load callback, if there is one to call.
pub(crate) fn deliver_load(reply: Option<LoadReply>) {
    if let Some((cb, result)) = reply {
        call_guarded(move || cb(result));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn backend_hops_become_offsets_from_acceptance_in_order_and_bounded() {
        let accepted = Instant::now();
        let at = |ms: f64| metrics::hop_stamp(accepted) + ms;
        let mut m = BTreeMap::from([
            (metrics::HOP_SENT_MS.to_owned(), at(1.0)),
            // Before the hop above it, then past the end, then not a number.
            (metrics::HOP_WORKER_RECEIVED_MS.to_owned(), at(0.5)),
            (metrics::HOP_CONTEXT_READY_MS.to_owned(), at(3.0)),
            (metrics::HOP_HANDLER_DONE_MS.to_owned(), at(1e9)),
            (metrics::HOP_ANSWER_RECEIVED_MS.to_owned(), f64::NAN),
        ]);
        place_hops(&mut m, accepted, 0.25, 4.0);
        let got: Vec<_> = metrics::HOPS
            .iter()
            .map(|k| m.get(*k).map(|v| (v * 1e3).round() / 1e3))
            .collect();
        assert_eq!(
            got,
            [
                Some(0.25),
                Some(1.0),
                Some(1.0),
                Some(3.0),
                Some(4.0),
                None,
                None
            ]
        );
    }
}
