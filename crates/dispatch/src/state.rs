//! The dispatcher's shared state: every queue, every slot's status and the version cache, under
//! one mutex, with the placement policy (least busy) and work stealing as plain methods.
//!
//! One lock is enough here: a request costs hundreds of microseconds in a worker (a fresh V8
//! context alone is ~300 µs) while each critical section is a few map operations, and one lock
//! makes "taken from a queue" and "marked running" a single step, which `cancel` relies on.
//! Nothing that can block or call user code runs under the lock: no backend call, no callback.

use super::backend::Interrupt;
use super::config::Resolved;
use super::direct::{Claim, Lend};
use super::job::{Job, LoadAggregate, LoadCallback, LoadJob};
use crate::VersionCache;
use roma_core::{ResponseObject, RomaError};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Whether a slot can take work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerHealth {
    /// Serving.
    Up,
    /// Its backend died or panicked; a new one is being created and loaded, after a backoff
    /// wait when the dead one had not proved healthy (a crash loop). Its queue waits (or is
    /// stolen by idle slots); it gets new work only when no slot is up; it is sent loads.
    Respawning,
    /// Creating a backend failed; retrying with backoff. It gets no executions and no loads
    /// (when it comes back it replays the whole version cache).
    Down,
}

/// The part of the state both the API and the slot threads touch.
pub(crate) struct Shared<M> {
    state: Mutex<State<M>>,
    /// One per slot: wakes that slot's thread.
    pub slot_cv: Vec<Condvar>,
    /// One per slot, bumped by every wake of that slot: what a slot thread polling for work
    /// (the low-latency mode, [`super::DispatcherConfig::idle_poll`]) watches without the lock.
    pub slot_bell: Vec<AtomicU64>,
    /// How long blocking callers poll for their answers in the low-latency mode.
    pub answer_poll: crate::answer_poll::AnswerPoll,
    /// Wakes the load-timeout thread.
    pub timer_cv: Condvar,
    /// Wakes submitters waiting for room in the queues (`State::room_waiters` of them).
    pub room_cv: Condvar,
    pub config: Resolved,
    /// Distinguishes this dispatcher's tokens from another's.
    pub dispatcher_id: u64,
    /// Dispatcher threads that have not exited yet, for `stop` to wait on.
    live_threads: Mutex<usize>,
    threads_cv: Condvar,
}

