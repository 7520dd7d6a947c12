//! One request's conversation with its worker, whichever host thread holds it.
//!
//! Between `Execute` and its answer a worker may send console lines, host-function calls and
//! "await" messages. The slot thread drives that exchange ([`drive`]) until the request's first
//! synchronous host-function call; then it hands the whole exchange to the worker's UDF thread
//! (`udf_thread`), which runs that call and every later one of the request directly against
//! the channel and hands the exchange back with the answer. A call thus costs one hand-off each
//! way (worker -> UDF thread -> worker), as if it ran inline, and the slot thread, which runs
//! no user code, can always take the request back when its time is up.
//!
//! The channel lives in a [`Link`] behind a mutex shared by both threads. Invariants:
//! - whoever holds the exchange locks the link only to send or receive, never while a host
//!   function runs; the UDF thread records the call it is running in [`Link::in_call`];
//! - the slot thread takes an exchange back from a UDF thread only while that thread is inside a
//!   host function (`in_call != 0`, read under the lock); it then bumps
//!   [`Link::generation`], answers the call itself (refused: out of time), and the UDF thread,
//!   when its function returns and it sees the new generation, leaves without touching the
//!   link again.
//!
//! Spinning: while a request calls host functions, the gap between a reply and the worker's
//! next message is the JS between two calls, often a microsecond or two. The wait after a reply
//! spins (cross-core only) for about twice the last such gap ([`roma_ipc::follow_up_spin`])
//! instead of paying a futex wake-up per call; the worker does the same for its replies.

use crate::hooks::{Hooks, refuse};
use roma_core::{ErrorKind, RomaError};
use roma_ipc::{ExecOutput, HostEndpoint, HostToWorker, IpcError, WorkerToHost, follow_up_spin};
use roma_udf::{BindingCall, FunctionBindingIo, MAX_PENDING_PER_REQUEST, encode_io};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

/// How long a wait on the worker goes before the caller's liveness check runs.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(50);

/// The host's end of one worker's channel, shared by its slot thread and its UDF thread.
pub(crate) struct Link {
    pub endpoint: HostEndpoint,
    /// The host-function call a UDF thread is running right now (0: none).
    pub in_call: u64,
    /// Bumped when the slot thread takes an exchange back from a UDF thread stuck in a host
    /// function: a thread holding an older generation must leave the link alone.
    pub generation: u64,
    /// The last gap between a host-function reply and the worker's next message.
    pub binding_gap: Option<Duration>,
}

/// A [`Link`] shared between the slot thread and the UDF thread of one worker.
#[derive(Clone)]
pub(crate) struct SharedLink(Arc<Mutex<Link>>);

impl SharedLink {
    pub fn new(endpoint: HostEndpoint) -> Self {
        SharedLink(Arc::new(Mutex::new(Link {
            endpoint,
            in_call: 0,
            generation: 0,
            binding_gap: None,
        })))
    }

    /// Locks the link. A thread that panicked holding it left the channel in a state the next
    /// receive checks anyway (frames are validated), so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Link> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the link if nobody holds it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, Link>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// What every exchange of one worker shares: the service's hooks and the worker's settings.
pub(crate) struct Context<M> {
    pub hooks: Arc<Hooks<M>>,
    /// The last request `cancel` interrupted (0: none).
    pub cancelled: Arc<AtomicU64>,
    /// The channel's frame cap: payloads from the worker are decoded within it.
    pub limit: usize,
    /// The channel's configured spin, used when no quick gap was seen.
    pub default_spin: Duration,
}

/// One request's side of the conversation; moves between the slot and the UDF thread.
pub(crate) struct Exchange<M> {
    pub request_id: u64,
    pub started: Instant,
    /// The request's own timeout: host calls after it are refused.
    pub timeout: Duration,
    /// The request's timeout plus grace: the worker must have answered by then.
    pub deadline: Instant,
    pub meta: Arc<M>,
    /// Asynchronous host calls running, and where they end.
    pending: usize,
    done_tx: mpsc::Sender<(u64, FunctionBindingIo)>,
    done_rx: mpsc::Receiver<(u64, FunctionBindingIo)>,
    /// A host function of this request was cut off at its timeout.
    pub binding_timed_out: bool,
    /// When the last host-function reply went out, until the next receive.
    replied_at: Option<Instant>,
}

impl<M> Exchange<M> {
    pub fn new(
        request_id: u64,
        started: Instant,
        timeout: Duration,
        grace: Duration,
        meta: &Arc<M>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        Exchange {
            request_id,
            started,
            timeout,
            deadline: started + timeout + grace,
            meta: Arc::clone(meta),
            pending: 0,
            done_tx,
            done_rx,
            binding_timed_out: false,
            replied_at: None,
        }
    }

