//! The direct hand-off: a blocking submit that finds a slot idle runs its request on its own
//! thread, on that slot's backend, and the slot thread stays asleep.
//!
//! Through a slot thread a blocking request costs two thread wake-ups beyond the worker's own:
//! the caller wakes the slot thread, and the slot thread, once the answer is in, wakes the
//! caller. On an idle machine each is a futex wake of a thread whose CPU may be halted, and
//! together they are most of an idle request's latency. A caller that is going to wait anyway
//! can drive the worker's channel itself: it claims the slot, takes the parked backend, runs
//! the exchange, gives the backend back and has its answer in hand, with no dispatcher thread
//! woken.
//!
//! The rules ("Direct hand-off" in the crate docs): a slot's backend is parked
//! ([`Parking`]) only by its slot thread, only while that thread waits with nothing to do; a
//! claim ([`super::state::State::claim`]) is made under the dispatcher lock and marks the slot
//! busy exactly as the slot thread's own take does; the borrower holds the backend in a
//! [`Loan`], whose every end (an answer, a dead backend, a panic) gives backend and slot back
//! under the lock; and the slot thread never touches a claimed backend.

use super::backend::WorkerBackend;
use super::job::{ExecutionToken, Job, call_guarded};
use super::state::Shared;
use super::state::WorkerHealth;
use super::worker::{alive, execute_job, guarded, respond};
use roma_core::{ErrorKind, ResponseObject, RomaError};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Instant;

/// What a claim on a slot gives its borrower: a way to run one job on the slot's backend,
/// whatever the backend's type (the dispatcher's state does not name it).
pub(crate) trait Lend<M>: Send + Sync {
    /// Runs `job` on the backend of the slot `claim` names, which the caller claimed for the
    /// job's id, on the calling thread, and gives the backend back. The job is answered here,
    /// on this thread, unless the backend turns out dead before it is sent anything: the job
    /// then goes to the slot's queue, and the slot thread replaces the backend and runs it.
    fn run(&self, shared: &Shared<M>, claim: Claim, job: Job<M>);
}

/// A claimed slot, as [`super::state::State::claim`] found it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Claim {
    pub index: usize,
    /// Whether the backend had proved healthy (see `backoff.rs`) when it was parked.
    pub proven: bool,
}

/// Where a slot's backend waits while its thread is idle. The slot thread puts it there just
/// before it sleeps and takes it out before it does anything else; a borrower takes it out
/// and puts it back. The dispatcher lock says whose turn it is; this mutex only makes the move
/// itself safe, and is never held while the dispatcher lock is taken.
pub(crate) struct Parking<B> {
    backend: Mutex<Option<B>>,
}

impl<B> Parking<B> {
    pub fn new() -> Self {
        Parking {
            backend: Mutex::new(None),
        }
    }

    /// Parks `backend`.
    pub fn put(&self, backend: Option<B>) {
        *self.backend.lock().unwrap_or_else(PoisonError::into_inner) = backend;
    }

    /// Takes the parked backend out.
    pub fn take(&self) -> Option<B> {
        self.backend
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// How a loan ends.
enum Fate<M> {
    /// The request ran; `fatal`: the backend must be replaced; `proved`: it completed an
    /// execution and was alive afterwards.
    Served { fatal: bool, proved: bool },
    /// The backend was dead before the request was sent: the job waits at its place in the
    /// slot's queue for the backend's replacement.
    Requeue(Job<M>),
    /// The borrower unwound (a dispatcher bug): the backend is replaced, since nothing says
    /// what state it is in.
    Broken,
}

/// A claimed slot's backend in the borrower's hands. Giving it back (or dropping it, on a
/// panic) puts the backend back into its parking and then, under the dispatcher lock, ends
/// the claim: the slot is idle again, or, when the backend must be replaced, respawning with
/// a replacement due; and the slot thread is woken if it asked for its backend meanwhile.
struct Loan<'a, M, B> {
    parking: &'a Parking<B>,
    shared: &'a Shared<M>,
    index: usize,
    backend: Option<B>,
    settled: bool,
}

impl<M, B> Loan<'_, M, B> {
    /// Ends the loan; returns a requeued job that must be answered `Cancelled` instead (cancel
    /// flagged it, or the dispatcher is stopping and has emptied the queues).
    fn give_back(&mut self, fate: Fate<M>) -> Option<Job<M>> {
        self.settled = true;
        // The backend first: once the claim is over, the slot thread may take it at once.
        self.parking.put(self.backend.take());
        let i = self.index;
        let mut st = self.shared.lock();
        let mut refused = None;
        let fatal = match fate {
            Fate::Served { fatal, proved } => {
                let report = &mut st.slots[i].lending.report;
                report.served += 1;
                report.proved |= proved;
                fatal
            }
            Fate::Requeue(job) => {
                let cancelled = st.finish_running(i);
                if cancelled || st.stopping {
                    refused = Some(job);
                } else {
                    st.enqueue(i, job);
                }
                true
            }
            Fate::Broken => true,
        };
        let slot = &mut st.slots[i];
        slot.running = None;
        slot.lending.claimed = false;
        let asked = std::mem::take(&mut slot.lending.wants_back);
        if fatal {
            // As the slot thread marks itself when its own call finds the backend dead: no
            // more claims or placements ahead of live slots, and its queue may be stolen. It
            // stays busy until it has replaced the backend.
            slot.lending.respawn_due = true;
            if slot.health == WorkerHealth::Up {
                slot.health = WorkerHealth::Respawning;
            }
        } else {
            slot.active = false;
        }
        drop(st);
        if fatal {
            self.shared.wake_all();
        } else if asked {
            self.shared.wake(i);
        }
        refused
    }
}

