//! The worker's seccomp-bpf allow-list, installed by the worker after V8 has initialised.
//!
//! V8 starts its platform threads during initialisation, and the filter must cover them, so it
//! is installed with `SECCOMP_FILTER_FLAG_TSYNC` (seccompiler's `apply_filter_all_threads`),
//! which also sets `no_new_privs`. Four filters are stacked; for each call the kernel applies
//! the most restrictive answer of all of them (kill > errno > allow):
//!
//! 1. `clone3` fails with `ENOSYS`, so glibc falls back to `clone`, whose flags a filter can
//!    inspect (clone3 passes them in memory);
//! 2. path look-ups (`openat`, `newfstatat`, `readlink`, `access`, ...) fail with `EACCES`: V8,
//!    ICU and glibc probe files lazily (ICU data, `/proc/sys/vm/overcommit_memory`) and cope
//!    with a refusal, and the jail has no files to find anyway;
//! 3. `socket` and `connect` fail with `EPERM`, so a stray network call by libnode fails
//!    softly (the jail's network namespace is empty anyway);
//! 4. the allow-list ([`ALLOWED`]), with argument checks for `clone` (threads only:
//!    `CLONE_THREAD` set, no namespace flag), `kill`/`tgkill` (own pid only), `prlimit64`
//!    (read own limits only) and `prctl` (thread names only). Anything else kills the whole
//!    process with `SIGSYS` ([`FilterMode::KillProcess`]), or fails with `EPERM` in
//!    [`FilterMode::Probe`], which only `roma check` uses.
//!
//! Not allowed, among others: `execve`/`execveat`, `fork`/`vfork` and `clone` without
//! `CLONE_THREAD`, `ptrace`, `mount`/`fsopen`, `bpf`, `unshare`, `setns`,
//! `process_vm_readv/writev`, signals to other processes, `ioctl`, `io_uring_*`,
//! `memfd_create`, `userfaultfd`, `perf_event_open`, `seccomp`, `setuid` and friends, `bind`,
//! `listen`, `accept`.
//!
//! Some of V8's paths depend on the CPU or the kernel, and each is on the list so that no machine
//! kills a worker another machine lets live: memory protection keys (`pkey_alloc`, `pkey_mprotect`,
//! `pkey_free`) are used only where the CPU has PKU (Intel since Skylake-SP, AMD since Zen 3), and
//! lazily, at the first WebAssembly compile, long after the filter is installed; `MADV_FREE` falls
//! back to `MADV_DONTNEED` on old kernels; glibc's `clone3` falls back to `clone`. The sandbox
//! tests make each of these calls under the installed filter on every machine (a CPU without PKU
//! answers `pkey_alloc` with an errno, but the filter still decides first).
//!
//! V8 10.2 (libnode 18) was measured (notes §4: JS, GC, JSON, WebAssembly, Intl, a 64 MiB
//! ArrayBuffer, run after a post-init filter with default KILL) to need exactly: read, write,
//! close, mmap, munmap, mprotect, madvise, mremap, brk, futex, sched_yield, clock_gettime,
//! clock_nanosleep, nanosleep, getpid, gettid, rt_sigreturn, rt_sigprocmask, sigaltstack, exit,
//! exit_group, getrandom, recvmsg, sendmsg, poll, ppoll; with openat, newfstatat, readlink,
//! readlinkat, statx and access answered `EACCES` (without that, `Context::New` is killed on
//! `newfstatat`). Its steady state is mprotect, munmap, futex, madvise, mmap and brk. The rest
//! of [`ALLOWED`] is for the Rust side: threads started after the filter (clone with thread
//! flags, set_robust_list, rseq, sched_getaffinity, prlimit64, prctl(PR_SET_NAME)), and the
//! socket and shared-memory channel (recvfrom/sendto, fcntl, fstat, getcpu, epoll).
//!
//! V8 14.6 (Node 26.12.1, in `node` carrying the worker library) was re-derived the same way:
//! strace of jailed workers running hello world, JS with WASM, standalone WASM, timeouts, Intl,
//! async handlers and host functions. Past the filter it made no call outside [`ALLOWED`]; it
//! opens `/proc/self/maps` (glibc's main-thread stack query), answered `EACCES` like the other
//! file calls. It would also open `/dev/urandom` for its entropy, which roma-v8 avoids by giving
//! V8 a `getrandom` source.

