//! [`Dispatcher`], the API over the slots: admission, placement, the submit forms, cancel, stop
//! and the stats. The crate docs say how its threads, queues and callbacks work together.

use crate::direct::{Claim, DirectRun, Lend, await_answer};
use crate::job::{
    BatchCollector, ExecCallback, ExecutionToken, Job, LoadAggregate, LoadJob, call_guarded,
};
use crate::state::{Shared, State, WorkerHealth};
use crate::worker::{Factory, SlotWorker};
use crate::{DispatchFuture, DispatcherConfig, WorkerBackend, oneshot, timer};
use roma_core::{
    CodeObject, ErrorKind, Invocation, InvocationRequest, ResponseObject, RomaError,
    validate_code_object, validate_invocation,
};
use std::fmt;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// How [`Dispatcher::execute_here_or_async`] submitted a request.
pub enum Submitted<M: Send + Sync + 'static> {
    /// Its slot was idle: the request holds it, to run on the caller's thread with
    /// [`DirectRun::run`].
    Here(DirectRun<M>),
    /// It was queued (or refused: the future answers the refusal).
    Queued(DispatchFuture<ResponseObject>),
}

impl<M: Send + Sync + 'static> fmt::Debug for Submitted<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Submitted::Here(run) => f.debug_tuple("Here").field(run).finish(),
            Submitted::Queued(fut) => f.debug_tuple("Queued").field(fut).finish(),
        }
    }
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
    /// (see "Direct hand-off" in the crate docs): no dispatcher thread is woken for it, and
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
        let st = self.shared.lock();
        let mut st = self.wait_for_room(st, &invocation.version_string, 1, deadline, wait)?;
        match self.claim_idle(&mut st) {
            Some(claimed) => {
                drop(st);
                let run = self.held(claimed, request, invocation);
                // A panic in the caller's closure drops the claim unrun: the slot goes back
                // untouched and the request, which never ran, unwinds with the caller.
                accepted(run.token());
                run.run()
            }
            None => {
                let (callback, rx) = answer_channel();
                let token = self.place(st, request, invocation, callback)?;
                accepted(&token);
                await_answer(&self.shared, &rx)
            }
        }
    }

    /// Submits one execution for a caller that can run it itself: when the slot it would
    /// go to is idle with nothing queued (the condition of the direct hand-off in
    /// [`execute_blocking`](Self::execute_blocking)), the request claims that slot and comes
    /// back as [`Submitted::Here`], to be run on the caller's thread; otherwise it is
    /// submitted as by [`execute_async`](Self::execute_async) and comes back as
    /// [`Submitted::Queued`] (a refusal is that future's answer). Never waits for room.
    ///
    /// For an async server: an idle request then costs no dispatcher thread's wake-up and
    /// no wake of the caller's task, and under load, when no slot is idle, it queues and
    /// awaits as usual, so that only as many callers block as there are idle slots. On one
    /// of the dispatcher's threads (a callback) the request is always queued.
    pub fn execute_here_or_async(&self, request: InvocationRequest<M>) -> Submitted<M> {
        let invocation = match self.prepare(&request) {
            Ok(invocation) => invocation,
            Err(e) => return Submitted::Queued(DispatchFuture::refused(e)),
        };
        let mut st = self.shared.lock();
        if let Err(e) = admit(
            &mut st,
            std::iter::once(invocation.version_string.as_str()),
            1,
        ) {
            drop(st);
            return Submitted::Queued(DispatchFuture::refused(e));
        }
        match self.claim_idle(&mut st) {
            Some(claimed) => {
                drop(st);
                Submitted::Here(self.held(claimed, request, invocation))
            }
            None => {
                let (tx, rx) = oneshot::channel();
                match self.place(st, request, invocation, Box::new(move |r| tx.send(r))) {
                    Ok(token) => Submitted::Queued(DispatchFuture::waiting(rx, Some(token))),
                    Err(e) => Submitted::Queued(DispatchFuture::refused(e)),
                }
            }
        }
    }

    /// Claims the slot an admitted request would go to, when it is idle (see
    /// `State::claim`), for the id it returns. Never on one of the dispatcher's own threads,
    /// which must not wait for a request of their own.
    fn claim_idle(&self, st: &mut State<M>) -> Option<(Claim, Arc<dyn Lend<M>>, u64)> {
        let direct = self.shared.config.direct && !self.shared.on_own_thread();
        let id = st.next_id;
        let (claim, lender) = st.claim(id, direct)?;
        st.next_id += 1;
        Some((claim, lender, id))
    }

    /// The claimed request `id`, held for its caller to run.
    fn held(
        &self,
        (claim, lender, id): (Claim, Arc<dyn Lend<M>>, u64),
        request: InvocationRequest<M>,
        invocation: Invocation,
    ) -> DirectRun<M> {
        let (callback, rx) = answer_channel();
        let job = Job::accepted(id, request, invocation, callback);
        DirectRun::new(Arc::clone(&self.shared), claim, lender, job, rx)
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

/// A blocking submit's callback, and the channel its answer arrives on.
fn answer_channel() -> (
    ExecCallback,
    mpsc::Receiver<Result<ResponseObject, RomaError>>,
) {
    let (tx, rx) = mpsc::channel();
    let callback: ExecCallback = Box::new(move |r| {
        let _ = tx.send(r);
    });
    (callback, rx)
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
