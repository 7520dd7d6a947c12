//! The engine: loaded versions in an LRU, and invocations, each in a fresh context.

use crate::ffi::{self, RomaExecParams, RomaLimits, RomaStr};
use crate::version::{Out, Version, VersionMode};
use crate::watchdog::{TerminateReason, Terminator, Watchdog};
use lru::LruCache;
use roma_core::{
    CodeKind, CodeObject, EngineLimits, ErrorKind, Invocation, LogLevel, RomaError,
    WASM_ARRAY_NAME_TAG, validate_code_object, validate_invocation,
};
use roma_udf::wire::error_reply;
use std::ffi::{c_char, c_void};
use std::num::NonZeroUsize;
use std::time::Instant;

/// What an invocation returns: the response text and where its time went.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    /// JSON text of the result (or the raw string in byte-string mode).
    pub resp: String,
    /// Milliseconds spent creating the context (about 0 when a pre-warmed one was used).
    pub context_ms: f64,
    /// Milliseconds spent parsing inputs.
    pub parse_ms: f64,
    /// Milliseconds spent in the handler, promise settling included.
    pub call_ms: f64,
    /// Milliseconds for the whole invocation inside the engine.
    pub total_ms: f64,
    /// Whether a pre-warmed context served the call.
    pub prewarmed: bool,
    /// For a profiled invocation: V8's CPU profile of the handler call as `.cpuprofile` JSON
    /// (at most [`roma_core::MAX_PROFILE_BYTES`]; a larger one is replaced by
    /// `{"truncated":true}`). Empty otherwise.
    pub profile: String,
}

/// What [`Engine::raw_baseline`] measures.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raw {
    /// `Context::New` only.
    ContextOnly = 0,
    /// `Context::New`, parse, call, stringify.
    FreshCall = 1,
    /// Parse, call, stringify in one reused context.
    ReusedCall = 2,
}

/// Where console output of an invocation goes: `(level, message)`.
pub type LogSink<'a> = &'a mut dyn FnMut(LogLevel, &str);

/// A V8 engine for one worker thread: loads versions and runs invocations.
///
/// Not `Send`: V8 isolates belong to the thread that created them. Cancel from other threads
/// through [`Engine::terminator`].
pub struct Engine {
    limits: EngineLimits,
    versions: LruCache<String, Version>,
    watchdog: Watchdog,
    next_tag: u64,
    bindings: Vec<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.limits)
            .field("versions", &self.versions.len())
            .finish_non_exhaustive()
    }
}

/// The V8 flags an engine with these limits needs (process-wide).
pub fn flags_for(limits: &EngineLimits) -> Vec<String> {
    let mut flags = vec!["--no-wasm-lazy-compilation".to_string()];
    if limits.max_wasm_memory_pages > 0 {
        flags.push(format!(
            "--wasm-max-mem-pages={}",
            limits.max_wasm_memory_pages.min(65536)
        ));
    }
    flags
}

impl Engine {
    /// Starts an engine, initialising V8 for the process if needed with the flags these limits
    /// imply plus `extra_flags`.
    pub fn new(limits: EngineLimits) -> Result<Engine, RomaError> {
        Self::with_flags(limits, &[])
    }

    /// As [`Engine::new`], with extra V8 flags (process-wide; the first engine sets them).
    pub fn with_flags(limits: EngineLimits, extra_flags: &[String]) -> Result<Engine, RomaError> {
        let mut flags = flags_for(&limits);
        flags.extend(extra_flags.iter().cloned());
        crate::platform::init(&flags)?;
        let cap =
            NonZeroUsize::new(limits.effective_version_cache_size()).unwrap_or(NonZeroUsize::MIN);
        let watchdog = Watchdog::new()
            .map_err(|e| RomaError::internal(format!("cannot start the watchdog thread: {e}")))?;
        Ok(Engine {
            limits,
            versions: LruCache::new(cap),
            watchdog,
            next_tag: 1,
            bindings: Vec::new(),
        })
    }

    /// The limits this engine runs with.
    pub fn limits(&self) -> &EngineLimits {
        &self.limits
    }

