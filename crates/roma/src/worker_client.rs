//! The production [`WorkerBackend`]: one jailed `roma-worker` process, driven over roma-ipc.
//!
//! Each dispatcher slot owns one [`WorkerClient`] and calls it from its own thread, one request
//! at a time. Every wait on the worker has a deadline (the request's timeout plus a grace
//! period, the load and startup timeouts); a worker that misses one, closes its channel, or
//! sends anything malformed is killed, and the dispatcher replaces it.

use crate::config::Config;
use crate::hooks::{Hooks, refuse};
use crate::locate::WorkerBinary;
use crate::udf_thread::UdfThread;
use roma_core::LogLevel;
use roma_core::{
    CodeObject, ErrorKind, ExecOutput, Interrupt, Invocation, RomaError, WorkerBackend, metrics,
};
use roma_ipc::{
    ChannelConfig, Control, ControlSender, HostEndpoint, HostToWorker, IpcError, PROBE_MODE_ARG,
    ProbeResult, WORKER_OOM_EXIT_CODE, WorkerToHost, spawn_pair,
};
use roma_sandbox::{ExitReport, Sandbox, WorkerProcess, WorkerSpec};
use roma_udf::{BindingCall, FunctionBindingIo, MAX_PENDING_PER_REQUEST, encode_io};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What every worker of a service starts with.
pub(crate) struct WorkerSetup {
    pub binary: WorkerBinary,
    pub sandbox: Box<dyn Sandbox>,
    pub channel: ChannelConfig,
    pub limits: roma_core::EngineLimits,
    pub v8_flags: Vec<String>,
    pub binding_names: Vec<String>,
    pub prewarm: bool,
    pub startup_timeout: Duration,
    pub load_timeout: Duration,
    pub grace: Duration,
    /// Start workers in probe mode (`roma check`).
    pub probe_mode: bool,
    pub address_space_limit_mb: Option<u64>,
    pub host_functions_inline: bool,
}

impl WorkerSetup {
    pub fn from_config<M>(
        config: &Config<M>,
        binary: WorkerBinary,
        probe_mode: bool,
    ) -> Result<Self, RomaError> {
        let sandbox = roma_sandbox::sandbox_by_name(config.sandbox.as_str()).map_err(|e| {
            RomaError::invalid_argument(format!(
                "sandbox {} is not available: {e}",
                config.sandbox.as_str()
            ))
        })?;
        let channel = config.channel();
        channel
            .validate()
            .map_err(|e| RomaError::invalid_argument(format!("channel settings: {e}")))?;
        Ok(WorkerSetup {
            binary,
            sandbox,
            channel,
            limits: config.engine_limits(),
            v8_flags: config.v8_flags.clone(),
            binding_names: Vec::new(),
            prewarm: config.prewarm,
            startup_timeout: config.startup_timeout(),
            load_timeout: config.load_deadline(),
            grace: config.grace(),
            probe_mode,
            address_space_limit_mb: config.worker_address_space_mb,
            host_functions_inline: config.host_functions_inline,
        })
    }
}

/// One worker process and the host's end of its channel.
pub(crate) struct WorkerClient<M> {
    index: usize,
    setup: Arc<WorkerSetup>,
    hooks: Arc<Hooks<M>>,
    endpoint: HostEndpoint,
    /// Shared with the interrupter, which must reach the current worker after a respawn.
    control: Arc<Mutex<ControlSender>>,
    process: Box<dyn WorkerProcess>,
    alive: bool,
    /// The last request `cancel` interrupted (0: none).
    cancelled: Arc<AtomicU64>,
    /// Where synchronous host functions run; started on the first call.
    udf: Option<UdfThread<M>>,
    /// A host function of the running request was cut off at its timeout.
    binding_timed_out: bool,
    /// How long the last successful request took from send to answer.
    last_round_trip: Option<Duration>,
}

/// How long a wait on the worker goes before the worker process is checked.
const LIVENESS_SLICE: Duration = Duration::from_millis(50);

/// Below this, the last answer counts as quick and the next wait may spin for about as long.
const QUICK_ANSWER: Duration = Duration::from_micros(150);
/// The most a wait spins on the strength of a quick previous answer.
const MAX_ADAPTIVE_SPIN: Duration = Duration::from_micros(80);

