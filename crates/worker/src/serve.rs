//! The worker's main loop: set up the channel and the engine, then answer the host's messages
//! one at a time.

use crate::cancel::{CancelState, spawn_control_thread};
use roma_core::{ErrorKind, ExecOutput, LogLevel, RomaError, metrics};
use roma_ipc::{
    CallIds, ChildSpec, Deadline, HostCallTimeout, HostToWorker, IpcError, PROBE_MODE_ARG,
    ProbeResult, RequestTime, WorkerEndpoint, WorkerLink, WorkerToHost, follow_up_spin,
};
use roma_udf::{FunctionBindingIo, decode_io, encode_io, wire};
use roma_v8::{Engine, ExecHost};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the worker waits for the host's next message before checking again. The wait ends
/// early when the host closes the channel, so this only paces an idle loop.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// A wait for the host's next message at least this long means the worker was idle, not kept
/// busy by a queue of requests.
const IDLE_GAP: Duration = Duration::from_micros(200);

/// Why a worker stopped other than by the host closing its channel.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The command line did not describe a channel.
    #[error("bad worker arguments: {0}")]
    Args(String),
    /// The jail could not be entered.
    #[error("sandbox: {0}")]
    Sandbox(#[from] roma_sandbox::SandboxError),
    /// The channel failed.
    #[error("channel: {0}")]
    Ipc(#[from] IpcError),
    /// The host broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A thread could not be started.
    #[error("thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The worker's `main`: enters the jail named on the command line, then serves the host until
/// the channel closes. `args` are the process arguments without the program name.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<(), WorkerError> {
    let rest = roma_sandbox::enter_jail_from_args(args)?;
    let jailed = rest
        .jail
        .as_ref()
        .is_some_and(|j| j.kind != roma_sandbox::JailKind::None);
    let spec_arg = rest
        .args
        .iter()
        .find_map(|a| a.to_str().filter(|s| s.starts_with("roma-ipc")))
        .ok_or_else(|| WorkerError::Args("no channel argument (roma-ipc1:...)".into()))?;
    let host_build = rest.args.iter().find_map(|a| {
        a.to_str()
            .and_then(|s| s.strip_prefix(roma_ipc::HOST_BUILD_ARG_PREFIX))
    });
    if let Some(host) = host_build
        && host != roma_ipc::BUILD_ID
    {
        return Err(WorkerError::Args(format!(
            "this worker is build {}, the host is build {host}: rebuild the worker library \
             (`cargo build -p roma-worker`) from the host's sources",
            roma_ipc::BUILD_ID
        )));
    }
    let spec = ChildSpec::parse(spec_arg)?;
    // `roma check`: the same jail, but the filter fails forbidden calls with EPERM instead of
    // killing, so every probe can report. Never used for untrusted code.
    let probe_mode = rest.args.iter().any(|a| a == PROBE_MODE_ARG);
    // SAFETY: the descriptors named by the spec were opened by the host for this process and
    // passed across exec; nothing else in this process owns them.
    let link = unsafe { WorkerLink::from_inherited_fds(&spec)? };
    let mut ep = WorkerEndpoint::new(link.transport);

    let (limits, v8_flags, prewarm, binding_names, spin, idle_poll) = match ep.recv(IDLE_WAIT)? {
        HostToWorker::Init {
            limits,
            v8_flags,
            prewarm,
            binding_names,
            cross_core_spin,
            idle_poll,
        } => (
            limits,
            v8_flags,
            prewarm,
            binding_names,
            cross_core_spin,
            idle_poll.min(roma_core::MAX_IDLE_POLL),
        ),
        HostToWorker::Shutdown => return Ok(()),
        other => {
            return Err(WorkerError::Protocol(format!(
                "expected Init, got {other:?}"
            )));
        }
    };
    let engine = Engine::with_flags(limits, &v8_flags);
    let mut engine = match engine {
        Ok(e) => e,
        Err(e) => {
            // Tell the host why, then stop: without an engine there is nothing to serve.
            ep.send(&WorkerToHost::Loaded { result: Err(e) })?;
            return Ok(());
        }
    };
    engine.set_bindings(binding_names.clone());
    let cancel = Arc::new(CancelState::default());
    spawn_control_thread(link.control, engine.terminator(), Arc::clone(&cancel))?;
    // V8's threads and ours exist now; the filter applies to all of them.
    if jailed && probe_mode {
        roma_sandbox::install_worker_filter_for_probe()?;
    } else if jailed {
        roma_sandbox::install_worker_filter()?;
    }
    ep.send(&WorkerToHost::Ready {
        pid: std::process::id(),
        v8_version: roma_v8::v8_version(),
    })?;

    let mut worker = Worker {
        engine,
        cancel,
        prewarm,
        binding_names,
        max_frame: spec.max_frame_bytes,
        call_ids: CallIds::default(),
        reply_wait: None,
        spin,
    };
    ep.set_spin(worker.spin);
    // The low-latency mode's last gap between requests (None: not seen yet).
    let mut last_gap: Option<Duration> = None;
    loop {
        let waiting_since = Instant::now();
        if !idle_poll.is_zero() && !worker.spin.is_zero() {
            ep.set_spin(roma_core::idle_poll_budget(last_gap, idle_poll).max(worker.spin));
        }
        let received = ep.recv(IDLE_WAIT);
        if !idle_poll.is_zero() {
            ep.set_spin(worker.spin);
            last_gap = Some(waiting_since.elapsed());
        }
        // Whether the worker sat idle before this message: the service is not saturated.
        let was_idle = waiting_since.elapsed() >= IDLE_GAP;
        let msg = match received {
            Ok(m) => m,
            Err(e) if e.is_closed() => return Ok(()),
            Err(e) if e.is_timeout() => continue,
            Err(e) => return Err(e.into()),
        };
        match msg {
            HostToWorker::Load { code } => {
                let result = worker.engine.load(&code);
                ep.send(&WorkerToHost::Loaded { result })?;
            }
            HostToWorker::Execute {
                request_id,
                invocation,
            } => {
                #[cfg(debug_assertions)]
                if crate::fault::inject(&mut ep, request_id, &invocation.handler_name)? {
                    continue;
                }
                let result = worker.execute(&mut ep, request_id, &invocation)?;
                match ep.send(&WorkerToHost::Executed { request_id, result }) {
                    // The response does not fit the channel: the request fails, the worker
                    // goes on (nothing was written).
                    Err(e @ IpcError::PayloadTooLarge { .. }) => {
                        let result = Err(RomaError::new(
                            ErrorKind::PayloadTooLarge,
                            format!("the response is too large for the channel: {e}"),
                        ));
                        ep.send(&WorkerToHost::Executed { request_id, result })?;
                    }
                    other => other?,
                }
            }
            HostToWorker::Probe if !probe_mode => {
                return Err(WorkerError::Protocol(
                    "Probe sent to a worker not started in probe mode".into(),
                ));
            }
            HostToWorker::Probe => {
                let results = probe(jailed);
                ep.send(&WorkerToHost::ProbeReport { results })?;
            }
            HostToWorker::Shutdown => return Ok(()),
            // The late answer to a host call that timed out: nothing waits for it any more.
            HostToWorker::BindingReply { .. }
            | HostToWorker::BindingTimedOut { .. }
            | HostToWorker::BindingPending { .. } => continue,
            HostToWorker::Init { .. } => {
                return Err(WorkerError::Protocol(format!(
                    "unexpected message {msg:?} between requests"
                )));
            }
        }
        if worker.prewarm {
            if was_idle {
                // The host thread taking our answer may have been woken on this core, where
                // it would wait behind the prewarm (~0.3 ms: the scheduler does not preempt us
                // for it). Let it run first. Not under saturation: there the next request is
                // already on its way and the prewarm overlaps the host's turnaround.
                std::thread::yield_now();
            }
            // The host is busy with our answer: prepare the next context meanwhile.
            worker.engine.prewarm(1);
        }
    }
}

struct Worker {
    engine: Engine,
    cancel: Arc<CancelState>,
    prewarm: bool,
    binding_names: Vec<String>,
    max_frame: usize,
    /// Host call ids, unique over the worker's life.
    call_ids: CallIds,
    /// How long the last host-function reply took, for the next call's spin.
    reply_wait: Option<Duration>,
    /// The channel's spin outside host calls.
    spin: Duration,
}

impl Worker {
    /// Runs one request; console output goes to the host as `Log` messages as it happens.
    fn execute(
        &mut self,
        ep: &mut WorkerEndpoint,
        request_id: u64,
        inv: &roma_core::Invocation,
    ) -> Result<Result<ExecOutput, RomaError>, WorkerError> {
        let received = roma_ipc::clock::monotonic_ms();
        if !self.cancel.begin(request_id) {
            self.cancel.end();
            return Ok(Err(cancelled()));
        }
        // The worker's side of the request's time: host calls end at its timeout, counted from
        // now; the engine's watchdog ends the JS then.
        let time = RequestTime::new(Instant::now(), inv.timeout, Duration::ZERO);
        let mut host = RequestHost {
            ep,
            request_id,
            calls: time.calls(),
            names: &self.binding_names,
            call_ids: &mut self.call_ids,
            reply_wait: &mut self.reply_wait,
            spin: self.spin,
            send_err: None,
            host_call_timeout: HostCallTimeout::default(),
            max_frame: self.max_frame,
        };
        let result = self.engine.execute_with_host(inv, request_id, &mut host);
        let done = roma_ipc::clock::monotonic_ms();
        // Host calls may have raised the spin; waits between requests go back to the default.
        host.ep.set_spin(self.spin);
        self.cancel.end();
        if let Some(e) = host.send_err {
            return Err(e.into());
        }
        let result = host
            .host_call_timeout
            .apply(result, &inv.handler_name, time.timeout());
        Ok(match result {
            Ok(ex) => Ok(ExecOutput {
                resp: ex.resp,
                metrics: BTreeMap::from([
                    (metrics::CONTEXT_CREATION_MS.into(), ex.context_ms),
                    (metrics::INPUT_PARSING_MS.into(), ex.parse_ms),
                    (metrics::HANDLER_CALL_MS.into(), ex.call_ms),
                    (metrics::CODE_RUN_DURATION_MS.into(), ex.total_ms),
                    (roma_ipc::clock::WORKER_RECEIVED_CLOCK_KEY.into(), received),
                    (roma_ipc::clock::WORKER_DONE_CLOCK_KEY.into(), done),
                ]),
                profiler_output: ex.profile,
            }),
            Err(e) if e.kind() != ErrorKind::Cancelled && self.cancel.is_cancelled(request_id) => {
                Err(cancelled())
            }
            Err(e) => Err(e),
        })
    }
}

/// What the engine talks to while it runs one request: console output and host-function calls
/// go to the host as nested messages on the request's channel.
struct RequestHost<'a> {
    ep: &'a mut WorkerEndpoint,
    request_id: u64,
    /// Until then host calls are waited for.
    calls: Deadline,
    names: &'a [String],
    /// Host call ids, unique over the worker's life so that a late reply is never mistaken
    /// for the answer to a newer call.
    call_ids: &'a mut CallIds,
    /// How long the last host-function reply took (kept across requests).
    reply_wait: &'a mut Option<Duration>,
    /// The channel's spin outside host calls.
    spin: Duration,
    /// The first failure to talk to the host; the request ends with it.
    send_err: Option<IpcError>,
    /// Whether a host call ran out of the request's time, and what that makes of the result.
    host_call_timeout: HostCallTimeout,
    max_frame: usize,
}