    /// A fresh exchange for the same request (no asynchronous call outstanding): what the slot
    /// thread goes on with when this one is lost with its UDF thread.
    pub fn successor(&self) -> Self {
        let grace = self.deadline - (self.started + self.timeout);
        Exchange::new(
            self.request_id,
            self.started,
            self.timeout,
            grace,
            &self.meta,
        )
    }

    /// Marks a host-function reply just sent: the next receive may spin.
    pub fn note_reply(&mut self) {
        self.replied_at = Some(Instant::now());
    }

    /// When host calls of this request stop being run.
    pub fn call_deadline(&self) -> Instant {
        self.started + self.timeout
    }
}

/// A synchronous host-function call the worker is waiting on.
pub(crate) struct SyncCall {
    pub call_id: u64,
    pub name: String,
    pub payload: Vec<u8>,
}

/// How [`drive`] runs synchronous host functions.
pub(crate) enum Mode<'a> {
    /// On the slot thread: hand them to the UDF thread (`inline: false`) or run them right here
    /// (`Config::host_functions_inline`). `watch` runs between liveness slices.
    Slot {
        inline: bool,
        watch: &'a mut dyn FnMut(),
    },
    /// On the UDF thread, which holds the exchange under `generation`.
    Udf { generation: u64 },
}

/// How [`drive`] stopped.
pub(crate) enum Outcome {
    /// The worker answered the request.
    Executed(Result<ExecOutput, RomaError>),
    /// The channel failed (closed, timed out, malformed frame).
    Broken(IpcError),
    /// The worker sent something that has no place here.
    Protocol(String),
    /// Slot mode: a synchronous host call for the UDF thread.
    Handoff(SyncCall),
    /// UDF mode: the slot thread took the exchange back while a function ran.
    Abandoned,
}

/// Exchanges messages with the worker until it answers the request, the channel fails, or (slot
/// mode, not inline) a synchronous host call must move to the UDF thread.
pub(crate) fn drive<M>(
    ctx: &Context<M>,
    link: &SharedLink,
    ex: &mut Exchange<M>,
    mut mode: Mode<'_>,
) -> Outcome {
    loop {
        let msg = match receive(ctx, link, ex, &mut mode) {
            Ok(m) => m,
            Err(e) => return Outcome::Broken(e),
        };
        match msg {
            WorkerToHost::Executed { request_id, result } if request_id == ex.request_id => {
                return Outcome::Executed(result);
            }
            WorkerToHost::Log {
                request_id,
                level,
                message,
            } if request_id == ex.request_id => ctx.hooks.log(level, &ex.meta, &message),
            WorkerToHost::BindingCall {
                request_id,
                call_id,
                name,
                payload,
            } if request_id == ex.request_id => {
                let call = SyncCall {
                    call_id,
                    name,
                    payload,
                };
                if let Err(stop) = serve_call(ctx, link, ex, call, &mut mode) {
                    return stop;
                }
            }
            WorkerToHost::AwaitBindings { request_id } if request_id == ex.request_id => {
                // The worker has nothing to do until an asynchronous call finishes: wait for one
                // (within the request's time) and pass its reply on.
                let left = ex.call_deadline().saturating_duration_since(Instant::now());
                let reply = if ex.pending == 0 {
                    Some((0, refuse("no asynchronous host call is outstanding")))
                } else {
                    ex.done_rx.recv_timeout(left).ok()
                };
                if let Some((call_id, io)) = reply {
                    ex.pending = ex.pending.saturating_sub(1);
                    let msg = HostToWorker::BindingReply {
                        call_id,
                        reply: encode_io(&io),
                    };
                    if let Err(e) = send(link, &msg) {
                        return Outcome::Broken(e);
                    }
                }
                // On timeout nothing is sent: the worker's own deadline ends the JS, and its
                // `Executed` (a timeout) arrives next.
            }
            other => {
                return Outcome::Protocol(format!(
                    "{} while running request {}",
                    describe(&other),
                    ex.request_id
                ));
            }
        }
    }
}