impl<M: Send + Sync + 'static> WorkerClient<M> {
    /// Starts worker `index`, sends it `Init` and waits for `Ready`.
    pub fn start(
        index: usize,
        setup: Arc<WorkerSetup>,
        hooks: Arc<Hooks<M>>,
    ) -> Result<Self, RomaError> {
        let (endpoint, control, process) = spawn_worker(index, &setup)?;
        let mut client = WorkerClient {
            index,
            setup,
            hooks,
            endpoint,
            control: Arc::new(Mutex::new(control)),
            process,
            alive: true,
            cancelled: Arc::new(AtomicU64::new(0)),
            udf: None,
            binding_timed_out: false,
            last_round_trip: None,
        };
        client.handshake()?;
        Ok(client)
    }

    /// Replaces a worker found dead *before* a request was sent to it, so that the request
    /// does not fail for a death it had no part in. The new worker holds no versions: the
    /// dispatcher reloads the one a request needs when the worker answers `VersionNotFound`.
    fn respawn_if_dead(&mut self) -> Result<(), RomaError> {
        if self.alive && matches!(self.process.try_wait(), Ok(None)) {
            return Ok(());
        }
        let (endpoint, control, process) = spawn_worker(self.index, &self.setup)?;
        self.endpoint = endpoint;
        *self.control.lock().unwrap_or_else(PoisonError::into_inner) = control;
        self.process = process;
        self.alive = true;
        self.handshake()
    }

    fn handshake(&mut self) -> Result<(), RomaError> {
        let index = self.index;
        let init = HostToWorker::Init {
            limits: self.setup.limits.clone(),
            v8_flags: self.setup.v8_flags.clone(),
            binding_names: self.setup.binding_names.clone(),
            prewarm: self.setup.prewarm,
        };
        self.endpoint
            .send(&init)
            .map_err(|e| self.startup_failure(e.to_string()))?;
        match self.endpoint.recv(self.setup.startup_timeout) {
            Ok(WorkerToHost::Ready { .. }) => Ok(()),
            Ok(WorkerToHost::Loaded { result: Err(e) }) => {
                self.reap();
                Err(RomaError::new(
                    e.kind(),
                    format!("worker {index} could not start its engine: {}", e.message()),
                ))
            }
            Ok(other) => {
                Err(self.startup_failure(format!("unexpected first message {}", describe(&other))))
            }
            Err(e) => Err(self.startup_failure(e.to_string())),
        }
    }

    /// Runs a host function on this worker's UDF thread, bounded by the request's deadline.
    fn call_sync(
        &mut self,
        name: String,
        payload: Vec<u8>,
        meta: &Arc<M>,
        limit: usize,
        deadline: Instant,
    ) -> BindingCall {
        if self.setup.host_functions_inline {
            return self.hooks.call_binding(&name, &payload, meta, limit);
        }
        if self.udf.is_none() {
            match UdfThread::start(self.index, Arc::clone(&self.hooks)) {
                Ok(t) => self.udf = Some(t),
                Err(e) => {
                    return BindingCall::Done(refuse(&format!(
                        "host function `{name}` could not run: no thread ({e})"
                    )));
                }
            }
        }
        let udf = self
            .udf
            .as_ref()
            .map(|t| t.call(name.clone(), payload, meta, limit, deadline));
        match udf.flatten() {
            Some(call) => call,
            None => {
                // Still running (blocked?) or gone: abandon that thread; the next call gets a
                // new one.
                self.udf = None;
                self.binding_timed_out = true;
                BindingCall::Done(refuse(&format!(
                    "host function `{name}` did not return within the request's timeout"
                )))
            }
        }
    }

    /// Starts an asynchronous host function on the service's executor; its io goes to
    /// `done` with the call id.
    fn start_async(
        &self,
        pending: &mut usize,
        call_id: u64,
        fut: roma_udf::BindingFuture,
        done: &mpsc::Sender<(u64, FunctionBindingIo)>,
    ) -> Result<(), &'static str> {
        let executor = self
            .hooks
            .executor
            .as_ref()
            .ok_or("no executor for asynchronous host functions")?;
        let done = done.clone();
        if !executor.spawn(fut, move |io| {
            // The request may be over; its result is then dropped.
            let _ = done.send((call_id, io));
        }) {
            return Err("the service is stopping");
        }
        *pending += 1;
        Ok(())
    }

    /// Receives the worker's next message by `deadline`, checking the worker process between
    /// slices of the wait: if its launcher died (killed from outside) while part of the jail
    /// lives on holding the channel (birdcage's init survives its parent), `try_wait` ends the
    /// rest of the process group, and the channel then reports the end at once instead of at
    /// the request's deadline.
    fn recv_watching(&mut self, deadline: Instant) -> Result<WorkerToHost, IpcError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.endpoint.recv(left.min(LIVENESS_SLICE)) {
                Err(e) if e.is_timeout() && left > LIVENESS_SLICE => {
                    let _ = self.process.try_wait();
                }
                other => return other,
            }
        }
    }

    /// Asks a probe-mode worker to run its probes.
    pub fn probe(&mut self) -> Result<Vec<ProbeResult>, RomaError> {
        if let Err(e) = self.endpoint.send(&HostToWorker::Probe) {
            return Err(self.broken(e));
        }
        match self.endpoint.recv(self.setup.startup_timeout) {
            Ok(WorkerToHost::ProbeReport { results }) => Ok(results),
            Ok(other) => Err(self.protocol(&describe(&other))),
            Err(e) => Err(self.broken(e)),
        }
    }

    fn startup_failure(&mut self, why: String) -> RomaError {
        let fate = self.reap();
        RomaError::internal(format!(
            "worker {} did not start ({why}){fate}; run `roma check` to test the sandbox",
            self.index
        ))
    }

    /// Kills the worker (if it still runs) and describes how it ended, for error messages.
    fn reap(&mut self) -> String {
        match self.reap_report() {
            Some(r) => format!("; the worker process {r}"),
            None => String::new(),
        }
    }

    /// Kills the worker (if it still runs) and returns how it ended, when that is known.
    fn reap_report(&mut self) -> Option<ExitReport> {
        self.alive = false;
        match self.process.wait_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => Some(r),
            _ => {
                let _ = self.process.kill();
                self.process
                    .wait_timeout(Duration::from_secs(2))
                    .ok()
                    .flatten()
            }
        }
    }

    /// The error for a request whose worker broke: the worker is killed and replaced.
    fn broken(&mut self, e: IpcError) -> RomaError {
        let kind = e.kind();
        let report = self.reap_report();
        let fate = report
            .as_ref()
            .map(|r| format!("; the worker process {r}"))
            .unwrap_or_default();
        if report.as_ref().and_then(ExitReport::code) == Some(WORKER_OOM_EXIT_CODE) {
            return RomaError::new(
                ErrorKind::OutOfMemory,
                format!(
                    "the invocation exhausted worker {}'s memory beyond what V8 can recover \
                     from (one allocation past the heap limit); the worker was replaced",
                    self.index
                ),
            );
        }
        match kind {
            ErrorKind::Timeout => RomaError::new(
                ErrorKind::Timeout,
                format!(
                    "worker {} did not answer within the request's timeout plus grace; it was replaced{fate}",
                    self.index
                ),
            ),
            _ => RomaError::new(
                ErrorKind::WorkerCrashed,
                format!("worker {} failed: {e}{fate}", self.index),
            ),
        }
    }

    fn protocol(&mut self, what: &str) -> RomaError {
        let fate = self.reap();
        RomaError::new(
            ErrorKind::WorkerCrashed,
            format!(
                "worker {} broke the protocol ({what}); it was replaced{fate}",
                self.index
            ),
        )
    }
}