impl RequestHost<'_> {
    fn binding(&mut self, index: usize, arg: &[u8]) -> Result<Vec<u8>, String> {
        let name = self
            .names
            .get(index)
            .ok_or_else(|| format!("no host function with index {index}"))?;
        let input = wire::decode_arg(arg).map_err(|e| e.to_string())?;
        let payload = encode_io(&FunctionBindingIo {
            input,
            ..Default::default()
        });
        let call_id = self.call_ids.new_id();
        let msg = WorkerToHost::BindingCall {
            request_id: self.request_id,
            call_id,
            name: name.clone(),
            payload,
        };
        self.ep.send(&msg).map_err(|e| self.failed(e))?;
        let sent = Instant::now();
        // The reply of a quick host function comes within microseconds: spin for it (across
        // cores only) rather than sleep, as long as the last replies were that quick.
        let spin = follow_up_spin(*self.reply_wait, self.spin);
        self.ep.set_spin(spin);
        loop {
            let Some(left) = self.calls.remaining() else {
                self.host_call_timeout.cut_off();
                return Err(HostCallTimeout::call_error(name));
            };
            match self.ep.recv(left) {
                Ok(HostToWorker::BindingReply { call_id: id, reply }) if id == call_id => {
                    *self.reply_wait = Some(sent.elapsed());
                    let io = decode_io(&reply, self.max_frame).map_err(|e| e.to_string())?;
                    return Ok(wire::encode_reply(&io));
                }
                // The host cut the call off at the request's timeout.
                Ok(HostToWorker::BindingTimedOut { call_id: id }) if id == call_id => {
                    self.host_call_timeout.cut_off();
                    return Err(HostCallTimeout::call_error(name));
                }
                // An asynchronous function started: JS gets a promise (`ReplyKind::Pending`).
                Ok(HostToWorker::BindingPending { call_id: id }) if id == call_id => {
                    return Ok(wire::pending_reply(call_id));
                }
                // The late answer to a call that already timed out: drop it.
                Ok(
                    HostToWorker::BindingReply { call_id: id, .. }
                    | HostToWorker::BindingTimedOut { call_id: id },
                ) if self.call_ids.is_late(id) => continue,
                Ok(other) => {
                    let e = IpcError::Malformed(format!(
                        "expected the reply of host call {call_id}, got {other:?}"
                    ));
                    return Err(self.failed(e));
                }
                Err(e) if e.is_timeout() => {
                    self.host_call_timeout.cut_off();
                    return Err(HostCallTimeout::call_error(name));
                }
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    fn failed(&mut self, e: IpcError) -> String {
        let msg = format!("the host could not be reached: {e}");
        self.send_err.get_or_insert(e);
        msg
    }
}

impl ExecHost for RequestHost<'_> {
    fn log(&mut self, level: LogLevel, message: &str) {
        if self.send_err.is_some() {
            return;
        }
        let msg = WorkerToHost::Log {
            request_id: self.request_id,
            level,
            message: truncate(message, MAX_LOG_BYTES),
        };
        match self.ep.send(&msg) {
            // A line too large for the channel is dropped; the request goes on.
            Ok(()) | Err(IpcError::PayloadTooLarge { .. }) => {}
            Err(e) => self.send_err = Some(e),
        }
    }

    fn call_binding(&mut self, index: usize, arg: &[u8]) -> Vec<u8> {
        match self.binding(index, arg) {
            Ok(reply) => reply,
            Err(msg) => wire::error_reply(&msg),
        }
    }

    fn await_binding(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.send_err.is_some() {
            return None;
        }
        let msg = WorkerToHost::AwaitBindings {
            request_id: self.request_id,
        };
        if let Err(e) = self.ep.send(&msg) {
            self.failed(e);
            return None;
        }
        let Some(left) = self.calls.remaining() else {
            self.host_call_timeout.cut_off();
            return None;
        };
        match self.ep.recv(left) {
            Ok(HostToWorker::BindingReply { call_id, reply }) => {
                let reply = match decode_io(&reply, self.max_frame) {
                    Ok(io) => wire::encode_reply(&io),
                    Err(e) => wire::error_reply(&e.to_string()),
                };
                Some((call_id, reply))
            }
            Ok(other) => {
                self.failed(IpcError::Malformed(format!(
                    "expected an asynchronous host reply, got {other:?}"
                )));
                None
            }
            // Out of time: the watchdog ends the JS; nothing more to wait for.
            Err(e) if e.is_timeout() => {
                self.host_call_timeout.cut_off();
                None
            }
            Err(e) => {
                self.failed(e);
                None
            }
        }
    }
}

/// Longest console line sent to the host; longer ones are cut (on a character boundary).
const MAX_LOG_BYTES: usize = 64 << 10;

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} bytes cut]", &s[..end], s.len() - end)
}

fn cancelled() -> RomaError {
    RomaError::new(ErrorKind::Cancelled, "the request was cancelled")
}

/// `roma check`: tries what the jail must forbid and reports what held.
fn probe(jailed: bool) -> Vec<ProbeResult> {
    let mut results: Vec<ProbeResult> = roma_sandbox::probe::run_probes()
        .into_iter()
        .map(|p| ProbeResult::new(p.name, p.attempted, p.held, p.detail))
        .collect();
    if !jailed {
        results.push(ProbeResult {
            name: "jail".into(),
            attempted: "run inside a jail".into(),
            held: false,
            detail: "the worker runs without a sandbox (--sandbox none)".into(),
        });
    }
    results
}
