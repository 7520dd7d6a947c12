//! The production [`WorkerBackend`]: one jailed `roma-worker` process, driven over roma-ipc.
//!
//! Each dispatcher slot owns one [`WorkerClient`] and calls it from its own thread, one request
//! at a time. Every wait on the worker has a deadline (the request's timeout plus a grace
//! period, the load and startup timeouts); a worker that misses one, closes its channel, or
//! sends anything malformed is killed, and the dispatcher replaces it.

use crate::config::Config;
use crate::exchange::{
    self, CancelMark, Exchange, ExchangeEnv, LIVENESS_SLICE, Mode, Outcome, SharedChannel,
    SyncCall, SyncCalls, describe,
};
use crate::hooks::Hooks;
use crate::locate::WorkerBinary;
use crate::udf_thread::{UdfThread, Waiting};
use roma_core::LogLevel;
use roma_core::{CodeObject, ErrorKind, ExecOutput, Invocation, RomaError, metrics};
use roma_dispatch::{Interrupt, WorkerBackend};
use roma_ipc::{
    ChannelConfig, Control, ControlSender, Deadline, HostEndpoint, HostToWorker, IpcError,
    PROBE_MODE_ARG, ProbeResult, RequestTime, WORKER_OOM_EXIT_CODE, WorkerToHost, spawn_pair,
};
use roma_sandbox::{ExitReport, Sandbox, WorkerProcess, WorkerSpec};
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
    pub enable_profilers: bool,
    pub startup_timeout: Duration,
    pub load_timeout: Duration,
    pub grace: Duration,
    /// What the workers are started for.
    pub mode: WorkerMode,
    pub address_space_limit_mb: Option<u64>,
    pub data_limit_mb: Option<u64>,
    pub worker_uid: Option<u32>,
    /// Where the slot thread runs synchronous host functions.
    pub sync_calls: SyncCalls,
    /// The limits of each worker's own cgroup (none set: no cgroup).
    pub cgroup: roma_sandbox::CgroupLimits,
    /// Which cgroup interface the workers' cgroups use, found at start.
    pub cgroup_mode: Option<String>,
    /// The low-latency mode's poll bound for the worker's idle wait (zero: off).
    pub idle_poll: Duration,
    /// Where the workers' stderr lines go.
    pub output: Arc<crate::WorkerOutputFn>,
}

/// What a service's workers are started for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkerMode {
    /// Serving requests: the jail's seccomp filter kills a forbidden call.
    Serve,
    /// `roma check`'s probes: the same jail, but a forbidden call fails with `EPERM`, so that
    /// every probe can report. Such a worker is never given code.
    Probe,
}

impl WorkerSetup {
    pub fn from_config<M>(
        config: &Config<M>,
        binary: WorkerBinary,
        mode: WorkerMode,
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
        let cgroup = config.cgroup_limits();
        let cgroup_mode = if cgroup.is_empty() {
            None
        } else {
            // Chosen (and proven by making one) before any worker starts, so that a host that
            // cannot honour the limits fails here, with the reason, rather than at every spawn.
            Some(roma_sandbox::cgroup::probe_cgroups(&cgroup).map_err(|e| {
                RomaError::invalid_argument(format!(
                    "cgroup limits are set (cgroup_memory_max_mb, cgroup_pids_max or \
                     cgroup_cpu_max) but this host cannot give workers cgroups: {e}"
                ))
            })?)
        };
        Ok(WorkerSetup {
            binary,
            sandbox,
            channel,
            limits: config.engine_limits(),
            v8_flags: config.v8_flags.clone(),
            binding_names: Vec::new(),
            prewarm: config.prewarm,
            idle_poll: config.idle_poll(),
            enable_profilers: config.enable_profilers,
            startup_timeout: config.startup_timeout(),
            load_timeout: config.load_deadline(),
            grace: config.grace(),
            mode,
            address_space_limit_mb: config.worker_address_space_mb,
            data_limit_mb: config.worker_data_limit_mb,
            worker_uid: config.worker_uid,
            sync_calls: if config.host_functions_inline {
                SyncCalls::Inline
            } else {
                SyncCalls::HandOver
            },
            cgroup,
            cgroup_mode,
            output: config
                .worker_output
                .clone()
                .unwrap_or_else(|| Arc::new(crate::worker_stderr::to_host_stderr)),
        })
    }
}