use crate::SandboxError;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// System calls allowed unconditionally, each with why a worker needs it.
pub const ALLOWED: &[(i64, &str)] = &[
    (libc::SYS_read, "channel and pipe reads"),
    (libc::SYS_write, "channel writes, stderr logging"),
    (libc::SYS_readv, "vectored channel reads"),
    (libc::SYS_writev, "vectored channel writes"),
    (libc::SYS_pread64, "shared-memory channel (memfd) reads"),
    (libc::SYS_pwrite64, "shared-memory channel (memfd) writes"),
    (libc::SYS_close, "closing descriptors the worker owns"),
    (
        libc::SYS_fstat,
        "metadata of an already-open descriptor (stdio buffering)",
    ),
    (
        libc::SYS_fcntl,
        "non-blocking mode and flags on already-open descriptors",
    ),
    (
        libc::SYS_mmap,
        "V8 heap, code space (PROT_EXEC for the JIT), thread stacks, malloc",
    ),
    (libc::SYS_munmap, "V8 heap and malloc release"),
    (
        libc::SYS_mprotect,
        "V8 W^X code space toggling, guard pages",
    ),
    (
        libc::SYS_madvise,
        "V8 and malloc returning pages (MADV_DONTNEED/FREE)",
    ),
    (
        libc::SYS_pkey_mprotect,
        "V8's write protection of WebAssembly code with memory protection keys (CPUs with PKU); \
         the same rule as mprotect",
    ),
    (
        libc::SYS_pkey_alloc,
        "V8 allocates its protection key lazily, at the first WebAssembly compile",
    ),
    (
        libc::SYS_pkey_free,
        "V8 frees a key it allocated (its PKU support test)",
    ),
    (libc::SYS_mremap, "realloc of large blocks"),
    (libc::SYS_brk, "malloc's main arena"),
    (
        libc::SYS_futex,
        "mutexes and condition variables (V8 platform threads, Rust std)",
    ),
    (libc::SYS_sched_yield, "V8 spin-then-yield locks"),
    (
        libc::SYS_sched_getaffinity,
        "thread-pool sizing (available_parallelism)",
    ),
    (
        libc::SYS_clock_gettime,
        "Date.now, performance.now, timeouts",
    ),
    (libc::SYS_clock_getres, "timer resolution queries"),
    (libc::SYS_gettimeofday, "legacy time source"),
    (
        libc::SYS_clock_nanosleep,
        "sleeps in the platform and Rust std",
    ),
    (libc::SYS_nanosleep, "sleeps"),
    (libc::SYS_getpid, "V8 and logging"),
    (libc::SYS_gettid, "V8 thread ids"),
    (libc::SYS_getppid, "harmless identity query"),
    (libc::SYS_getuid, "harmless identity query"),
    (libc::SYS_geteuid, "harmless identity query"),
    (libc::SYS_getgid, "harmless identity query"),
    (libc::SYS_getegid, "harmless identity query"),
    (libc::SYS_rt_sigreturn, "returning from signal handlers"),
    (
        libc::SYS_rt_sigprocmask,
        "signal masks around thread creation and in glibc",
    ),
    (
        libc::SYS_rt_sigaction,
        "installing handlers (Rust's stack-overflow handler, V8)",
    ),
    (
        libc::SYS_sigaltstack,
        "alternate signal stacks for new threads",
    ),
    (libc::SYS_exit, "thread exit"),
    (libc::SYS_exit_group, "process exit"),
    (libc::SYS_restart_syscall, "restarting an interrupted sleep"),
    (
        libc::SYS_getrandom,
        "Math.random seeding, hash seeds, crypto.getRandomValues",
    ),
    (
        libc::SYS_recvmsg,
        "channel reads with descriptors (SCM_RIGHTS)",
    ),
    (libc::SYS_sendmsg, "channel writes with descriptors"),
    (libc::SYS_recvfrom, "channel reads on the inherited socket"),
    (libc::SYS_sendto, "channel writes on the inherited socket"),
    (libc::SYS_shutdown, "half-closing the channel"),
    (libc::SYS_poll, "waiting on the channel"),
    (libc::SYS_ppoll, "waiting on the channel"),
    (
        libc::SYS_epoll_create1,
        "an event loop over the existing descriptors",
    ),
    (
        libc::SYS_epoll_ctl,
        "an event loop over the existing descriptors",
    ),
    (
        libc::SYS_epoll_wait,
        "an event loop over the existing descriptors",
    ),
    (
        libc::SYS_epoll_pwait,
        "an event loop over the existing descriptors",
    ),
    (libc::SYS_set_robust_list, "new threads (glibc)"),
    (libc::SYS_rseq, "new threads (glibc restartable sequences)"),
    (libc::SYS_getrlimit, "stack size queries (glibc pthread)"),
    (
        libc::SYS_getrusage,
        "V8's CPU-time and peak-memory queries (OS::GetUserTime, GC tracing)",
    ),
    (
        libc::SYS_sysinfo,
        "glibc's sysconf(_SC_PHYS_PAGES), which V8 reads to size a new isolate's heap",
    ),
    (
        libc::SYS_sched_getparam,
        "pthread scheduling queries when V8 starts a platform thread",
    ),
    (
        libc::SYS_sched_getscheduler,
        "pthread scheduling queries when V8 starts a platform thread",
    ),
    (
        libc::SYS_getcpu,
        "CPU placement for the IPC spin decision (rustix sched_getcpu)",
    ),
];