    /// Names the host functions (bindings) JS may call, in index order: a dotted name creates
    /// nested objects (`foo.bar.func1`). Applies to versions loaded afterwards, so call it
    /// before the first load. A call reaches [`ExecHost::call_binding`] with the name's index.
    pub fn set_bindings(&mut self, names: Vec<String>) {
        self.bindings = names;
    }

    /// A handle that cancels the running invocation from another thread.
    pub fn terminator(&self) -> Terminator {
        self.watchdog.terminator()
    }

    fn raw_limits(&self) -> RomaLimits {
        RomaLimits {
            initial_heap_bytes: self.limits.initial_heap_mb.saturating_mul(1 << 20),
            max_heap_bytes: self.limits.effective_max_heap_mb().saturating_mul(1 << 20),
            max_array_buffer_bytes: self.limits.effective_array_buffer_bytes(),
        }
    }

    /// Loads (or replaces) a version. Plain JS runs its top level once into a snapshot; JS with
    /// WASM and standalone WASM compile once. The top-level run is bounded by the default
    /// timeout. Loading past the cache capacity evicts the least recently used version.
    pub fn load(&mut self, code: &CodeObject) -> Result<(), RomaError> {
        let kind = validate_code_object(code)?;
        let version = match kind {
            CodeKind::Js => match self.load_snapshot(code)? {
                Some(version) => version,
                // Snapshots cannot hold WASM, and V8 hides WebAssembly from snapshotting
                // contexts: code whose top level needs it runs afresh per call.
                None => self.load_unbound(code, ffi::kind::UNBOUND_JS)?,
            },
            CodeKind::JsWithWasm => self.load_unbound(code, ffi::kind::UNBOUND_JS)?,
            CodeKind::Wasm => self.load_unbound(code, ffi::kind::WASM)?,
        };
        // Replacing drops the old version (and its isolate) here.
        self.versions.put(code.version_string.clone(), version);
        Ok(())
    }

    fn next_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    fn apply_bindings(&self, raw: *mut ffi::RomaVersion) {
        let names: Vec<RomaStr> = self.bindings.iter().map(|n| RomaStr::new(n)).collect();
        // SAFETY: `raw` is a fresh version not running anything; `names` borrows strings of
        // `self.bindings`, alive for the call (the shim copies them).
        unsafe { ffi::roma_v8_version_set_bindings(raw, names.as_ptr(), names.len()) };
    }

    /// Loads plain JS from a snapshot of its top level; `None` when the shim says that top level
    /// needs `WebAssembly` ([`ffi::code::NEEDS_WASM`]), which snapshotting contexts lack.
    fn load_snapshot(&mut self, code: &CodeObject) -> Result<Option<Version>, RomaError> {
        let limits = self.raw_limits();
        let mut creator: *mut ffi::SnapshotCreator = std::ptr::null_mut();
        // SAFETY: `limits` is a valid local; `creator` a valid out-pointer.
        let raw = unsafe { ffi::roma_v8_snapshot_begin(&limits, &mut creator) };
        if raw.is_null() || creator.is_null() {
            return Err(RomaError::internal("V8 could not start a snapshot"));
        }
        self.apply_bindings(raw);
        let version = Version {
            raw,
            mode: VersionMode::Snapshot,
            code: code.clone(),
        };
        let tag = self.next_tag();
        let deadline = Instant::now() + self.limits.default_timeout;
        // The creator's isolate lives until roma_v8_snapshot_finish, which runs only after the
        // guard is disarmed below.
        let armed = self.watchdog.arm(&version, deadline, tag);
        let mut out = Out::new();
        // SAFETY: `raw` and `creator` come from snapshot_begin; run leaves the creator alive;
        // the source pointer/length describe `code.js`, alive for the call.
        let run = unsafe {
            ffi::roma_v8_snapshot_run(
                raw,
                creator,
                code.js.as_ptr().cast(),
                code.js.len(),
                &mut out.0,
            )
        };
        let fired = armed.disarm();
        // SAFETY: the watchdog is disarmed, so nothing terminates the creator's isolate while
        // finish disposes it; `creator` is consumed here, once.
        let rc = unsafe { ffi::roma_v8_snapshot_finish(raw, creator, run, &mut out.0) };
        match (rc, fired) {
            (ffi::code::OK, _) => Ok(Some(version)),
            (ffi::code::NEEDS_WASM, None) => Ok(None),
            _ => Err(self.load_error(&out, fired, code)),
        }
    }