/// UDF mode: serves `first`, the synchronous call the slot thread handed over with the
/// exchange, then drives the exchange on like [`drive`].
pub(crate) fn drive_handed_over<M>(
    ctx: &Context<M>,
    link: &SharedLink,
    ex: &mut Exchange<M>,
    first: SyncCall,
    generation: u64,
) -> Outcome {
    let mut mode = Mode::Udf { generation };
    match serve_call(ctx, link, ex, first, &mut mode) {
        Ok(()) => drive(ctx, link, ex, mode),
        Err(stop) => stop,
    }
}

/// Answers one host call and sends the answer. `Err` stops [`drive`].
fn serve_call<M>(
    ctx: &Context<M>,
    link: &SharedLink,
    ex: &mut Exchange<M>,
    call: SyncCall,
    mode: &mut Mode<'_>,
) -> Result<(), Outcome> {
    let msg = answer(ctx, link, ex, call, mode)?;
    send(link, &msg).map_err(Outcome::Broken)?;
    ex.note_reply();
    Ok(())
}

/// Decides a host call and builds the message that answers it. `Err` stops [`drive`].
fn answer<M>(
    ctx: &Context<M>,
    link: &SharedLink,
    ex: &mut Exchange<M>,
    call: SyncCall,
    mode: &mut Mode<'_>,
) -> Result<HostToWorker, Outcome> {
    let name = &call.name;
    let is_async = ctx.hooks.bindings.is_async(name);
    let result = if ctx.cancelled.load(Ordering::SeqCst) == ex.request_id {
        BindingCall::Done(refuse(&format!(
            "host function `{name}` refused: the request was cancelled"
        )))
    } else if Instant::now() > ex.call_deadline() {
        BindingCall::Done(refuse(&format!(
            "host function `{name}` refused: the request timed out"
        )))
    } else if is_async && ex.pending >= MAX_PENDING_PER_REQUEST {
        // Checked before the function runs: past the cap it never runs.
        BindingCall::Done(refuse(&format!(
            "host function `{name}` refused: more than {MAX_PENDING_PER_REQUEST} \
             asynchronous host calls outstanding in this request"
        )))
    } else if is_async {
        ctx.hooks
            .call_binding(name, &call.payload, &ex.meta, ctx.limit)
    } else {
        match mode {
            Mode::Slot { inline: false, .. } => return Err(Outcome::Handoff(call)),
            Mode::Slot { inline: true, .. } => {
                ctx.hooks
                    .call_binding(name, &call.payload, &ex.meta, ctx.limit)
            }
            Mode::Udf { generation } => match run_parked(ctx, link, ex, &call, *generation) {
                Some(r) => r,
                None => return Err(Outcome::Abandoned),
            },
        }
    };
    Ok(reply_message(ctx, ex, call.call_id, name, is_async, result))
}

/// UDF mode: runs a synchronous host function with the link unlocked and the call recorded in
/// it, so that the slot thread can take the exchange over if the function outlives the
/// request. `None`: it did (the generation moved); the caller must leave the link alone.
fn run_parked<M>(
    ctx: &Context<M>,
    link: &SharedLink,
    ex: &Exchange<M>,
    call: &SyncCall,
    generation: u64,
) -> Option<BindingCall> {
    {
        let mut l = link.lock();
        if l.generation != generation {
            return None;
        }
        l.in_call = call.call_id;
    }
    let result = ctx
        .hooks
        .call_binding(&call.name, &call.payload, &ex.meta, ctx.limit);
    let mut l = link.lock();
    if l.generation != generation {
        return None;
    }
    l.in_call = 0;
    Some(result)
}

