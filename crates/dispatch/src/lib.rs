//! roma's host-side dispatcher: N worker slots, their queues, the host's version cache, and crash
//! recovery.
//!
//! [`Dispatcher`] is the engine-neutral heart of `roma::RomaService`. It accepts loads and
//! executions, places them on worker slots, and guarantees every accepted request exactly one
//! answer. What runs the code is a [`WorkerBackend`] (a jailed worker process in production, the
//! facade's `WorkerClient`; fakes in tests). The crate speaks roma-core's types and knows no
//! engine, no sandbox and no transport, so its threads, queues and recovery are tested without a
//! process (`tests/all`, over the fake backend of `tests/all/fake.rs`). The worker side never
//! links it: nothing here crosses the process line.
//!
//! > An internal crate of roma: a service owner wants `roma::RomaService`, which runs a
//! > dispatcher over jailed workers; this crate's API is for that facade and for tests.
//!
//! Trust: nothing here reads bytes from a worker. A backend turns what its worker sends into
//! roma-core's typed results, bounded, before the dispatcher sees them; the dispatcher trusts a
//! backend call to return in bounded time ([`WorkerBackend`]'s contract) and contains one that
//! panics or dies. Callbacks and metadata are the caller's: a panic in either is contained too.
//!
//! The files: `dispatcher.rs` (the API: admission, placement, the submit forms, cancel, stop,
//! stats), `state.rs` (what the one lock guards), `worker.rs` (a slot thread), `direct.rs` (the
//! direct hand-off), `job.rs` (an accepted request and its callback), `config.rs`, `backend.rs`
//! (the backend's contract), `version_cache.rs`, `timer.rs` (load timeouts), `backoff.rs` and
//! `recycle.rs` (the respawn and recycling rules), `future.rs` and `oneshot.rs` (the async forms),
//! `answer_poll.rs` (how a blocking caller polls for its answer in the low-latency mode).
//!
//! # Threads
//! - **One thread per slot** (`roma-slot-<i>`). It owns that slot's backend, created on the
//!   thread by the factory, and is the only caller of it. It runs one request at a time.
//! - **One load-timer thread** (`roma-load-timer`). It answers loads that exceed
//!   [`DispatcherConfig::load_timeout`] with `Timeout`.
//! - **Caller threads** call the API. `execute`, `load` and `cancel` never wait on a worker.
//!   `stop` waits for in-flight requests to finish. A caller in `execute_blocking`, or one
//!   that got a [`DirectRun`] from `execute_here_or_async`, may run its own request on an
//!   idle slot's backend (the direct hand-off, below).
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
//! thread sleeps through it. [`Dispatcher::execute_here_or_async`] offers the same claim to an
//! async caller that has a thread it may block (a [`DirectRun`] to run), and otherwise queues
//! the request as `execute_async` does. The invariants:
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

mod answer_poll;
mod backend;
mod backoff;
mod config;
mod direct;
mod dispatcher;
mod future;
mod job;
mod oneshot;
mod recycle;
mod state;
mod timer;
mod version_cache;
mod worker;

pub use backend::{Interrupt, WorkerBackend};
pub use config::{DEFAULT_LOAD_TIMEOUT, DEFAULT_WORKER_QUEUE_MAX_ITEMS, DispatcherConfig};
pub use direct::DirectRun;
pub use dispatcher::{Dispatcher, DispatcherStats, Submitted, WorkerStats};
pub use future::DispatchFuture;
pub use job::{BatchCallback, ExecCallback, ExecutionToken, LoadCallback};
pub use state::WorkerHealth;
pub use version_cache::{CachedVersion, VersionCache};