/// One worker process and the host's end of its channel.
pub(crate) struct WorkerClient<M> {
    index: usize,
    setup: Arc<WorkerSetup>,
    /// The hooks, the cancel mark and the channel's limits, shared with the UDF thread.
    env: Arc<ExchangeEnv<M>>,
    /// The channel, shared with the UDF thread while it holds a request. Each worker (each
    /// client) has its own, so a thread abandoned on a worker that was replaced never touches
    /// the new one.
    channel: SharedChannel,
    /// Shared with the interrupter, which sends on it from other threads.
    control: Arc<Mutex<ControlSender>>,
    process: Box<dyn WorkerProcess>,
    alive: bool,
    /// Where synchronous host functions run; started on the first call.
    udf: Option<UdfThread<M>>,
    /// How long the last successful request took from send to answer.
    last_round_trip: Option<Duration>,
    /// The CPU time of the worker's processes, for `cpu_time`.
    jail_cpu: roma_sandbox::JailCpuClock,
}

/// After a request's timeout, how often the slot thread checks whether the UDF thread is stuck
/// in a host function.
const RESCUE_POLL: Duration = Duration::from_millis(1);
/// How long past a request's deadline the slot thread waits for its UDF thread to hand it back
/// before it gives up on the worker (the UDF thread's own waits end at the deadline).
const HANDBACK_SLACK: Duration = Duration::from_secs(1);

