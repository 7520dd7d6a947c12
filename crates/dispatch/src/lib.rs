//! The dispatcher: N worker slots, their queues, the host's version cache, and crash recovery.
//!
//! This is the engine-neutral heart of `RomaService`. It accepts loads and executions, places
//! them on worker slots, and guarantees every accepted request exactly one answer. What runs the
//! code is a [`WorkerBackend`] (a jailed worker process in production, fakes in tests).
//!
//! # Threads
//! - **One thread per slot** (`roma-slot-<i>`). It owns that slot's backend, created on the
//!   thread by the factory, and is the only caller of it. It runs one request at a time.
//! - **One load-timer thread** (`roma-load-timer`). It answers loads that exceed
//!   [`DispatcherConfig::load_timeout`] with `Timeout`.
//! - **Caller threads** call the API. `execute`, `load` and `cancel` never wait on a worker.
//!   `stop` waits for in-flight requests to finish. A caller in `execute_blocking` may run its
//!   own request on an idle slot's backend (the direct hand-off, below).
//!
//! Callbacks run on whichever thread completes the request. That is usually a slot thread. It
//! is the `cancel` caller for a queued request it cancels, the `stop` caller for requests still
//! queued at stop, and the timer for a load timeout. A callback may call back into the
//! dispatcher, for example to submit a follow-up request: no dispatcher lock is held while a
//! callback runs.
//!
//! # Queues
//! All state sits under one mutex (see `state.rs` for why one lock is enough):
//! - **Per slot, a control queue of loads.** It is unbounded. Every load is broadcast to the
//!   control queue of every slot that is not down. A slot always takes its loads before any
//!   execution.
//! - **Per slot, an execution queue.** It is FIFO by request id. The queues share one bound,
//!   `number_of_workers * worker_queue_max_items`, which counts queued requests, not running
//!   ones. Past the bound, `execute` fails at once with `QueueFull`: the callback is not called
//!   and the request, metadata included, is dropped before `execute` returns. A batch is
//!   admitted whole or refused whole.
//! - **Waiting for room.** `execute_waiting` and `batch_execute_waiting` wait on `room_cv`
//!   (under the same mutex) while the queues are full, up to a deadline, instead of failing; a
//!   slot that takes a queued execution, `cancel` and `stop` notify it, and only while someone
//!   waits. A waiting batch is enqueued in pieces, so it may be larger than the queues. On a
//!   dispatcher thread they do not wait: the room they wait for may be the thread's own to free.
//!
//! # Placement policy
//! 1. A new execution goes to the **least busy** slot that is up. Busy means queued plus
//!    running requests. A worker runs one request at a time, so this count is how long the new
//!    request will wait. Ties go to the lowest index, which keeps placement deterministic and
//!    lets high-index workers stay idle with a pre-warmed context.
//! 2. If no slot is up, the request goes to the least busy slot that is respawning, where it
//!    waits for the new backend. A slot that is down gets nothing. If every slot is down,
//!    `execute` fails at once with `WorkerCrashed`.
//! 3. **Work stealing.** A slot whose own queues are empty takes the oldest request of the
//!    slot with the longest queue among the slots that cannot run it now: busy with a load,
//!    an execution or its callback, respawning, or down. A request stuck behind a slow one
//!    therefore moves to the first worker that frees up. Together with rule 1, this
//!    approximates one shared FIFO served by N workers, which gives the shortest wait for
//!    one-at-a-time servers. A request queued on an idle slot is left to that slot, which was
//!    woken for it, so placement does not depend on which thread happens to wake first.
//!
//! # Exactly-once: who owns a request's callback
//! 1. **Before acceptance** the caller owns the request and its callback. A refusal (an `Err`
//!    returned by `execute`, `batch_execute` or `load`) drops both without calling the
//!    callback.
//! 2. **Acceptance** moves the request, under the lock, into one slot queue as a `Job`. The
//!    job is now the only owner of the callback and the metadata. `Job::finish` consumes it, so
//!    a job can be completed only once, and only by whoever holds it.
//! 3. **While queued**, a job leaves its queue only under the lock, and only to one of these:
//!    the slot thread that takes it (its own or a stolen job), `cancel`, which completes it
//!    with `Cancelled`, `stop`, which does the same, or a slot going down, which moves it to
//!    another slot's queue or, when none is live, completes it with `WorkerCrashed`.
//! 4. **While running**, the slot thread holds the job. `running` in the slot state names the
//!    job's id so `cancel` can flag it and call the backend's interrupter. `cancel` never
//!    completes a running job. The slot thread does, and reports `Cancelled` if the job was
//!    flagged, whatever the backend returned.
//! 5. **Completion** calls the callback outside the lock under `catch_unwind`, so a panicking
//!    callback does not stop the thread, and then drops the metadata. The metadata therefore
//!    lives exactly until its callback has returned, on every path.
//! 6. **Loads**: the callback lives in the load's aggregate and is taken once, under the lock,
//!    by whichever comes first: the last enlisted worker's answer, the timer, or `stop`.
//! 7. **Batches**: each request of a batch is its own job. Its callback records the result in
//!    a collector, and the last one to complete calls the batch callback with every result in
//!    request order.
//! 8. **Never under the lock**: backend calls, callbacks, interrupter calls.
//!
//! # Direct hand-off
//! A caller in [`Dispatcher::execute_blocking`] is going to wait for its answer anyway, so when
//! the slot its request would go to is idle, it runs the request itself, on its own thread,
//! instead of waking the slot thread and waiting to be woken by it (`direct.rs`). The slot
//! thread sleeps through it. The invariants:
//! 1. **Parking.** Only a slot thread parks its backend, and only in its idle wait: after the
//!    backend's pre-warm, with nothing to take. It takes the backend back, under the lock,
//!    before it does anything else (work, a recycling check, a respawn, stop).
//! 2. **Claim.** A caller claims a slot under the lock, and only the slot placement would
//!    pick (the least busy up slot), only while that slot is parked, not claimed, not busy, has
//!    no load or execution queued, and nothing is queued on any slot (older requests go
//!    first). The claim marks the slot busy exactly as the slot thread's take does (`active`,
//!    `running` with the request's id), so placement, stealing, `cancel`, `stats` and
//!    `is_idle` see a running slot. The request never enters a queue: admission (stopped,
//!    version cached, room, a live slot) is checked as for any request, then it is a `Job`
//!    held by the caller, and rule 2 of "Exactly-once" holds with the caller as the holder.
//! 3. **The slot thread never touches a claimed backend.** Woken during a claim (work queued
//!    on its slot, a load, stop, a timer), it records that it wants the backend back and
//!    waits; the borrower wakes it when it gives the backend back. A slot with no reason to
//!    wake stays asleep, so a stream of blocking requests at idle wakes no dispatcher thread.
//! 4. **Give-back.** A guard (`Loan`) holds the borrowed backend; every end of the loan (the
//!    answer, a backend found dead before the send, a panic) puts the backend back and ends
//!    the claim under the lock. The request is answered after that, on the caller's thread.
//! 5. **Cancel and timeouts** work as on the slot thread: `cancel` flags `running` and
//!    interrupts the backend, the borrower reports `Cancelled` for a flagged request whatever
//!    the backend returned, and the backend enforces the timeout on whichever thread calls
//!    it. The caller is counted as one of the dispatcher's threads while it holds the backend,
//!    so a host function it runs inline cannot block on the dispatcher, as on a slot thread.
//! 6. **Crashes.** A backend that fails fatally (or panics, or dies in its pre-warm) is given
//!    back with a replacement due: the slot is marked respawning under the same lock as the
//!    give-back, and its thread replaces the backend before anything else, exactly as after
//!    its own call. One found dead before it was sent the request (killed from outside while
//!    parked) is given back the same way, and the request goes to its place in the slot's
//!    queue, so it runs on the replacement. The `VersionNotFound` retry is the slot thread's
//!    own code, run by the borrower.
//! 7. **Stop** refuses new claims. A slot thread whose backend is claimed at stop waits for it
//!    to come back (the borrower's request finishes and is answered, as in-flight ones do),
//!    then drops it and exits, so `stop` still returns only after every backend is dropped. A
//!    borrower that calls `stop` itself (from a host function run inline) does not wait for
//!    the threads, since that slot thread waits for it.
//! 8. **Recycling.** A slot counts its borrowers' executions (for the request rule, for the
//!    proof of health, and as the end of an idle stretch for the idle-CPU rule) when it takes
//!    its backend back. The request rule's remaining count and the age rule's deadline are
//!    set at parking, and a claim past either is refused, so a worker never serves past a
//!    rule through the hand-off; the slot thread then recycles it at its next take.
//! 9. **Where not used:** `execute` and the other callback forms (their callback runs on a
//!    dispatcher thread, and the caller does not wait), `execute_waiting` (its callback must
//!    not run inside the call: a callback that takes a lock its submitter holds would
//!    deadlock), calls on a dispatcher thread, and [`DispatcherConfig::direct_handoff`] off.
//!
//! # Versions
//! The host keeps the source of each loaded version in a [`crate::VersionCache`] (LRU, bounded by
//! `code_version_cache_size`). An execution of a version that is not in the cache fails at once
//! with `VersionNotFound`. A load is added to the cache when it is accepted. If it fails on any
//! worker, the version is removed from the cache again (unless a newer load replaced it), so the
//! host never routes to a version whose workers may disagree. The load's callback runs once
//! every enlisted worker has answered, and carries the first failure if there was one.
//!
//! Loading an existing version replaces it. Loads jump ahead of executions, so an execution
//! runs against the version its worker holds when it takes the request. An execution submitted
//! after `load` returned therefore never sees an older copy. One submitted earlier may see
//! either copy. It never sees a mix of two versions' state, because a worker runs one request
//! at a time, entirely against one compiled version.
//!
//! # Crash recovery
//! When a backend call returns `WorkerCrashed` or panics, or the backend reports
//! `is_alive() == false` after a failed call or while idle, the slot drops the backend and
//! answers the request it was running with that error. A backend found dead just before it
//! would be given an execution (killed from outside while idle) is replaced first, and the
//! execution goes back to its place in the queue, so it runs on the new backend instead of
//! failing. A panic in any backend method or in a backend's `Drop` counts as a crash. It then
//! creates a new backend through the factory, replays every cached version in load order, and
//! only then takes new work. The other slots are not affected. If the factory (or the replay)
//! fails, the slot is marked **down**. Its queued requests move to live slots, or fail with
//! `WorkerCrashed` when there are none. Its pending loads count as done, because it replays the
//! whole cache when it comes back. It retries with exponential backoff
//! (`respawn_backoff_initial`, doubling up to `respawn_backoff_max`) until it succeeds or the
//! dispatcher stops.
//!
//! **Crash loops.** Every new backend is a new worker process, so one that dies again right away
//! (in its pre-warm, or on every request) must not be replaced in a tight loop. A replay that kills
//! it is already a failed attempt (above). A backend **proves healthy** by completing one execution
//! and still being alive afterwards (whatever the request's result), or by living
//! `respawn_backoff_max`. The death of a backend that proved healthy is replaced at once and resets
//! the backoff: a healthy worker that one bad request crashes now and then costs nothing more than
//! the respawn. A backend that dies before proving healthy died **early**: the slot first waits out
//! the next step of the same backoff schedule that failed attempts climb. While it waits the slot
//! is respawning: its queue waits for it or is stolen by other slots, it gets new executions only
//! when no slot is up, and `stop` ends the wait. Living `respawn_backoff_max` counts as proof
//! because such a backend cost no more spawns than a crash loop at the longest wait: a slot whose
//! backends never complete an execution creates at most about one per `respawn_backoff_max` once
//! its schedule has climbed.
//!
//! # Recycling
//! A backend may be replaced while healthy, by rules in [`DispatcherConfig`] (all off by
//! default): after `recycle_after_requests` executions, at `recycle_after_age`, or when it used
//! more than `recycle_idle_cpu_per_sec` of CPU per second while the slot had nothing for it
//! (sampled through [`WorkerBackend::cpu_time`] once a second while idle, and before the next
//! execution). A worker taken over by an exploit answers on time and never crashes; these rules
//! bound how long it keeps serving. The slot checks them between requests and, when the age or
//! CPU rule is on, wakes while idle to check them. A recycle is invisible to callers: the slot
//! creates the new backend and replays every cached version into it while the old one stays
//! alive, and swaps them only then. Meanwhile it counts as respawning, so new executions prefer
//! other slots and idle slots may steal its queue; what waits on it runs on the new backend.
//! A request never fails because of a recycle. If the new backend cannot be made, the old one
//! serves on and the next attempt waits `respawn_backoff_max`. A worker found over the CPU rule
//! when it is about to be given a request does not get it: the request goes back to its place
//! in the queue and runs on the successor. `WorkerStats::recycled` counts the replacements.
//!
//! # Timeouts
//! Execution timeouts are enforced by the backend (the engine terminates the script, and the
//! process backend waits on its worker with a deadline). The dispatcher trusts every backend
//! call to return in bounded time ([`WorkerBackend`]'s contract). A backend that hangs stalls
//! its own slot only, and `stop` waits for it.
//!
//! # Stop
//! [`Dispatcher::stop`] refuses new work with `Cancelled`. It answers every queued execution
//! and every unanswered load with `Cancelled` at once, lets in-flight requests finish and
//! answer, and waits until every dispatcher thread has exited (so every backend has been
//! dropped) before it returns. Called on a dispatcher thread (from a callback), it does not
//! wait for that thread, nor for the other dispatcher threads when another caller already
//! joins them. Dropping the dispatcher stops it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod backoff;
mod config;
mod direct;
mod future;
mod job;
mod oneshot;
mod recycle;
mod state;
mod timer;
mod version_cache;
mod worker;