/// System calls answered with `EACCES`: path look-ups that V8, ICU and glibc attempt lazily.
pub const DENIED_WITH_EACCES: &[i64] = &[
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
];

/// System calls answered with `EPERM`: network access a library might try (none is reachable
/// in the jail's empty network namespace anyway). Failing softly keeps a stray call by libnode
/// from killing the worker, while still giving it nothing.
pub const DENIED_WITH_EPERM: &[i64] = &[libc::SYS_socket, libc::SYS_connect];

/// `prctl` options allowed (arg 0): naming threads, which Rust's `std::thread::Builder::name`
/// and V8's platform do through `PR_SET_NAME` on the calling thread.
const PRCTL_ALLOWED: [u64; 2] = [libc::PR_SET_NAME as u64, libc::PR_GET_NAME as u64];

/// Namespace-creating `clone` flags, never allowed.
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

/// What the allow-list does with a system call it does not list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterMode {
    /// Kill the whole process with `SIGSYS` (production).
    KillProcess,
    /// Fail the call with `EPERM` and carry on (for [`crate::probe`], which must survive its
    /// attempts to report them).
    Probe,
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conds).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    let filter = SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64)
        .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

/// The allow-list filter. `pid` is the worker's own pid (as it sees it): signals may only be
/// sent to it.
fn allow_list(mode: FilterMode, pid: u32) -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &(nr, _) in ALLOWED {
        rules.insert(nr, Vec::new());
    }
    // Let the errno filters answer these.
    for &nr in DENIED_WITH_EACCES.iter().chain(DENIED_WITH_EPERM) {
        rules.insert(nr, Vec::new());
    }
    let mut prctl = Vec::new();
    for option in PRCTL_ALLOWED {
        prctl.push(rule(vec![cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            option,
        )?])?);
    }
    rules.insert(libc::SYS_prctl, prctl);
    rules.insert(libc::SYS_clone3, Vec::new());
    // Threads only: CLONE_THREAD set and no namespace flag (fork is clone without CLONE_THREAD).
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![cond(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS | libc::CLONE_THREAD as u64),
            libc::CLONE_THREAD as u64,
        )?])?],
    );
    // Signals to itself only (abort() raises SIGABRT with tgkill; V8 may signal its threads).
    let own = u64::from(pid);
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            own,
        )?])?],
    );
    rules.insert(
        libc::SYS_kill,
        vec![rule(vec![cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            own,
        )?])?],
    );
    // Reading limits (pid 0 = self, new_limit NULL); never setting them.
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![
            cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, 0)?,
            cond(2, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, 0)?,
        ])?],
    );
    let mismatch = match mode {
        FilterMode::KillProcess => SeccompAction::KillProcess,
        FilterMode::Probe => SeccompAction::Errno(libc::EPERM as u32),
    };
    compile(rules, mismatch, SeccompAction::Allow)
}