    fn load_unbound(&mut self, code: &CodeObject, kind: i32) -> Result<Version, RomaError> {
        let limits = self.raw_limits();
        let (wasm, name) = if kind == ffi::kind::WASM {
            (&code.wasm, "")
        } else {
            (
                &code.wasm_bin,
                code.tags
                    .get(WASM_ARRAY_NAME_TAG)
                    .map(String::as_str)
                    .unwrap_or(""),
            )
        };
        // SAFETY: every pointer/length pair describes a live borrowed buffer for the call.
        let raw = unsafe {
            ffi::roma_v8_version_new(
                kind,
                &limits,
                code.js.as_ptr().cast(),
                code.js.len(),
                wasm.as_ptr(),
                wasm.len(),
                name.as_ptr().cast(),
                name.len(),
            )
        };
        if raw.is_null() {
            return Err(RomaError::internal("V8 could not create an isolate"));
        }
        self.apply_bindings(raw);
        let mode = if kind == ffi::kind::WASM {
            VersionMode::Wasm
        } else {
            VersionMode::UnboundScript
        };
        let version = Version {
            raw,
            mode,
            code: code.clone(),
        };
        let tag = self.next_tag();
        let deadline = Instant::now() + self.limits.default_timeout;
        let armed = self.watchdog.arm(&version, deadline, tag);
        let mut out = Out::new();
        // SAFETY: `raw` is live and used on this thread only.
        let rc = unsafe { ffi::roma_v8_version_compile(raw, &mut out.0) };
        let fired = armed.disarm();
        if fired.is_some() {
            version.cancel_terminate();
        }
        if rc == ffi::code::OK {
            return Ok(version);
        }
        Err(self.load_error(&out, fired, code))
    }

    fn load_error(
        &self,
        out: &Out,
        fired: Option<TerminateReason>,
        code: &CodeObject,
    ) -> RomaError {
        let v = &code.version_string;
        match (out.0.code, fired) {
            (ffi::code::OOM, _) => RomaError::new(
                ErrorKind::OutOfMemory,
                format!("the top-level code of version {v} ran out of memory"),
            ),
            (_, Some(TerminateReason::Timeout)) => RomaError::new(
                ErrorKind::Timeout,
                format!(
                    "the top-level code of version {v} ran past the {} timeout",
                    roma_core::format_duration(self.limits.default_timeout)
                ),
            ),
            (_, Some(TerminateReason::Cancelled)) => RomaError::new(
                ErrorKind::Cancelled,
                format!("the load of version {v} was cancelled"),
            ),
            _ => out.error(),
        }
    }

    /// Runs an invocation in a fresh context. `log` receives console output at or above the
    /// invocation's minimum level.
    pub fn execute(&mut self, inv: &Invocation, log: LogSink<'_>) -> Result<Execution, RomaError> {
        let tag = self.next_tag();
        self.execute_tagged(inv, tag, log)
    }

    /// As [`Engine::execute`], with a caller-chosen tag that [`Terminator::cancel`] can name.
    ///
    /// The invocation is checked first (`roma_core::validate_invocation`: a malformed one is
    /// `InvalidArgument`), since a caller of the engine alone has checked nothing.
    pub fn execute_tagged(
        &mut self,
        inv: &Invocation,
        tag: u64,
        log: LogSink<'_>,
    ) -> Result<Execution, RomaError> {
        validate_invocation(inv)?;
        let mut host = SinkHost(log);
        self.execute_with_host(inv, tag, &mut host)
    }