/// The slot thread's side of the hand-back invariant: if a UDF thread is inside a host function
/// (the link is free and records the call), abandons that thread (a new generation), and
/// refuses the call to the worker. `None`: no function is running (or the link is busy with a
/// send or receive); `Some` holds the refused call's id, or the error of sending the refusal.
pub(crate) fn take_back(link: &SharedLink) -> Option<Result<u64, IpcError>> {
    let mut l = link.try_lock()?;
    if l.in_call == 0 {
        return None;
    }
    let call_id = std::mem::take(&mut l.in_call);
    l.generation += 1;
    let refusal = refusal(
        call_id,
        "a host function did not return within the request's timeout",
    );
    Some(l.endpoint.send(&refusal).map(|()| call_id))
}

/// The reply that refuses host call `call_id`: JS gets an `Error` with `why`.
pub(crate) fn refusal(call_id: u64, why: &str) -> HostToWorker {
    HostToWorker::BindingReply {
        call_id,
        reply: encode_io(&refuse(why)),
    }
}

/// The message that answers host call `call_id` with `result`.
fn reply_message<M>(
    ctx: &Context<M>,
    ex: &mut Exchange<M>,
    call_id: u64,
    name: &str,
    is_async: bool,
    result: BindingCall,
) -> HostToWorker {
    match result {
        // An asynchronous function answers with a promise, whatever happens: a refusal or an
        // immediate error rejects it rather than throwing.
        BindingCall::Done(io) if is_async => {
            let _ = ex.done_tx.send((call_id, io));
            ex.pending += 1;
            HostToWorker::BindingPending { call_id }
        }
        BindingCall::Done(io) => HostToWorker::BindingReply {
            call_id,
            reply: encode_io(&io),
        },
        BindingCall::Pending(fut) => {
            let done = ex.done_tx.clone();
            let started = match ctx.hooks.executor.as_ref() {
                None => Err("no executor for asynchronous host functions"),
                Some(executor) => {
                    if executor.spawn(fut, move |io| {
                        // The request may be over; its result is then dropped.
                        let _ = done.send((call_id, io));
                    }) {
                        Ok(())
                    } else {
                        Err("the service is stopping")
                    }
                }
            };
            if let Err(why) = started {
                let _ = ex.done_tx.send((
                    call_id,
                    refuse(&format!("host function `{name}` refused: {why}")),
                ));
            }
            ex.pending += 1;
            HostToWorker::BindingPending { call_id }
        }
    }
}

/// Sends one message to the worker.
pub(crate) fn send(link: &SharedLink, msg: &HostToWorker) -> Result<(), IpcError> {
    link.lock().endpoint.send(msg)
}

/// Receives the worker's next message for `ex`, in liveness slices (slot mode runs its watch
/// between them), spinning first when it follows a reply and recent gaps were short.
fn receive<M>(
    ctx: &Context<M>,
    link: &SharedLink,
    ex: &mut Exchange<M>,
    mode: &mut Mode<'_>,
) -> Result<WorkerToHost, IpcError> {
    let replied = ex.replied_at.take();
    loop {
        let left = ex.deadline.saturating_duration_since(Instant::now());
        let r = {
            let mut l = link.lock();
            if replied.is_some() {
                let spin = follow_up_spin(l.binding_gap, ctx.default_spin);
                l.endpoint.set_spin(spin);
            }
            let r = l.endpoint.recv(left.min(LIVENESS_SLICE));
            if let (Some(at), Ok(_)) = (replied, &r) {
                l.binding_gap = Some(at.elapsed());
            }
            r
        };
        match r {
            Err(e) if e.is_timeout() && left > LIVENESS_SLICE => {
                if let Mode::Slot { watch, .. } = mode {
                    watch();
                }
            }
            other => return other,
        }
    }
}