impl<M, B> Drop for Loan<'_, M, B> {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.give_back(Fate::Broken);
        }
    }
}

impl<M: Send + Sync + 'static, B: WorkerBackend<M>> Lend<M> for Parking<B> {
    fn run(&self, shared: &Shared<M>, claim: Claim, job: Job<M>) {
        let taken = Instant::now();
        let index = claim.index;
        let mut loan = Loan {
            parking: self,
            shared,
            index,
            backend: self.take(),
            settled: false,
        };
        // A backend killed from outside while it was parked is replaced before it is given
        // the request, which then runs on the new one, as on the slot thread.
        let live = loan.backend.as_mut().is_some_and(|b| alive(b));
        let Some(b) = loan.backend.as_mut().filter(|_| live) else {
            if let Some(job) = loan.give_back(Fate::Requeue(job)) {
                job.finish(Err(RomaError::new(
                    ErrorKind::Cancelled,
                    "cancelled before it ran",
                )));
            }
            return;
        };
        let (result, mut fatal) = execute_job(b, shared, &job);
        let cancelled = shared.lock().finish_running(index);
        let result = if cancelled {
            Err(RomaError::new(
                ErrorKind::Cancelled,
                "cancelled while running",
            ))
        } else {
            result.map(|out| respond(&job, out, taken, index))
        };
        let mut proved = false;
        if !fatal {
            // Checked once per backend, as the slot thread does: a zombie is no proof.
            proved = !claim.proven && alive(b);
            // The slot has run out of work: the backend pre-warms here, as it would on the
            // slot thread, and one that dies doing so is replaced.
            let (r, panicked) = guarded("idle", || {
                b.idle();
                Ok(())
            });
            fatal = panicked || r.is_err() || !alive(b);
        }
        let _ = loan.give_back(Fate::Served { fatal, proved });
        job.finish(result);
    }
}

/// A request that found its slot idle and holds it (a claim, rule 2 of "Direct hand-off" in
/// the crate docs), to run on the thread that calls [`DirectRun::run`]. Made by
/// [`Dispatcher::execute_here_or_async`](crate::Dispatcher::execute_here_or_async) (and inside
/// `execute_blocking`).
///
/// While it is held the slot serves nothing else (a load for it waits), so it is meant to be
/// run at once. Dropping it unrun ends the claim and drops the request, which never ran: its
/// metadata is dropped and nothing is answered, as for a request whose submit call failed.
pub struct DirectRun<M: Send + Sync + 'static> {
    shared: Arc<Shared<M>>,
    /// `None` once run.
    held: Option<Held<M>>,
    rx: mpsc::Receiver<Result<ResponseObject, RomaError>>,
    token: ExecutionToken,
}

/// What a claim holds until it runs.
struct Held<M> {
    claim: Claim,
    lender: Arc<dyn Lend<M>>,
    job: Job<M>,
}

impl<M: Send + Sync + 'static> DirectRun<M> {
    /// The claim on slot `claim` for `job`, whose callback sends on the channel `rx` reads.
    pub(crate) fn new(
        shared: Arc<Shared<M>>,
        claim: Claim,
        lender: Arc<dyn Lend<M>>,
        job: Job<M>,
        rx: mpsc::Receiver<Result<ResponseObject, RomaError>>,
    ) -> Self {
        let token = ExecutionToken {
            dispatcher: shared.dispatcher_id,
            request: job.id,
        };
        DirectRun {
            shared,
            held: Some(Held { claim, lender, job }),
            rx,
            token,
        }
    }

    /// The request's token: another thread may cancel it with it while it runs.
    pub fn token(&self) -> &ExecutionToken {
        &self.token
    }

    /// Runs the request on this thread, on the claimed slot's backend, and returns its
    /// answer. It blocks for as long as the request runs (its timeout bounds that): under an
    /// async runtime, call it only where blocking holds up no other task. A
    /// backend found dead before the request was sent hands the request to the slot thread,
    /// which replaces the backend and runs it; this then waits for that answer.
    pub fn run(mut self) -> Result<ResponseObject, RomaError> {
        if let Some(Held { claim, lender, job }) = self.held.take() {
            let _stand_in = self.shared.stand_in();
            lender.run(&self.shared, claim, job);
        }
        await_answer(&self.shared, &self.rx)
    }
}

impl<M: Send + Sync + 'static> Drop for DirectRun<M> {
    fn drop(&mut self) {
        if let Some(Held { claim, job, .. }) = self.held.take() {
            // The backend was never taken out of its parking: the slot goes back untouched.
            let asked = self.shared.lock().unclaim(claim.index);
            if asked {
                self.shared.wake(claim.index);
            }
            call_guarded(move || drop(job));
        }
    }
}

impl<M: Send + Sync + 'static> fmt::Debug for DirectRun<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectRun")
            .field("token", &self.token)
            .field("ran", &self.held.is_none())
            .finish()
    }
}

/// The answer a blocking submit's callback sends. An answer run on this thread (the direct
/// hand-off) is there at once; in the low-latency mode the channel is polled a while before
/// this thread sleeps on it (`answer_poll.rs`), so that an answer in time needs no wake-up.
pub(crate) fn await_answer<M>(
    shared: &Shared<M>,
    rx: &mpsc::Receiver<Result<ResponseObject, RomaError>>,
) -> Result<ResponseObject, RomaError> {
    if let Ok(r) = rx.try_recv() {
        return r;
    }
    let got = match shared.config.idle_poll {
        Some(bound) => shared.answer_poll.receive(rx, bound),
        None => rx.recv().ok(),
    };
    got.unwrap_or_else(|| {
        Err(RomaError::internal(
            "the request's callback was dropped without being called",
        ))
    })
}