    /// As [`Engine::execute_tagged`], with a host that receives console output and serves the
    /// calls of host functions (see [`Engine::set_bindings`]).
    ///
    /// This is the worker's entry, and it does not validate `inv` again: roma's host validates
    /// every request once, before it accepts it (a malformed one is refused there and never
    /// queued), and the worker trusts its host. What the engine needs to stay sound under any
    /// invocation it checks itself: an unknown version is `VersionNotFound`, a handler path
    /// that names nothing (empty, or with empty segments) is `HandlerNotFound`, and byte-string
    /// mode passes whatever inputs there are as strings. A caller that is not roma's host
    /// validates first, or calls [`Engine::execute_tagged`].
    pub fn execute_with_host(
        &mut self,
        inv: &Invocation,
        tag: u64,
        host: &mut dyn ExecHost,
    ) -> Result<Execution, RomaError> {
        let started = Instant::now();
        let Some(version) = self.versions.get(&inv.version_string) else {
            return Err(RomaError::new(
                ErrorKind::VersionNotFound,
                format!("version {} is not loaded", inv.version_string),
            ));
        };
        let inputs: Vec<RomaStr> = inv.input.iter().map(|s| RomaStr::new(s)).collect();
        let ret = inv.wasm_return_type.as_deref().unwrap_or("");
        let mut ctx = HostCtx {
            host,
            reply: Vec::new(),
        };
        let user = (&mut ctx as *mut HostCtx<'_>).cast::<c_void>();
        let params = RomaExecParams {
            handler: RomaStr::new(&inv.handler_name),
            inputs: inputs.as_ptr(),
            input_count: inputs.len(),
            byte_str: i32::from(inv.treat_input_as_byte_str),
            min_log_level: inv.min_log_level as i32,
            log_fn: Some(log_trampoline),
            log_user: user,
            wasm_return_type: RomaStr::new(ret),
            binding_fn: Some(binding_trampoline),
            binding_user: user,
            await_fn: Some(await_trampoline),
            profile: i32::from(inv.profile),
            profile_max: roma_core::MAX_PROFILE_BYTES,
        };
        let raw = version.raw;
        let deadline = started + inv.timeout;
        // The guard borrows the cached version: the cache cannot drop it while armed.
        let armed = self.watchdog.arm(version, deadline, tag);
        let mut out = Out::new();
        // SAFETY: `raw` is live and used on this thread; `params` and every buffer it points to
        // (inputs, handler, the sink) outlive the call.
        unsafe { ffi::roma_v8_execute(raw, &params, &mut out.0) };
        let fired = armed.disarm();
        let version = self
            .versions
            .peek(&inv.version_string)
            .ok_or_else(|| RomaError::internal("version vanished"))?;
        if fired.is_some() {
            version.cancel_terminate();
        }
        let oom = version.oom() || out.0.code == ffi::code::OOM;
        if oom {
            self.recover(&inv.version_string);
            return Err(RomaError::new(
                ErrorKind::OutOfMemory,
                format!(
                    "the invocation of {} exhausted its memory limit",
                    inv.handler_name
                ),
            ));
        }
        if out.0.code == ffi::code::OK {
            return Ok(Execution {
                resp: out.data(),
                context_ms: out.0.context_ms,
                parse_ms: out.0.parse_ms,
                call_ms: out.0.call_ms,
                total_ms: started.elapsed().as_secs_f64() * 1e3,
                prewarmed: out.0.prewarmed != 0,
                profile: out.profile(),
            });
        }
        Err(match (out.0.code, fired) {
            (_, Some(TerminateReason::Cancelled)) => RomaError::new(
                ErrorKind::Cancelled,
                "the request was cancelled while running",
            ),
            (ffi::code::TERMINATED, _) | (_, Some(TerminateReason::Timeout)) => RomaError::new(
                ErrorKind::Timeout,
                format!(
                    "the invocation of {} ran past its {} timeout",
                    inv.handler_name,
                    roma_core::format_duration(inv.timeout)
                ),
            ),
            // The shim's message says what the code has; the handler and version are ours.
            (ffi::code::HANDLER_NOT_FOUND, _) => RomaError::new(
                ErrorKind::HandlerNotFound,
                format!(
                    "{} `{}` not found in version {}; {}",
                    if version.mode == VersionMode::Wasm {
                        "export"
                    } else {
                        "handler"
                    },
                    inv.handler_name,
                    inv.version_string,
                    out.message()
                ),
            ),
            _ => out.error(),
        })
    }

    /// After an out-of-memory: drop the version's isolate and start a fresh one (from its
    /// snapshot, or by recompiling), in this process.
    fn recover(&mut self, version: &str) {
        let Some(v) = self.versions.peek(version) else {
            return;
        };
        // SAFETY: `raw` is live, no JS runs, the watchdog is disarmed.
        if v.mode == VersionMode::Snapshot && unsafe { ffi::roma_v8_version_rebuild(v.raw) } == 0 {
            return;
        }
        let code = v.code.clone();
        self.versions.pop(version);
        // A failed reload leaves the version unloaded: the next call gets VersionNotFound
        // rather than a broken isolate.
        let _ = self.load(&code);
    }

    /// Prepares the next fresh context of the `n` most recently used versions (call when idle).
    /// Returns how many were prepared.
    pub fn prewarm(&mut self, n: usize) -> usize {
        self.versions
            .iter()
            .take(n)
            .filter(|(_, v)| v.prewarm())
            .count()
    }

    /// Whether `version` is loaded.
    pub fn has_version(&self, version: &str) -> bool {
        self.versions.contains(version)
    }

    /// Loaded versions, most recently used first.
    pub fn versions(&self) -> Vec<String> {
        self.versions.iter().map(|(k, _)| k.clone()).collect()
    }

    /// How a loaded version runs.
    pub fn version_mode(&self, version: &str) -> Option<VersionMode> {
        self.versions.peek(version).map(|v| v.mode)
    }

    /// For a version with WASM: how many times roma compiled its module, and how many times
    /// the JS was handed the precompiled module instead of compiling again.
    pub fn wasm_stats(&self, version: &str) -> Option<(u64, u64)> {
        self.versions.peek(version).map(Version::wasm_stats)
    }

    /// Benchmark baseline: the bare V8 work of a call on a snapshot version, without roma's
    /// bookkeeping (no watchdog, no console, no error classification). `Raw::ContextOnly`
    /// creates a context and drops it; `Raw::FreshCall` adds JSON.parse of `input`, the call
    /// of the global `handler`, and JSON.stringify; `Raw::ReusedCall` calls in one kept context.
    /// Returns the result length, or `None` on failure.
    #[doc(hidden)]
    pub fn raw_baseline(
        &mut self,
        version: &str,
        handler: &str,
        input: &str,
        mode: Raw,
    ) -> Option<usize> {
        let v = self.versions.peek(version)?;
        // SAFETY: `raw` is live and used on this thread; the strings outlive the call.
        let n = unsafe {
            ffi::roma_v8_raw_call(
                v.raw,
                RomaStr::new(handler),
                RomaStr::new(input),
                mode as i32,
            )
        };
        usize::try_from(n).ok()
    }

    /// Heap used and heap limit of a version's isolate, in bytes.
    pub fn heap_stats(&self, version: &str) -> Option<(usize, usize)> {
        self.versions.peek(version).map(Version::heap)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Versions before the watchdog: it is disarmed (nothing runs), so dropping isolates is
        // safe in any order; clearing first keeps the teardown order explicit.
        self.versions.clear();
    }
}

/// What an invocation talks to while it runs: where console output goes, and who answers the
/// calls of host functions.
pub trait ExecHost {
    /// A console message at or above the invocation's minimum level.
    fn log(&mut self, level: LogLevel, message: &str);
    /// A call of the host function with index `index` (see [`Engine::set_bindings`]). `arg` is
    /// the argument in the shim's encoding (`roma-udf`'s `wire` module decodes it); the return
    /// value is the reply in the same encoding. The call counts against the request's timeout.
    fn call_binding(&mut self, index: usize, arg: &[u8]) -> Vec<u8>;