/// The error a request gets when a host function of it was cut off at its timeout, whatever
/// the JS made of the refusal it got: the worker's own report (a timeout, or the refusal
/// rethrown as an uncaught error) only repeats the timeout, so the message says it once; the
/// JS stack of the cut-off call is kept.
pub(crate) fn binding_timeout(handler: &str, timeout: Duration, e: &RomaError) -> RomaError {
    let err = RomaError::new(
        ErrorKind::Timeout,
        format!(
            "the invocation of {handler} ran past its {} timeout in a host function",
            roma_core::format_duration(timeout)
        ),
    );
    match e.stack() {
        Some(stack) => err.with_stack(stack),
        None => err,
    }
}

/// A short description of a message, without its (untrusted, maybe huge) payload.
pub(crate) fn describe(msg: &WorkerToHost) -> String {
    match msg {
        WorkerToHost::Ready { .. } => "Ready".into(),
        WorkerToHost::Loaded { .. } => "Loaded".into(),
        WorkerToHost::Executed { request_id, .. } => format!("Executed for request {request_id}"),
        WorkerToHost::Log { request_id, .. } => format!("Log for request {request_id}"),
        WorkerToHost::BindingCall { request_id, .. } => {
            format!("BindingCall for request {request_id}")
        }
        WorkerToHost::ProbeReport { .. } => "ProbeReport".into(),
        WorkerToHost::AwaitBindings { request_id } => {
            format!("AwaitBindings for request {request_id}")
        }
    }
}

#[cfg(test)]
mod tests {
    //! The hand-over invariants, over an in-process socket pair: the test plays the worker.

    use super::*;
    use roma_ipc::{AnyTransport, ChannelConfig, SocketTransport, WorkerEndpoint};
    use roma_udf::{BindingInput, FunctionBindingObject, FunctionBindingPayload, Registry};
    use std::sync::mpsc::{Receiver, Sender};

    const REQUEST: u64 = 7;
    const SHORT: Duration = Duration::from_millis(50);
    const PATIENCE: Duration = Duration::from_secs(30);

    fn pair() -> (SharedLink, WorkerEndpoint) {
        let (host, worker) = SocketTransport::pair(&ChannelConfig::socket()).expect("socketpair");
        let link = SharedLink::new(HostEndpoint::new(AnyTransport::Socket(host)));
        (link, WorkerEndpoint::new(AnyTransport::Socket(worker)))
    }