thread_local! {
    /// The id of the dispatcher whose thread this is; 0 on other threads.
    static DISPATCHER_THREAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// The id of the dispatcher this thread stands in for a slot thread of (running a
    /// request on a borrowed backend, `direct.rs`); 0 otherwise.
    static STANDING_IN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Held by a dispatcher thread for its whole life; counts it out when it exits (panic
/// included), after everything it owned, its backend included, has been dropped.
pub(crate) struct ThreadGuard<M> {
    shared: Arc<Shared<M>>,
}

/// What [`Shared::stand_in`] returns: puts the thread's mark back when dropped.
pub(crate) struct StandIn {
    before: (u64, u64),
}

impl Drop for StandIn {
    fn drop(&mut self) {
        DISPATCHER_THREAD.with(|t| t.set(self.before.0));
        STANDING_IN.with(|t| t.set(self.before.1));
    }
}

impl<M> Drop for ThreadGuard<M> {
    fn drop(&mut self) {
        let mut live = self
            .shared
            .live_threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *live = live.saturating_sub(1);
        self.shared.threads_cv.notify_all();
    }
}

impl<M> Shared<M> {
    pub fn new(config: Resolved, dispatcher_id: u64) -> Self {
        let slots = (0..config.workers).map(|_| SlotState::new()).collect();
        Shared {
            state: Mutex::new(State {
                slots,
                queued: 0,
                capacity: config.capacity,
                next_id: 1,
                cache: VersionCache::new(config.cache_size),
                loads: HashMap::new(),
                stopping: false,
                room_waiters: 0,
            }),
            slot_cv: (0..config.workers).map(|_| Condvar::new()).collect(),
            slot_bell: (0..config.workers).map(|_| AtomicU64::new(0)).collect(),
            answer_poll: Default::default(),
            timer_cv: Condvar::new(),
            room_cv: Condvar::new(),
            config,
            dispatcher_id,
            live_threads: Mutex::new(0),
            threads_cv: Condvar::new(),
        }
    }

    /// Counts in a thread about to be spawned; returns the guard its body must hold. Drop the
    /// guard unused if the spawn fails.
    pub fn thread_guard(self: &Arc<Self>) -> ThreadGuard<M> {
        *self
            .live_threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        ThreadGuard {
            shared: Arc::clone(self),
        }
    }

    /// Marks the calling thread as one of this dispatcher's (call first in each thread body).
    pub fn mark_thread(&self) {
        DISPATCHER_THREAD.with(|t| t.set(self.dispatcher_id));
    }

    /// Whether the calling thread is one of this dispatcher's.
    pub fn on_own_thread(&self) -> bool {
        DISPATCHER_THREAD.with(|t| t.get()) == self.dispatcher_id
    }

    /// Counts the calling thread as one of this dispatcher's until the guard drops: a
    /// submitting thread while it runs a request on a borrowed backend, where it stands in
    /// for the slot thread (a host function it runs inline must not block on the dispatcher).
    pub fn stand_in(&self) -> StandIn {
        let before = (
            DISPATCHER_THREAD.with(|t| t.replace(self.dispatcher_id)),
            STANDING_IN.with(|t| t.replace(self.dispatcher_id)),
        );
        StandIn { before }
    }

    /// Whether the calling thread holds a backend of this dispatcher's (see
    /// [`Shared::stand_in`]): the slot thread waits for it, so it must not wait for that one.
    pub fn standing_in(&self) -> bool {
        STANDING_IN.with(|t| t.get()) == self.dispatcher_id
    }

    /// Waits until every dispatcher thread has exited.
    pub fn wait_threads_exited(&self) {
        let mut live = self
            .live_threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *live > 0 {
            live = self
                .threads_cv
                .wait(live)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Locks the state. A poisoned lock (a panic in the dispatcher's own short critical
    /// sections, never in user code) is recovered: the state is plain data kept consistent
    /// between statements.
    pub fn lock(&self) -> MutexGuard<'_, State<M>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes every slot thread (work to steal, or stop).
    pub fn wake_all(&self) {
        for i in 0..self.slot_cv.len() {
            self.wake(i);
        }
    }

    /// Tells submitters waiting for room that a queued request left the queues (or that the
    /// dispatcher stops). Costs nothing when none waits, so the hot path pays no wake-up.
    pub fn room_freed(&self, st: &State<M>) {
        if st.room_waiters > 0 {
            self.room_cv.notify_all();
        }
    }

    /// Waits on `room_cv` until `deadline`, counted as a waiter meanwhile; returns the guard
    /// and whether the deadline has passed.
    pub fn wait_for_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, State<M>>,
        deadline: std::time::Instant,
    ) -> (MutexGuard<'a, State<M>>, bool) {
        let now = std::time::Instant::now();
        if now >= deadline {
            return (st, true);
        }
        st.room_waiters += 1;
        let (mut st, _) = self
            .room_cv
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(PoisonError::into_inner);
        st.room_waiters -= 1;
        let passed = std::time::Instant::now() >= deadline;
        (st, passed)
    }

    /// Wakes slot `i`.
    pub fn wake(&self, i: usize) {
        if let Some(bell) = self.slot_bell.get(i) {
            bell.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(cv) = self.slot_cv.get(i) {
            cv.notify_all();
        }
    }
}

/// What a slot is running.
pub(crate) struct Running {
    pub id: u64,
    pub cancel_requested: bool,
}

/// One slot's queues and status.
pub(crate) struct SlotState<M> {
    pub health: WorkerHealth,
    /// Executions assigned to this slot, by request id (ids increase, so this is FIFO).
    pub queue: BTreeMap<u64, Job<M>>,
    /// Loads for this slot, taken before any execution.
    pub loads: VecDeque<LoadJob>,
    pub running: Option<Running>,
    /// Whether the slot thread is busy with work it took (a load or an execution, until its
    /// callback has returned). Cleared when the thread comes back for more.
    pub active: bool,
    pub interrupter: Option<Arc<dyn Interrupt>>,
    /// Planned replacements of the slot's backend so far.
    pub recycled: u64,
    /// The direct hand-off (`direct.rs`); all of it false, empty or `None` while it is off.
    pub lending: Lending<M>,
}

/// A slot's side of the direct hand-off: whether its backend is parked where a submitting
/// thread may borrow it, whether one has, and what the borrowers left for the slot thread.
pub(crate) struct Lending<M> {
    /// Where the slot thread parks its backend; set once, when the slot starts.
    pub lender: Option<Arc<dyn Lend<M>>>,
    /// The slot thread is in its idle wait and its backend is in the lender: it takes the
    /// backend back (clearing this, under the lock) before it does anything else.
    pub parked: bool,
    /// A submitting thread holds the parked backend; the slot thread does not touch it.
    pub claimed: bool,
    /// The slot thread woke during a claim and wants the backend back: the borrower wakes it
    /// when it returns the backend.
    pub wants_back: bool,
    /// The borrower found the backend dead or saw it die: the slot thread replaces it before
    /// anything else.
    pub respawn_due: bool,
    /// What borrowers did since the slot thread last took its backend back.
    pub report: LendReport,
    /// How many more claims the request-count recycling rule allows before the slot thread
    /// must count them (`None`: no such rule).
    pub budget: Option<u64>,
    /// No claim from this moment (the age recycling rule; `None`: no such rule).
    pub until: Option<std::time::Instant>,
    /// Whether the parked backend has proved healthy (see `backoff.rs`); borrowers check
    /// its liveness after an execution only while it has not.
    pub proven: bool,
}

/// What borrowers did with a slot's backend, for the slot thread's own accounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LendReport {
    /// Executions run on it.
    pub served: u64,
    /// One of them completed with the backend still alive afterwards.
    pub proved: bool,
}

impl<M> Lending<M> {
    fn new() -> Self {
        Lending {
            lender: None,
            parked: false,
            claimed: false,
            wants_back: false,
            respawn_due: false,
            report: LendReport::default(),
            budget: None,
            until: None,
            proven: false,
        }
    }
}

impl<M> SlotState<M> {
    fn new() -> Self {
        SlotState {
            health: WorkerHealth::Respawning,
            queue: BTreeMap::new(),
            loads: VecDeque::new(),
            running: None,
            active: false,
            interrupter: None,
            recycled: 0,
            lending: Lending::new(),
        }
    }

    /// Queued plus running: how long a new request would wait here, in requests.
    fn busy(&self) -> usize {
        self.queue.len() + usize::from(self.running.is_some())
    }
}

/// What a slot thread takes next.
pub(crate) enum Work<M> {
    Load(LoadJob),
    Exec(Job<M>),
}

/// A load callback ready to be called (outside the lock).
pub(crate) type LoadReply = (LoadCallback, Result<ResponseObject, RomaError>);

/// Everything behind the lock.
pub(crate) struct State<M> {
    pub slots: Vec<SlotState<M>>,
    /// Executions queued (not running) over all slots.
    pub queued: usize,
    pub capacity: usize,
    pub next_id: u64,
    pub cache: VersionCache,
    /// Loads not yet answered by every enlisted worker, by sequence number.
    pub loads: HashMap<u64, LoadAggregate>,
    pub stopping: bool,
    /// Submitters blocked in `Shared::wait_for_room`.
    pub room_waiters: usize,
}

impl<M> State<M> {
    /// The slot a new execution goes to: among up slots the least busy (queued + running),
    /// ties to the lowest index; if none is up, the least busy respawning slot; never a down
    /// one. `None` when every slot is down.
    pub fn pick_slot(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.health {
                WorkerHealth::Up => Some(((0u8, s.busy()), i)),
                WorkerHealth::Respawning => Some(((1u8, s.busy()), i)),
                WorkerHealth::Down => None,
            })
            .min()
            .map(|(_, i)| i)
    }

    /// The slot a blocking submit may borrow for request `id`, claimed for it: the slot
    /// placement would choose (the least busy up slot), and only when it is idle in every
    /// sense: nothing queued anywhere (older requests go first), no load pending for it, its
    /// thread parked in its idle wait with the backend in the lender, no recycling rule about
    /// to come due. Marks the slot busy with `id` exactly as [`State::take_work`] would.
    pub fn claim(&mut self, id: u64, direct: bool) -> Option<(Claim, Arc<dyn Lend<M>>)> {
        if !direct || self.queued != 0 || self.stopping {
            return None;
        }
        let i = self.pick_slot()?;
        let s = &mut self.slots[i];
        let idle = s.health == WorkerHealth::Up
            && s.lending.parked
            && !s.lending.claimed
            && !s.lending.respawn_due
            && !s.active
            && s.running.is_none()
            && s.queue.is_empty()
            && s.loads.is_empty();
        if !idle
            || s.lending.budget == Some(0)
            || s.lending
                .until
                .is_some_and(|t| std::time::Instant::now() >= t)
        {
            return None;
        }
        let lender = Arc::clone(s.lending.lender.as_ref()?);
        if let Some(b) = &mut s.lending.budget {
            *b -= 1;
        }
        s.lending.claimed = true;
        s.active = true;
        s.running = Some(Running {
            id,
            cancel_requested: false,
        });
        let claim = Claim {
            index: i,
            proven: s.lending.proven,
        };
        Some((claim, lender))
    }

    /// Ends a claim on slot `i` whose backend was never taken out of its parking (the
    /// borrower gave up before it ran anything); returns whether the slot thread asked for its
    /// backend meanwhile and must be woken.
    pub fn unclaim(&mut self, i: usize) -> bool {
        let s = &mut self.slots[i];
        s.lending.claimed = false;
        s.active = false;
        s.running = None;
        if let Some(b) = &mut s.lending.budget {
            *b += 1;
        }
        std::mem::take(&mut s.lending.wants_back)
    }

    /// Queues `job` on slot `i`.
    pub fn enqueue(&mut self, i: usize, job: Job<M>) {
        self.queued += 1;
        self.slots[i].queue.insert(job.id, job);
    }

    /// The next thing slot `i` should do: its oldest load, else its oldest execution, else the
    /// oldest execution of the slot with the longest queue (stealing). Marks an execution running.
    pub fn take_work(&mut self, i: usize) -> Option<Work<M>> {
        if let Some(load) = self.slots[i].loads.pop_front() {
            self.slots[i].active = true;
            return Some(Work::Load(load));
        }
        let job = match self.slots[i].queue.pop_first() {
            Some((_, job)) => job,
            None => self.steal_for(i)?,
        };
        self.queued -= 1;
        self.slots[i].active = true;
        self.slots[i].running = Some(Running {
            id: job.id,
            cancel_requested: false,
        });
        Some(Work::Exec(job))
    }

    /// Takes the oldest job of the slot with the longest queue, other than `thief`, among the
    /// slots that cannot run it now: busy with another request, respawning or down. A job
    /// queued on an idle, up slot is not stolen: that slot was woken for it and takes it at
    /// once, and stealing it would only make placement depend on which thread wakes first.
    /// A slot is busy from taking a load or an execution until its thread comes back for more
    /// (so a slow callback on it does not hold up its queue).
    fn steal_for(&mut self, thief: usize) -> Option<Job<M>> {
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter(|(j, s)| {
                *j != thief && !s.queue.is_empty() && (s.active || s.health != WorkerHealth::Up)
            })
            .max_by_key(|(j, s)| (s.queue.len(), std::cmp::Reverse(*j)))
            .map(|(j, _)| j)?;
        self.slots[victim].queue.pop_first().map(|(_, job)| job)
    }

    /// Ends slot `i`'s running execution; returns whether `cancel` asked for it meanwhile.
    pub fn finish_running(&mut self, i: usize) -> bool {
        self.slots[i]
            .running
            .take()
            .is_some_and(|r| r.cancel_requested)
    }

    /// Records one worker's answer to load `seq`. When it was the last, removes the load and,
    /// if it failed anywhere, drops the version from the cache (unless a newer load replaced
    /// it); returns the caller's callback with the outcome unless the timer or `stop` already
    /// answered.
    pub fn ack_load(&mut self, seq: u64, result: Result<(), RomaError>) -> Option<LoadReply> {
        let agg = self.loads.get_mut(&seq)?;
        if let Err(e) = result {
            agg.first_error.get_or_insert(e);
        }
        agg.pending = agg.pending.saturating_sub(1);
        if agg.pending > 0 {
            return None;
        }
        let mut agg = self.loads.remove(&seq)?;
        let outcome = match agg.first_error.take() {
            Some(e) => {
                self.cache.remove_if_seq(&agg.version, seq);
                Err(e)
            }
            None => Ok(agg.response()),
        };
        agg.callback.take().map(|cb| (cb, outcome))
    }

    /// Marks slot `i` down after a failed respawn: its queued executions move to the least busy
    /// live slot, or, when no slot is live, are returned to be failed; its pending loads are
    /// acknowledged (the slot replays the whole cache when it comes back). Returns the jobs to
    /// fail and the load callbacks to call.
    pub fn mark_down(&mut self, i: usize) -> (Vec<Job<M>>, Vec<LoadReply>) {
        self.slots[i].health = WorkerHealth::Down;
        self.slots[i].interrupter = None;
        let queue = std::mem::take(&mut self.slots[i].queue);
        let mut orphans = Vec::new();
        for (_, job) in queue {
            self.queued -= 1;
            match self.pick_slot() {
                Some(j) => self.enqueue(j, job),
                None => orphans.push(job),
            }
        }
        let loads: Vec<LoadJob> = self.slots[i].loads.drain(..).collect();
        let replies = loads
            .into_iter()
            .filter_map(|l| self.ack_load(l.seq, Ok(())))
            .collect();
        (orphans, replies)
    }

    /// For a slot coming back: the cached versions it must replay, oldest load first. Versions
    /// whose load is still in the slot's control queue are left to that queue.
    pub fn replay_list(&self, i: usize) -> Vec<Arc<roma_core::CodeObject>> {
        let first_pending = self.slots[i]
            .loads
            .iter()
            .map(|l| l.seq)
            .min()
            .unwrap_or(u64::MAX);
        self.cache
            .loaded_before(first_pending)
            .into_iter()
            .map(|v| v.code)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roma_core::{CodeObject, Invocation};
    use std::time::{Duration, Instant};

    fn state(workers: usize) -> State<()> {
        let shared = Shared::<()>::new(
            Resolved {
                workers,
                capacity: 100,
                cache_size: 8,
                load_timeout: Duration::from_secs(1),
                default_timeout: Duration::from_secs(1),
                backoff_initial: Duration::from_millis(1),
                backoff_max: Duration::from_millis(1),
                recycle: Default::default(),
                idle_poll: None,
                direct: true,
            },
            1,
        );
        let mut st = shared.state.into_inner().unwrap();
        for s in &mut st.slots {
            s.health = WorkerHealth::Up;
        }
        st
    }

    fn job(st: &mut State<()>) -> Job<()> {
        let id = st.next_id;
        st.next_id += 1;
        Job {
            id,
            caller_id: String::new(),
            invocation: Invocation::new("v", "h", vec![]),
            metadata: Arc::new(()),
            callback: Box::new(|_| {}),
            accepted: Instant::now(),
        }
    }

    fn push(st: &mut State<()>, slot: usize) -> u64 {
        let j = job(st);
        let id = j.id;
        st.enqueue(slot, j);
        id
    }

    fn taken_id(w: Option<Work<()>>) -> Option<u64> {
        match w {
            Some(Work::Exec(j)) => Some(j.id),
            _ => None,
        }
    }

    #[test]
    fn placement_prefers_up_then_respawning_never_down() {
        let mut st = state(3);
        assert_eq!(st.pick_slot(), Some(0));
        push(&mut st, 0);
        assert_eq!(st.pick_slot(), Some(1));
        st.slots[1].health = WorkerHealth::Down;
        st.slots[2].health = WorkerHealth::Respawning;
        assert_eq!(
            st.pick_slot(),
            Some(0),
            "a busy up slot beats an idle respawning one"
        );
        st.slots[0].health = WorkerHealth::Down;
        assert_eq!(st.pick_slot(), Some(2));
        st.slots[2].health = WorkerHealth::Down;
        assert_eq!(st.pick_slot(), None);
    }

    #[test]
    fn stealing_takes_only_from_slots_that_cannot_run_the_job_now() {
        let mut st = state(3);
        let a = push(&mut st, 0);
        let b = push(&mut st, 0);
        // Slot 0 is idle and up: it takes its own work; slot 1 does not steal it.
        assert!(st.take_work(1).is_none());
        st.slots[0].active = true;
        assert_eq!(taken_id(st.take_work(1)), Some(a), "oldest first");
        st.slots[0].active = false;
        st.slots[0].health = WorkerHealth::Respawning;
        assert_eq!(taken_id(st.take_work(2)), Some(b));
        assert_eq!(st.queued, 0);
        assert!(st.slots[1].running.is_some() && st.slots[1].active);
    }

    /// A lender that must never be run by these tests.
    struct NoLend;
    impl Lend<()> for NoLend {
        fn run(&self, _: &Shared<()>, _: Claim, _: Job<()>) {
            unreachable!("state tests never run a claim")
        }
    }

    fn park(st: &mut State<()>, i: usize) {
        st.slots[i].lending.lender = Some(Arc::new(NoLend));
        st.slots[i].lending.parked = true;
    }

    #[test]
    fn a_claim_takes_only_the_slot_placement_picks_when_it_is_parked_and_nothing_waits() {
        let mut st = state(2);
        assert!(st.claim(1, true).is_none(), "not parked");
        park(&mut st, 0);
        park(&mut st, 1);
        assert!(st.claim(1, false).is_none(), "the hand-off is off");
        let (claim, _) = st.claim(7, true).expect("slot 0 is idle");
        assert_eq!(claim.index, 0);
        let s = &st.slots[0];
        assert!(s.lending.claimed && s.active);
        assert_eq!(s.running.as_ref().map(|r| r.id), Some(7));
        assert_eq!(st.queued, 0, "a claimed request is never queued");
        // Slot 0 is busy now: placement picks slot 1, which is parked too.
        assert_eq!(st.claim(8, true).map(|(c, _)| c.index), Some(1));
        st.slots[1].lending.claimed = false;
        st.slots[1].active = false;
        st.slots[1].running = None;
        // Anything queued anywhere goes first.
        push(&mut st, 0);
        assert!(st.claim(9, true).is_none());
        st.slots[0].queue.clear();
        st.queued = 0;
        assert!(st.claim(9, true).is_some());
        st.slots[1].lending.claimed = false;
        st.slots[1].active = false;
        st.slots[1].running = None;
        // A pending load, a spent request budget or a due respawn refuse it too.
        st.slots[1].loads.push_back(LoadJob {
            seq: 1,
            code: Arc::new(CodeObject::default()),
        });
        assert!(st.claim(10, true).is_none());
        st.slots[1].loads.clear();
        st.slots[1].lending.budget = Some(1);
        assert!(st.claim(10, true).is_some());
        assert_eq!(st.slots[1].lending.budget, Some(0));
        st.slots[1].lending.claimed = false;
        st.slots[1].active = false;
        st.slots[1].running = None;
        assert!(st.claim(11, true).is_none(), "budget spent");
        st.slots[1].lending.budget = None;
        st.slots[1].lending.respawn_due = true;
        assert!(st.claim(11, true).is_none());
        st.slots[1].lending.respawn_due = false;
        st.slots[1].lending.until = Some(Instant::now());
        assert!(st.claim(11, true).is_none(), "past the age limit");
        st.slots[1].lending.until = None;
        st.stopping = true;
        assert!(st.claim(11, true).is_none());
    }

    #[test]
    fn loads_come_before_executions() {
        let mut st = state(1);
        push(&mut st, 0);
        st.slots[0].loads.push_back(LoadJob {
            seq: 1,
            code: Arc::new(CodeObject::default()),
        });
        assert!(matches!(st.take_work(0), Some(Work::Load(_))));
        assert!(matches!(st.take_work(0), Some(Work::Exec(_))));
    }

    #[test]
    fn a_slot_marked_down_hands_its_queue_on_and_acknowledges_its_loads() {
        let mut st = state(2);
        let code = Arc::new(CodeObject {
            version_string: "v".into(),
            js: "x".into(),
            ..Default::default()
        });
        let (seq, _) = st.cache.insert(Arc::clone(&code));
        st.loads.insert(
            seq,
            LoadAggregate {
                version: "v".into(),
                caller_id: String::new(),
                pending: 2,
                first_error: None,
                callback: Some(Box::new(|_| {})),
                accepted: Instant::now(),
                deadline: Instant::now(),
            },
        );
        for s in 0..2 {
            st.slots[s].loads.push_back(LoadJob {
                seq,
                code: Arc::clone(&code),
            });
        }
        push(&mut st, 0);
        push(&mut st, 0);
        let (orphans, replies) = st.mark_down(0);
        assert!(orphans.is_empty());
        assert!(replies.is_empty(), "slot 1 has not answered yet");
        assert_eq!(st.slots[1].queue.len(), 2);
        assert_eq!(st.queued, 2);
        assert_eq!(st.loads[&seq].pending, 1);
        // With no live slot left, the queue comes back to be failed.
        let (orphans, replies) = st.mark_down(1);
        assert_eq!(orphans.len(), 2);
        assert_eq!(replies.len(), 1, "the load is answered");
        assert_eq!(st.queued, 0);
    }

    #[test]
    fn replay_leaves_pending_loads_to_the_queue() {
        let mut st = state(1);
        let code = |v: &str| {
            Arc::new(CodeObject {
                version_string: v.into(),
                js: "x".into(),
                ..Default::default()
            })
        };
        st.cache.insert(code("a"));
        let (pending, _) = st.cache.insert(code("b"));
        st.slots[0].loads.push_back(LoadJob {
            seq: pending,
            code: code("b"),
        });
        let names: Vec<String> = st
            .replay_list(0)
            .iter()
            .map(|c| c.version_string.clone())
            .collect();
        assert_eq!(names, vec!["a"]);
        st.slots[0].loads.clear();
        assert_eq!(st.replay_list(0).len(), 2);
    }
}