    /// Waits for the reply of one asynchronous host call this invocation started (a
    /// `call_binding` that answered [`roma_udf::wire::ReplyKind::Pending`] with the call id): returns the call id and
    /// its reply, or `None` when none can come (the request's time is up, the host is gone).
    fn await_binding(&mut self) -> Option<(u64, Vec<u8>)> {
        None
    }
}

/// A host with console output only: a host-function call throws.
struct SinkHost<'a>(LogSink<'a>);

impl ExecHost for SinkHost<'_> {
    fn log(&mut self, level: LogLevel, message: &str) {
        (self.0)(level, message)
    }

    fn call_binding(&mut self, _index: usize, _arg: &[u8]) -> Vec<u8> {
        error_reply("no host functions are available to this engine")
    }
}

/// Waits for an asynchronous host call's reply on behalf of the shim.
///
/// # Safety
/// As [`log_trampoline`]; the out-pointers are valid.
unsafe extern "C" fn await_trampoline(
    user: *mut c_void,
    call_id: *mut u64,
    reply: *mut *const u8,
    reply_len: *mut usize,
) -> i32 {
    if user.is_null() || call_id.is_null() || reply.is_null() || reply_len.is_null() {
        return 0;
    }
    // SAFETY: per the contract above.
    let ctx = unsafe { &mut *user.cast::<HostCtx<'_>>() };
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.host.await_binding()));
    let Ok(Some((id, bytes))) = got else {
        return 0;
    };
    ctx.reply = bytes;
    // SAFETY: out-pointers valid per the contract; the buffer lives in `ctx` until the next
    // callback, after the shim has used it.
    unsafe {
        *call_id = id;
        *reply = ctx.reply.as_ptr();
        *reply_len = ctx.reply.len();
    }
    1
}