impl<M: Send + Sync + 'static> WorkerClient<M> {
    /// Starts worker `index`, sends it `Init` and waits for `Ready`.
    pub fn start(
        index: usize,
        setup: Arc<WorkerSetup>,
        hooks: Arc<Hooks<M>>,
    ) -> Result<Self, RomaError> {
        let (endpoint, control, process) = spawn_worker(index, &setup)?;
        let env = Arc::new(ExchangeEnv {
            hooks,
            cancelled: Arc::new(CancelMark::default()),
            limit: setup.channel.max_frame_bytes,
            default_spin: setup.channel.cross_core_spin,
        });
        let mut client = WorkerClient {
            index,
            setup,
            env,
            channel: SharedChannel::new(endpoint),
            control: Arc::new(Mutex::new(control)),
            process,
            alive: true,
            udf: None,
            last_round_trip: None,
            jail_cpu: roma_sandbox::JailCpuClock::new(),
        };
        client.handshake()?;
        Ok(client)
    }

    /// Refuses a call to a worker this client already found gone. Whether the process still
    /// runs is the dispatcher's check, made before every load and execution (the backend
    /// contract), so it is not made a second time here.
    fn refuse_if_gone(&self) -> Result<(), RomaError> {
        if self.alive {
            return Ok(());
        }
        Err(RomaError::new(
            ErrorKind::WorkerCrashed,
            "the worker is gone",
        ))
    }

    fn handshake(&mut self) -> Result<(), RomaError> {
        let index = self.index;
        let init = HostToWorker::Init {
            limits: self.setup.limits.clone(),
            v8_flags: self.setup.v8_flags.clone(),
            binding_names: self.setup.binding_names.clone(),
            prewarm: self.setup.prewarm,
            cross_core_spin: self.setup.channel.cross_core_spin,
            idle_poll: self.setup.idle_poll,
        };
        let sent = exchange::send(&self.channel, &init);
        sent.map_err(|e| self.startup_failure(e.to_string()))?;
        let first = exchange::recv(&self.channel, self.setup.startup_timeout);
        match first {
            Ok(WorkerToHost::Ready { .. }) => Ok(()),
            Ok(WorkerToHost::Loaded { result: Err(e) }) => {
                // The worker's cgroup may say why (a pids limit below what V8 needs).
                let fate = self.reap();
                Err(RomaError::new(
                    e.kind(),
                    format!(
                        "worker {index} could not start its engine: {}{fate}",
                        e.message()
                    ),
                ))
            }
            Ok(other) => {
                Err(self.startup_failure(format!("unexpected first message {}", describe(&other))))
            }
            Err(e) => Err(self.startup_failure(e.to_string())),
        }
    }

    /// Hands a request to the UDF thread at its first synchronous host call and waits for it
    /// to come back. `None` in the result: the slot thread goes on driving the exchange itself
    /// (the call was refused here, or the UDF thread was stuck in it past the request's
    /// timeout and the exchange was taken back).
    fn hand_off(&mut self, ex: Exchange<M>, call: SyncCall) -> (Exchange<M>, Option<Outcome>) {
        // What the slot thread goes on with if the exchange does not come back.
        let successor = ex.successor();
        let calls = ex.time.calls();
        // Past this the UDF thread, whose own waits end at the answer's deadline, is given up.
        let given_up = ex.time.answer().extended(HANDBACK_SLACK);
        if self.udf.is_none() {
            match UdfThread::start(self.index, Arc::clone(&self.env)) {
                Ok(t) => self.udf = Some(t),
                Err(e) => {
                    let why = format!("no thread ({e})");
                    return self.refuse_here(ex, &call, &why);
                }
            }
        }
        let Some(udf) = self.udf.as_ref() else {
            return self.refuse_here(ex, &call, "no thread");
        };
        let generation = self.channel.lock().generation;
        if let Err(back) = udf.hand_over(ex, call, self.channel.clone(), generation) {
            let (ex, call) = *back;
            self.udf = None;
            return self.refuse_here(ex, &call, "its thread is gone");
        }
        loop {
            // Liveness slices until the request's timeout, then quick polls for a stuck call.
            let slice = calls.slice(LIVENESS_SLICE).unwrap_or(RESCUE_POLL);
            let waited = self.udf.as_ref().map(|t| t.wait(slice));
            match waited {
                Some(Ok(back)) => return (back.0, Some(back.1)),
                Some(Err(Waiting::Slice)) => {}
                Some(Err(Waiting::Gone)) | None => {
                    self.udf = None;
                    let e = IpcError::Malformed("the UDF thread of the request vanished".into());
                    return (successor, Some(Outcome::Broken(e)));
                }
            }
            let _ = self.process.try_wait();
            if !calls.passed() {
                continue;
            }
            // Past the request's timeout: if the UDF thread is inside a host function, take
            // the request back from it (see `exchange`'s invariants); that call is cut off, and
            // the worker makes the request's timeout of it.
            if let Some(sent) = exchange::take_back(&self.channel) {
                // The thread is abandoned; it exits when its function returns.
                self.udf = None;
                return (successor, sent.err().map(Outcome::Broken));
            }
            if given_up.passed() {
                // Cannot happen while the UDF thread keeps its deadlines; if it does, the
                // worker is given up and the thread with it.
                self.udf = None;
                let e = IpcError::Malformed("the request was not handed back in time".into());
                return (successor, Some(Outcome::Broken(e)));
            }
        }
    }

    /// Refuses a synchronous call on the slot thread (its UDF thread could not take it).
    fn refuse_here(
        &mut self,
        mut ex: Exchange<M>,
        call: &SyncCall,
        why: &str,
    ) -> (Exchange<M>, Option<Outcome>) {
        let why = format!("host function `{}` could not run: {why}", call.name);
        match exchange::send(&self.channel, &exchange::refusal(call.call_id, &why)) {
            Ok(()) => {
                ex.note_reply();
                (ex, None)
            }
            Err(e) => (ex, Some(Outcome::Broken(e))),
        }
    }

    /// Receives the worker's next message by `deadline`, checking the worker process between
    /// slices of the wait: if its launcher died (killed from outside) while part of the jail
    /// lives on holding the channel (birdcage's init survives its parent), `try_wait` ends the
    /// rest of the process group, and the channel then reports the end at once instead of at
    /// the request's deadline.
    fn recv_watching(&mut self, deadline: Deadline) -> Result<WorkerToHost, IpcError> {
        let WorkerClient {
            channel, process, ..
        } = self;
        deadline.wait_sliced(
            LIVENESS_SLICE,
            |slice| exchange::recv(channel, slice),
            || {
                let _ = process.try_wait();
            },
        )
    }

    /// Asks a probe-mode worker to run its probes.
    pub fn probe(&mut self) -> Result<Vec<ProbeResult>, RomaError> {
        if let Err(e) = exchange::send(&self.channel, &HostToWorker::Probe) {
            return Err(self.broken(e));
        }
        let report = exchange::recv(&self.channel, self.setup.startup_timeout);
        match report {
            Ok(WorkerToHost::ProbeReport { mut results }) => {
                // What the worker cannot see from inside: its host uid, and the tie to the host.
                let pid = self.process.pid();
                let cgroup = self.process.cgroup().map(|c| c.check(pid));
                results.extend(
                    roma_sandbox::host_checks::check_started_worker(pid)
                        .into_iter()
                        .chain(cgroup.into_iter().flatten())
                        .map(|p| ProbeResult::new(p.name, p.attempted, p.held, p.detail)),
                );
                Ok(results)
            }
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
        let fate = match self.reap_report() {
            Some(r) => format!("; the worker process {r}"),
            None => String::new(),
        };
        fate + &self.cgroup_note()
    }

    /// Which of its cgroup's limits the reaped worker ran into, for error messages.
    fn cgroup_note(&self) -> String {
        self.process
            .cgroup_events()
            .and_then(roma_sandbox::cgroup::CgroupEvents::describe)
            .map(|d| format!("; {d}"))
            .unwrap_or_default()
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
            .unwrap_or_default()
            + &self.cgroup_note();
        if let Some(limit) = self
            .process
            .cgroup_events()
            .filter(|e| e.memory_limit_killed())
            .and_then(|e| e.limits.memory_max_bytes)
        {
            return RomaError::new(
                ErrorKind::OutOfMemory,
                format!(
                    "the invocation ran worker {} into its cgroup's memory limit ({} MiB) and \
                     the kernel killed it; the worker was replaced",
                    self.index,
                    limit >> 20
                ),
            );
        }
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
        program: setup.binary.node.clone(),
        preload: Some(setup.binary.library.clone()),
        args: {
            let mut a = vec![
                handoff.arg().into(),
                format!("{}{}", roma_ipc::HOST_BUILD_ARG_PREFIX, roma_ipc::BUILD_ID).into(),
            ];
            if setup.mode == WorkerMode::Probe {
                a.push(PROBE_MODE_ARG.into());
            }
            a
        },
        inherited_fds: handoff.spec().fds(),
        extra_read_only_paths: Vec::new(),
        address_space_limit_mb: setup.address_space_limit_mb,
        data_limit_mb: setup.data_limit_mb,
        capture_stderr: true,
        worker_uid: setup.worker_uid,
        cgroup: setup.cgroup.clone(),
    };
    let spawned = setup.sandbox.spawn(&spec);
    // The host closes its copies of the worker's descriptors, so that the worker's death reads
    // as end-of-file on our side.
    drop(handoff);
    let mut process = spawned.map_err(|e| {
        RomaError::internal(format!(
            "cannot start worker {index} in the {} sandbox: {e}",
            setup.sandbox.name()
        ))
    })?;
    if let Some(stderr) = process.take_stderr() {
        // Without its reader the worker would block on a full stderr pipe: no worker then.
        if let Err(e) = crate::worker_stderr::relay(index, stderr, Arc::clone(&setup.output)) {
            let _ = process.kill();
            return Err(RomaError::internal(format!(
                "cannot start the stderr reader of worker {index}: {e}"
            )));
        }
    }
    Ok((HostEndpoint::new(link.transport), link.control, process))
}