/// Starts one worker process with a fresh channel.
fn spawn_worker(
    index: usize,
    setup: &WorkerSetup,
) -> Result<(HostEndpoint, ControlSender, Box<dyn WorkerProcess>), RomaError> {
    let (link, handoff) = spawn_pair(&setup.channel).map_err(|e| {
        RomaError::internal(format!("cannot create the channel to worker {index}: {e}"))
    })?;
    let spec = WorkerSpec {
        program: setup.binary.path.clone(),
        args: if setup.probe_mode {
            vec![handoff.arg().into(), PROBE_MODE_ARG.into()]
        } else {
            vec![handoff.arg().into()]
        },
        inherited_fds: handoff.spec().fds(),
        extra_read_only_paths: setup.binary.read_only_paths.clone(),
        address_space_limit_mb: setup.address_space_limit_mb,
    };
    let spawned = setup.sandbox.spawn(&spec);
    // The host closes its copies of the worker's descriptors, so that the worker's death reads
    // as end-of-file on our side.
    drop(handoff);
    let process = spawned.map_err(|e| {
        RomaError::internal(format!(
            "cannot start worker {index} in the {} sandbox: {e}",
            setup.sandbox.name()
        ))
    })?;
    Ok((HostEndpoint::new(link.transport), link.control, process))
}

/// Sends `Cancel` on the worker's control socket, and remembers the request so that its
/// host-function calls are refused from now on.
struct ControlInterrupt(Arc<Mutex<ControlSender>>, Arc<AtomicU64>);