/// The `user` pointer of one invocation's callbacks.
struct HostCtx<'a> {
    host: &'a mut dyn ExecHost,
    /// The last reply, kept alive until the next call (the shim reads it after we return).
    reply: Vec<u8>,
}

/// Receives console messages from the shim and forwards them to the invocation's host.
///
/// # Safety
/// `user` is the `*mut HostCtx` that `execute_with_host` passed, alive for the call and not
/// otherwise borrowed during it; `msg` points to `len` bytes.
unsafe extern "C" fn log_trampoline(user: *mut c_void, level: i32, msg: *const c_char, len: usize) {
    if user.is_null() || msg.is_null() {
        return;
    }
    // SAFETY: per the contract above.
    let bytes = unsafe { std::slice::from_raw_parts(msg.cast::<u8>(), len) };
    let text = String::from_utf8_lossy(bytes);
    let level = LogLevel::from_u8(level.clamp(0, 3) as u8).unwrap_or(LogLevel::Info);
    // SAFETY: per the contract above.
    let ctx = unsafe { &mut *user.cast::<HostCtx<'_>>() };
    // A panicking host must not unwind into C++.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.host.log(level, &text)));
}

/// Receives a host-function call from the shim and returns the host's reply.
///
/// # Safety
/// As [`log_trampoline`]; `arg` points to `arg_len` bytes; `reply` and `reply_len` are valid
/// out-pointers.
unsafe extern "C" fn binding_trampoline(
    user: *mut c_void,
    index: u32,
    arg: *const u8,
    arg_len: usize,
    reply: *mut *const u8,
    reply_len: *mut usize,
) {
    if user.is_null() || reply.is_null() || reply_len.is_null() {
        return;
    }
    // SAFETY: per the contract above.
    let ctx = unsafe { &mut *user.cast::<HostCtx<'_>>() };
    let arg = if arg.is_null() {
        &[][..]
    } else {
        // SAFETY: per the contract above.
        unsafe { std::slice::from_raw_parts(arg, arg_len) }
    };
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ctx.host.call_binding(index as usize, arg)
    }));
    ctx.reply = answer.unwrap_or_else(|_| error_reply("the host function panicked"));
    // SAFETY: out-pointers valid per the contract; the buffer lives in `ctx` until the next
    // call or the end of the invocation, after the shim has copied it.
    unsafe {
        *reply = ctx.reply.as_ptr();
        *reply_len = ctx.reply.len();
    }
}