fn errno_filter(syscalls: &[i64], errno: i32) -> Result<BpfProgram, SandboxError> {
    let rules = syscalls.iter().map(|&nr| (nr, Vec::new())).collect();
    compile(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
    )
}

/// The filters in installation order (the allow-list last, since it forbids `seccomp` itself).
pub fn worker_filters(mode: FilterMode, pid: u32) -> Result<Vec<BpfProgram>, SandboxError> {
    Ok(vec![
        errno_filter(&[libc::SYS_clone3], libc::ENOSYS)?,
        errno_filter(DENIED_WITH_EACCES, libc::EACCES)?,
        errno_filter(DENIED_WITH_EPERM, libc::EPERM)?,
        allow_list(mode, pid)?,
    ])
}

fn install(mode: FilterMode) -> Result<(), SandboxError> {
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    for program in worker_filters(mode, pid)? {
        // TSYNC: V8's platform threads already exist and must be filtered too.
        seccompiler::apply_filter_all_threads(&program)
            .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    }
    Ok(())
}

/// Installs the worker's filter on every thread of the process: a forbidden system call kills
/// the process with `SIGSYS`. Sets `no_new_privs`. Irreversible.
///
/// Call it after V8 initialisation (platform, isolate) and before the first untrusted code runs.
pub fn install_worker_filter() -> Result<(), SandboxError> {
    install(FilterMode::KillProcess)
}

/// The same filter, but a forbidden system call fails with `EPERM` instead of killing: for
/// [`crate::probe::run_probes`], which reports what is blocked rather than dying on the first
/// attempt. Never use it to run untrusted code.
pub fn install_worker_filter_for_probe() -> Result<(), SandboxError> {
    install(FilterMode::Probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn filters_compile_in_both_modes() {
        for mode in [FilterMode::KillProcess, FilterMode::Probe] {
            let f = worker_filters(mode, 1).unwrap();
            assert_eq!(f.len(), 4);
            assert!(f.iter().all(|p| !p.is_empty() && p.len() < 4096));
        }
    }

    #[test]
    fn dangerous_calls_are_not_on_the_list() {
        let allowed: HashSet<i64> = ALLOWED.iter().map(|&(nr, _)| nr).collect();
        assert_eq!(allowed.len(), ALLOWED.len(), "duplicate entry");
        for nr in [
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_bpf,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_kill,
            libc::SYS_tgkill,
            libc::SYS_ioctl,
            libc::SYS_io_uring_setup,
            libc::SYS_memfd_create,
            libc::SYS_userfaultfd,
            libc::SYS_perf_event_open,
            libc::SYS_prctl,
            libc::SYS_seccomp,
            libc::SYS_openat,
        ] {
            assert!(
                !allowed.contains(&nr),
                "syscall {nr} must not be allowed unconditionally"
            );
        }
        for (nr, why) in ALLOWED {
            assert!(!why.is_empty(), "syscall {nr} has no reason");
            assert!(!DENIED_WITH_EACCES.contains(nr));
            assert!(!DENIED_WITH_EPERM.contains(nr));
        }
    }
}