impl Interrupt for ControlInterrupt {
    fn interrupt(&self, request_id: u64) {
        self.1.store(request_id, Ordering::SeqCst);
        let control = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A full or closed control socket means the worker is stuck or gone; the request's
        // deadline handles both, so a failed send is not an error here.
        let _ = control.send(Control::Cancel { request_id }, Duration::from_millis(5));
    }
}

impl<M: Send + Sync + 'static> WorkerBackend<M> for WorkerClient<M> {
    fn load(&mut self, code: &CodeObject) -> Result<(), RomaError> {
        self.respawn_if_dead()?;
        let msg = HostToWorker::Load { code: code.clone() };
        match self.endpoint.send(&msg) {
            Ok(()) => {}
            // Too big for the channel: the worker never saw it and is fine.
            Err(e @ IpcError::PayloadTooLarge { .. }) => return Err(e.into()),
            Err(e) => return Err(self.broken(e)),
        }
        let deadline = Instant::now() + self.setup.load_timeout;
        loop {
            match self.recv_watching(deadline) {
                Ok(WorkerToHost::Loaded { result }) => return result,
                // Console output of top-level code has no request to belong to.
                Ok(WorkerToHost::Log { .. }) => continue,
                Ok(other) => {
                    return Err(self.protocol(&format!("{} during a load", describe(&other))));
                }
                Err(e) => return Err(self.broken(e)),
            }
        }
    }

    fn execute(
        &mut self,
        request_id: u64,
        inv: &Invocation,
        meta: &Arc<M>,
    ) -> Result<ExecOutput, RomaError> {
        self.respawn_if_dead()?;
        self.binding_timed_out = false;
        let started = Instant::now();
        let msg = HostToWorker::Execute {
            request_id,
            invocation: inv.clone(),
        };
        match self.endpoint.send(&msg) {
            Ok(()) => {}
            // The request is too big for the channel: the worker never saw it and is fine.
            Err(e @ IpcError::PayloadTooLarge { .. }) => return Err(e.into()),
            Err(e) => return Err(self.broken(e)),
        }
        let deadline = started + inv.timeout + self.setup.grace;
        // Spin (cross-core only) about as long as the last answer took when that was quick: an
        // idle worker with a pre-warmed context answers in tens of microseconds, and catching
        // that answer without sleeping saves a futex wake-up. Under load answers take hundreds
        // of microseconds and the spin stays at the configured few microseconds, because a
        // spinning host thread would take CPU from the workers.
        let spin = match self.last_round_trip {
            Some(rt) if rt < QUICK_ANSWER => (rt + rt / 4).min(MAX_ADAPTIVE_SPIN),
            _ => self.setup.channel.cross_core_spin,
        };
        self.endpoint.transport_mut().set_spin(spin);
        // Asynchronous host calls of this request: how many are running, and where they end.
        let mut pending = 0usize;
        let (done_tx, done_rx) = mpsc::channel::<(u64, FunctionBindingIo)>();
        loop {
            let reply = match self.recv_watching(deadline) {
                Ok(r) => r,
                Err(e) => return Err(self.broken(e)),
            };
            match reply {
                WorkerToHost::Executed {
                    request_id: id,
                    result,
                } if id == request_id => {
                    let out = match result {
                        Ok(out) => out,
                        // A host function was cut off at the request's timeout: whatever the JS
                        // made of the error it got, the request timed out.
                        Err(e) if self.binding_timed_out && e.kind() != ErrorKind::Cancelled => {
                            return Err(RomaError::new(
                                ErrorKind::Timeout,
                                format!(
                                    "the invocation of {} ran past its {} timeout in a host function: {}",
                                    inv.handler_name,
                                    roma_core::format_duration(inv.timeout),
                                    e.message()
                                ),
                            ));
                        }
                        Err(e) => {
                            if e.kind() == ErrorKind::Execution {
                                // Uncaught errors reach the logging function, with the stack.
                                let text = match e.stack() {
                                    Some(stack) if !stack.is_empty() => {
                                        format!("{}\n{stack}", e.message())
                                    }
                                    _ => e.message().to_owned(),
                                };
                                self.hooks.log(LogLevel::Error, meta, &text);
                            }
                            return Err(e);
                        }
                    };
                    self.last_round_trip = Some(started.elapsed());
                    let mut m: BTreeMap<String, f64> = out.metrics.into_iter().collect();
                    m.insert(
                        metrics::IPC_ROUND_TRIP_MS.into(),
                        started.elapsed().as_secs_f64() * 1e3,
                    );
                    return Ok(ExecOutput {
                        resp: out.resp,
                        metrics: m,
                    });
                }
                WorkerToHost::Log {
                    request_id: id,
                    level,
                    message,
                } if id == request_id => {
                    self.hooks.log(level, meta, &message);
                }
                WorkerToHost::BindingCall {
                    request_id: id,
                    call_id,
                    name,
                    payload,
                } if id == request_id => {
                    let limit = self.setup.channel.max_frame_bytes;
                    let is_async = self.hooks.bindings.is_async(&name);
                    let call = if self.cancelled.load(Ordering::SeqCst) == request_id {
                        BindingCall::Done(refuse(&format!(
                            "host function `{name}` refused: the request was cancelled"
                        )))
                    } else if started.elapsed() > inv.timeout {
                        BindingCall::Done(refuse(&format!(
                            "host function `{name}` refused: the request timed out"
                        )))
                    } else if is_async && pending >= MAX_PENDING_PER_REQUEST {
                        // Checked before the function runs: past the cap it never runs.
                        BindingCall::Done(refuse(&format!(
                            "host function `{name}` refused: more than {MAX_PENDING_PER_REQUEST} \
                             asynchronous host calls outstanding in this request"
                        )))
                    } else if is_async {
                        self.hooks.call_binding(&name, &payload, meta, limit)
                    } else {
                        self.call_sync(name.clone(), payload, meta, limit, started + inv.timeout)
                    };
                    let msg = match call {
                        // An asynchronous function answers with a promise, whatever happens:
                        // a refusal or an immediate error rejects it rather than throwing.
                        BindingCall::Done(io) if is_async => {
                            let _ = done_tx.send((call_id, io));
                            pending += 1;
                            HostToWorker::BindingPending { call_id }
                        }
                        BindingCall::Done(io) => HostToWorker::BindingReply {
                            call_id,
                            reply: encode_io(&io),
                        },
                        BindingCall::Pending(fut) => {
                            match self.start_async(&mut pending, call_id, fut, &done_tx) {
                                Ok(()) => HostToWorker::BindingPending { call_id },
                                Err(why) => {
                                    let _ = done_tx.send((
                                        call_id,
                                        refuse(&format!("host function `{name}` refused: {why}")),
                                    ));
                                    pending += 1;
                                    HostToWorker::BindingPending { call_id }
                                }
                            }
                        }
                    };
                    if let Err(e) = self.endpoint.send(&msg) {
                        return Err(self.broken(e));
                    }
                }
                WorkerToHost::AwaitBindings { request_id: id } if id == request_id => {
                    // The worker has nothing to do until an asynchronous call finishes: wait
                    // for one (within the request's time) and pass its reply on.
                    let left = (started + inv.timeout).saturating_duration_since(Instant::now());
                    let reply = if pending == 0 {
                        Some((0, refuse("no asynchronous host call is outstanding")))
                    } else {
                        done_rx.recv_timeout(left).ok()
                    };
                    if let Some((call_id, io)) = reply {
                        pending = pending.saturating_sub(1);
                        let msg = HostToWorker::BindingReply {
                            call_id,
                            reply: encode_io(&io),
                        };
                        if let Err(e) = self.endpoint.send(&msg) {
                            return Err(self.broken(e));
                        }
                    }
                    // On timeout nothing is sent: the worker's own deadline ends the JS, and
                    // its `Executed` (a timeout) arrives next.
                }
                other => {
                    return Err(self.protocol(&format!(
                        "{} while running request {request_id}",
                        describe(&other)
                    )));
                }
            }
        }
    }

    fn is_alive(&mut self) -> bool {
        if self.alive && !matches!(self.process.try_wait(), Ok(None)) {
            self.alive = false;
        }
        self.alive
    }

    fn interrupter(&self) -> Arc<dyn Interrupt> {
        Arc::new(ControlInterrupt(
            Arc::clone(&self.control),
            Arc::clone(&self.cancelled),
        ))
    }
}

impl<M> Drop for WorkerClient<M> {
    fn drop(&mut self) {
        // Ask politely; dropping the process handle kills and reaps whatever is left.
        if self.alive {
            let _ = self.endpoint.send(&HostToWorker::Shutdown);
            let _ = self.process.wait_timeout(Duration::from_millis(100));
        }
    }
}

/// A short description of a message, without its (untrusted, maybe huge) payload.
fn describe(msg: &WorkerToHost) -> String {
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

impl<M> std::fmt::Debug for WorkerClient<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient")
            .field("index", &self.index)
            .field("pid", &self.process.pid())
            .field("alive", &self.alive)
            .finish_non_exhaustive()
    }
}