pub use backend::{ExecOutput, Interrupt, WorkerBackend};
pub use config::{DEFAULT_LOAD_TIMEOUT, DEFAULT_WORKER_QUEUE_MAX_ITEMS, DispatcherConfig};
pub use future::DispatchFuture;
pub use job::{BatchCallback, ExecCallback, ExecutionToken, LoadCallback};
pub use state::WorkerHealth;
pub use version_cache::{CachedVersion, VersionCache};

use job::{BatchCollector, Job, LoadAggregate, LoadJob, call_guarded};
use roma_core::{
    CodeObject, ErrorKind, Invocation, InvocationRequest, ResponseObject, RomaError,
    validate_code_object, validate_invocation,
};
use state::{Shared, State};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use worker::{Factory, SlotWorker};

/// Runs loads and executions on a pool of worker slots, each owning one [`WorkerBackend`].
///
/// `M` is the per-request metadata. It stays in the host and is dropped right after the
/// request's callback returns. The backend type is fixed by [`Dispatcher::new`]'s factory and
/// does not appear in the dispatcher's type, so a service can hold a `Dispatcher<M>` whatever
/// backend it runs.
pub struct Dispatcher<M: Send + Sync + 'static> {
    shared: Arc<Shared<M>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A snapshot of one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerStats {
    /// Whether the slot is serving, respawning, or down.
    pub health: WorkerHealth,
    /// Executions queued on it.
    pub queued: usize,
    /// Whether it is running an execution.
    pub running: bool,
    /// Loads waiting in its control queue.
    pub pending_loads: usize,
    /// Planned replacements of its backend so far (recycling; crashes not counted).
    pub recycled: u64,
    /// Whether its thread waits idle with the backend parked, so that a blocking submit may
    /// borrow it (the direct hand-off) rather than wake the thread.
    pub parked: bool,
}