    /// `echo` answers its input; `blocks` says it started, then waits for a release.
    fn context(entered: Sender<()>, release: Receiver<()>) -> Context<()> {
        let entered = Mutex::new(entered);
        let release = Mutex::new(release);
        let bindings = vec![
            FunctionBindingObject::new("echo", |p: &mut FunctionBindingPayload<'_, ()>| {
                let s = p.io.input_string().unwrap_or_default().to_owned();
                p.io.set_output_string(s);
            }),
            FunctionBindingObject::new("blocks", move |p: &mut FunctionBindingPayload<'_, ()>| {
                let _ = entered.lock().map(|t| t.send(()));
                let _ = release.lock().map(|r| r.recv_timeout(PATIENCE));
                p.io.set_output_string("late");
            }),
        ];
        Context {
            hooks: Arc::new(Hooks {
                logger: None,
                bindings: Registry::new(bindings).expect("valid bindings"),
                executor: None,
            }),
            cancelled: Arc::new(AtomicU64::new(0)),
            limit: 1 << 20,
            default_spin: Duration::ZERO,
        }
    }

    fn exchange() -> Exchange<()> {
        let timeout = Duration::from_secs(30);
        Exchange::new(REQUEST, Instant::now(), timeout, timeout, &Arc::new(()))
    }

    fn call(call_id: u64, name: &str, input: &str) -> WorkerToHost {
        let io = FunctionBindingIo {
            input: BindingInput::String(input.into()),
            ..Default::default()
        };
        WorkerToHost::BindingCall {
            request_id: REQUEST,
            call_id,
            name: name.into(),
            payload: encode_io(&io),
        }
    }

    fn executed() -> WorkerToHost {
        WorkerToHost::Executed {
            request_id: REQUEST,
            result: Ok(ExecOutput::default()),
        }
    }

    /// The worker's next message: the reply to `call_id`, decoded.
    fn reply(worker: &mut WorkerEndpoint, call_id: u64) -> FunctionBindingIo {
        match worker.recv(PATIENCE) {
            Ok(HostToWorker::BindingReply { call_id: id, reply }) if id == call_id => {
                roma_udf::decode_io(&reply, 1 << 20).expect("a valid reply")
            }
            other => panic!("expected the reply to call {call_id}, got {other:?}"),
        }
    }

    fn string(s: &str) -> roma_udf::BindingOutput {
        roma_udf::BindingOutput::String(s.into())
    }

    fn nothing_more(worker: &mut WorkerEndpoint) {
        let next = worker.recv(SHORT);
        assert!(next.as_ref().is_err_and(IpcError::is_timeout), "{next:?}");
    }

    #[test]
    fn the_slot_hands_over_the_first_sync_call_and_the_udf_thread_serves_the_rest() {
        let (link, mut worker) = pair();
        let (entered, _) = mpsc::channel();
        let (_release, release_rx) = mpsc::channel();
        let ctx = context(entered, release_rx);
        let mut ex = exchange();
        worker.send(&call(1, "echo", "first")).expect("send");
        let mut watch = || {};
        let mode = Mode::Slot {
            inline: false,
            watch: &mut watch,
        };
        let first = match drive(&ctx, &link, &mut ex, mode) {
            Outcome::Handoff(c) => c,
            _ => panic!("the first synchronous call is handed over"),
        };
        assert_eq!(first.call_id, 1);
        // The slot thread answered nothing: the call is the UDF thread's.
        nothing_more(&mut worker);
        // The UDF thread's turn: the handed-over call, then the rest of the request.
        worker.send(&call(2, "echo", "second")).expect("send");
        worker.send(&executed()).expect("send");
        let outcome = drive_handed_over(&ctx, &link, &mut ex, first, 0);
        assert!(matches!(outcome, Outcome::Executed(Ok(_))));
        assert_eq!(reply(&mut worker, 1).output, string("first"));
        assert_eq!(reply(&mut worker, 2).output, string("second"));
        nothing_more(&mut worker);
    }

    #[test]
    fn a_stuck_function_is_taken_back_and_its_thread_never_touches_the_link_again() {
        let (link, mut worker) = pair();
        let (entered, entered_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let ctx = Arc::new(context(entered, release_rx));
        // Nothing runs: nothing to take back.
        assert!(take_back(&link).is_none());
        let stuck = {
            let (ctx, link) = (Arc::clone(&ctx), link.clone());
            std::thread::spawn(move || {
                let ex = exchange();
                let blocked = SyncCall {
                    call_id: 5,
                    name: "blocks".into(),
                    payload: encode_io(&FunctionBindingIo::default()),
                };
                run_parked(&ctx, &link, &ex, &blocked, 0).is_none()
            })
        };
        entered_rx
            .recv_timeout(PATIENCE)
            .expect("the function starts");
        // While someone holds the link (a send or receive), it is not taken.
        {
            let _busy = link.lock();
            let l2 = link.clone();
            let during = std::thread::spawn(move || take_back(&l2).is_none());
            assert!(during.join().expect("no panic"));
        }
        let taken = take_back(&link).expect("a function is running");
        assert_eq!(taken.expect("the refusal was sent"), 5);
        let refusal = reply(&mut worker, 5);
        assert!(
            refusal
                .errors
                .iter()
                .any(|e| e.contains("did not return within")),
            "{refusal:?}"
        );
        // Taken once only; the thread, released, sees the new generation and leaves.
        assert!(take_back(&link).is_none());
        release.send(()).expect("release");
        assert!(
            stuck.join().expect("no panic"),
            "the abandoned call must not answer"
        );
        nothing_more(&mut worker);
        assert_eq!(link.lock().generation, 1);
    }
}