/// Sends `Cancel` on the worker's control socket, and remembers the request so that its
/// host-function calls are refused from now on.
struct ControlInterrupt(Arc<Mutex<ControlSender>>, Arc<CancelMark>);

impl Interrupt for ControlInterrupt {
    fn interrupt(&self, request_id: u64) {
        self.1.mark(request_id);
        let control = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A full or closed control socket means the worker is stuck or gone; the request's
        // deadline handles both, so a failed send is not an error here.
        let _ = control.send(Control::Cancel { request_id }, Duration::from_millis(5));
    }
}

impl<M: Send + Sync + 'static> WorkerBackend<M> for WorkerClient<M> {
    fn load(&mut self, code: &CodeObject) -> Result<(), RomaError> {
        self.refuse_if_gone()?;
        let msg = HostToWorker::Load { code: code.clone() };
        match exchange::send(&self.channel, &msg) {
            Ok(()) => {}
            // Too big for the channel: the worker never saw it and is fine.
            Err(e @ IpcError::PayloadTooLarge { .. }) => return Err(e.into()),
            Err(e) => return Err(self.broken(e)),
        }
        let deadline = Deadline::after(self.setup.load_timeout);
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
        if inv.profile && !self.setup.enable_profilers {
            return Err(RomaError::invalid_argument(
                "the request asks for a CPU profile but profilers are off; build the service \
                 with Config::enable_profilers(true)",
            ));
        }
        self.refuse_if_gone()?;
        let started = Instant::now();
        let msg = HostToWorker::Execute {
            request_id,
            invocation: inv.clone(),
        };
        // Taken before the send: a worker woken by it may run the whole request before this
        // thread runs again, and the worker's moments must fall after this one.
        let sent = (Instant::now(), roma_ipc::clock::monotonic_ms());
        match exchange::send(&self.channel, &msg) {
            Ok(()) => {}
            // The request is too big for the channel: the worker never saw it and is fine.
            Err(e @ IpcError::PayloadTooLarge { .. }) => return Err(e.into()),
            Err(e) => return Err(self.broken(e)),
        }
        // Spin (cross-core only) about as long as the last answer took when that was quick.
        let spin = roma_ipc::answer_spin(self.last_round_trip, self.setup.channel.cross_core_spin);
        self.channel.lock().endpoint.set_spin(spin);
        let time = RequestTime::new(started, inv.timeout, self.setup.grace);
        let mut ex = Exchange::new(request_id, time, meta);
        let sync_calls = self.setup.sync_calls;
        let outcome = loop {
            let WorkerClient {
                env,
                channel,
                process,
                ..
            } = self;
            let mut watch = || {
                let _ = process.try_wait();
            };
            let mode = Mode::Slot {
                sync_calls,
                watch: &mut watch,
            };
            match exchange::drive(env, channel, &mut ex, mode) {
                Outcome::Handoff(call) => {
                    let (back, outcome) = self.hand_off(ex, call);
                    ex = back;
                    if let Some(o) = outcome {
                        break o;
                    }
                }
                o => break o,
            }
        };
        let result = match outcome {
            Outcome::Executed(r) => r,
            Outcome::Broken(e) => return Err(self.broken(e)),
            Outcome::Protocol(what) => return Err(self.protocol(&what)),
            Outcome::Handoff(_) | Outcome::Abandoned => {
                return Err(self.protocol("an exchange ended out of turn"));
            }
        };
        // A host call cut off at the request's timeout is already a timeout here: the worker
        // applies the conversation's rule (`roma_ipc::HostCallTimeout`).
        let mut out = match result {
            Ok(out) => out,
            Err(e) => {
                if e.kind() == ErrorKind::Execution {
                    // Uncaught errors reach the logging function, with the stack.
                    let text = match e.stack() {
                        Some(stack) if !stack.is_empty() => format!("{}\n{stack}", e.message()),
                        _ => e.message().to_owned(),
                    };
                    self.env.hooks.log(LogLevel::Error, meta, &text);
                }
                return Err(e);
            }
        };
        let answered = (Instant::now(), roma_ipc::clock::monotonic_ms());
        self.last_round_trip = Some(started.elapsed());
        // The worker's result, with the host's metrics added in place.
        crate::hops::place(&mut out.metrics, sent, answered);
        out.metrics.insert(
            metrics::IPC_ROUND_TRIP_MS.into(),
            started.elapsed().as_secs_f64() * 1e3,
        );
        Ok(out)
    }

    fn cpu_time(&mut self) -> Option<Duration> {
        // A process gone: the worker is ending, and `is_alive` will say so.
        self.jail_cpu.read(self.process.pid())
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
            Arc::clone(&self.env.cancelled),
        ))
    }
}

impl<M> Drop for WorkerClient<M> {
    fn drop(&mut self) {
        // Ask politely; dropping the process handle kills and reaps whatever is left.
        // `try_lock`: a UDF thread given up on may still hold the channel.
        if let (true, Some(mut channel)) = (self.alive, self.channel.try_lock()) {
            let _ = channel.endpoint.send(&HostToWorker::Shutdown);
            drop(channel);
            let _ = self.process.wait_timeout(Duration::from_millis(100));
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