/// A snapshot of the dispatcher's queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatcherStats {
    /// One entry per slot, by index.
    pub workers: Vec<WorkerStats>,
    /// Executions queued over all slots.
    pub queued: usize,
    /// The bound on `queued`.
    pub capacity: usize,
    /// Versions in the host cache.
    pub cached_versions: usize,
}

static NEXT_DISPATCHER_ID: AtomicU64 = AtomicU64::new(1);

impl<M: Send + Sync + 'static> Dispatcher<M> {
    /// Starts `config.number_of_workers` slots. Each slot calls `factory(index)` on its own
    /// thread, in parallel with the others, and calls it again whenever its backend must be
    /// replaced. Returns once every slot has a backend, or with the first factory error, in
    /// which case the slots already started are stopped.
    pub fn new<B, F>(config: DispatcherConfig, factory: F) -> Result<Self, RomaError>
    where
        B: WorkerBackend<M>,
        F: Fn(usize) -> Result<B, RomaError> + Send + Sync + 'static,
    {
        let resolved = config.resolve()?;
        let workers = resolved.workers;
        let id = NEXT_DISPATCHER_ID.fetch_add(1, Ordering::Relaxed);
        let dispatcher = Dispatcher {
            shared: Arc::new(Shared::new(resolved, id)),
            threads: Mutex::new(Vec::with_capacity(workers + 1)),
        };
        let factory: Arc<Factory<B>> = Arc::new(factory);
        let (ready_tx, ready_rx) = mpsc::channel();
        for index in 0..workers {
            let shared = Arc::clone(&dispatcher.shared);
            let factory = Arc::clone(&factory);
            let ready = ready_tx.clone();
            let guard = shared.thread_guard();
            let spawned = std::thread::Builder::new()
                .name(format!("roma-slot-{index}"))
                .spawn(move || {
                    let _guard = guard;
                    shared.mark_thread();
                    SlotWorker::run(shared, index, factory, ready);
                });
            dispatcher.adopt(spawned)?;
        }
        drop(ready_tx);
        let shared = Arc::clone(&dispatcher.shared);
        let guard = shared.thread_guard();
        let spawned = std::thread::Builder::new()
            .name("roma-load-timer".into())
            .spawn(move || {
                let _guard = guard;
                shared.mark_thread();
                timer::run(shared);
            });
        dispatcher.adopt(spawned)?;

        let mut first_error = None;
        for _ in 0..workers {
            let report = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(RomaError::internal("a slot thread exited at startup")));
            if let Err(e) = report {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e), // dropping `dispatcher` stops the started slots
            None => Ok(dispatcher),
        }
    }

    /// Keeps a spawned thread's handle, or stops everything if it could not be spawned.
    fn adopt(&self, spawned: std::io::Result<JoinHandle<()>>) -> Result<(), RomaError> {
        match spawned {
            Ok(h) => {
                self.threads
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(h);
                Ok(())
            }
            Err(e) => Err(RomaError::internal(format!(
                "cannot spawn a dispatcher thread: {e}"
            ))),
        }
    }

    /// Whether the calling thread is one of this dispatcher's (a callback runs on one): a
    /// call there that waited for one of its requests could wait for itself.
    pub fn on_dispatcher_thread(&self) -> bool {
        self.shared.on_own_thread()
    }

    /// The number of worker slots.
    pub fn worker_count(&self) -> usize {
        self.shared.config.workers
    }

    /// Loads `code` into every worker. Validates it first. `callback` runs once, after every
    /// worker has answered, with the first failure if any, or `Timeout` after the load
    /// timeout. Loading an existing version replaces it.
    ///
    /// Errors (the callback is then not called): `InvalidArgument` for a malformed code object,
    /// `Cancelled` after [`stop`](Self::stop), `WorkerCrashed` when every slot is down.
    pub fn load<F>(&self, code: CodeObject, callback: F) -> Result<(), RomaError>
    where
        F: FnOnce(Result<ResponseObject, RomaError>) + Send + 'static,
    {
        validate_code_object(&code)?;
        let code = Arc::new(code);
        let accepted = Instant::now();
        let mut st = self.shared.lock();
        check_running(&st)?;
        let enlisted: Vec<usize> = (0..st.slots.len())
            .filter(|&i| st.slots[i].health != WorkerHealth::Down)
            .collect();
        if enlisted.is_empty() {
            return Err(RomaError::new(
                ErrorKind::WorkerCrashed,
                "no worker is running to load into",
            ));
        }
        let (seq, _evicted) = st.cache.insert(Arc::clone(&code));
        st.loads.insert(
            seq,
            LoadAggregate {
                version: code.version_string.clone(),
                caller_id: code.id.clone(),
                pending: enlisted.len(),
                first_error: None,
                callback: Some(Box::new(callback)),
                accepted,
                deadline: accepted + self.shared.config.load_timeout,
            },
        );
        for &i in &enlisted {
            st.slots[i].loads.push_back(LoadJob {
                seq,
                code: Arc::clone(&code),
            });
        }
        drop(st);
        for i in enlisted {
            self.shared.wake(i);
        }
        self.shared.timer_cv.notify_all();
        Ok(())
    }

    /// Queues one execution on the least busy worker. `callback` runs exactly once with the
    /// response or a typed error. The request's metadata is dropped right after the callback
    /// returns.
    ///
    /// Errors (the callback is then not called and the request is dropped before this
    /// returns): `InvalidArgument` for a malformed request, `VersionNotFound` when the version
    /// is not in the host cache, `QueueFull` at capacity, `Cancelled` after
    /// [`stop`](Self::stop), `WorkerCrashed` when every slot is down.
    pub fn execute<F>(
        &self,
        request: InvocationRequest<M>,
        callback: F,
    ) -> Result<ExecutionToken, RomaError>
    where
        F: FnOnce(Result<ResponseObject, RomaError>) + Send + 'static,
    {
        let invocation = self.prepare(&request)?;
        let mut st = self.shared.lock();
        admit(
            &mut st,
            std::iter::once(invocation.version_string.as_str()),
            1,
        )?;
        self.place(st, request, invocation, Box::new(callback))
    }

    /// Queues every request, or none. The requests spread over the workers like separate
    /// executions. Once the batch is accepted, `callback` runs once with one result per request,
    /// in request order. Each request's metadata is dropped once, when that request completes,
    /// so all but the last request's metadata are gone before `callback` runs. The returned
    /// tokens cancel single requests (the batch still gets `Cancelled` in their place). An
    /// empty batch calls `callback` at once with no results. A refused batch drops every
    /// request, metadata included, before this returns.
    ///
    /// Errors: as [`execute`](Self::execute), for the first request that fails them. The
    /// whole batch is refused when it does not fit in the queues.
    pub fn batch_execute<F>(
        &self,
        requests: Vec<InvocationRequest<M>>,
        callback: F,
    ) -> Result<Vec<ExecutionToken>, RomaError>
    where
        F: FnOnce(Vec<Result<ResponseObject, RomaError>>) + Send + 'static,
    {
        let invocations = self.prepare_batch(&requests)?;
        if requests.is_empty() {
            let mut st = self.shared.lock();
            admit(&mut st, std::iter::empty(), 0)?;
            drop(st);
            call_guarded(move || callback(Vec::new()));
            return Ok(Vec::new());
        }
        let n = requests.len();
        let collector = BatchCollector::new(n, Box::new(callback));
        let mut st = self.shared.lock();
        admit(
            &mut st,
            invocations.iter().map(|inv| inv.version_string.as_str()),
            n,
        )?;
        let mut tokens = Vec::with_capacity(n);
        let mut unplaced = Vec::new();
        for (i, (request, invocation)) in requests.into_iter().zip(invocations).enumerate() {
            let collector = Arc::clone(&collector);
            let callback: ExecCallback = Box::new(move |r| collector.complete(i, r));
            // `admit` checked under this lock that a slot is live, so every request is placed;
            // should one not be, it is still answered, so the batch callback runs once.
            match self.enqueue(&mut st, request, invocation, callback) {
                Ok((_, id)) => tokens.push(self.token(id)),
                Err((e, callback, metadata)) => unplaced.push((e, callback, metadata)),
            }
        }
        drop(st);
        self.shared.wake_all();
        for (e, callback, metadata) in unplaced {
            call_guarded(move || callback(Err(e)));
            call_guarded(move || drop(metadata));
        }
        Ok(tokens)
    }

    /// [`execute`](Self::execute), but when the queues are full it waits up to `wait` for room
    /// instead of failing at once, as Roma's `BatchExecute` blocks until its requests are
    /// enqueued. Errors as `execute`; `QueueFull` only once the queues stayed full for `wait`.
    ///
    /// Called on a dispatcher thread (from a callback) it does not wait, since the thread it
    /// would wait for may be its own.
    pub fn execute_waiting<F>(
        &self,
        request: InvocationRequest<M>,
        wait: Duration,
        callback: F,
    ) -> Result<ExecutionToken, RomaError>
    where
        F: FnOnce(Result<ResponseObject, RomaError>) + Send + 'static,
    {
        let invocation = self.prepare(&request)?;
        let deadline = self.room_deadline(wait);
        let st = self.shared.lock();
        let st = self.wait_for_room(st, &invocation.version_string, 1, deadline, wait)?;
        self.place(st, request, invocation, Box::new(callback))
    }

    /// Runs one execution and waits for its answer on the calling thread: waits for room in
    /// the queues as [`execute_waiting`](Self::execute_waiting) does (up to `wait`), then for
    /// the answer, which the request's own timeout bounds. `accepted` is called with the
    /// request's token once the request is accepted, before it runs, so that another thread
    /// may [`cancel`](Self::cancel) it.
    ///
    /// With [`DispatcherConfig::direct_handoff`] (the default), a request that finds the
    /// least busy slot idle with nothing queued runs on this thread, on that slot's backend
    /// (see "Direct hand-off" in the module docs): no dispatcher thread is woken for it, and
    /// its answer needs no wake-up of this one. Otherwise it is queued as by `execute_waiting`.
    ///
    /// Errors: as `execute_waiting`, and `InvalidArgument` on one of the dispatcher's threads
    /// (in a callback), where the thread it would wait for may be its own.
    pub fn execute_blocking(
        &self,
        request: InvocationRequest<M>,
        wait: Duration,
        accepted: impl FnOnce(&ExecutionToken),
    ) -> Result<ResponseObject, RomaError> {
        if self.shared.on_own_thread() {
            return Err(RomaError::invalid_argument(
                "execute_blocking was called on one of the dispatcher's threads (in a \
                 callback, or in a host function run inline), where it could wait for itself; \
                 submit with a callback there instead",
            ));
        }
        let invocation = self.prepare(&request)?;
        let deadline = self.room_deadline(wait);
        let (tx, rx) = mpsc::channel();
        let callback: ExecCallback = Box::new(move |r| {
            let _ = tx.send(r);
        });
        let st = self.shared.lock();
        let mut st = self.wait_for_room(st, &invocation.version_string, 1, deadline, wait)?;
        let id = st.next_id;
        match st.claim(id, self.shared.config.direct) {
            Some((claim, lender)) => {
                st.next_id += 1;
                drop(st);
                let job = Job::accepted(id, request, invocation, callback);
                let token = self.token(id);
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| accepted(&token))) {
                    // The caller's own closure: the slot goes back untouched, and the request,
                    // which never ran, is dropped with the unwinding caller.
                    let asked = self.shared.lock().unclaim(claim.index);
                    if asked {
                        self.shared.wake(claim.index);
                    }
                    call_guarded(move || drop(job));
                    resume_unwind(panic);
                }
                let _stand_in = self.shared.stand_in();
                lender.run(&self.shared, claim, job);
            }
            None => {
                let token = self.place(st, request, invocation, callback)?;
                accepted(&token);
            }
        }
        self.await_answer(&rx)
    }

    /// The answer a blocking submit's callback sends. In the low-latency mode the channel is
    /// polled a while before this thread sleeps on it, so that an answer in time needs no
    /// wake-up; an answer run on this thread is there at once.
    fn await_answer(
        &self,
        rx: &mpsc::Receiver<Result<ResponseObject, RomaError>>,
    ) -> Result<ResponseObject, RomaError> {
        if let Some(poll) = self.shared.config.idle_poll {
            let until = Instant::now() + poll;
            loop {
                match rx.try_recv() {
                    Ok(r) => return r,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) if Instant::now() >= until => break,
                    Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
                }
            }
        }
        rx.recv().unwrap_or_else(|_| {
            Err(RomaError::internal(
                "the request's callback was dropped without being called",
            ))
        })
    }

    /// [`batch_execute`](Self::batch_execute) for a batch of any size: the requests are
    /// enqueued in order as room frees in the queues (a batch larger than the queues runs in
    /// pieces), waiting up to `wait` each time the queues are full. Returns once every request
    /// is enqueued. `callback` runs once, with one result per request, in request order.
    ///
    /// Errors: a request that fails validation refuses the whole batch before anything runs;
    /// so does a first piece that finds no room within `wait` (or any other refusal of the
    /// first piece). A later piece that is refused (the queues stayed full for `wait`, the
    /// dispatcher stopped, the version was evicted) is answered in the batch callback, each of
    /// its requests with that error, while the requests already enqueued run.
    pub fn batch_execute_waiting<F>(
        &self,
        requests: Vec<InvocationRequest<M>>,
        wait: Duration,
        callback: F,
    ) -> Result<Vec<ExecutionToken>, RomaError>
    where
        F: FnOnce(Vec<Result<ResponseObject, RomaError>>) + Send + 'static,
    {
        let invocations = self.prepare_batch(&requests)?;
        if requests.is_empty() {
            return self.batch_execute(requests, callback);
        }
        let n = requests.len();
        let collector = BatchCollector::new(n, Box::new(callback));
        let mut tokens = Vec::with_capacity(n);
        let mut pending = requests.into_iter().zip(invocations).enumerate().peekable();
        while let Some((first, (_, inv))) = pending.peek() {
            let first = *first;
            let version = inv.version_string.clone();
            let deadline = self.room_deadline(wait);
            let st = self.shared.lock();
            let mut st = match self.wait_for_room(st, &version, 1, deadline, wait) {
                Ok(st) => st,
                Err(e) if first == 0 => return Err(e),
                Err(e) => {
                    for (i, _) in pending {
                        collector.complete(i, Err(e.clone()));
                    }
                    break;
                }
            };
            // Everything that fits now, up to the next request of another version (whose
            // cache entry `admit` checks afresh).
            let room = st.capacity - st.queued;
            let mut unplaced = Vec::new();
            let mut placed = 0;
            while placed < room {
                let Some((i, (request, invocation))) =
                    pending.next_if(|(_, (_, inv))| inv.version_string == version)
                else {
                    break;
                };
                let collector = Arc::clone(&collector);
                let callback: ExecCallback = Box::new(move |r| collector.complete(i, r));
                match self.enqueue(&mut st, request, invocation, callback) {
                    Ok((_, id)) => tokens.push(self.token(id)),
                    Err(refused) => unplaced.push(refused),
                }
                placed += 1;
            }
            drop(st);
            self.shared.wake_all();
            for (e, callback, metadata) in unplaced {
                call_guarded(move || callback(Err(e)));
                call_guarded(move || drop(metadata));
            }
        }
        Ok(tokens)
    }

    /// When a wait for room that starts now ends (far in the future for a huge `wait`); now
    /// on a dispatcher thread, which must not wait.
    fn room_deadline(&self, wait: Duration) -> Instant {
        let now = Instant::now();
        if self.shared.on_own_thread() {
            return now;
        }
        now.checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
    }

    /// Admits `n` requests of `version`, waiting until `deadline` while the queues are full.
    fn wait_for_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, State<M>>,
        version: &str,
        n: usize,
        deadline: Instant,
        wait: Duration,
    ) -> Result<MutexGuard<'a, State<M>>, RomaError> {
        loop {
            match admit(&mut st, std::iter::once(version), n) {
                Ok(()) => return Ok(st),
                Err(e) if e.kind() == ErrorKind::QueueFull && n <= st.capacity => {
                    let (guard, passed) = self.shared.wait_for_room(st, deadline);
                    st = guard;
                    if passed {
                        return admit(&mut st, std::iter::once(version), n)
                            .map(|()| st)
                            .map_err(|e| {
                                if e.kind() == ErrorKind::QueueFull {
                                    RomaError::new(
                                        ErrorKind::QueueFull,
                                        format!(
                                            "waited {} for room: {}",
                                            roma_core::format_duration(wait),
                                            e.message()
                                        ),
                                    )
                                } else {
                                    e
                                }
                            });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Each request's invocation, validated; the first failure names its request's index.
    fn prepare_batch(
        &self,
        requests: &[InvocationRequest<M>],
    ) -> Result<Vec<Invocation>, RomaError> {
        requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                self.prepare(r).map_err(|e| {
                    RomaError::new(e.kind(), format!("batch request {i}: {}", e.message()))
                })
            })
            .collect()
    }

    /// Cancels an execution. A queued one is removed and answered with `Cancelled` before this
    /// returns, on this thread. A running one is flagged and its backend is interrupted. Its
    /// slot thread then answers `Cancelled`, whatever the backend returned.
    ///
    /// Returns true when the request is (or will be) answered with `Cancelled`, and false when
    /// the token is unknown or its request has already completed.
    pub fn cancel(&self, token: &ExecutionToken) -> bool {
        if token.dispatcher != self.shared.dispatcher_id {
            return false;
        }
        let id = token.request;
        let mut st = self.shared.lock();
        let queued = st.slots.iter_mut().find_map(|slot| slot.queue.remove(&id));
        if let Some(job) = queued {
            st.queued -= 1;
            self.shared.room_freed(&st);
            drop(st);
            job.finish(Err(RomaError::new(
                ErrorKind::Cancelled,
                "cancelled while queued",
            )));
            return true;
        }
        let interrupter = st
            .slots
            .iter_mut()
            .find_map(|slot| match &mut slot.running {
                Some(r) if r.id == id => {
                    r.cancel_requested = true;
                    Some(slot.interrupter.clone())
                }
                _ => None,
            });
        drop(st);
        match interrupter {
            Some(Some(i)) => {
                i.interrupt(id);
                true
            }
            // Running on a slot whose backend is being replaced: the flag alone decides.
            Some(None) => true,
            None => false,
        }
    }

    /// Stops the dispatcher. New requests are refused with `Cancelled`. Every queued execution
    /// and every unanswered load is answered with `Cancelled` on this thread. In-flight
    /// executions finish and are answered. Returns once every dispatcher thread has exited and
    /// dropped its backend. Idempotent: a second call (or a concurrent one) also waits.
    ///
    /// If called from a dispatcher thread (for example from a callback), that thread is not
    /// waited for. It exits on its own after the callback returns.
    pub fn stop(&self) {
        let (jobs, loads) = {
            let mut st = self.shared.lock();
            if st.stopping {
                (Vec::new(), Vec::new())
            } else {
                st.stopping = true;
                let mut jobs = Vec::with_capacity(st.queued);
                for slot in st.slots.iter_mut() {
                    jobs.extend(std::mem::take(&mut slot.queue).into_values());
                    slot.loads.clear();
                }
                st.queued = 0;
                let loads: Vec<_> = st
                    .loads
                    .drain()
                    .filter_map(|(_, mut agg)| agg.callback.take())
                    .collect();
                (jobs, loads)
            }
        };
        self.shared.wake_all();
        self.shared.timer_cv.notify_all();
        self.shared.room_cv.notify_all();
        for job in jobs {
            job.finish(Err(RomaError::new(
                ErrorKind::Cancelled,
                "the dispatcher stopped before running the request",
            )));
        }
        for cb in loads {
            call_guarded(move || {
                cb(Err(RomaError::new(
                    ErrorKind::Cancelled,
                    "the dispatcher stopped before the load completed",
                )))
            });
        }
        let handles =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let me = std::thread::current().id();
        // A thread that holds a borrowed backend (a host function run inline, on the
        // submitting thread) does not join: that slot's thread waits for the backend.
        let join = !self.shared.standing_in();
        for h in handles {
            if join && h.thread().id() != me {
                // A slot thread only panics on a dispatcher bug; there is nothing to recover.
                let _ = h.join();
            }
        }
        // Another caller may hold the handles (a callback that called `stop` on a dispatcher
        // thread): wait for the threads themselves. A dispatcher thread does not wait, since
        // two of them stopping from callbacks at once would wait for each other.
        if !self.shared.on_own_thread() {
            self.shared.wait_threads_exited();
        }
    }

    /// Whether nothing is queued, running or loading: a `stop` now would cut no request or
    /// load short. (A request submitted after it returns is not seen, so a caller that stops
    /// on it must keep submitters out meanwhile, as tenant pools do.)
    pub fn is_idle(&self) -> bool {
        let st = self.shared.lock();
        st.queued == 0
            && st.loads.is_empty()
            && st
                .slots
                .iter()
                .all(|s| s.running.is_none() && s.queue.is_empty() && s.loads.is_empty())
    }

    /// A snapshot of the queues, per slot.
    pub fn stats(&self) -> DispatcherStats {
        let st = self.shared.lock();
        DispatcherStats {
            workers: st
                .slots
                .iter()
                .map(|s| WorkerStats {
                    health: s.health,
                    queued: s.queue.len(),
                    running: s.running.is_some(),
                    pending_loads: s.loads.len(),
                    recycled: s.recycled,
                    parked: s.lending.parked && !s.lending.claimed,
                })
                .collect(),
            queued: st.queued,
            capacity: st.capacity,
            cached_versions: st.cache.len(),
        }
    }

    /// [`execute`](Self::execute) as a future (any executor). The request is submitted now;
    /// see [`DispatchFuture`] for cancel safety.
    pub fn execute_async(&self, request: InvocationRequest<M>) -> DispatchFuture<ResponseObject> {
        let (tx, rx) = oneshot::channel();
        match self.execute(request, move |r| tx.send(r)) {
            Ok(token) => DispatchFuture::waiting(rx, Some(token)),
            Err(e) => DispatchFuture::refused(e),
        }
    }

    /// [`load`](Self::load) as a future (any executor). The load is submitted now.
    pub fn load_async(&self, code: CodeObject) -> DispatchFuture<ResponseObject> {
        let (tx, rx) = oneshot::channel();
        match self.load(code, move |r| tx.send(r)) {
            Ok(()) => DispatchFuture::waiting(rx, None),
            Err(e) => DispatchFuture::refused(e),
        }
    }

    /// [`batch_execute`](Self::batch_execute) as a future (any executor). The batch is
    /// submitted now.
    pub fn batch_execute_async(
        &self,
        requests: Vec<InvocationRequest<M>>,
    ) -> DispatchFuture<Vec<Result<ResponseObject, RomaError>>> {
        let (tx, rx) = oneshot::channel();
        match self.batch_execute(requests, move |r| tx.send(Ok(r))) {
            Ok(_) => DispatchFuture::waiting(rx, None),
            Err(e) => DispatchFuture::refused(e),
        }
    }

    /// The invocation a request turns into, validated.
    fn prepare(&self, request: &InvocationRequest<M>) -> Result<Invocation, RomaError> {
        let inv = request.to_invocation(self.shared.config.default_timeout)?;
        validate_invocation(&inv)?;
        Ok(inv)
    }

    /// Places an admitted single request and wakes its slot. The lock is released before a
    /// refused request's callback and metadata are dropped.
    fn place(
        &self,
        mut st: MutexGuard<'_, State<M>>,
        request: InvocationRequest<M>,
        invocation: Invocation,
        callback: ExecCallback,
    ) -> Result<ExecutionToken, RomaError> {
        let placed = self.enqueue(&mut st, request, invocation, callback);
        drop(st);
        let (slot, id) = placed.map_err(|(e, _, _)| e)?;
        self.shared.wake(slot);
        Ok(self.token(id))
    }

    /// Places an admitted request; returns its slot and id. When no slot can take it (every
    /// slot is down), hands the callback and metadata back with the error.
    #[allow(
        clippy::type_complexity,
        reason = "a private helper's one-off return type"
    )]
    fn enqueue(
        &self,
        st: &mut State<M>,
        request: InvocationRequest<M>,
        invocation: Invocation,
        callback: ExecCallback,
    ) -> Result<(usize, u64), (RomaError, ExecCallback, M)> {
        let Some(slot) = st.pick_slot() else {
            return Err((no_worker(), callback, request.metadata));
        };
        let id = st.next_id;
        st.next_id += 1;
        st.enqueue(slot, Job::accepted(id, request, invocation, callback));
        Ok((slot, id))
    }

    fn token(&self, request: u64) -> ExecutionToken {
        ExecutionToken {
            dispatcher: self.shared.dispatcher_id,
            request,
        }
    }
}

