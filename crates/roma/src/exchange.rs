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
//! The request's time and what a host call past it means are roma-ipc's
//! [`conversation`](roma_ipc::conversation) rules, which the worker keeps too: an
//! [`Exchange`] holds the request's [`RequestTime`], and a call it cannot run in time is
//! answered with `BindingTimedOut`, from which the worker makes the request's timeout.
//!
//! The worker's channel lives in a [`Channel`] behind a mutex shared by both threads.
//! Invariants:
//! - whoever holds the exchange locks the channel only to send or receive, never while a host
//!   function runs; the UDF thread records the call it is running in [`Channel::in_call`];
//! - the slot thread takes an exchange back from a UDF thread only while that thread is inside a
//!   host function (`in_call` is `Some`, read under the lock); it then bumps
//!   [`Channel::generation`], answers the call itself (cut off: out of time), and the UDF
//!   thread, when its function returns and it sees the new generation, leaves without touching
//!   the channel again.
//!
//! Spinning: while a request calls host functions, the gap between a reply and the worker's
//! next message is the JS between two calls, often a microsecond or two. The wait after a reply
//! spins (cross-core only) for about twice the last such gap ([`roma_ipc::follow_up_spin`])
//! instead of paying a futex wake-up per call; the worker does the same for its replies.

use crate::hooks::{Hooks, refuse};
use roma_core::{ExecOutput, RomaError};
use roma_ipc::{HostEndpoint, HostToWorker, IpcError, RequestTime, WorkerToHost, follow_up_spin};
use roma_udf::{BindingCall, FunctionBindingIo, MAX_PENDING_PER_REQUEST, encode_io};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

/// How long a wait on the worker goes before the caller's liveness check runs.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(50);

/// The host's end of one worker's channel, shared by its slot thread and its UDF thread.
pub(crate) struct Channel {
    pub endpoint: HostEndpoint,
    /// The host-function call a UDF thread is running right now.
    pub in_call: Option<u64>,
    /// Bumped when the slot thread takes an exchange back from a UDF thread stuck in a host
    /// function: a thread holding an older generation must leave the channel alone.
    pub generation: u64,
    /// The last gap between a host-function reply and the worker's next message.
    pub binding_gap: Option<Duration>,
}

/// A [`Channel`] shared between the slot thread and the UDF thread of one worker.
#[derive(Clone)]
pub(crate) struct SharedChannel(Arc<Mutex<Channel>>);

impl SharedChannel {
    pub fn new(endpoint: HostEndpoint) -> Self {
        SharedChannel(Arc::new(Mutex::new(Channel {
            endpoint,
            in_call: None,
            generation: 0,
            binding_gap: None,
        })))
    }

    /// Locks the channel. A thread that panicked holding it left the channel in a state the
    /// next receive checks anyway (frames are validated), so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Channel> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the channel if nobody holds it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, Channel>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// The last request `cancel` interrupted on one worker, if any: its host calls are refused.
#[derive(Debug, Default)]
pub(crate) struct CancelMark(Mutex<Option<u64>>);

impl CancelMark {
    /// Marks `request_id` as cancelled (replacing an older mark: ids only grow).
    pub fn mark(&self, request_id: u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(request_id);
    }

    /// Whether `request_id` was cancelled.
    pub fn is(&self, request_id: u64) -> bool {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) == Some(request_id)
    }
}

/// What every exchange of one worker runs with: the service's hooks, the worker's cancel mark
/// and its channel's settings. Shared by the slot thread and the UDF thread.
pub(crate) struct ExchangeEnv<M> {
    pub hooks: Arc<Hooks<M>>,
    pub cancelled: Arc<CancelMark>,
    /// The channel's frame cap: payloads from the worker are decoded within it.
    pub limit: usize,
    /// The channel's configured spin, used when no quick gap was seen.
    pub default_spin: Duration,
}

/// One request's side of the conversation; moves between the slot and the UDF thread.
pub(crate) struct Exchange<M> {
    pub request_id: u64,
    /// The request's time on the host: host calls run until its timeout, and the worker must
    /// have answered by the timeout plus grace.
    pub time: RequestTime,
    pub meta: Arc<M>,
    /// Asynchronous host calls running, and where they end.
    pending: usize,
    done_tx: mpsc::Sender<(u64, FunctionBindingIo)>,
    done_rx: mpsc::Receiver<(u64, FunctionBindingIo)>,
    /// When the last host-function reply went out, until the next receive.
    replied_at: Option<Instant>,
}