impl<M: Send + Sync + 'static> Drop for Dispatcher<M> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<M: Send + Sync + 'static> fmt::Debug for Dispatcher<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("workers", &self.shared.config.workers)
            .field("capacity", &self.shared.config.capacity)
            .finish_non_exhaustive()
    }
}

fn no_worker() -> RomaError {
    RomaError::new(ErrorKind::WorkerCrashed, "every worker is down")
}

/// The `QueueFull` error for `n` more requests: it names the setting that sizes the queues and
/// the submit forms that wait for room instead.
fn queue_full<M>(st: &State<M>, n: usize) -> RomaError {
    let message = if n > st.capacity {
        format!(
            "a batch of {n} requests is larger than the queues ({} requests: number_of_workers \
             x worker_queue_max_items); raise worker_queue_max_items, or submit it with \
             batch_execute_waiting (or batch_execute_blocking), which enqueues it as room frees",
            st.capacity
        )
    } else {
        format!(
            "the queues hold {} of {} requests (number_of_workers x worker_queue_max_items); \
             {n} more do not fit: raise worker_queue_max_items, or submit with a wait for room \
             (execute_waiting, execute_blocking)",
            st.queued, st.capacity
        )
    };
    RomaError::new(ErrorKind::QueueFull, message)
}

fn check_running<M>(st: &State<M>) -> Result<(), RomaError> {
    if st.stopping {
        Err(RomaError::new(
            ErrorKind::Cancelled,
            "the dispatcher is stopped",
        ))
    } else {
        Ok(())
    }
}

/// Whether `n` executions of `versions` may be queued now: not stopped, every version cached
/// (marking it used), room in the queues, a live slot.
fn admit<'a, M>(
    st: &mut State<M>,
    versions: impl Iterator<Item = &'a str>,
    n: usize,
) -> Result<(), RomaError> {
    check_running(st)?;
    for v in versions {
        if !st.cache.touch(v) {
            return Err(RomaError::new(
                ErrorKind::VersionNotFound,
                format!("version `{v}` is not loaded"),
            ));
        }
    }
    if st.queued.saturating_add(n) > st.capacity {
        return Err(queue_full(st, n));
    }
    if n > 0 && st.pick_slot().is_none() {
        return Err(no_worker());
    }
    Ok(())
}