impl<M> Exchange<M> {
    pub fn new(request_id: u64, time: RequestTime, meta: &Arc<M>) -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        Exchange {
            request_id,
            time,
            meta: Arc::clone(meta),
            pending: 0,
            done_tx,
            done_rx,
            replied_at: None,
        }
    }

    /// A fresh exchange for the same request (no asynchronous call outstanding): what the slot
    /// thread goes on with when this one is lost with its UDF thread.
    pub fn successor(&self) -> Self {
        Exchange::new(self.request_id, self.time, &self.meta)
    }

    /// Marks a host-function reply just sent: the next receive may spin.
    pub fn note_reply(&mut self) {
        self.replied_at = Some(Instant::now());
    }
}

/// A synchronous host-function call the worker is waiting on.
pub(crate) struct SyncCall {
    pub call_id: u64,
    pub name: String,
    pub payload: Vec<u8>,
}

/// Where the slot thread runs a request's synchronous host functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyncCalls {
    /// On the worker's UDF thread, handed the exchange at the first call (the default: a
    /// function that blocks cannot hold the slot past the request's timeout).
    HandOver,
    /// On the slot thread itself (`Config::host_functions_inline`: for functions that never
    /// block, two wake-ups fewer per request).
    Inline,
}

/// How [`drive`] runs synchronous host functions.
pub(crate) enum Mode<'a> {
    /// On the slot thread, which runs them as `sync_calls` says; `watch` runs between liveness
    /// slices.
    Slot {
        sync_calls: SyncCalls,
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
/// mode, handing over) a synchronous host call must move to the UDF thread.
pub(crate) fn drive<M>(
    env: &ExchangeEnv<M>,
    channel: &SharedChannel,
    ex: &mut Exchange<M>,
    mut mode: Mode<'_>,
) -> Outcome {
    loop {
        let msg = match receive(env, channel, ex, &mut mode) {
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
            } if request_id == ex.request_id => env.hooks.log(level, &ex.meta, &message),
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
                if let Err(stop) = serve_call(env, channel, ex, call, &mut mode) {
                    return stop;
                }
            }
            WorkerToHost::AwaitBindings { request_id } if request_id == ex.request_id => {
                // The worker has nothing to do until an asynchronous call finishes: wait for one
                // (within the request's time) and pass its reply on.
                let reply = if ex.pending == 0 {
                    Some((0, refuse("no asynchronous host call is outstanding")))
                } else {
                    ex.done_rx.recv_timeout(ex.time.calls().left()).ok()
                };
                if let Some((call_id, io)) = reply {
                    ex.pending = ex.pending.saturating_sub(1);
                    let msg = HostToWorker::BindingReply {
                        call_id,
                        reply: encode_io(&io),
                    };
                    if let Err(e) = send(channel, &msg) {
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
    env: &ExchangeEnv<M>,
    channel: &SharedChannel,
    ex: &mut Exchange<M>,
    first: SyncCall,
    generation: u64,
) -> Outcome {
    let mut mode = Mode::Udf { generation };
    match serve_call(env, channel, ex, first, &mut mode) {
        Ok(()) => drive(env, channel, ex, mode),
        Err(stop) => stop,
    }
}

/// Decides a host call, answers it and sends the answer. `Err` stops [`drive`].
fn serve_call<M>(
    env: &ExchangeEnv<M>,
    channel: &SharedChannel,
    ex: &mut Exchange<M>,
    call: SyncCall,
    mode: &mut Mode<'_>,
) -> Result<(), Outcome> {
    let name = &call.name;
    let is_async = env.hooks.bindings.is_async(name);
    let cancelled = env.cancelled.is(ex.request_id);
    let late = ex.time.calls().passed();
    let refused =
        |why: &str| BindingCall::Done(refuse(&format!("host function `{name}` refused: {why}")));
    let msg = if late && !is_async && !cancelled {
        // The conversation's rule: a call after the request's timeout is cut off.
        HostToWorker::BindingTimedOut {
            call_id: call.call_id,
        }
    } else {
        let result = if cancelled {
            refused("the request was cancelled")
        } else if late {
            // An asynchronous function answers with a promise whatever happens: this one is
            // rejected, and the worker's own deadline ends the request.
            refused("the request timed out")
        } else if is_async && ex.pending >= MAX_PENDING_PER_REQUEST {
            // Checked before the function runs: past the cap it never runs.
            refused(&format!(
                "more than {MAX_PENDING_PER_REQUEST} asynchronous host calls outstanding in \
                 this request"
            ))
        } else if is_async {
            env.hooks
                .call_binding(name, &call.payload, &ex.meta, env.limit)
        } else {
            match mode {
                Mode::Slot {
                    sync_calls: SyncCalls::HandOver,
                    ..
                } => return Err(Outcome::Handoff(call)),
                Mode::Slot {
                    sync_calls: SyncCalls::Inline,
                    ..
                } => env
                    .hooks
                    .call_binding(name, &call.payload, &ex.meta, env.limit),
                Mode::Udf { generation } => {
                    match run_parked(env, channel, ex, &call, *generation) {
                        Some(r) => r,
                        None => return Err(Outcome::Abandoned),
                    }
                }
            }
        };
        reply_message(env, ex, call.call_id, name, is_async, result)
    };
    send(channel, &msg).map_err(Outcome::Broken)?;
    ex.note_reply();
    Ok(())
}

/// UDF mode: runs a synchronous host function with the channel unlocked and the call recorded
/// in it, so that the slot thread can take the exchange over if the function outlives the
/// request. `None`: it did (the generation moved); the caller must leave the channel alone.
fn run_parked<M>(
    env: &ExchangeEnv<M>,
    channel: &SharedChannel,
    ex: &Exchange<M>,
    call: &SyncCall,
    generation: u64,
) -> Option<BindingCall> {
    {
        let mut c = channel.lock();
        if c.generation != generation {
            return None;
        }
        c.in_call = Some(call.call_id);
    }
    let result = env
        .hooks
        .call_binding(&call.name, &call.payload, &ex.meta, env.limit);
    let mut c = channel.lock();
    if c.generation != generation {
        return None;
    }
    c.in_call = None;
    Some(result)
}

/// The slot thread's side of the hand-back invariant: if a UDF thread is inside a host function
/// (the channel is free and records the call), abandons that thread (a new generation), and
/// cuts the call off to the worker (`BindingTimedOut`). `None`: no function is running (or the
/// channel is busy with a send or receive); `Some` holds the cut-off call's id, or the error of
/// sending its answer.
pub(crate) fn take_back(channel: &SharedChannel) -> Option<Result<u64, IpcError>> {
    let mut c = channel.try_lock()?;
    let call_id = c.in_call.take()?;
    c.generation += 1;
    let cut_off = HostToWorker::BindingTimedOut { call_id };
    Some(c.endpoint.send(&cut_off).map(|()| call_id))
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
    env: &ExchangeEnv<M>,
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
            let started = match env.hooks.executor.as_ref() {
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
pub(crate) fn send(channel: &SharedChannel, msg: &HostToWorker) -> Result<(), IpcError> {
    channel.lock().endpoint.send(msg)
}

/// Receives the worker's next message, waiting at most `timeout`.
pub(crate) fn recv(channel: &SharedChannel, timeout: Duration) -> Result<WorkerToHost, IpcError> {
    channel.lock().endpoint.recv(timeout)
}

/// Receives the worker's next message for `ex` by its answer deadline, in liveness slices
/// (slot mode runs its watch between them), spinning first when it follows a reply and recent
/// gaps were short.
fn receive<M>(
    env: &ExchangeEnv<M>,
    channel: &SharedChannel,
    ex: &mut Exchange<M>,
    mode: &mut Mode<'_>,
) -> Result<WorkerToHost, IpcError> {
    let replied = ex.replied_at.take();
    ex.time.answer().wait_sliced(
        LIVENESS_SLICE,
        |slice| {
            let mut c = channel.lock();
            if replied.is_some() {
                let spin = follow_up_spin(c.binding_gap, env.default_spin);
                c.endpoint.set_spin(spin);
            }
            let r = c.endpoint.recv(slice);
            if let (Some(at), Ok(_)) = (replied, &r) {
                c.binding_gap = Some(at.elapsed());
            }
            r
        },
        || {
            if let Mode::Slot { watch, .. } = mode {
                watch();
            }
        },
    )
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
    //! The hand-over invariants and the timeout rule, over an in-process socket pair: the test
    //! plays the worker.

    use super::*;
    use roma_ipc::{ChannelConfig, SocketTransport, WorkerEndpoint};
    use roma_udf::{BindingInput, FunctionBindingObject, FunctionBindingPayload, Registry};
    use std::sync::mpsc::{Receiver, Sender};

    const REQUEST: u64 = 7;
    const SHORT: Duration = Duration::from_millis(50);
    const PATIENCE: Duration = Duration::from_secs(30);

    fn pair() -> (SharedChannel, WorkerEndpoint) {
        let (host, worker) = SocketTransport::pair(&ChannelConfig::socket()).expect("socketpair");
        let channel = SharedChannel::new(HostEndpoint::new(host));
        (channel, WorkerEndpoint::new(worker))
    }

    /// `echo` answers its input; `blocks` says it started, then waits for a release.
    fn env(entered: Sender<()>, release: Receiver<()>) -> ExchangeEnv<()> {
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
        ExchangeEnv {
            hooks: Arc::new(Hooks {
                logger: None,
                bindings: Registry::new(bindings).expect("valid bindings"),
                executor: None,
            }),
            cancelled: Arc::new(CancelMark::default()),
            limit: 1 << 20,
            default_spin: Duration::ZERO,
        }
    }

    /// A channel, the test's end of it, and an environment whose `blocks` is not used.
    fn without_blocking() -> (SharedChannel, WorkerEndpoint, ExchangeEnv<()>) {
        let (channel, worker) = pair();
        let (entered, _) = mpsc::channel();
        let (_, release_rx) = mpsc::channel();
        (channel, worker, env(entered, release_rx))
    }

    fn exchange() -> Exchange<()> {
        let timeout = Duration::from_secs(30);
        let time = RequestTime::new(Instant::now(), timeout, timeout);
        Exchange::new(REQUEST, time, &Arc::new(()))
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
        let (channel, mut worker, env) = without_blocking();
        let mut ex = exchange();
        worker.send(&call(1, "echo", "first")).expect("send");
        let mut watch = || {};
        let mode = Mode::Slot {
            sync_calls: SyncCalls::HandOver,
            watch: &mut watch,
        };
        let first = match drive(&env, &channel, &mut ex, mode) {
            Outcome::Handoff(c) => c,
            _ => panic!("the first synchronous call is handed over"),
        };
        assert_eq!(first.call_id, 1);
        // The slot thread answered nothing: the call is the UDF thread's.
        nothing_more(&mut worker);
        // The UDF thread's turn: the handed-over call, then the rest of the request.
        worker.send(&call(2, "echo", "second")).expect("send");
        worker.send(&executed()).expect("send");
        let outcome = drive_handed_over(&env, &channel, &mut ex, first, 0);
        assert!(matches!(outcome, Outcome::Executed(Ok(_))));
        assert_eq!(reply(&mut worker, 1).output, string("first"));
        assert_eq!(reply(&mut worker, 2).output, string("second"));
        nothing_more(&mut worker);
    }

    #[test]
    fn a_stuck_function_is_taken_back_and_its_thread_never_touches_the_channel_again() {
        let (channel, mut worker) = pair();
        let (entered, entered_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let env = Arc::new(env(entered, release_rx));
        // Nothing runs: nothing to take back.
        assert!(take_back(&channel).is_none());
        let stuck = {
            let (env, channel) = (Arc::clone(&env), channel.clone());
            std::thread::spawn(move || {
                let ex = exchange();
                let blocked = SyncCall {
                    call_id: 5,
                    name: "blocks".into(),
                    payload: encode_io(&FunctionBindingIo::default()),
                };
                run_parked(&env, &channel, &ex, &blocked, 0).is_none()
            })
        };
        entered_rx
            .recv_timeout(PATIENCE)
            .expect("the function starts");
        // While someone holds the channel (a send or receive), it is not taken.
        {
            let _busy = channel.lock();
            let c2 = channel.clone();
            let during = std::thread::spawn(move || take_back(&c2).is_none());
            assert!(during.join().expect("no panic"));
        }
        let taken = take_back(&channel).expect("a function is running");
        assert_eq!(taken.expect("the cut-off was sent"), 5);
        // The worker is told the call was cut off by the request's timeout.
        match worker.recv(PATIENCE) {
            Ok(HostToWorker::BindingTimedOut { call_id: 5 }) => {}
            other => panic!("expected call 5 cut off, got {other:?}"),
        }
        // Taken once only; the thread, released, sees the new generation and leaves.
        assert!(take_back(&channel).is_none());
        release.send(()).expect("release");
        assert!(
            stuck.join().expect("no panic"),
            "the abandoned call must not answer"
        );
        nothing_more(&mut worker);
        assert_eq!(channel.lock().generation, 1);
    }

    #[test]
    fn a_sync_call_after_the_timeout_is_cut_off_and_the_worker_is_told() {
        let (channel, mut worker, env) = without_blocking();
        // The request's timeout has passed; its answer is still due (the grace).
        let time = RequestTime::new(Instant::now(), Duration::ZERO, PATIENCE);
        let mut ex = Exchange::new(REQUEST, time, &Arc::new(()));
        worker.send(&call(1, "echo", "late")).expect("send");
        worker.send(&executed()).expect("send");
        let mut watch = || {};
        let mode = Mode::Slot {
            sync_calls: SyncCalls::HandOver,
            watch: &mut watch,
        };
        // Not handed over: the call is answered at once, and the answer still arrives.
        let outcome = drive(&env, &channel, &mut ex, mode);
        assert!(matches!(outcome, Outcome::Executed(Ok(_))));
        match worker.recv(PATIENCE) {
            Ok(HostToWorker::BindingTimedOut { call_id: 1 }) => {}
            other => panic!("expected call 1 cut off, got {other:?}"),
        }
        nothing_more(&mut worker);
    }
}
